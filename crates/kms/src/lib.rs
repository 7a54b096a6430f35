//! Sealed Secrets private keys wrapped by a key management service: envelope encryption of the
//! key Secret at rest (docs/security.md, "Tier 2: key Secrets wrapped by a KMS").
//!
//! The controller keeps each private key in its Secret as a [`WrappedKey`] (data field
//! `tls.key.wrapped`, named by `sealed_secrets_api::wrapped_key`) instead of plain `tls.key`,
//! and unwraps it at start with one call to the KMS per key. The plaintext key only ever lives in memory, in zeroise-on-drop buffers.
//! Backends implement [`Wrapper`]; this crate ships [`AwsKms`] (the AWS KMS JSON API,
//! SigV4-signed, tested against `local-kms`) and [`Pkcs11Wrapper`] (an AES-256 key held in a
//! PKCS#11 token, tested against kryoptic).
//!
//! ```no_run
//! use sealed_secrets_kms::{AwsKms, AwsKmsConfig, WrapContext, WrappedKey, Wrapper};
//!
//! # async fn demo(private_key_pem: &[u8]) -> Result<(), sealed_secrets_kms::WrapError> {
//! let kms = AwsKms::new(AwsKmsConfig::from_env("alias/sealed-secrets")?)?;
//! let context = WrapContext::new("prod-eu-1", "kube-system", "sealed-secrets-keyabcde");
//! let wrapped = WrappedKey::seal(&kms, private_key_pem, &context).await?;
//! // Store wrapped.to_bytes() in the key Secret's `tls.key.wrapped`, with wrapped.annotations().
//! let stored = wrapped.to_bytes();
//! // At start: one Decrypt call, the key back in a zeroising buffer.
//! let key = WrappedKey::from_bytes(&stored)?.open(&kms, &context).await?;
//! assert_eq!(key.as_slice(), private_key_pem);
//! println!("{} unwraps so far", kms.stats().unwraps());
//! # Ok(()) }
//! ```

mod aws;
mod envelope;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod pkcs11;
pub mod settings;
mod wrapper;

pub use aws::{
    AwsKms, AwsKmsConfig, CredentialSource, Credentials, ENV_ACCESS_KEY_ID, ENV_CREDENTIALS_FILE,
    ENV_DEFAULT_REGION, ENV_ENDPOINT, ENV_ENDPOINT_KMS, ENV_PROFILE, ENV_REGION,
    ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
pub use envelope::{BACKEND_ANNOTATION, KMS_KEY_ANNOTATION, MAX_ENVELOPE_LEN, WrappedKey};
pub use error::{BoxError, WrapError};
pub use pkcs11::Pkcs11Wrapper;
pub use wrapper::{Operation, WrapContext, WrapFuture, Wrapped, Wrapper, WrapperStats};
