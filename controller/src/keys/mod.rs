//! The key registry (§4.2-4.4): loading key Secrets, generating and renewing keys, choosing
//! the newest key, and the key watcher that picks up keys added, removed or relabelled at
//! runtime (beyond upstream, whose `--watch-for-secrets` only handles additions).
//!
//! Keys are never deleted from the API. A malformed key Secret is reported and skipped
//! (upstream panics on it, §4.10). Readers take an immutable [`KeySnapshot`] (an `Arc`), so
//! unsealing never holds a lock while doing RSA work.
//!
//! - [`registry`]: the pure registry and key ordering; [`store`]: key Secrets in the API;
//!   [`renewal`]: scheduled renewal; [`rotation`]: rotation requests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::annotations::KEY_ORIGIN;
use sealed_secrets_crypto::MultiV1Policy;
use tokio::sync::watch;

use crate::metrics::SharedMetrics;

pub mod flags;
pub mod registry;
pub mod renewal;
pub mod rotation;
pub mod store;

pub use flags::{KeyArgs, SUPPORTED_KEY_SIZES};
pub use registry::{
    KeyInfo, KeyLoadError, KeyOrderPriority, KeySnapshot, LoadedKey, active_selector,
    has_key_origin, load_secret, ordering_not_before, pick_newest,
};
pub use renewal::{
    needs_key_at_startup, next_renewal, renewal_loop, startup_backoff, unix_seconds,
};
pub use rotation::{rotation_loop, should_rotate};
pub use store::{KeyGenError, key_secret};

use registry::Registry;

/// The shared key registry.
#[derive(Debug)]
pub struct Keys {
    registry: RwLock<Registry>,
    current: RwLock<Arc<KeySnapshot>>,
    changed: watch::Sender<u64>,
    /// Rotation requests seen on active key Secrets: Secret name → requested time.
    requests: watch::Sender<BTreeMap<String, SystemTime>>,
    args: KeyArgs,
    /// The controller's namespace, where key Secrets live.
    namespace: String,
    metrics: SharedMetrics,
}

/// Errors of the API calls around keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyApiError {
    #[error("failed to list key Secrets in namespace `{namespace}`")]
    List {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

impl Keys {
    /// The registry of the keys in `namespace`, generated as `args` say.
    pub fn new(args: KeyArgs, namespace: String, metrics: SharedMetrics) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let (requests, _) = watch::channel(BTreeMap::new());
        // Refused by default, counted into the metric whatever the policy.
        let registry = Registry {
            multi_v1: MultiV1Policy::refuse(metrics.multi_v1_tally()),
            ..Registry::default()
        };
        let current = Arc::new(registry.snapshot());
        Arc::new(Self {
            registry: RwLock::new(registry),
            current: RwLock::new(current),
            changed,
            requests,
            args,
            namespace,
            metrics,
        })
    }

    /// The key flags this registry was started with.
    pub fn args(&self) -> &KeyArgs {
        &self.args
    }

    /// Opens multi-recipient version-1 values (no key commitment) from now on when `accept`
    /// (`--accept-multi-recipient-v1`, a migration window); refuses them otherwise, the
    /// default. Applies to every path that opens a tenant's value through the snapshot ring:
    /// unsealing, `/v1/verify`, `/v1/rotate`.
    pub fn accept_multi_v1(&self, accept: bool) {
        let tally = self.metrics.multi_v1_tally();
        let policy = if accept {
            MultiV1Policy::accept(tally)
        } else {
            MultiV1Policy::refuse(tally)
        };
        self.modify(|reg| {
            reg.multi_v1 = policy;
            true
        });
    }

    /// The current keys.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Fires whenever the set of keys changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn modify(&self, f: impl FnOnce(&mut Registry) -> bool) {
        let mut reg = match self.registry.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !f(&mut reg) {
            return;
        }
        let snap = Arc::new(reg.snapshot());
        let foreign = snap.keys.iter().filter(|k| k.foreign).count();
        let gauges: Vec<(String, i64)> = snap
            .keys
            .iter()
            .map(|k| (k.fingerprint.to_string(), unix_seconds(k.order_time)))
            .collect();
        match self.current.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
        drop(reg);
        self.metrics.set_keys(&gauges);
        self.metrics
            .keys_foreign
            .set(i64::try_from(foreign).unwrap_or(i64::MAX));
        self.changed.send_modify(|v| *v += 1);
    }

    fn seq(&self) -> u64 {
        match self.registry.read() {
            Ok(g) => g.seq,
            Err(p) => p.into_inner().seq,
        }
    }

    /// Registers a loaded key (no-op if already registered).
    pub fn register(&self, k: LoadedKey) {
        self.register_inner(k, false);
    }

    fn register_inner(&self, k: LoadedKey, generated: bool) {
        let (name, fp) = (k.secret_name.clone(), k.key.fingerprint().clone());
        let (foreign, future) = (k.foreign, k.future_not_before);
        let mut added = false;
        self.modify(|r| {
            added = r.upsert(k, generated);
            added
        });
        if added {
            tracing::info!(secret = %name, fingerprint = %fp, "registered key");
            if foreign {
                tracing::warn!(secret = %name, fingerprint = %fp,
                    "active key Secret was not generated by this controller (no `{KEY_ORIGIN}` annotation): \
                     it is used, but check who added it; if you restored it, annotate it `{KEY_ORIGIN}=restored`");
            }
            if future {
                tracing::warn!(secret = %name, fingerprint = %fp,
                    "the certificate's NotBefore is in the future: ignored when choosing the newest key");
            }
        }
    }

    /// Forgets the key held by `secret` (its Secret was deleted or relabelled).
    pub fn unregister(&self, secret: &str) {
        let mut removed = false;
        self.modify(|r| {
            removed = r.remove_secret(secret);
            removed
        });
        if removed {
            tracing::info!(
                secret,
                "key no longer active; removed from the key registry"
            );
        }
    }

    /// Keeps only keys whose Secret is in `names` (after a full relist), plus `keep`.
    fn retain(&self, names: &BTreeSet<String>, keep: &str, since: u64) {
        let mut removed = Vec::new();
        self.modify(|r| {
            for e in &r.entries {
                let registered = r
                    .registered
                    .get(&e.secret_name)
                    .copied()
                    .unwrap_or_default();
                if !names.contains(&e.secret_name) && e.secret_name != keep && registered <= since {
                    removed.push(e.secret_name.clone());
                }
            }
            for n in &removed {
                r.remove_secret(n);
            }
            !removed.is_empty()
        });
        for secret in removed {
            tracing::info!(%secret, "key no longer active; removed from the key registry");
        }
    }

    /// Loads a key Secret, reporting (never failing on) a malformed one.
    pub fn load_and_register(&self, secret: &Secret) {
        match load_secret(secret, self.args.order.priority, SystemTime::now()) {
            Ok(k) => self.register(k),
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string),
                "skipping malformed key Secret")
            }
        }
    }
}

#[cfg(test)]
mod tests;
