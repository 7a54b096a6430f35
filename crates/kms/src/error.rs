//! The typed errors of wrapping and unwrapping.
//!
//! Messages name the backend, the endpoint and the KMS key; they never carry credentials,
//! plaintext key material, wrapped blobs or the service's free-text error message (which may
//! echo request fields). A refused unwrap is one variant, [`WrapError::InvalidCiphertext`],
//! whether the blob was tampered with, the encryption context differs or the envelope's own
//! authentication fails: which step refused is no business of an attacker probing stored keys.

use std::time::Duration;

/// Boxed cause of a transport failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a wrap or unwrap failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WrapError {
    /// The service could not be reached: connection refused or reset, DNS, TLS, or no complete
    /// answer within the timeout. Retrying later may succeed.
    #[error("the {backend} at {endpoint} is unreachable")]
    Unreachable {
        /// Backend name, e.g. `aws-kms`.
        backend: &'static str,
        /// Endpoint URL (no credentials in it).
        endpoint: String,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
    /// The call took longer than its budget (connect, request and response together).
    #[error("the {backend} at {endpoint} did not answer within {timeout:?}")]
    TimedOut {
        /// Backend name.
        backend: &'static str,
        /// Endpoint URL.
        endpoint: String,
        /// The budget that ran out.
        timeout: Duration,
    },
    /// The service refused the caller: bad or expired credentials, a missing grant or policy
    /// (revoking the KMS grant ends here).
    #[error("the {backend} denied access to key `{key_id}` ({code})")]
    Denied {
        /// Backend name.
        backend: &'static str,
        /// The KMS key asked for.
        key_id: String,
        /// The service's error code, e.g. `AccessDeniedException`.
        code: String,
    },
    /// The KMS key exists but cannot be used: disabled, pending deletion or pending import.
    #[error("the KMS key `{key_id}` of the {backend} is disabled or not usable ({code})")]
    KeyDisabled {
        /// Backend name.
        backend: &'static str,
        /// The KMS key.
        key_id: String,
        /// The service's error code, e.g. `DisabledException`.
        code: String,
    },
    /// No such KMS key (or alias) in this account and region.
    #[error("the {backend} has no KMS key `{key_id}`")]
    KeyNotFound {
        /// Backend name.
        backend: &'static str,
        /// The KMS key asked for.
        key_id: String,
    },
    /// The wrapped key does not open: tampered with, wrapped for another key Secret or
    /// cluster (encryption context), or under another KMS key. Deliberately uniform.
    #[error(
        "the wrapped key does not open with KMS key `{key_id}` of the {backend} in this context"
    )]
    InvalidCiphertext {
        /// Backend name.
        backend: &'static str,
        /// The KMS key the envelope names.
        key_id: String,
    },
    /// The service is rate-limiting the caller; retry with backoff.
    #[error("the {backend} is throttling requests for key `{key_id}` ({code})")]
    Throttled {
        /// Backend name.
        backend: &'static str,
        /// The KMS key.
        key_id: String,
        /// The service's error code.
        code: String,
    },
    /// Credentials are missing or unreadable (environment or credentials file).
    #[error("no usable {backend} credentials: {reason}")]
    Credentials {
        /// Backend name.
        backend: &'static str,
        /// What is missing, naming variables or files, never values.
        reason: String,
    },
    /// The service answered with an error this crate has no better variant for.
    #[error("the {backend} refused the request for key `{key_id}` (HTTP {status}, {code})")]
    Rejected {
        /// Backend name.
        backend: &'static str,
        /// The KMS key.
        key_id: String,
        /// HTTP status.
        status: u16,
        /// The service's error code (`unknown` when it gave none).
        code: String,
    },
    /// The service's answer was not what the API promises (too large, not JSON, missing
    /// fields).
    #[error("the {backend} at {endpoint} sent an invalid response: {reason}")]
    Protocol {
        /// Backend name.
        backend: &'static str,
        /// Endpoint URL.
        endpoint: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The stored envelope does not parse, or names a backend this wrapper is not.
    #[error("invalid wrapped key: {reason}")]
    Envelope {
        /// What is wrong with it.
        reason: String,
    },
    /// The backend's settings are unusable (bad endpoint URL, empty key ID, no region).
    #[error("invalid {backend} settings: {reason}")]
    Config {
        /// Backend name.
        backend: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl WrapError {
    /// A stable, low-cardinality name for metrics labels, log fields and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            WrapError::Unreachable { .. } => "unreachable",
            WrapError::TimedOut { .. } => "timeout",
            WrapError::Denied { .. } => "denied",
            WrapError::KeyDisabled { .. } => "key_disabled",
            WrapError::KeyNotFound { .. } => "key_not_found",
            WrapError::InvalidCiphertext { .. } => "invalid_ciphertext",
            WrapError::Throttled { .. } => "throttled",
            WrapError::Credentials { .. } => "credentials",
            WrapError::Rejected { .. } => "rejected",
            WrapError::Protocol { .. } => "protocol",
            WrapError::Envelope { .. } => "envelope",
            WrapError::Config { .. } => "config",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything (the service
    /// was down, slow or throttling). The controller's retry and readiness logic keys on this.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            WrapError::Unreachable { .. }
                | WrapError::TimedOut { .. }
                | WrapError::Throttled { .. }
        )
    }
}
