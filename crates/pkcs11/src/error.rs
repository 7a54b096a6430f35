//! The typed errors of token operations.
//!
//! Messages name the module, token and key object; they never carry a PIN, key material or
//! anything derived from a decrypted value. Decryption failures are one uniform variant
//! ([`Pkcs11Error::Decrypt`]) for the same reason as `sealed_secrets_crypto::OpenError`: what
//! answers for the controller must not be a padding or label oracle.

use std::path::PathBuf;

/// A PKCS#11 function that failed, with the return value the module gave.
pub type TokenFailure = cryptoki::error::Error;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialised (wrong path, not a PKCS#11 library, or
    /// the module's own configuration is missing).
    #[error("failed to load the PKCS#11 module `{}`", path.display())]
    Module {
        /// Path of the shared library.
        path: PathBuf,
        /// The loader's or `C_Initialize`'s error.
        #[source]
        source: TokenFailure,
    },
    /// No slot holds a token with this label.
    #[error("no PKCS#11 token labelled `{label}` (tokens present: {present})")]
    TokenAbsent {
        /// The label asked for.
        label: String,
        /// Labels of the tokens the module shows, comma-separated (`none` when empty).
        present: String,
    },
    /// The PIN file could not be read, or is empty.
    #[error("failed to read the PIN file `{}`", path.display())]
    PinFile {
        /// Path of the PIN file.
        path: PathBuf,
        /// The I/O error (an empty file is reported as `InvalidData`).
        #[source]
        source: std::io::Error,
    },
    /// The token refused the user PIN.
    #[error("the token `{token}` refused the PIN from `{}`", pin_file.display())]
    WrongPin {
        /// Token label.
        token: String,
        /// Where the PIN came from (never the PIN itself).
        pin_file: PathBuf,
    },
    /// The token's user PIN is locked after too many wrong tries; the token's security
    /// officer must reset it.
    #[error("the user PIN of token `{token}` is locked")]
    PinLocked {
        /// Token label.
        token: String,
    },
    /// No private key object matches the reference.
    #[error("no private key {key} in token `{token}`")]
    KeyMissing {
        /// Token label.
        token: String,
        /// The reference looked for (label and/or ID).
        key: String,
    },
    /// More than one private key object matches the reference, so adopting one would be a
    /// guess.
    #[error("{count} private keys match {key} in token `{token}`; give the key ID")]
    KeyAmbiguous {
        /// Token label.
        token: String,
        /// The reference looked for.
        key: String,
        /// How many matched.
        count: usize,
    },
    /// The key object is not an RSA key we can use (wrong type or size, or no modulus).
    #[error("key {key} in token `{token}` is not a usable RSA key: {reason}")]
    UnusableKey {
        /// Token label.
        token: String,
        /// The key's reference.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token does not implement a mechanism (or these parameters of it) that sealed
    /// values need, e.g. SoftHSM 2.6's OAEP, which allows only SHA-1 and no label.
    #[error("the token `{token}` does not support {mechanism}")]
    MechanismUnsupported {
        /// Token label.
        token: String,
        /// The mechanism and parameters, e.g. `CKM_RSA_PKCS_OAEP with SHA-256/MGF1-SHA-256`.
        mechanism: &'static str,
        /// The module's answer.
        #[source]
        source: TokenFailure,
    },
    /// The token decrypts RSA-OAEP but does not apply the label (source data) as the
    /// standard says, as SoftHSM 2.6 ignores it: sealing scopes would silently stop binding.
    #[error(
        "the token `{token}` does not apply the RSA-OAEP label of key {key}, which binds sealed \
         values to their scope: it cannot hold sealing keys"
    )]
    OaepLabelIgnored {
        /// Token label.
        token: String,
        /// The key's reference.
        key: String,
    },
    /// The token could not decrypt the value with this key and label. Deliberately says
    /// nothing more (no padding or label oracle).
    #[error("the token could not decrypt the value")]
    Decrypt,
    /// Any other failed PKCS#11 call.
    #[error("PKCS#11 call failed on token `{token}` while {operation}")]
    Token {
        /// Token label.
        token: String,
        /// What we were doing, e.g. `generating a key pair`.
        operation: &'static str,
        /// The module's error, naming the function and return value.
        #[source]
        source: TokenFailure,
    },
    /// The certificate could not be built (or the token's signature did not verify).
    #[error("failed to build the certificate of key {key}")]
    Certificate {
        /// The key's reference.
        key: String,
    },
    /// A key reference (PKCS#11 URI) that does not parse.
    #[error("invalid PKCS#11 key reference `{uri}`: {reason}")]
    BadReference {
        /// The text given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
