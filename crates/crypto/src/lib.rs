//! Upstream-compatible Sealed Secrets cryptography, on aws-lc-rs.
//!
//! A sealed value is `u16be(len) ‖ RSA-OAEP-SHA256(session key, label) ‖ AES-256-GCM(value)`
//! (upstream §1.1), where the OAEP label binds the value to its [`Scope`]. This crate seals and
//! opens such values, generates and loads the controller's keys and certificates, and adds an
//! opt-in multi-recipient format (see `FORMAT.md`) for sealing once for several clusters.
//!
//! It is pure: no Kubernetes, no async, no I/O beyond the system random generator.
//!
//! ```
//! use sealed_secrets_crypto::{KeyRing, PrivateKey, Scope, seal};
//!
//! let key = PrivateKey::generate(2048)?;
//! let label = Scope::Strict.label("team-a", "db");
//! let sealed = seal(key.public_key(), &label, b"s3cr3t")?;
//!
//! let mut ring = KeyRing::new();
//! ring.insert(key.clone());
//! let opened = ring.open(&label, &sealed, &[key.fingerprint().clone()])?;
//! assert_eq!(opened.plaintext.as_bytes(), b"s3cr3t");
//! // The same value does not open for another object.
//! assert!(ring.open(&Scope::Strict.label("team-b", "db"), &sealed, &[]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Secret material lives in [`PrivateKey`] and [`Plaintext`], whose `Debug` output is redacted
//! and whose buffers are zeroized on drop.

mod cert;
mod error;
mod hybrid;
mod keys;
mod pq;
mod scope;

pub use cert::{CertParams, Certificate, DEFAULT_KEY_TTL};
pub use error::{CertError, DecodeError, KeyError, OpenError, SealError};
#[cfg(feature = "multi-v1-writer")]
pub use hybrid::seal_multi_v1;
pub use hybrid::{
    Envelope, KeyRing, MULTI_MAGIC, MULTI_MARKER, MULTI_VERSION, MULTI_VERSION_V1, MultiV1Policy,
    MultiV1Tally, Opened, RsaBudget, ValueFormat, decode_base64, encode_base64, envelope,
    is_multi_v1, seal, seal_multi, value_format,
};
pub use keys::{
    ExternalRsaKey, Fingerprint, ParseFingerprintError, Plaintext, PrivateKey, PublicKey,
};
pub use pq::{
    AGE_INTRO, HINTS_STANZA, MAX_HEADER_BYTES, MAX_PQ_RECIPIENTS, MAX_STANZAS, MLKEM_STANZA,
    PqIdentity, PqKeyError, PqRecipient, SCOPE_STANZA, is_pq, seal_pq,
};
pub use scope::{ParseScopeError, Scope};
pub use zeroize::Zeroizing;
