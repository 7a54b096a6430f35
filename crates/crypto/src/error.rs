//! Error types. Decryption failures are deliberately uniform: see [`OpenError`].

/// Loading or generating a key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM input had no `RSA PRIVATE KEY` or `PRIVATE KEY` block.
    #[error("no PEM `RSA PRIVATE KEY` or `PRIVATE KEY` block found")]
    NoPrivateKey,
    /// The key bytes do not parse as an RSA key.
    #[error("malformed RSA private key")]
    Malformed,
    /// The key is not RSA (e.g. EC), which sealing cannot use.
    #[error("key is not an RSA key")]
    NotRsa,
    /// The RSA key is outside what the backend supports (2048 to 8192 bits).
    #[error("unsupported RSA key (sizes from 2048 to 8192 bits are supported)")]
    Unsupported,
    /// `generate` was asked for a size the backend cannot generate.
    #[error("unsupported RSA key size {0} (supported: 2048, 3072, 4096, 8192)")]
    UnsupportedSize(usize),
    /// The random generator or key generation failed.
    #[error("RSA key generation failed")]
    Generate,
}

/// Loading or generating a certificate failed. Messages follow upstream's where it has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Upstream (client-go) message for input without any certificate.
    #[error("data does not contain any valid RSA or ECDSA certificates")]
    NoCertificate,
    /// A `CERTIFICATE` block that is not valid X.509.
    #[error("malformed X.509 certificate")]
    Malformed,
    /// The certificate's key is not RSA.
    #[error("expected RSA public key but found {found}")]
    NotRsa {
        /// The kind of key found.
        found: String,
    },
    /// The certificate's validity has ended (upstream #818).
    #[error("failed to encrypt using an expired certificate on {not_after}")]
    Expired {
        /// NotAfter as Go's `January 2, 2006`.
        not_after: String,
    },
    /// Signing the self-signed certificate failed.
    #[error("failed to sign the certificate")]
    Sign,
}

/// Sealing a value failed (only the random generator or a broken key can cause it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// RSA-OAEP or AES-GCM encryption failed.
    #[error("encryption failed")]
    Encrypt,
    /// `seal_multi` needs between 1 and 255 distinct recipients, `seal_pq` 1 to 32.
    #[error(
        "multi-recipient sealing needs 1 to 255 distinct keys (post-quantum: 1 to 32), got {0}"
    )]
    Recipients(usize),
}

/// Opening a sealed value failed.
///
/// Every cryptographic failure (wrong key, wrong label, tampered RSA block, bad GCM tag)
/// is the single variant [`OpenError::NoKey`], with no hint of which step failed, so that
/// nothing answering for us (status, events, `/v1/verify`) can serve as a padding or
/// decryption oracle. Only structural faults visible without any key are told apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No loaded key opened the value (upstream's message).
    #[error("no key could decrypt secret")]
    NoKey,
    /// The value is shorter than its length prefix says (upstream's message).
    #[error("SealedSecret data is too short")]
    TooShort,
    /// A multi-recipient header that does not parse.
    #[error("malformed multi-recipient header: {0}")]
    MalformedHeader(&'static str),
    /// A multi-recipient value of version 1, which has no key commitment (`FORMAT.md` §2.2),
    /// and the ring's [`crate::MultiV1Policy`] refuses that version. Told apart from
    /// [`OpenError::NoKey`] because the version byte is public: it reveals nothing a reader
    /// of the value does not already see, and it tells the owner what to do (reseal it).
    #[error(
        "multi-recipient version 1 (no key commitment) is refused: reseal the value with kubeseal"
    )]
    MultiV1Refused,
    /// A post-quantum (age) value whose header is malformed, oversized or lacks our scope
    /// binding (`FORMAT.md` §3.5): visible without any key, so told apart.
    #[error("malformed post-quantum value: {0}")]
    MalformedAge(&'static str),
    /// [`crate::KeyRing::open_within`] ran out of its RSA budget before the value opened
    /// (says only that the work was cut short, not how far it got).
    #[error("RSA work limit reached before the value opened")]
    WorkLimit,
}

/// A sealed value that is not valid standard base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid base64 data: {0}")]
pub struct DecodeError(pub String);
