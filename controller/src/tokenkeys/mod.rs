//! Keys held in a PKCS#11 token (docs/security.md, "Tier 1: keys held in a PKCS#11 token";
//! the Secret's shape is [`sealed_secrets_api::token_key`]).
//!
//! With `--key-backend=pkcs11`, every new key is generated inside the token (`CKA_SENSITIVE`,
//! not extractable), its certificate is signed inside the token, and its key Secret holds the
//! certificate and the key object's PKCS#11 URI, no private key. A token-held key enters the
//! key ring as an external key ([`sealed_secrets_crypto::ExternalRsaKey`]): the ring's one
//! RSA-OAEP step per value becomes one token call, the rest of unsealing is unchanged.
//!
//! Looking a key object up costs token calls; it is done once per key Secret and remembered
//! for as long as the Secret's URI and certificate do not change, so a relist, a second look
//! or the watcher's first event after the start-up load cost nothing.
//!
//! Failure is never silent and never repaired by guessing: a token that does not open, a
//! wrong PIN, a key object missing (a replica that does not reach the same token objects) make
//! the key Secret unusable — a log line naming it, a Warning Event on it, the
//! `key_backend_unusable` metric, a line in `/readyz` — and block key generation, so that a
//! replica never generates a key of its own in place of one it cannot find. Nothing is deleted
//! or rewritten; [`TokenKeys::retry_loop`] tries again with backoff.

pub mod flags;
pub mod metrics;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_api::annotations::{KEY_ORIGIN, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE};
use sealed_secrets_api::token_key::{self, TokenKeySecret};
use sealed_secrets_crypto::{
    CertParams, Certificate, ExternalRsaKey, Fingerprint, PrivateKey, Zeroizing,
};
use sealed_secrets_pkcs11::{KeyRef, Pkcs11Error, Token, TokenConfig, TokenKey, TokenStats};
use tokio::sync::Notify;

pub use flags::{KeyBackend, KeyBackendConfigError, TokenKeyArgs};

use crate::keys::{KeyOrderPriority, Keys, LoadedKey, loaded_key, startup_backoff};

/// Reason of the Warning Event on a token key Secret whose key cannot be used.
pub const REASON_TOKEN_KEY_UNUSABLE: &str = "TokenKeyUnusable";
/// Reason of the Normal Event on a token key Secret whose key is usable again.
pub const REASON_TOKEN_KEY_USABLE: &str = "TokenKeyUsable";

/// The longest wait between two attempts at a token or key object that failed.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Token calls by kind, beyond the token's own counts ([`TokenStats`]): decryptions are what
/// unsealing costs, so they are counted apart from lookups, generations and signatures.
#[derive(Debug, Default)]
pub struct Counters {
    decryptions: AtomicU64,
    /// Decryptions that failed for another reason than a key or label that does not fit.
    failures: AtomicU64,
}

impl Counters {
    /// RSA-OAEP decryptions asked of the token.
    pub fn decryptions(&self) -> u64 {
        self.decryptions.load(Ordering::Relaxed)
    }

    /// Decryptions the token failed (not answered, not "this key does not fit").
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A token key as the key ring holds it: decryption is one token call.
struct TokenHeld {
    key: TokenKey,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for TokenHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHeld")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ExternalRsaKey for TokenHeld {
    fn decrypt_oaep(&self, label: &[u8], block: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.counters.decryptions.fetch_add(1, Ordering::Relaxed);
        match self.key.decrypt_oaep(label, block) {
            Ok(v) => Some(v),
            // This key or label does not fit: usual when keys are tried without a hint.
            Err(Pkcs11Error::Decrypt) => None,
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(key = %self.key.reference(), error = %error_chain(&e),
                    "the token failed to decrypt a sealed value's session key");
                None
            }
        }
    }
}

