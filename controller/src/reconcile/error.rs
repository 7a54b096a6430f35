//! Why a reconcile failed: [`ReconcileError`], with the stable category used as metric label,
//! log field and Event reason, and whether the failure is worth retrying beyond the limit.

use sealed_secrets_api::UnsealError;

use super::decide::{IMMUTABLE_MESSAGE, SERVICE_ACCOUNT_TOKEN_TYPE};
use crate::leader::NotLeading;
use crate::metrics::ErrorReason;

/// A reconcile failure; its [`ReconcileError::reason`] is the metric label and decides the
/// Event reason.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Unseal(UnsealError),
    #[error("failed to get SealedSecret `{object}`")]
    GetSealedSecret {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "SealedSecret `{object}` is {size} bytes, above this controller's limit of {limit} bytes (--max-sealed-secret-size); it is not processed"
    )]
    TooLarge {
        object: String,
        size: u64,
        limit: u64,
    },
    #[error("failed to get Secret `{object}`")]
    Get {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("Resource {name:?} already exists and is not managed by SealedSecret")]
    Unmanaged { name: String },
    #[error("{IMMUTABLE_MESSAGE}")]
    Immutable { object: String },
    #[error("failed to create Secret `{object}`")]
    Create {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to update Secret `{object}`")]
    Update {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    NotLeading(#[from] NotLeading),
    #[error("unsealing task failed")]
    Join(#[source] super::cpugate::TaskFailed),
    #[error(
        "SealedSecret `{object}` asks for a Secret of type {SERVICE_ACCOUNT_TOKEN_TYPE}, which this controller does not create (it would hand out ServiceAccount tokens); start the controller with --allow-service-account-token-secrets to permit it"
    )]
    RefusedType { object: String },
}

impl ReconcileError {
    /// The metric label: from the variant, never from the message.
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::Unseal(_) | Self::RefusedType { .. } | Self::TooLarge { .. } => {
                ErrorReason::Unseal
            }
            Self::Unmanaged { .. } => ErrorReason::Unmanaged,
            Self::Get { .. }
            | Self::GetSealedSecret { .. }
            | Self::Immutable { .. }
            | Self::Create { .. }
            | Self::Update { .. }
            | Self::NotLeading(_)
            | Self::Join(_) => ErrorReason::Update,
        }
    }

    /// The values could not be opened or used (`ErrUnsealFailed`), as opposed to a failed
    /// write (`ErrUpdateFailed`).
    pub fn is_unseal_failure(&self) -> bool {
        matches!(
            self,
            Self::Unseal(_) | Self::RefusedType { .. } | Self::TooLarge { .. }
        )
    }

    /// An API failure that says nothing about the object: the server overloaded (429),
    /// failing (5xx) or unreachable (connection errors, timeouts). Such a failure is retried
    /// with backoff for as long as it lasts without using up `--max-unseal-retries`, so that
    /// an API server's bad moment at an object's last retry never leaves it given up: its
    /// Secret missing, or (an object over a foreign Secret) its status showing the passing
    /// error instead of the lasting reason. Found by the chaos suite (5% 500s at 1,000
    /// objects on the real control plane). Pure.
    pub fn is_transient(&self) -> bool {
        let (Self::Get { source, .. }
        | Self::GetSealedSecret { source, .. }
        | Self::Create { source, .. }
        | Self::Update { source, .. }) = self
        else {
            return false;
        };
        match source {
            kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
            kube::Error::HyperError(_) | kube::Error::Service(_) => true,
            _ => false,
        }
    }

    /// The message for status and Events: the error and its causes (never values).
    pub fn message(&self) -> String {
        let mut out = self.to_string();
        let mut src = std::error::Error::source(self);
        if matches!(self, Self::Unseal(_)) {
            // UnsealError's Display already includes its item causes.
            src = None;
        }
        while let Some(s) = src {
            out.push_str(": ");
            out.push_str(&s.to_string());
            src = s.source();
        }
        out
    }
}
