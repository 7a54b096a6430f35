//! The key registry (§4.2-4.4): loading key Secrets, generating and renewing keys, choosing
//! the newest key, and the key watcher that picks up keys added, removed or relabelled at
//! runtime (beyond upstream, whose `--watch-for-secrets` only handles additions).
//!
//! Keys are never deleted from the API. A malformed key Secret is reported and skipped
//! (upstream panics on it, §4.10). Readers take an immutable [`KeySnapshot`] (an `Arc`), so
//! unsealing never holds a lock while doing RSA work.
//!
//! - [`shared`]: [`Keys`], the registry every part shares, and its API calls; [`registry`]:
//!   the pure registry and key ordering; [`store`]: the key Secret's shape; [`renewal`]:
//!   scheduled renewal; [`rotation`]: rotation requests; [`flags`]: the key flags.

pub mod flags;
pub mod registry;
pub mod renewal;
pub mod rotation;
pub mod shared;
pub mod store;

pub use flags::{KeyArgs, SUPPORTED_KEY_SIZES};
pub use registry::{
    KeyInfo, KeyLoadError, KeyOrderPriority, KeySnapshot, LoadedKey, PqFieldError, active_selector,
    has_key_origin, load_pq_identity, load_secret, loaded_key, ordering_not_before, pick_newest,
    unix_seconds,
};
pub use renewal::{needs_key_at_startup, next_renewal, renewal_loop};
pub use rotation::{rotation_loop, should_rotate};
pub use shared::{KeyApiError, Keys};
pub use store::{KeyGenError, key_secret, startup_backoff};

#[cfg(test)]
mod pq_tests;
#[cfg(test)]
mod tests;