/// A token key cannot be generated, adopted or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("the controller holds keys in memory (--key-backend=memory)")]
    NotConfigured,
    #[error("the PKCS#11 token is not open: {0}")]
    TokenClosed(String),
    #[error(
        "{0} token key Secret(s) are unusable; no new key until they are usable (a replica must not replace a key it cannot reach)"
    )]
    Pending(usize),
    #[error(transparent)]
    Token(#[from] Pkcs11Error),
    #[error("token task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A token key Secret that cannot be used, as `/readyz` and the metrics show it.
#[derive(Clone, Debug)]
pub struct Unusable {
    pub reason: String,
    secret: Secret,
}

/// A key Secret's token key, looked up once.
struct Known {
    read: TokenKeySecret,
    key: PrivateKey,
    cert: Certificate,
}

#[derive(Default)]
struct State {
    /// Why the token is not open (`None` when open or not configured).
    token_error: Option<String>,
    /// A digest of the PIN file's content the token refused: not tried again until the file
    /// changes, since every wrong try brings the token closer to locking the PIN.
    refused_pin: Option<u64>,
    known: HashMap<String, Known>,
    unusable: BTreeMap<String, Unusable>,
}

/// What [`TokenKeys::open`] made of a key Secret.
#[derive(Debug)]
pub enum TokenOpened {
    /// Not a token key Secret.
    NotToken,
    /// Its key, found in the token.
    Loaded(Box<LoadedKey>),
    /// Unusable (reported).
    Unusable,
}

/// The PKCS#11 key backend: the token, the key objects found so far, the key Secrets that
/// cannot be used. Shared by the key registry, the retry loop, the metrics and `/readyz`.
pub struct TokenKeys {
    config: Option<TokenConfig>,
    adopt: Vec<String>,
    namespace: String,
    events: Option<kube::Client>,
    token: RwLock<Option<Token>>,
    state: Mutex<State>,
    counters: Arc<Counters>,
    /// Serialises lookups, so that the watcher and the retry loop never look one key up twice.
    opening: tokio::sync::Mutex<()>,
    retry: Notify,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("token", &self.config.as_ref().map(|c| &c.token_label))
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// The backend `args` describe, for the key Secrets of `namespace`; Events written with
    /// `events`. The token is not opened yet ([`Self::connect`]).
    pub fn new(
        args: &TokenKeyArgs,
        namespace: String,
        events: Option<kube::Client>,
    ) -> Result<TokenKeys, KeyBackendConfigError> {
        Ok(TokenKeys {
            config: args.token_config()?,
            adopt: args.key_pkcs11_adopt.clone(),
            namespace,
            events,
            token: RwLock::new(None),
            state: Mutex::new(State::default()),
            counters: Arc::new(Counters::default()),
            opening: tokio::sync::Mutex::new(()),
            retry: Notify::new(),
        })
    }

    /// The in-memory backend: token key Secrets are reported unusable.
    pub fn memory(namespace: String) -> TokenKeys {
        let args = TokenKeyArgs::default();
        match TokenKeys::new(&args, namespace.clone(), None) {
            Ok(t) => t,
            // The default settings are always valid; this arm only satisfies the types.
            Err(_) => TokenKeys {
                config: None,
                adopt: Vec::new(),
                namespace,
                events: None,
                token: RwLock::new(None),
                state: Mutex::new(State::default()),
                counters: Arc::new(Counters::default()),
                opening: tokio::sync::Mutex::new(()),
                retry: Notify::new(),
            },
        }
    }

    /// Whether new keys are generated in a token.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// Label of the configured token.
    pub fn token_label(&self) -> Option<&str> {
        self.config.as_ref().map(|c| c.token_label.as_str())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn token(&self) -> Option<Token> {
        match self.token.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The token's own counts (lookups, generations, signatures, decryptions).
    pub fn token_stats(&self) -> Option<(String, u64, u64, Duration)> {
        self.token().map(|t| {
            let s: &TokenStats = t.stats();
            (t.label().to_owned(), s.operations(), s.errors(), s.busy())
        })
    }

    /// Decryptions asked of the token.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Why the token is not open, if it is not.
    pub fn token_error(&self) -> Option<String> {
        self.state().token_error.clone()
    }

    /// Token key Secrets that cannot be used, by name.
    pub fn unusable(&self) -> BTreeMap<String, Unusable> {
        self.state().unusable.clone()
    }

    /// Opens the token (loads the module, finds the token, logs in) unless it is open or
    /// not configured. A failure is logged when its reason is new and kept for `/readyz`.
    pub async fn connect(&self) -> bool {
        let Some(config) = self.config.clone() else {
            return false;
        };
        if self.token().is_some() {
            return true;
        }
        let pin_now = pin_digest(&config.pin_file);
        if pin_now.is_some() && pin_now == self.state().refused_pin {
            return false;
        }
        let opened = tokio::task::spawn_blocking(move || Token::open(&config)).await;
        let result = match opened {
            Ok(r) => r.map_err(|e| {
                if matches!(
                    e,
                    Pkcs11Error::WrongPin { .. } | Pkcs11Error::PinLocked { .. }
                ) {
                    self.state().refused_pin = pin_now;
                }
                error_chain(&e)
            }),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(token) => {
                tracing::info!(token = %token.label(), "PKCS#11 token open; keys are generated and used inside it");
                match self.token.write() {
                    Ok(mut g) => *g = Some(token),
                    Err(p) => *p.into_inner() = Some(token),
                }
                self.state().token_error = None;
                self.retry.notify_one();
                true
            }
            Err(reason) => {
                let new = self.state().token_error.replace(reason.clone()) != Some(reason.clone());
                if new {
                    tracing::error!(error = %reason,
                        "the PKCS#11 token does not open: keys held in it are unusable and no key is generated until it does (retrying)");
                }
                false
            }
        }
    }

    /// The key of a token key Secret: looked up in the token the first time this URI and
    /// certificate are seen, remembered after. Anything else than a token key Secret is
    /// [`TokenOpened::NotToken`].
    pub async fn open(&self, secret: &Secret, priority: KeyOrderPriority) -> TokenOpened {
        if !token_key::is_token_key(secret) {
            return TokenOpened::NotToken;
        }
        let name = secret.metadata.name.clone().unwrap_or_default();
        let read = match token_key::parse(secret) {
            Ok(r) => r,
            Err(e) => return self.failed(secret, e.to_string()).await,
        };
        let _one_at_a_time = self.opening.lock().await;
        let cached = {
            let st = self.state();
            st.known
                .get(&name)
                .filter(|k| k.read == read)
                .map(|k| (k.key.clone(), k.cert.clone()))
        };
        let (key, cert) = match cached {
            Some(kc) => kc,
            None => match self.look_up(&read).await {
                Ok(kc) => kc,
                Err(reason) => return self.failed(secret, reason).await,
            },
        };
        match loaded_key(
            secret,
            key.clone(),
            cert.clone(),
            priority,
            SystemTime::now(),
        ) {
            Ok(mut loaded) => {
                self.state().known.insert(name, Known { read, key, cert });
                // A token key has no post-quantum identity: the token cannot do ML-KEM.
                loaded.pq = None;
                loaded.pq_error = None;
                TokenOpened::Loaded(Box::new(loaded))
            }
            Err(e) => self.failed(secret, e.to_string()).await,
        }
    }

    /// Finds the key object a key Secret names. The reason is the one `/readyz` shows.
    async fn look_up(&self, read: &TokenKeySecret) -> Result<(PrivateKey, Certificate), String> {
        let cert = Certificate::from_pem(&read.cert_pem)
            .map_err(|e| format!("its `{}` is unusable: {e}", token_key::CERT_FIELD))?;
        let reference = KeyRef::from_str(&read.uri).map_err(|e| error_chain(&e))?;
        if self.config.is_none() {
            return Err(format!(
                "its key is held in PKCS#11 token `{}` but this controller holds keys in memory (--key-backend=memory)",
                reference.token
            ));
        }
        let Some(token) = self.token() else {
            return Err(format!(
                "the PKCS#11 token is not open: {}",
                self.token_error().unwrap_or_default()
            ));
        };
        let found = tokio::task::spawn_blocking(move || token.find_key(&reference))
            .await
            .map_err(|e| e.to_string())?;
        let tk = match found {
            Ok(k) => k,
            Err(e @ Pkcs11Error::KeyMissing { .. }) => {
                return Err(format!(
                    "{}: every replica must reach the same token objects; no key is generated in its place",
                    error_chain(&e)
                ));
            }
            Err(e) => return Err(error_chain(&e)),
        };
        let key = self.external(tk);
        Ok((key, cert))
    }

    fn external(&self, tk: TokenKey) -> PrivateKey {
        let public = tk.public_key().clone();
        PrivateKey::external(
            public,
            Arc::new(TokenHeld {
                key: tk,
                counters: self.counters.clone(),
            }),
        )
    }

    /// Called once the key registry registered a token key: it is no longer unusable.
    pub async fn registered(&self, secret: &Secret) {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let was = self.state().unusable.remove(&name).is_some();
        if was {
            tracing::info!(secret = %name, "token key usable again");
            self.event(
                secret,
                "Normal",
                REASON_TOKEN_KEY_USABLE,
                "the key object was found in the token; the key is used again",
            )
            .await;
        }
    }

    /// Forgets a key Secret that was deleted or is no longer active.
    pub fn forget(&self, name: &str) {
        let mut st = self.state();
        st.known.remove(name);
        st.unusable.remove(name);
    }

    /// Remembers a key this process just wrote, so the watcher seeing it makes no token call.
    pub fn remember(&self, name: &str, uri: &str, key: &PrivateKey, cert: &Certificate) {
        self.state().known.insert(
            name.to_owned(),
            Known {
                read: TokenKeySecret {
                    uri: uri.to_owned(),
                    cert_pem: cert.pem().as_bytes().to_vec(),
                },
                key: key.clone(),
                cert: cert.clone(),
            },
        );
    }

    /// The token, if a new key may be made in it: not while a token key Secret is unusable
    /// (see [`may_generate`]).
    pub fn token_for_new_key(&self) -> Result<Token, TokenKeyError> {
        if self.config.is_none() {
            return Err(TokenKeyError::NotConfigured);
        }
        let token = self.token();
        let unusable = self.state().unusable.len();
        may_generate(token.is_some(), unusable, self.token_error())?;
        token.ok_or_else(|| TokenKeyError::TokenClosed(String::new()))
    }

    /// Generates a key inside the token, labelled `name` (the key Secret's name), and signs
    /// its certificate there. Returns the key as the ring holds it, the certificate and the
    /// key object's URI.
    pub async fn generate(
        &self,
        name: &str,
        bits: usize,
        params: CertParams,
    ) -> Result<(PrivateKey, Certificate, String), TokenKeyError> {
        let token = self.token_for_new_key()?;
        let label = name.to_owned();
        let (tk, cert) = tokio::task::spawn_blocking(move || {
            let tk = token.generate_key(&label, bits)?;
            let cert = tk.self_signed_certificate(&params)?;
            Ok::<_, Pkcs11Error>((tk, cert))
        })
        .await
        .map_err(TokenKeyError::Join)??;
        let uri = tk.reference().to_string();
        Ok((self.external(tk), cert, uri))
    }

    /// Finds a key object created outside the controller (`label`) and signs a certificate
    /// for it inside the token, unless its fingerprint is in `known` (already in a key
    /// Secret). `None` when there is nothing to adopt.
    pub async fn adoptable(
        &self,
        label: &str,
        known: &[Fingerprint],
        params: CertParams,
    ) -> Result<Option<(PrivateKey, Certificate, String)>, TokenKeyError> {
        let token = self.token_for_new_key()?;
        let reference = KeyRef::by_label(token.label(), label);
        let known = known.to_vec();
        let found = tokio::task::spawn_blocking(move || {
            let tk = token.find_key(&reference)?;
            if known.contains(tk.fingerprint()) {
                return Ok(None);
            }
            let cert = tk.self_signed_certificate(&params)?;
            Ok::<_, Pkcs11Error>(Some((tk, cert)))
        })
        .await
        .map_err(TokenKeyError::Join)??;
        Ok(found.map(|(tk, cert)| {
            // Name the object by its ID too when it has one: the label alone may be reused.
            let uri = tk.reference().to_string();
            (self.external(tk), cert, uri)
        }))
    }

    /// Labels of key objects to adopt (`--key-pkcs11-adopt`).
    pub fn adopt_labels(&self) -> &[String] {
        &self.adopt
    }

    /// Records and reports an unusable token key Secret: a log line every time, an Event
    /// when the reason is new.
    async fn failed(&self, secret: &Secret, reason: String) -> TokenOpened {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let new_reason = {
            let mut st = self.state();
            st.known.remove(&name);
            let new = st.unusable.get(&name).is_none_or(|u| u.reason != reason);
            st.unusable.insert(
                name.clone(),
                Unusable {
                    reason: reason.clone(),
                    secret: secret.clone(),
                },
            );
            new
        };
        tracing::error!(secret = %name, error = %reason,
            "token key Secret unusable: values sealed to it stay sealed until its key object is reachable (retrying); nothing is deleted or replaced");
        if new_reason {
            let msg = format!("the key held in the PKCS#11 token cannot be used: {reason}");
            self.event(secret, "Warning", REASON_TOKEN_KEY_UNUSABLE, &msg)
                .await;
        }
        self.retry.notify_one();
        TokenOpened::Unusable
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

    /// Re-opens a token that did not open and retries unusable token key Secrets, with
    /// backoff (0.5 s doubling to 30 s), until the process stops.
    pub async fn retry_loop(self: Arc<Self>, keys: Arc<Keys>) {
        if self.config.is_none() {
            return;
        }
        let mut attempt = 0u32;
        loop {
            let pending = self.token().is_none() || !self.state().unusable.is_empty();
            if !pending {
                attempt = 0;
                self.retry.notified().await;
                continue;
            }
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(startup_backoff(attempt).min(MAX_RETRY)).await;
            self.connect().await;
            let due: Vec<Secret> = self
                .state()
                .unusable
                .values()
                .map(|u| u.secret.clone())
                .collect();
            for s in &due {
                keys.load(s).await;
            }
        }
    }

    /// The lines `/readyz` adds: the token's state and each unusable token key Secret. Pure
    /// over the state.
    pub fn readiness_lines(&self) -> String {
        readiness_lines(
            self.token_label(),
            self.token_error().as_deref(),
            &self.unusable(),
        )
    }
}

/// The key Secret of a token-held key (`sealed_secrets_api::token_key`): named `name` (the
/// key object's label), the labels and annotations of any key Secret (`active` plus
/// `--privatekey-labels`, `--privatekey-annotations`, [`KEY_ORIGIN`] = `origin`), the
/// certificate and the key object's URI; no private key. Pure.
pub fn key_secret(
    args: &crate::keys::KeyArgs,
    namespace: &str,
    name: &str,
    cert: &Certificate,
    uri: &str,
    origin: &str,
) -> Secret {
    let mut labels: BTreeMap<String, String> = args.labels.0.iter().cloned().collect();
    labels.insert(
        SEALING_KEY_LABEL.to_owned(),
        SEALING_KEY_LABEL_ACTIVE.to_owned(),
    );
    let mut annotations: BTreeMap<String, String> = args.annotations.0.iter().cloned().collect();
    annotations.insert(KEY_ORIGIN.to_owned(), origin.to_owned());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some(token_key::TOKEN_KEY_SECRET_TYPE.to_owned()),
        data: Some(token_key::data(cert.pem(), uri)),
        ..Default::default()
    }
}

/// Whether a new key may be generated in the token: only when the token is open and every
/// token key Secret is usable. A replica that cannot reach a key object reports it and waits;
/// generating its own would split the replicas onto different keys and hide the fault. Pure.
pub fn may_generate(
    token_open: bool,
    unusable: usize,
    token_error: Option<String>,
) -> Result<(), TokenKeyError> {
    if !token_open {
        return Err(TokenKeyError::TokenClosed(token_error.unwrap_or_default()));
    }
    if unusable > 0 {
        return Err(TokenKeyError::Pending(unusable));
    }
    Ok(())
}

/// `/readyz` lines for the token backend. Pure.
pub fn readiness_lines(
    token: Option<&str>,
    token_error: Option<&str>,
    unusable: &BTreeMap<String, Unusable>,
) -> String {
    let mut body = String::new();
    if let (Some(label), Some(e)) = (token, token_error) {
        body.push_str(&format!("PKCS#11 token `{label}` does not open: {e}\n"));
    }
    for (name, u) in unusable {
        body.push_str(&format!(
            "unusable key Secret `{name}` (token key, retrying): {}\n",
            u.reason
        ));
    }
    body
}

/// A digest of the PIN file's content, to notice that it changed; `None` when unreadable. Not a
/// protection of the PIN (it never leaves the process), only change detection.
fn pin_digest(path: &std::path::Path) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let pin = Zeroizing::new(std::fs::read(path).ok()?);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pin.hash(&mut h);
    Some(h.finish())
}

/// An error and its causes on one line (token errors name module, token and key object
/// only, never a PIN or key material).
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
