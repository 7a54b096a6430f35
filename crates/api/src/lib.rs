//! The `SealedSecret` custom resource and the conversions both binaries share.
//!
//! - [`SealedSecret`] and friends: the `bitnami.com/v1alpha1` types, schema-identical to
//!   upstream's CRD (§2); [`crd()`] builds the CRD that `crds/` holds.
//! - [`manifest`]: reading YAML/JSON streams of Secrets and SealedSecrets.
//! - [`seal`]: what `kubeseal` does to a Secret manifest (§6.3).
//! - [`unseal()`]: what the controller does to a SealedSecret (§2.4, §2.5), plus the
//!   template-free [`verify`] and [`decrypt_items`] that verify/rotate must use (§9.3).
//! - [`template`]: the Go `text/template` subset with sprig functions used by
//!   `spec.template.data` (the `sealed-secrets-gotemplate` crate, re-exported).
//! - [`output`]: kubeseal-shaped JSON and YAML.
//! - [`duration`]: Go's duration syntax, for the flags of both binaries.
//! - [`list_items`]: a list's JSON split into its items as it arrives (the controller's
//!   start-up check).
//!
//! ```
//! use sealed_secrets_api::{SealOptions, seal_manifests, unseal, UnsealOptions, output};
//! use sealed_secrets_crypto::{KeyRing, PrivateKey};
//!
//! let key = PrivateKey::generate(2048)?;
//! let input = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"team-a"},
//!                  "stringData":{"password":"hunter2"}}"#;
//! let sealed = seal_manifests(input, &[key.public_key()], &SealOptions::default())?;
//! print!("{}", output::to_json(&sealed[0]));
//!
//! let mut ring = KeyRing::new();
//! ring.insert(key);
//! let secret = unseal(&sealed[0], &ring, &UnsealOptions::default())?;
//! assert_eq!(secret.value("password"), Some(&b"hunter2"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod annotations;
mod crd;
pub mod duration;
mod error;
pub mod list_items;
pub mod manifest;
pub mod output;
mod schema;
pub mod seal;
pub mod token_key;
pub use sealed_secrets_gotemplate as template;
mod types;
pub mod unseal;
pub mod wrapped_key;

pub use crd::{crd, crd_yaml};
pub use error::{
    ItemError, MAX_MESSAGE_LEN, MAX_RSA_OPERATIONS, ManifestError, OutputError, SealingError,
    UnsealError,
};
pub use manifest::{SecretInput, parse_sealed_secrets, parse_secrets};
pub use output::OutputFormat;
pub use seal::{
    Recipients, SealOptions, merge_into, reseal, seal_manifests, seal_manifests_on, seal_raw,
    seal_secret,
};
pub use types::{
    API_VERSION, CONDITION_SYNCED, CRD_NAME, EncryptedData, GROUP, KIND, ObjectRef, SealedSecret,
    SealedSecretCondition, SealedSecretSpec, SealedSecretStatus, SecretTemplateSpec, VERSION,
    digest_keys,
};
pub use unseal::{
    DecryptedItems, UnsealOptions, UnsealedSecret, decrypt_items, sealing_key_hints, unseal, verify,
};
