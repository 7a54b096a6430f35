//! Sealing: what `kubeseal` does to Secret manifests (§6.3), plus the helpers behind
//! `--raw`, `--merge-into` and re-encryption.
//!
//! - `secret`: one Secret ([`seal_secret`]) or one raw value ([`seal_raw`]);
//! - `manifests`: a whole stream, on every core ([`seal_manifests`]);
//! - `merge`: more items into an existing SealedSecret ([`merge_into`]);
//! - `reseal`: decrypted values for new keys ([`reseal()`]);
//! - `recipients`: RSA keys or post-quantum recipients ([`Recipients`]), taken by all of them.

mod manifests;
mod merge;
mod recipients;
mod reseal;
mod secret;

pub use manifests::{seal_manifests, seal_manifests_on};
pub use merge::merge_into;
pub use recipients::{AGE_KEY_FIELD, AGE_RECIPIENT_CONFIGMAP_KEY, AGE_RECIPIENT_PATH, Recipients};
pub use reseal::reseal;
pub use secret::{SealOptions, seal_raw, seal_secret};
