//! The key registry (§4.2-4.4): loading key Secrets, generating and renewing keys, choosing
//! the newest key, and the key watcher that picks up keys added, removed or relabelled at
//! runtime (beyond upstream, whose `--watch-for-secrets` only handles additions).
//!
//! Keys are never deleted from the API. A malformed key Secret is reported and skipped
//! (upstream panics on it, §4.10). Readers take an immutable [`KeySnapshot`] (an `Arc`), so
//! unsealing never holds a lock while doing RSA work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use sealed_secrets_api::annotations::{SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE};
use sealed_secrets_crypto::{CertParams, Certificate, Fingerprint, KeyRing, PrivateKey};
use tokio::sync::watch;

use crate::config::KeyOrderPriority;
use crate::metrics::{RsaTally, SharedMetrics};

/// Label selector of active key Secrets.
pub fn active_selector() -> String {
    format!("{SEALING_KEY_LABEL}={SEALING_KEY_LABEL_ACTIVE}")
}

/// Why a key Secret could not be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("key Secret `{secret}` has no `{field}`")]
    Missing { secret: String, field: &'static str },
    #[error("key Secret `{secret}` has an unusable `tls.key`")]
    Key {
        secret: String,
        #[source]
        source: sealed_secrets_crypto::KeyError,
    },
    #[error("key Secret `{secret}` has an unusable `tls.crt`")]
    Cert {
        secret: String,
        #[source]
        source: sealed_secrets_crypto::CertError,
    },
}

/// Generating or storing a new key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenError {
    #[error("failed to generate a {bits}-bit RSA key")]
    Generate {
        bits: usize,
        #[source]
        source: sealed_secrets_crypto::KeyError,
    },
    #[error("failed to create the certificate of a new key")]
    Cert(#[source] sealed_secrets_crypto::CertError),
    #[error("failed to write the new key Secret in namespace `{namespace}`")]
    Write {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("key generation task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A key read from (or written to) a key Secret.
#[derive(Clone)]
pub struct LoadedKey {
    pub secret_name: String,
    pub key: PrivateKey,
    pub cert: Certificate,
    pub order_time: SystemTime,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("secret_name", &self.secret_name)
            .field("fingerprint", self.key.fingerprint())
            .field("order_time", &self.order_time)
            .finish_non_exhaustive()
    }
}

/// Parses a key Secret (`tls.key` PKCS#1 or PKCS#8, `tls.crt` first cert). Pure.
pub fn load_secret(secret: &Secret, priority: KeyOrderPriority) -> Result<LoadedKey, KeyLoadError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let field = |f: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(f))
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
            .ok_or(KeyLoadError::Missing {
                secret: name.clone(),
                field: f,
            })
    };
    let key = PrivateKey::from_pem(field("tls.key")?).map_err(|source| KeyLoadError::Key {
        secret: name.clone(),
        source,
    })?;
    let cert = Certificate::from_pem(field("tls.crt")?).map_err(|source| KeyLoadError::Cert {
        secret: name.clone(),
        source,
    })?;
    let order_time = match priority {
        KeyOrderPriority::CertNotBefore => cert.not_before(),
        KeyOrderPriority::SecretCreationTimestamp => secret
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| SystemTime::from(t.0))
            .unwrap_or_else(|| cert.not_before()),
    };
    Ok(LoadedKey {
        secret_name: name,
        key,
        cert,
        order_time,
    })
}

/// Public facts about one registered key.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub fingerprint: Fingerprint,
    pub secret_name: String,
    pub order_time: SystemTime,
    pub cert: Certificate,
}

/// An immutable view of the registry: the key ring for decryption plus the newest key.
#[derive(Debug)]
pub struct KeySnapshot {
    pub ring: KeyRing,
    /// Registration order.
    pub keys: Vec<KeyInfo>,
    newest: Option<usize>,
    tally: RsaTally,
}

impl KeySnapshot {
    /// The key new secrets are sealed with (cert served at `/v1/cert.pem`).
    pub fn newest(&self) -> Option<&KeyInfo> {
        self.newest.and_then(|i| self.keys.get(i))
    }

