//! Sealed Secrets keys held in a PKCS#11 token (docs/security.md, "Tier 1").
//!
//! The private key is generated inside the token (`CKA_SENSITIVE`, not `CKA_EXTRACTABLE`),
//! its self-signed certificate is signed inside the token, and every RSA-OAEP decryption of a
//! sealed value's session key happens inside the token. What leaves the token is the
//! certificate, a [`KeyRef`] (an RFC 7512 PKCS#11 URI the key Secret stores instead of a
//! private key) and decrypted 32-byte session keys.
//!
//! ```no_run
//! use sealed_secrets_crypto::{CertParams, Scope, seal};
//! use sealed_secrets_pkcs11::{Token, TokenConfig};
//!
//! let token = Token::open(&TokenConfig::new(
//!     "/usr/lib/pkcs11/libkryoptic_pkcs11.so",
//!     "sealed-secrets",
//!     "/etc/sealed-secrets/pkcs11/pin",
//! ))?;
//! let key = token.generate_key("sealed-secrets-keyabcde", 4096)?;
//! let cert = key.self_signed_certificate(&CertParams::default())?;
//! let label = Scope::Strict.label("team-a", "db");
//! // What kubeseal does with the certificate...
//! let sealed = seal(cert.public_key(), &label, b"s3cr3t")?;
//! // ...and the first step of unsealing, done by the token: the RSA block after the length.
//! let rsa_len = usize::from(u16::from_be_bytes([sealed[0], sealed[1]]));
//! let session_key = key.decrypt_oaep(&label, &sealed[2..2 + rsa_len])?;
//! assert_eq!(session_key.len(), 32);
//! // The key Secret keeps the certificate and this reference, never a private key.
//! println!("{}", key.reference());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Threads: [`Token`] and [`TokenKey`] are `Send + Sync` and cheap to clone; each call takes
//! a session from a small pool, so concurrent unseals use concurrent sessions.

mod attributes;
mod cert;
mod der;
mod error;
mod key;
mod reference;
mod token;
mod wrapping;

pub use attributes::Protection;
pub use error::{Pkcs11Error, TokenFailure};
pub use key::{KeyInfo, TokenKey};
pub use reference::KeyRef;
pub use token::{Token, TokenConfig, TokenStats};
pub use wrapping::{WRAP_IV_LEN, WRAP_TAG_LEN, WrappingKey};
