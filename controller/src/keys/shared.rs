//! [`Keys`], the key registry every part of the controller shares: the registry behind a
//! lock, the snapshot readers take, the start-up load and the watcher of key Secrets
//! (§4.2), key generation (§4.3 step 3), and the rotation requests seen on key Secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use sealed_secrets_api::annotations::{KEY_ORIGIN, KEY_ORIGIN_GENERATED, RotateRequest};
use sealed_secrets_crypto::{CertParams, Fingerprint, MultiV1Policy, PqIdentity, PrivateKey};
use tokio::sync::watch;

use super::flags::KeyArgs;
use super::registry::{
    KeySnapshot, LoadedKey, Registry, active_selector, load_secret, unix_seconds,
};
use super::store::{KeyGenError, key_secret, startup_backoff};
use crate::metrics::SharedMetrics;

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
    /// How private keys are wrapped at rest (crate::keywrap); plain when never set.
    key_wrap: std::sync::OnceLock<Arc<crate::keywrap::KeyWrap>>,
    /// Where keys are generated and held (crate::tokenkeys); in memory when never set.
    token_keys: std::sync::OnceLock<Arc<crate::tokenkeys::TokenKeys>>,
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
            key_wrap: std::sync::OnceLock::new(),
            token_keys: std::sync::OnceLock::new(),
        })
    }

    /// Wraps new keys and opens wrapped ones with `kw` from now on (set once, before the
    /// keys are loaded).
    pub fn set_key_wrap(&self, kw: Arc<crate::keywrap::KeyWrap>) {
        let _ = self.metrics.key_wrap.set(kw.clone());
        let _ = self.key_wrap.set(kw);
    }

    /// The key-wrapping state (no backend unless [`Self::set_key_wrap`] was called).
    pub fn key_wrap(&self) -> &Arc<crate::keywrap::KeyWrap> {
        self.key_wrap.get_or_init(|| {
            Arc::new(crate::keywrap::KeyWrap::new(
                None,
                String::new(),
                self.namespace.clone(),
                None,
            ))
        })
    }

    /// Generates and holds keys in a PKCS#11 token with `tk` from now on (set once, before
    /// the keys are loaded).
    pub fn set_token_keys(&self, tk: Arc<crate::tokenkeys::TokenKeys>) {
        let _ = self.metrics.token_keys.set(tk.clone());
        let _ = self.token_keys.set(tk);
    }

    /// The key backend (in memory unless [`Self::set_token_keys`] was called).
    pub fn token_keys(&self) -> &Arc<crate::tokenkeys::TokenKeys> {
        self.token_keys
            .get_or_init(|| Arc::new(crate::tokenkeys::TokenKeys::memory(self.namespace.clone())))
    }

    /// Loads a key Secret: a token key Secret through the token backend, else unwrapping it
    /// first if it is wrapped; one that does not open is reported by the backend that
    /// should have opened it, and retried there.
    pub async fn load(&self, secret: &Secret) {
        match self
            .token_keys()
            .open(secret, self.args.order.priority)
            .await
        {
            crate::tokenkeys::TokenOpened::NotToken => {}
            crate::tokenkeys::TokenOpened::Loaded(k) => {
                self.register(*k);
                self.token_keys().registered(secret).await;
                return;
            }
            crate::tokenkeys::TokenOpened::Unusable => return,
        }
        match self.key_wrap().open(secret).await {
            crate::keywrap::Opened::Plain => self.load_and_register(secret),
            crate::keywrap::Opened::Unwrapped(s) => {
                self.load_and_register(&s);
                self.key_wrap().registered(secret).await;
            }
            crate::keywrap::Opened::Unusable => {}
        }
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
        let post_quantum = snap
            .keys
            .iter()
            .filter(|k| k.pq_recipient.is_some())
            .count();
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
        self.metrics
            .keys_post_quantum
            .set(i64::try_from(post_quantum).unwrap_or(i64::MAX));
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
        let pq = k.pq.as_ref().map(|p| p.fingerprint().to_string());
        let pq_error = k.pq_error.clone();
        let mut added = false;
        self.modify(|r| {
            added = r.upsert(k, generated);
            added
        });
        if added {
            match &pq {
                Some(pq) => {
                    tracing::info!(secret = %name, fingerprint = %fp, post_quantum = %pq, "registered key")
                }
                None => tracing::info!(secret = %name, fingerprint = %fp, "registered key"),
            }
            if let Some(e) = &pq_error {
                tracing::error!(error = %e, cause = ?std::error::Error::source(e).map(ToString::to_string),
                    "post-quantum identity of a key Secret skipped");
            }
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
        self.key_wrap().forget(secret);
        self.token_keys().forget(secret);
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

    /// Startup load (§4.2): every `active` key Secret sorted by creationTimestamp, plus the
    /// legacy Secret named exactly `<prefix>`.
    pub async fn initial_load(&self, client: &kube::Client) -> Result<(), KeyApiError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let list = api
            .list(&ListParams::default().labels(&active_selector()))
            .await
            .map_err(|source| KeyApiError::List {
                namespace: self.namespace.clone(),
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
            self.load(s).await;
        }
        match api.get_opt(&self.args.prefix).await {
            Ok(Some(legacy)) => self.load(&legacy).await,
            Ok(None) => {}
            // Upstream's key-admin Role grants get on that one name only; a failure here is
            // not fatal, the labelled keys are what matter.
            Err(e) => {
                tracing::warn!(error = %e, secret = %self.args.prefix, "cannot read the legacy key Secret")
            }
        }
        Ok(())
    }

    /// [`Self::initial_load`], retried with exponential backoff (0.5 s doubling to 30 s) until
    /// it succeeds: one API error at start (an API server restarting, a webhook timing out)
    /// must not exit the process, and a missing RBAC grant is logged until it is fixed.
    /// Nothing is served before the keys are loaded, so no client sees a half-loaded state.
    pub async fn initial_load_with_retry(&self, client: &kube::Client) {
        let mut attempt = 0u32;
        loop {
            match self.initial_load(client).await {
                Ok(()) => return,
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    let wait = startup_backoff(attempt);
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string),
                        attempt, retry_in = ?wait, "cannot load the keys; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Watches `active` key Secrets until the stream ends: adds, removes and relabels are
    /// applied to the registry. Runs on every replica.
    pub async fn watch(self: Arc<Self>, client: kube::Client) {
        let api: Api<Secret> = Api::namespaced(client, &self.namespace);
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
                            self.load(&s).await;
                        }
                        watcher::Event::InitDone => {
                            self.retain_rotation_requests(&seen);
                            self.retain(&seen, &self.args.prefix, init_seq)
                        }
                        watcher::Event::Apply(s) => {
                            self.track_rotation_request(&s);
                            self.load(&s).await
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
    /// (§4.3 step 3). Its ordering time is now. `fence` is checked just before the write, so
    /// that a leader frozen past its lease (SIGSTOP) and resumed at a renewal time does not
    /// add a key another leader may be adding too.
    pub async fn generate(
        &self,
        client: &kube::Client,
        fence: &crate::leader::Fence,
    ) -> Result<Fingerprint, KeyGenError> {
        if self.token_keys().enabled() {
            return self.generate_in_token(client, fence).await;
        }
        let s = self.args.clone();
        let bits = s.bits;
        let (key, cert, pq) = tokio::task::spawn_blocking(move || {
            let key = PrivateKey::generate(bits)
                .map_err(|source| KeyGenError::Generate { bits, source })?;
            // Every generated key gets its post-quantum identity beside it (docs/design.md,
            // "Keys"), so that rotating is how an older, RSA-only key set gets one.
            let pq = PqIdentity::generate().map_err(KeyGenError::GeneratePq)?;
            let params = CertParams {
                common_name: s.common_name.clone(),
                not_before: SystemTime::now(),
                validity: s.ttl,
            };
            let cert = key
                .self_signed_certificate(&params)
                .map_err(KeyGenError::Cert)?;
            Ok::<_, KeyGenError>((key, cert, pq))
        })
        .await
        .map_err(KeyGenError::Join)??;
        let secret = key_secret(&self.args, &self.namespace, &key, &cert, &pq);
        // With a key-wrapping backend, the private fields go into the envelope.
        let (secret, fresh) = self.key_wrap().seal_new(secret, &self.args.prefix).await?;
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        fence.check()?;
        // Remembered before the write: the watcher may see the new Secret before the create
        // call returns, and must not unwrap what this process just wrapped.
        let wrapped_name = fresh.map(|f| self.key_wrap().remember(f));
        let created = api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|source| {
                if let Some(n) = &wrapped_name {
                    self.key_wrap().forget(n);
                }
                KeyGenError::Write {
                    namespace: self.namespace.clone(),
                    source,
                }
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
                foreign: false,
                future_not_before: false,
                pq: Some(pq),
                pq_error: None,
            },
            true,
        );
        Ok(fp)
    }

    /// [`Self::generate`] with the PKCS#11 backend: the key is generated inside the token,
    /// its certificate signed there, and its Secret holds the certificate and the key
    /// object's URI (`sealed_secrets_api::token_key`).
    async fn generate_in_token(
        &self,
        client: &kube::Client,
        fence: &crate::leader::Fence,
    ) -> Result<Fingerprint, KeyGenError> {
        // The Secret's name is the key object's label, so it is chosen before the write.
        let name = crate::keywrap::new_key_name(&self.args.prefix, &mut rand::rng());
        let params = CertParams {
            common_name: self.args.common_name.clone(),
            not_before: SystemTime::now(),
            validity: self.args.ttl,
        };
        let (key, cert, uri) = self
            .token_keys()
            .generate(&name, self.args.bits, params)
            .await?;
        self.write_token_key(client, fence, name, key, cert, &uri, KEY_ORIGIN_GENERATED)
            .await
    }

    /// Adopts the key objects `--key-pkcs11-adopt` names that no key Secret holds yet: writes
    /// a key Secret for each, with a certificate signed inside the token. Run by the leader.
    pub async fn adopt_token_keys(
        &self,
        client: &kube::Client,
        fence: &crate::leader::Fence,
    ) -> Result<(), KeyGenError> {
        let tk = self.token_keys().clone();
        for label in tk.adopt_labels() {
            let known: Vec<Fingerprint> = self
                .snapshot()
                .keys
                .iter()
                .map(|k| k.fingerprint.clone())
                .collect();
            let params = CertParams {
                common_name: self.args.common_name.clone(),
                not_before: SystemTime::now(),
                validity: self.args.ttl,
            };
            let Some((key, cert, uri)) = tk.adoptable(label, &known, params).await? else {
                continue;
            };
            let name = crate::keywrap::new_key_name(&self.args.prefix, &mut rand::rng());
            let fp = self
                .write_token_key(
                    client,
                    fence,
                    name,
                    key,
                    cert,
                    &uri,
                    sealed_secrets_api::token_key::KEY_ORIGIN_ADOPTED,
                )
                .await?;
            tracing::info!(label = %label, fingerprint = %fp, "adopted a key object of the PKCS#11 token");
        }
        Ok(())
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one private helper of two callers"
    )]
    async fn write_token_key(
        &self,
        client: &kube::Client,
        fence: &crate::leader::Fence,
        name: String,
        key: PrivateKey,
        cert: sealed_secrets_crypto::Certificate,
        uri: &str,
        origin: &str,
    ) -> Result<Fingerprint, KeyGenError> {
        let secret =
            crate::tokenkeys::key_secret(&self.args, &self.namespace, &name, &cert, uri, origin);
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        fence.check()?;
        // Remembered before the write: the watcher may see the new Secret first.
        self.token_keys().remember(&name, uri, &key, &cert);
        if let Err(source) = api.create(&PostParams::default(), &secret).await {
            self.token_keys().forget(&name);
            return Err(KeyGenError::Write {
                namespace: self.namespace.clone(),
                source,
            });
        }
        let fp = key.fingerprint().clone();
        tracing::info!(secret = %name, fingerprint = %fp, uri, "new key written (held in the PKCS#11 token)");
        self.register_inner(
            LoadedKey {
                secret_name: name,
                key,
                cert,
                order_time: SystemTime::now(),
                foreign: false,
                future_not_before: false,
                pq: None,
                pq_error: None,
            },
            true,
        );
        Ok(fp)
    }

    /// Records (or clears) the rotation request carried by an active key Secret.
    pub fn track_rotation_request(&self, secret: &Secret) {
        let Some(name) = secret.metadata.name.clone() else {
            return;
        };
        let requested = match RotateRequest::from_annotations(secret.metadata.annotations.as_ref())
        {
            Some(Ok(r)) => Some(r.at()),
            Some(Err(e)) => {
                tracing::warn!(secret = %name, "ignoring the rotation request: {e}");
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
    pub(super) fn forget_rotation_request(&self, secret: &str) {
        self.requests
            .send_if_modified(|m| m.remove(secret).is_some());
    }

    /// Keeps only the rotation requests of the Secrets in `names` (after a full relist).
    pub(super) fn retain_rotation_requests(&self, names: &BTreeSet<String>) {
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

    /// Fires whenever a rotation request appears, changes or goes.
    pub fn rotation_requests_changed(&self) -> watch::Receiver<BTreeMap<String, SystemTime>> {
        self.requests.subscribe()
    }
}