    /// Certificates, newest first (newest key, then descending ordering time).
    pub fn certs_newest_first(&self) -> Vec<&Certificate> {
        let mut keys: Vec<&KeyInfo> = self.keys.iter().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.order_time));
        if let Some(n) = self.newest() {
            keys.retain(|k| k.fingerprint != n.fingerprint);
            keys.insert(0, n);
        }
        keys.into_iter().map(|k| &k.cert).collect()
    }

    /// Reports RSA operations done with this snapshot's ring to the metric.
    pub fn report_rsa(&self, metrics: &SharedMetrics) {
        self.tally
            .report(self.ring.rsa_operations(), &metrics.rsa_decryptions);
    }
}

/// Upstream's newest-key rule: a strictly later ordering time replaces the current newest;
/// on a tie the earlier-registered key stays. Pure.
pub fn pick_newest(times: &[SystemTime]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, t) in times.iter().enumerate() {
        match best {
            Some(b) if times[b] >= *t => {}
            _ => best = Some(i),
        }
    }
    best
}

/// The mutable registry behind [`Keys`].
#[derive(Debug, Default)]
struct Registry {
    /// Registration order.
    entries: Vec<LoadedKey>,
    /// Registration sequence number per Secret name, so that a relist that started before
    /// a key was registered does not remove it.
    registered: std::collections::HashMap<String, u64>,
    seq: u64,
}

impl Registry {
    /// Adds a key; a Secret already registered is replaced only if it now holds another key.
    /// `generated` (a key this process just wrote) also moves an entry the watcher may have
    /// registered first to the later ordering time, as upstream orders its own keys by "now".
    /// Returns whether anything changed.
    fn upsert(&mut self, k: LoadedKey, generated: bool) -> bool {
        if let Some(pos) = self
            .entries
            .iter()
            .position(|e| e.secret_name == k.secret_name)
        {
            if self.entries[pos].key.fingerprint() == k.key.fingerprint() {
                if generated && self.entries[pos].order_time < k.order_time {
                    self.entries[pos].order_time = k.order_time;
                    self.mark(&k.secret_name);
                    return true;
                }
                return false;
            }
            self.entries.remove(pos);
        } else if self
            .entries
            .iter()
            .any(|e| e.key.fingerprint() == k.key.fingerprint())
        {
            // The same key in two Secrets (e.g. a restored backup): keep the first.
            return false;
        }
        self.mark(&k.secret_name);
        self.entries.push(k);
        true
    }

    fn mark(&mut self, name: &str) {
        self.seq += 1;
        self.registered.insert(name.to_owned(), self.seq);
    }

    fn remove_secret(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.registered.remove(name);
        self.entries.retain(|e| e.secret_name != name);
        before != self.entries.len()
    }

    fn snapshot(&self) -> KeySnapshot {
        let mut ring = KeyRing::new();
        let mut keys = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            ring.insert(e.key.clone());
            keys.push(KeyInfo {
                fingerprint: e.key.fingerprint().clone(),
                secret_name: e.secret_name.clone(),
                order_time: e.order_time,
                cert: e.cert.clone(),
            });
        }
        let times: Vec<SystemTime> = keys.iter().map(|k| k.order_time).collect();
        KeySnapshot {
            ring,
            keys,
            newest: pick_newest(&times),
            tally: RsaTally::default(),
        }
    }
}

/// Settings for generating keys.
#[derive(Clone, Debug)]
pub struct KeySettings {
    pub namespace: String,
    pub prefix: String,
    pub bits: usize,
    pub ttl: Duration,
    pub common_name: String,
    pub priority: KeyOrderPriority,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

/// The shared key registry.
#[derive(Debug)]
pub struct Keys {
    registry: RwLock<Registry>,
    current: RwLock<Arc<KeySnapshot>>,
    changed: watch::Sender<u64>,
    /// Rotation requests seen on active key Secrets: Secret name → requested time.
    requests: watch::Sender<BTreeMap<String, SystemTime>>,
    settings: KeySettings,
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
    pub fn new(settings: KeySettings, metrics: SharedMetrics) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let (requests, _) = watch::channel(BTreeMap::new());
        Arc::new(Self {
            registry: RwLock::new(Registry::default()),
            current: RwLock::new(Arc::new(Registry::default().snapshot())),
            changed,
            requests,
            settings,
            metrics,
        })
    }

