//! Key Secrets whose private keys are wrapped by a key management service (docs/security.md,
//! "Tier 2: key Secrets wrapped by a KMS"; docs/design.md, "KMS-wrapped keys").
//!
//! With `--key-wrap-backend` set, a generated key Secret carries [`WRAPPED_KEY_FIELD`] (the
//! envelope of `sealed_secrets_kms`) instead of the private fields ([`PRIVATE_FIELDS`]); the
//! envelope's plaintext is a JSON object mapping each private field's name to its base64
//! value, so the RSA key and the post-quantum identity beside it are opened by one KMS call.
//!
//! [`KeyWrap::open`] turns a wrapped key Secret back into the plain Secret the key registry
//! reads, in memory only: one unwrap per key Secret, remembered for as long as its envelope
//! does not change (a relist or a second look costs nothing). A key that does not open is
//! reported (log line naming the Secret, a Warning Event on it, the `keys_unusable` metric,
//! `/readyz`), never deleted or rewritten, and retried with backoff ([`KeyWrap::retry_loop`]).

pub mod flags;
pub mod metrics;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
pub use sealed_secrets_api::wrapped_key::{
    PRIVATE_FIELDS, PayloadError, WRAPPED_KEY_FIELD, WRAPPED_SECRET_TYPE, install_envelope,
    is_wrapped, new_key_name, restore_private_fields, take_private_fields,
};
use sealed_secrets_kms::{WrapContext, WrapError, WrappedKey, Wrapper};
use tokio::sync::watch;
use zeroize::Zeroizing;

pub use flags::{KeyWrapArgs, WrapBackend, WrapConfigError};

use crate::keys::{Keys, startup_backoff};

/// Reason of the Warning Event on a key Secret that does not unwrap.
pub const REASON_UNWRAP_FAILED: &str = "KeyUnwrapFailed";
/// Reason of the Normal Event on a key Secret that unwrapped after failing.
pub const REASON_UNWRAPPED: &str = "KeyUnwrapped";

/// How often a key that failed for a reason retrying does not fix by itself (denied, wrong
/// context, no backend) is tried again: a grant may be restored without a restart.
const PERMANENT_RETRY: Duration = Duration::from_secs(300);

/// Delay before retry `attempt` (1-based) of a key that did not unwrap. Pure.
pub fn retry_delay(transient: bool, attempt: u32) -> Duration {
    if transient {
        startup_backoff(attempt)
    } else {
        PERMANENT_RETRY
    }
}

/// Wrapping a new key failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("failed to wrap the new key `{secret}`")]
    Wrap {
        secret: String,
        #[source]
        source: WrapError,
    },
    #[error(
        "{0} wrapped key(s) wait for the key management service; no new key until they are unwrapped"
    )]
    Pending(usize),
}

