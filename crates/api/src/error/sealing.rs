//! Sealing failed.

use sealed_secrets_crypto::SealError as CryptoSealError;

use super::manifest::ManifestError;
use crate::types::ObjectRef;

/// Sealing failed. Messages start like upstream's where it has one (§6.4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Input had no document.
    #[error("no secrets found. Ensure the input is valid and UTF-8 encoded")]
    NoSecrets,
    /// No data and `allow_empty_data` not set.
    #[error(
        "secret.data is empty in input Secret, assuming this is an error and aborting. To work with empty data, --allow-empty-data can be used"
    )]
    EmptyData,
    /// No name (and no `--name`).
    #[error("missing metadata.name in input Secret")]
    MissingName,
    /// The Secret's namespace differs from an explicit `--namespace`.
    #[error(
        "namespace mismatch: the Secret declares namespace `{secret}` but --namespace is `{flag}`"
    )]
    NamespaceMismatch {
        /// Namespace in the manifest.
        secret: String,
        /// Namespace asked for.
        flag: String,
    },
    /// Non-cluster-wide Secret without namespace.
    #[error("secret must declare a namespace")]
    MissingNamespace,
    /// `--raw` strict/namespace-wide without namespace.
    #[error("must provide the --namespace flag with --raw and --scope strict|namespace-wide")]
    RawNeedsNamespace,
    /// `--raw` strict without name.
    #[error("must provide the --name flag with --raw and --scope strict")]
    RawNeedsName,
    /// No public key given.
    #[error("no public key to seal with")]
    NoRecipient,
    /// Encrypting one item failed.
    #[error("failed to seal item `{item}` of Secret `{object}`")]
    Encrypt {
        /// Item name.
        item: String,
        /// `namespace/name`.
        object: ObjectRef,
        /// Crypto failure.
        #[source]
        source: CryptoSealError,
    },
    /// Encrypting a raw value failed.
    #[error("failed to seal value")]
    EncryptRaw(#[source] CryptoSealError),
    /// A merge target that has no name/namespace.
    #[error("the SealedSecret to merge into has no metadata.name")]
    TargetWithoutName,
}