    pub fn settings(&self) -> &KeySettings {
        &self.settings
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
        let mut added = false;
        self.modify(|r| {
            added = r.upsert(k, generated);
            added
        });
        if added {
            tracing::info!(secret = %name, fingerprint = %fp, "registered key");
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

    /// Records (or clears) the rotation request carried by an active key Secret.
    pub fn track_rotation_request(&self, secret: &Secret) {
        let Some(name) = secret.metadata.name.clone() else {
            return;
        };
        let requested = match rotation_request(&secret.metadata) {
            Some(Ok(t)) => Some(t),
            Some(Err(value)) => {
                tracing::warn!(secret = %name, %value, "ignoring `{ROTATE_REQUEST_ANNOTATION}`: not an RFC 3339 timestamp");
                None
            }
            None => None,
        };
        self.requests.send_if_modified(|m| match requested {
            Some(t) => m.insert(name, t) != Some(t),
            None => m.remove(&name).is_some(),
        });
    }

    /// Forgets the rotation request of a Secret that is gone or no longer active.
    fn forget_rotation_request(&self, secret: &str) {
        self.requests
            .send_if_modified(|m| m.remove(secret).is_some());
    }

    /// Keeps only the rotation requests of the Secrets in `names` (after a full relist).
    fn retain_rotation_requests(&self, names: &BTreeSet<String>) {
        self.requests.send_if_modified(|m| {
            let before = m.len();
            m.retain(|k, _| names.contains(k));
            before != m.len()
        });
    }

    /// The latest rotation request on any active key Secret.
    pub fn latest_rotation_request(&self) -> Option<SystemTime> {
        self.requests.borrow().values().max().copied()
    }

    /// Loads a key Secret, reporting (never failing on) a malformed one.
    pub fn load_and_register(&self, secret: &Secret) {
        match load_secret(secret, self.settings.priority) {
            Ok(k) => {
                if k.cert.public_key().fingerprint() != k.key.fingerprint() {
                    tracing::warn!(secret = %k.secret_name, "tls.crt does not match tls.key; the certificate is served as is, like upstream");
                }
                self.register(k)
            }
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string),
                "skipping malformed key Secret")
            }
        }
    }

    /// Startup load (§4.2): every `active` key Secret sorted by creationTimestamp, plus the
    /// legacy Secret named exactly `<prefix>`.
    pub async fn initial_load(&self, client: &kube::Client) -> Result<(), KeyApiError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.settings.namespace);
        let list = api
            .list(&ListParams::default().labels(&active_selector()))
            .await
            .map_err(|source| KeyApiError::List {
                namespace: self.settings.namespace.clone(),
                source,
            })?;
        let mut items = list.items;
        items.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        for s in &items {
            self.track_rotation_request(s);
            self.load_and_register(s);
        }
        match api.get_opt(&self.settings.prefix).await {
            Ok(Some(legacy)) => self.load_and_register(&legacy),
            Ok(None) => {}
            // Upstream's key-admin Role grants get on that one name only; a failure here is
            // not fatal, the labelled keys are what matter.
            Err(e) => {
                tracing::warn!(error = %e, secret = %self.settings.prefix, "cannot read the legacy key Secret")
            }
        }
        Ok(())
    }

    /// Watches `active` key Secrets until the stream ends: adds, removes and relabels are
    /// applied to the registry. Runs on every replica.
    pub async fn watch(self: Arc<Self>, client: kube::Client) {
        let api: Api<Secret> = Api::namespaced(client, &self.settings.namespace);
        let cfg = watcher::Config::default().labels(&active_selector());
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut init_seq = 0;
        let mut stream = watcher(api, cfg).boxed();
        let mut backoff = Duration::from_millis(500);
        loop {
            match stream.try_next().await {
                Ok(Some(ev)) => {
                    backoff = Duration::from_millis(500);
                    match ev {
                        watcher::Event::Init => {
                            seen.clear();
                            init_seq = self.seq();
                        }
                        watcher::Event::InitApply(s) => {
                            if let Some(n) = &s.metadata.name {
                                seen.insert(n.clone());
                            }
                            self.track_rotation_request(&s);
                            self.load_and_register(&s);
                        }
                        watcher::Event::InitDone => {
                            self.retain_rotation_requests(&seen);
                            self.retain(&seen, &self.settings.prefix, init_seq)
                        }
                        watcher::Event::Apply(s) => {
                            self.track_rotation_request(&s);
                            self.load_and_register(&s)
                        }
                        watcher::Event::Delete(s) => {
                            if let Some(n) = &s.metadata.name {
                                self.forget_rotation_request(n);
                                self.unregister(n);
                            }
                        }
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "key Secret watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Generates a key, writes its Secret, and registers it only once the write succeeded
    /// (§4.3 step 3). Its ordering time is now.
    pub async fn generate(&self, client: &kube::Client) -> Result<Fingerprint, KeyGenError> {
        let s = self.settings.clone();
        let bits = s.bits;
        let (key, cert) = tokio::task::spawn_blocking(move || {
            let key = PrivateKey::generate(bits)
                .map_err(|source| KeyGenError::Generate { bits, source })?;
            let params = CertParams {
                common_name: s.common_name.clone(),
                not_before: SystemTime::now(),
                validity: s.ttl,
            };
            let cert = key
                .self_signed_certificate(&params)
                .map_err(KeyGenError::Cert)?;
            Ok::<_, KeyGenError>((key, cert))
        })
        .await
        .map_err(KeyGenError::Join)??;
        let secret = key_secret(&self.settings, &key, &cert);
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.settings.namespace);
        let created = api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|source| KeyGenError::Write {
                namespace: self.settings.namespace.clone(),
                source,
            })?;
        let fp = key.fingerprint().clone();
        let name = created.metadata.name.unwrap_or_default();
        tracing::info!(secret = %name, fingerprint = %fp, "new key written");
        self.register_inner(
            LoadedKey {
                secret_name: name,
                key,
                cert,
                order_time: SystemTime::now(),
            },
            true,
        );
        Ok(fp)
    }
}

/// The key Secret upstream writes (§4.2): generateName `<prefix>`, label `active` plus
/// `--privatekey-labels` (which cannot override it), `--privatekey-annotations`,
/// `kubernetes.io/tls` with PKCS#1 `tls.key` and `tls.crt`.
pub fn key_secret(s: &KeySettings, key: &PrivateKey, cert: &Certificate) -> Secret {
    let mut labels: BTreeMap<String, String> = s.labels.iter().cloned().collect();
    labels.insert(
        SEALING_KEY_LABEL.to_owned(),
        SEALING_KEY_LABEL_ACTIVE.to_owned(),
    );
    let annotations: BTreeMap<String, String> = s.annotations.iter().cloned().collect();
    let mut data = BTreeMap::new();
    data.insert(
        "tls.key".to_owned(),
        ByteString(key.to_pkcs1_pem().as_bytes().to_vec()),
    );
    data.insert(
        "tls.crt".to_owned(),
        ByteString(cert.pem().as_bytes().to_vec()),
    );
    Secret {
        metadata: ObjectMeta {
            generate_name: Some(s.prefix.clone()),
            namespace: Some(s.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

/// Whether a key must be generated at startup (§4.3 step 3): no key, or the newest one is
/// older than the cutoff. Pure.
pub fn needs_key_at_startup(newest: Option<SystemTime>, cutoff: Option<SystemTime>) -> bool {
    match (newest, cutoff) {
        (None, _) => true,
        (Some(t), Some(c)) => t < c,
        (Some(_), None) => false,
    }
}

/// How long until the next renewal (§4.4): `period - age(newest)`, clamped at zero; `None`
/// when renewal is disabled (period 0). Pure.
pub fn next_renewal(
    newest: Option<SystemTime>,
    period: Duration,
    now: SystemTime,
) -> Option<Duration> {
    if period.is_zero() {
        return None;
    }
    let age = newest
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default();
    Some(period.saturating_sub(age))
}

/// Seconds since the epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Renews keys every period while `active` (the leader) is true: sleeps until the newest key
/// is `period` old (re-evaluated whenever the keys change), then generates one. Failures are
/// logged and retried; they never stop the process (§4.4).
pub async fn renewal_loop(keys: Arc<Keys>, client: kube::Client, period: Duration) {
    let mut changed = keys.subscribe();
    loop {
        let newest = keys.snapshot().newest().map(|k| k.order_time);
        let Some(wait) = next_renewal(newest, period, SystemTime::now()) else {
            // Renewal disabled: nothing to do but SIGUSR1 (handled elsewhere).
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                match keys.generate(&client).await {
                    Ok(fp) => tracing::info!(fingerprint = %fp, "key renewed"),
                    Err(e) => {
                        tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key renewal failed; retrying in 30s");
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
            r = changed.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

/// Annotation by which an operator asks the leader for a new key now (`kubeseal keys
/// rotate`, docs/design.md): an RFC 3339 time on an active key Secret. It goes
/// through `patch secrets` in the controller namespace (operators only) rather than an HTTP
/// endpoint, which anyone allowed to reach the service proxy could call.
pub const ROTATE_REQUEST_ANNOTATION: &str = "sealed-secrets-rs.dev/rotate-requested-at";

/// The rotation request on a key Secret: `None` without the annotation, `Err(value)` when it
/// is not an RFC 3339 timestamp. Pure.
pub fn rotation_request(meta: &ObjectMeta) -> Option<Result<SystemTime, String>> {
    let value = meta.annotations.as_ref()?.get(ROTATE_REQUEST_ANNOTATION)?;
    Some(
        value
            .trim()
            .parse::<jiff::Timestamp>()
            .map(SystemTime::from)
            .map_err(|_| value.clone()),
    )
}

/// Whether a rotation request must produce a key now. Pure.
///
/// Only a request later than the newest key's ordering time counts, so once a key answered
/// it (its ordering time is after the request) the annotation, which is left in place, is
/// inert on every replica and across restarts. `handled` (the latest request this process
/// already answered) also stops a request stamped in the future by a skewed clock from
/// producing a key on every evaluation. Without any key there is nothing to rotate: startup
/// generates the first key (§4.3 step 3).
pub fn should_rotate(
    requested: Option<SystemTime>,
    newest: Option<SystemTime>,
    handled: Option<SystemTime>,
) -> bool {
    match (requested, newest) {
        (Some(r), Some(n)) => r > n && handled.is_none_or(|h| r > h),
        _ => false,
    }
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Answers rotation requests while this replica leads: whenever a request appears or
/// changes, generates a key exactly like a renewal tick when [`should_rotate`] says so.
/// Failures are logged and retried; they never stop the process.
pub async fn rotation_loop(keys: Arc<Keys>, client: kube::Client) {
    let mut requests = keys.requests.subscribe();
    let mut handled: Option<SystemTime> = None;
    loop {
        requests.borrow_and_update();
        let requested = keys.latest_rotation_request();
        let newest = keys.snapshot().newest().map(|k| k.order_time);
        if should_rotate(requested, newest, handled) {
            let at = requested.map(rfc3339).unwrap_or_default();
            tracing::info!(requested_at = %at, "key rotation requested: generating a new key");
            match keys.generate(&client).await {
                Ok(fp) => {
                    tracing::info!(fingerprint = %fp, requested_at = %at, "key rotated on request");
                    handled = requested;
                }
                Err(e) => {
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key rotation failed; retrying in 5s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            }
        }
        if requests.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn test_key() -> &'static (PrivateKey, Certificate) {
        static KEY: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
        KEY.get_or_init(|| {
            let k = PrivateKey::generate(2048).unwrap();
            let c = k
                .self_signed_certificate(&CertParams {
                    not_before: t(1000),
                    ..Default::default()
                })
                .unwrap();
            (k, c)
        })
    }

    fn settings() -> KeySettings {
        KeySettings {
            namespace: "kube-system".into(),
            prefix: "sealed-secrets-key".into(),
            bits: 2048,
            ttl: Duration::from_secs(3600),
            common_name: String::new(),
            priority: KeyOrderPriority::CertNotBefore,
            labels: vec![
                ("team".into(), "x".into()),
                (SEALING_KEY_LABEL.into(), "other".into()),
            ],
            annotations: vec![("a".into(), "b".into())],
        }
    }

    fn mk_key_secret(name: &str) -> Secret {
        let (k, c) = test_key();
        let mut s = key_secret(&settings(), k, c);
        s.metadata.name = Some(name.into());
        s
    }

    #[test]
    fn newest_is_strictly_later_and_ties_keep_first() {
        assert_eq!(pick_newest(&[]), None);
        assert_eq!(pick_newest(&[t(5), t(9), t(9), t(3)]), Some(1));
        assert_eq!(pick_newest(&[t(5), t(5)]), Some(0));
    }

    #[test]
    fn startup_generation_and_renewal_schedule() {
        assert!(needs_key_at_startup(None, None));
        assert!(!needs_key_at_startup(Some(t(10)), None));
        assert!(needs_key_at_startup(Some(t(10)), Some(t(11))));
        assert!(!needs_key_at_startup(Some(t(12)), Some(t(11))));
        assert_eq!(next_renewal(Some(t(100)), Duration::ZERO, t(150)), None);
        assert_eq!(
            next_renewal(Some(t(100)), Duration::from_secs(60), t(150)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            next_renewal(Some(t(100)), Duration::from_secs(60), t(500)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            next_renewal(None, Duration::from_secs(60), t(500)),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn key_secret_has_upstream_shape() {
        let s = mk_key_secret("k1");
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(
            s.metadata.generate_name.as_deref(),
            Some("sealed-secrets-key")
        );
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SEALING_KEY_LABEL], "active");
        assert_eq!(labels["team"], "x");
        let pem = &s.data.as_ref().unwrap()["tls.key"].0;
        assert!(pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
        let loaded = load_secret(&s, KeyOrderPriority::CertNotBefore).unwrap();
        assert_eq!(loaded.order_time, t(1000));
        assert_eq!(loaded.key.fingerprint(), test_key().0.fingerprint());
    }

    #[test]
    fn malformed_key_secrets_are_errors_not_panics() {
        let mut s = mk_key_secret("bad");
        s.data
            .as_mut()
            .unwrap()
            .insert("tls.key".into(), ByteString(b"garbage".to_vec()));
        assert!(matches!(
            load_secret(&s, KeyOrderPriority::CertNotBefore),
            Err(KeyLoadError::Key { .. })
        ));
        let mut s = mk_key_secret("bad");
        s.data.as_mut().unwrap().remove("tls.crt");
        assert!(matches!(
            load_secret(&s, KeyOrderPriority::CertNotBefore),
            Err(KeyLoadError::Missing { .. })
        ));
        let mut s = mk_key_secret("bad");
        s.data = None;
        let e = load_secret(&s, KeyOrderPriority::CertNotBefore).unwrap_err();
        assert_eq!(e.to_string(), "key Secret `bad` has no `tls.key`");
    }

    #[test]
    fn secret_creation_timestamp_priority() {
        let mut s = mk_key_secret("k");
        s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_second(5000).unwrap(),
        ));
        let k = load_secret(&s, KeyOrderPriority::SecretCreationTimestamp).unwrap();
        assert_eq!(k.order_time, t(5000));
    }

    #[test]
    fn a_generated_key_seen_first_by_the_watcher_still_becomes_newest() {
        let (k, c) = test_key();
        let mk = |name: &str, secs: u64| LoadedKey {
            secret_name: name.into(),
            key: k.clone(),
            cert: c.clone(),
            order_time: t(secs),
        };
        let mut r = Registry::default();
        assert!(r.upsert(mk("gen", 1000), false)); // watcher: cert NotBefore
        assert!(!r.upsert(mk("gen", 1000), false));
        assert!(r.upsert(mk("gen", 1005), true)); // generate(): "now"
        assert_eq!(r.entries[0].order_time, t(1005));
        assert!(!r.upsert(mk("gen", 999), true), "never moves back");
    }

    #[test]
    fn registry_upsert_and_remove() {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let keys = Keys::new(settings(), metrics);
        keys.load_and_register(&mk_key_secret("k1"));
        keys.load_and_register(&mk_key_secret("k1"));
        // The same key under another Secret name is kept once.
        keys.load_and_register(&mk_key_secret("k2"));
        assert_eq!(keys.snapshot().keys.len(), 1);
        assert!(keys.snapshot().newest().is_some());
        keys.unregister("k1");
        assert!(keys.snapshot().newest().is_none());
    }
    fn mk_meta(value: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("k".into()),
            annotations: value
                .map(|v| [(ROTATE_REQUEST_ANNOTATION.to_owned(), v.to_owned())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn rotation_request_parsing() {
        assert_eq!(rotation_request(&mk_meta(None)), None);
        assert_eq!(
            rotation_request(&mk_meta(Some("1970-01-01T00:16:40Z"))),
            Some(Ok(t(1000)))
        );
        assert_eq!(
            rotation_request(&mk_meta(Some("1970-01-01T01:16:40+01:00"))),
            Some(Ok(t(1000)))
        );
        assert_eq!(
            rotation_request(&mk_meta(Some("yesterday"))),
            Some(Err("yesterday".into()))
        );
    }

    #[test]
    fn rotation_only_for_requests_after_the_newest_key() {
        // Later than the newest key: rotate.
        assert!(should_rotate(Some(t(100)), Some(t(50)), None));
        // Not later (equal or older): the request was already answered, or predates the key.
        assert!(!should_rotate(Some(t(50)), Some(t(50)), None));
        assert!(!should_rotate(Some(t(40)), Some(t(50)), None));
        // No request, or no key at all (startup generates the first one).
        assert!(!should_rotate(None, Some(t(50)), None));
        assert!(!should_rotate(Some(t(100)), None, None));
        // A request answered by this process is never answered twice, even if stamped in
        // the future (clock skew) so that it stays later than the key it produced...
        assert!(!should_rotate(Some(t(100)), Some(t(60)), Some(t(100))));
        // ...but a newer request is.
        assert!(should_rotate(Some(t(101)), Some(t(60)), Some(t(100))));
    }

    #[test]
    fn rotation_requests_follow_the_key_secrets() {
        let keys = Keys::new(settings(), Arc::new(crate::metrics::Metrics::new()));
        let mut rx = keys.requests.subscribe();
        let mut a = mk_key_secret("a");
        a.metadata.annotations = mk_meta(Some("1970-01-01T00:16:40Z")).annotations;
        let mut b = mk_key_secret("b");
        b.metadata.annotations = mk_meta(Some("1970-01-01T00:33:20Z")).annotations;
        keys.track_rotation_request(&a);
        keys.track_rotation_request(&b);
        assert_eq!(keys.latest_rotation_request(), Some(t(2000)));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        // The same value again is no change.
        keys.track_rotation_request(&b);
        assert!(!rx.has_changed().unwrap());
        // The annotation removed, or the Secret gone: its request is forgotten.
        keys.track_rotation_request(&mk_key_secret("b"));
        assert_eq!(keys.latest_rotation_request(), Some(t(1000)));
        keys.forget_rotation_request("a");
        assert_eq!(keys.latest_rotation_request(), None);
        keys.track_rotation_request(&a);
        keys.retain_rotation_requests(&BTreeSet::from(["other".to_owned()]));
        assert_eq!(keys.latest_rotation_request(), None);
    }
}