/// A key just wrapped: remembered once its Secret is written, so that the watcher seeing it
/// makes no unwrap call.
pub struct Fresh {
    name: String,
    envelope: Vec<u8>,
    payload: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What [`KeyWrap::open`] made of a key Secret.
#[derive(Debug)]
pub enum Opened {
    /// Not wrapped: read it as it is.
    Plain,
    /// Unwrapped: the Secret with its private fields, in memory only.
    Unwrapped(Box<Secret>),
    /// Does not open (reported).
    Unusable,
}

/// A key Secret that does not open, as `/readyz` and the metrics show it.
#[derive(Clone, Debug)]
pub struct Unusable {
    pub reason: String,
    /// Retrying may succeed by itself (the service is down, slow or throttling).
    pub transient: bool,
    attempts: u32,
    next_try: Instant,
    secret: Secret,
}

#[derive(Default)]
struct State {
    /// Secret name → (envelope, plaintext of the private fields).
    opened: HashMap<String, (Vec<u8>, Zeroizing<Vec<u8>>)>,
    unusable: BTreeMap<String, Unusable>,
}

/// The key-wrapping backend and what it has opened so far. Shared by the key registry, the
/// retry loop, the metrics and `/readyz`.
pub struct KeyWrap {
    wrapper: Option<Arc<dyn Wrapper>>,
    cluster: String,
    namespace: String,
    events: Option<kube::Client>,
    state: Mutex<State>,
    /// Serialises unwraps, so that the watcher and the retry loop never unwrap one key twice.
    opening: tokio::sync::Mutex<()>,
    /// Number of keys waiting for a transient failure to pass.
    waiting: watch::Sender<usize>,
}

impl std::fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWrap")
            .field("backend", &self.wrapper.as_ref().map(|w| w.describe()))
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl KeyWrap {
    /// Wrapping with `wrapper` (none: keys stay plain, wrapped key Secrets are unusable) for
    /// the key Secrets of `namespace` in `cluster`; Events written with `events`.
    pub fn new(
        wrapper: Option<Arc<dyn Wrapper>>,
        cluster: String,
        namespace: String,
        events: Option<kube::Client>,
    ) -> KeyWrap {
        KeyWrap {
            wrapper,
            cluster,
            namespace,
            events,
            state: Mutex::new(State::default()),
            opening: tokio::sync::Mutex::new(()),
            waiting: watch::channel(0).0,
        }
    }

    /// The backend, if any.
    pub fn wrapper(&self) -> Option<&Arc<dyn Wrapper>> {
        self.wrapper.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn context(&self, name: &str) -> WrapContext {
        WrapContext::new(
            self.cluster.clone(),
            self.namespace.clone(),
            name.to_owned(),
        )
    }

    /// Key Secrets that do not open, by name.
    pub fn unusable(&self) -> BTreeMap<String, Unusable> {
        self.state().unusable.clone()
    }

    fn publish_waiting(&self, st: &State) {
        let n = st.unusable.values().filter(|u| u.transient).count();
        self.waiting
            .send_if_modified(|v| std::mem::replace(v, n) != n);
    }

    /// Wraps the private fields of a new key Secret (no-op without a backend): names it (the
    /// name is part of the wrap context), replaces the private fields by
    /// [`WRAPPED_KEY_FIELD`] and adds the envelope's annotations. Refused while wrapped keys
    /// wait for the service, so that an outage at start does not end in an extra key.
    pub async fn seal_new(
        &self,
        mut secret: Secret,
        prefix: &str,
    ) -> Result<(Secret, Option<Fresh>), SealError> {
        let Some(wrapper) = &self.wrapper else {
            return Ok((secret, None));
        };
        let waiting = *self.waiting.borrow();
        if waiting > 0 {
            return Err(SealError::Pending(waiting));
        }
        let name = new_key_name(prefix, &mut rand::rng());
        secret.metadata.name = Some(name.clone());
        secret.metadata.generate_name = None;
        let payload = take_private_fields(&mut secret);
        let envelope = WrappedKey::seal(wrapper.as_ref(), &payload, &self.context(&name))
            .await
            .map_err(|source| SealError::Wrap {
                secret: name.clone(),
                source,
            })?;
        let bytes = envelope.to_bytes();
        install_envelope(&mut secret, bytes.clone(), envelope.annotations());
        Ok((
            secret,
            Some(Fresh {
                name,
                envelope: bytes,
                payload,
            }),
        ))
    }

    /// Remembers a key this process wrapped (and is writing); returns its Secret's name.
    pub fn remember(&self, fresh: Fresh) -> String {
        self.state()
            .opened
            .insert(fresh.name.clone(), (fresh.envelope, fresh.payload));
        fresh.name
    }

    /// Forgets a key Secret that was deleted or is no longer active.
    pub fn forget(&self, name: &str) {
        let mut st = self.state();
        st.opened.remove(name);
        st.unusable.remove(name);
        self.publish_waiting(&st);
    }

    /// The key Secret as the registry reads it: as it is when not wrapped, else unwrapped
    /// (one call to the service the first time this envelope is seen, none after).
    pub async fn open(&self, secret: &Secret) -> Opened {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let Some(envelope) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(WRAPPED_KEY_FIELD))
            .map(|b| b.0.clone())
        else {
            self.forget_unusable(&name);
            return Opened::Plain;
        };
        let _one_at_a_time = self.opening.lock().await;
        let cached = {
            let st = self.state();
            st.opened
                .get(&name)
                .filter(|(e, _)| *e == envelope)
                .map(|(_, p)| p.clone())
        };
        if let Some(payload) = cached {
            return match restore_private_fields(secret, &payload) {
                Ok(s) => Opened::Unwrapped(Box::new(s)),
                Err(e) => self.failed(secret, e.to_string(), false).await,
            };
        }
        let Some(wrapper) = &self.wrapper else {
            let reason = format!(
                "the key is wrapped (`{WRAPPED_KEY_FIELD}`) but no key-wrapping backend is configured (--key-wrap-backend)"
            );
            return self.failed(secret, reason, false).await;
        };
        let opened = match WrappedKey::from_bytes(&envelope) {
            Ok(w) => w.open(wrapper.as_ref(), &self.context(&name)).await,
            Err(e) => Err(e),
        };
        let payload = match opened {
            Ok(p) => p,
            Err(e) => {
                let transient = e.is_transient();
                return self.failed(secret, error_chain(&e), transient).await;
            }
        };
        let restored = match restore_private_fields(secret, &payload) {
            Ok(s) => s,
            Err(e) => return self.failed(secret, e.to_string(), false).await,
        };
        self.state()
            .opened
            .insert(name.clone(), (envelope, payload));
        tracing::info!(secret = %name, backend = wrapper.backend(), "unwrapped key");
        Opened::Unwrapped(Box::new(restored))
    }

    /// Called once the key registry has read an unwrapped key Secret: it is no longer
    /// unusable. Only now, so that whoever waits for [`Self::settled`] (the start of the
    /// leader's duties) finds the key registered, not missing.
    pub async fn registered(&self, secret: &Secret) {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let was_unusable = {
            let mut st = self.state();
            let was = st.unusable.remove(&name).is_some();
            self.publish_waiting(&st);
            was
        };
        if was_unusable {
            self.event(
                secret,
                "Normal",
                REASON_UNWRAPPED,
                "the wrapped key opened; it is used again",
            )
            .await;
        }
    }

    fn forget_unusable(&self, name: &str) {
        let mut st = self.state();
        if st.unusable.remove(name).is_some() {
            self.publish_waiting(&st);
        }
    }

    /// Records and reports a key that does not open: a log line naming the Secret every time,
    /// an Event when the reason is new.
    async fn failed(&self, secret: &Secret, reason: String, transient: bool) -> Opened {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let new_reason = {
            let mut st = self.state();
            let prev = st.unusable.get(&name);
            let attempts = prev.map_or(0, |u| u.attempts).saturating_add(1);
            let new_reason = prev.is_none_or(|u| u.reason != reason);
            st.unusable.insert(
                name.clone(),
                Unusable {
                    reason: reason.clone(),
                    transient,
                    attempts,
                    next_try: Instant::now() + retry_delay(transient, attempts),
                    secret: secret.clone(),
                },
            );
            self.publish_waiting(&st);
            new_reason
        };
        tracing::error!(secret = %name, error = %reason, transient,
            "key Secret unusable: its wrapped key does not open; values sealed to it stay sealed until it does (retrying)");
        if new_reason {
            let msg = format!("the wrapped key does not open: {reason}");
            self.event(secret, "Warning", REASON_UNWRAP_FAILED, &msg)
                .await;
        }
        Opened::Unusable
    }

    async fn event(&self, secret: &Secret, type_: &str, reason: &str, message: &str) {
        if let Some(client) = &self.events {
            crate::events::publish_on_key_secret(
                client,
                &self.namespace,
                secret,
                type_,
                reason,
                message,
            )
            .await;
        }
    }

    /// Waits until no wrapped key waits for a transient failure to pass.
    pub async fn settled(&self) {
        let mut rx = self.waiting.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Retries keys that did not open, each on its own backoff, until the process stops.
    pub async fn retry_loop(self: Arc<Self>, keys: Arc<Keys>) {
        let mut changed = self.waiting.subscribe();
        loop {
            let now = Instant::now();
            let (due, next): (Vec<Secret>, Option<Instant>) = {
                let st = self.state();
                let due = st
                    .unusable
                    .values()
                    .filter(|u| u.next_try <= now)
                    .map(|u| u.secret.clone())
                    .collect();
                (due, st.unusable.values().map(|u| u.next_try).min())
            };
            for s in &due {
                keys.load(s).await;
            }
            if !due.is_empty() {
                continue;
            }
            let wait = next.map_or(PERMANENT_RETRY, |t| t.saturating_duration_since(now));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                r = changed.changed() => if r.is_err() { return },
            }
        }
    }
}

/// Readiness from the number of usable keys and the key Secrets that do not open: ready
/// while at least one key is usable (values sealed to the others keep unsealing); the body
/// names each unusable key Secret and why. Pure.
pub fn readiness(usable: usize, unusable: &BTreeMap<String, Unusable>) -> (bool, String) {
    let mut body = format!("{usable} usable key(s)\n");
    for (name, u) in unusable {
        let retry = if u.transient {
            "retrying"
        } else {
            "retrying slowly"
        };
        body.push_str(&format!(
            "unusable key Secret `{name}` ({retry}): {}\n",
            u.reason
        ));
    }
    (usable > 0, body)
}

/// An error and its causes on one line (never key material: wrap errors name backend, key
/// and endpoint only).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
