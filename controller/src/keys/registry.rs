//! The pure key registry: reading a key Secret into a [`LoadedKey`], ordering keys and
//! choosing the newest (§4.4), and the immutable [`KeySnapshot`] readers take.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_api::annotations::{KEY_ORIGIN, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE};
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_crypto::{
    Certificate, Fingerprint, KeyRing, MultiV1Policy, PqIdentity, PqKeyError, PqRecipient,
    PrivateKey,
};

/// How the "newest" key is chosen (§4.4, `--key-order-priority`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyOrderPriority {
    /// The certificate's NotBefore (upstream default).
    #[default]
    CertNotBefore,
    /// The key Secret's creationTimestamp.
    SecretCreationTimestamp,
}

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
    /// Upstream serves such a certificate as is; kubeseal would then seal for a key nobody
    /// here holds (or for someone else's).
    #[error("key Secret `{secret}` is refused: its `tls.crt` does not belong to its `tls.key`")]
    CertMismatch { secret: String },
}

/// Why a key Secret's post-quantum identity ([`AGE_KEY_FIELD`]) could not be used. Its
/// RSA key is used all the same: post-quantum values sealed to that identity do not open
/// until the field is repaired. Never contains key material (the field is never quoted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PqFieldError {
    #[error(
        "key Secret `{secret}` has an unusable `{AGE_KEY_FIELD}` (not UTF-8 text); its RSA key is used without it"
    )]
    NotText { secret: String },
    #[error(
        "key Secret `{secret}` has an unusable `{AGE_KEY_FIELD}`; its RSA key is used without it"
    )]
    Parse {
        secret: String,
        #[source]
        source: PqKeyError,
    },
    #[error(
        "key Secret `{secret}` has an unusable `{AGE_KEY_FIELD}` ({count} identities, expected one); its RSA key is used without it"
    )]
    Count { secret: String, count: usize },
}

/// Reads a key Secret's post-quantum identity: `Ok(None)` when it has no
/// [`AGE_KEY_FIELD`] (an RSA-only key, as upstream and older versions write them), else
/// exactly one `AGE-SECRET-KEY-PQ-1…` line (comments and blank lines allowed, as in an age
/// identity file). Pure.
pub fn load_pq_identity(secret: &Secret) -> Result<Option<PqIdentity>, PqFieldError> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(AGE_KEY_FIELD)) else {
        return Ok(None);
    };
    let name = || secret.metadata.name.clone().unwrap_or_default();
    let text =
        std::str::from_utf8(&bytes.0).map_err(|_| PqFieldError::NotText { secret: name() })?;
    let mut ids = PqIdentity::parse_file(text).map_err(|source| PqFieldError::Parse {
        secret: name(),
        source,
    })?;
    match (ids.pop(), ids.len()) {
        (Some(id), 0) => Ok(Some(id)),
        (last, more) => Err(PqFieldError::Count {
            secret: name(),
            count: more + usize::from(last.is_some()),
        }),
    }
}

/// Tolerated clock skew for a certificate's NotBefore: a later NotBefore does not count for
/// ordering (see [`ordering_not_before`]).
pub const NOT_BEFORE_SKEW: Duration = Duration::from_secs(300);

/// The ordering time of a certificate by its NotBefore. Pure.
///
/// A NotBefore later than `now` plus [`NOT_BEFORE_SKEW`] is ignored (the key ranks as the
/// oldest): otherwise anyone who may *create* Secrets in the controller namespace could add a
/// key dated in the future that stays the newest through every renewal, and `/v1/cert.pem`
/// and the certificate ConfigMap would serve it. It counts normally once that date has come
/// (at the next load).
pub fn ordering_not_before(not_before: SystemTime, now: SystemTime) -> SystemTime {
    if not_before > now + NOT_BEFORE_SKEW {
        SystemTime::UNIX_EPOCH
    } else {
        not_before
    }
}

/// Whether a key Secret carries [`KEY_ORIGIN`]. Pure.
pub fn has_key_origin(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(KEY_ORIGIN))
        .is_some_and(|v| !v.trim().is_empty())
}

/// A key read from (or written to) a key Secret.
#[derive(Clone)]
pub struct LoadedKey {
    pub secret_name: String,
    pub key: PrivateKey,
    pub cert: Certificate,
    pub order_time: SystemTime,
    /// Not generated by the controller ([`KEY_ORIGIN`] absent).
    pub foreign: bool,
    /// Its certificate's NotBefore is in the future and was ignored for ordering.
    pub future_not_before: bool,
    /// Its post-quantum identity; `None` for an RSA-only key Secret or an unusable
    /// [`AGE_KEY_FIELD`] (then [`LoadedKey::pq_error`] says why).
    pub pq: Option<PqIdentity>,
    /// Why the key Secret's [`AGE_KEY_FIELD`] was not used.
    pub pq_error: Option<PqFieldError>,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("secret_name", &self.secret_name)
            .field("fingerprint", self.key.fingerprint())
            .field("pq", &self.pq.as_ref().map(PqIdentity::fingerprint))
            .field("order_time", &self.order_time)
            .finish_non_exhaustive()
    }
}

/// Parses a key Secret (`tls.key` PKCS#1 or PKCS#8, `tls.crt` first cert, optional
/// [`AGE_KEY_FIELD`]) as of `now`. An unusable post-quantum identity does not refuse the
/// RSA key: it is reported in [`LoadedKey::pq_error`]. Pure.
pub fn load_secret(
    secret: &Secret,
    priority: KeyOrderPriority,
    now: SystemTime,
) -> Result<LoadedKey, KeyLoadError> {
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
    loaded_key(secret, key, cert, priority, now)
}

/// A [`LoadedKey`] for `key` and its certificate `cert`, read from `secret` (the private half
/// in the Secret, or in a token for a token-held key Secret): refused when the certificate
/// is not the key's; ordered as `priority` says as of `now`. Pure.
pub fn loaded_key(
    secret: &Secret,
    key: PrivateKey,
    cert: Certificate,
    priority: KeyOrderPriority,
    now: SystemTime,
) -> Result<LoadedKey, KeyLoadError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    if cert.public_key().fingerprint() != key.fingerprint() {
        return Err(KeyLoadError::CertMismatch { secret: name });
    }
    let future_not_before = ordering_not_before(cert.not_before(), now) != cert.not_before();
    let order_time = match priority {
        KeyOrderPriority::CertNotBefore => ordering_not_before(cert.not_before(), now),
        KeyOrderPriority::SecretCreationTimestamp => secret
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| SystemTime::from(t.0))
            .unwrap_or_else(|| cert.not_before()),
    };
    let (pq, pq_error) = match load_pq_identity(secret) {
        Ok(pq) => (pq, None),
        Err(e) => (None, Some(e)),
    };
    Ok(LoadedKey {
        secret_name: name,
        key,
        cert,
        order_time,
        foreign: !has_key_origin(&secret.metadata),
        future_not_before,
        pq,
        pq_error,
    })
}

/// Public facts about one registered key.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub fingerprint: Fingerprint,
    pub secret_name: String,
    pub order_time: SystemTime,
    pub cert: Certificate,
    pub foreign: bool,
    /// The recipient of its post-quantum identity (served at `/v1/age-recipient.txt` for the
    /// newest key); `None` for an RSA-only key.
    pub pq_recipient: Option<PqRecipient>,
    /// Its private key is held in a PKCS#11 token (crate::tokenkeys), which cannot hold a
    /// post-quantum identity.
    pub in_token: bool,
}

/// An immutable view of the registry: the key ring for decryption plus the newest key.
#[derive(Debug)]
pub struct KeySnapshot {
    pub ring: KeyRing,
    /// Registration order.
    pub keys: Vec<KeyInfo>,
    newest: Option<usize>,
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
pub(super) struct Registry {
    /// Registration order.
    pub(super) entries: Vec<LoadedKey>,
    /// Registration sequence number per Secret name, so that a relist that started before
    /// a key was registered does not remove it.
    pub(super) registered: std::collections::HashMap<String, u64>,
    pub(super) seq: u64,
    /// What every snapshot's ring does with multi-recipient version-1 values: refused unless
    /// `--accept-multi-recipient-v1` (`FORMAT.md` §2.2).
    pub(super) multi_v1: MultiV1Policy,
}

impl Registry {
    /// Adds a key; a Secret already registered is replaced only if it now holds another key.
    /// `generated` (a key this process just wrote) also moves an entry the watcher may have
    /// registered first to the later ordering time, as upstream orders its own keys by "now".
    /// Returns whether anything changed.
    pub(super) fn upsert(&mut self, k: LoadedKey, generated: bool) -> bool {
        if let Some(pos) = self
            .entries
            .iter()
            .position(|e| e.secret_name == k.secret_name)
        {
            let same_pq = self.entries[pos].pq.as_ref().map(PqIdentity::fingerprint)
                == k.pq.as_ref().map(PqIdentity::fingerprint);
            if self.entries[pos].key.fingerprint() == k.key.fingerprint() && same_pq {
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

    pub(super) fn mark(&mut self, name: &str) {
        self.seq += 1;
        self.registered.insert(name.to_owned(), self.seq);
    }

    pub(super) fn remove_secret(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.registered.remove(name);
        self.entries.retain(|e| e.secret_name != name);
        before != self.entries.len()
    }

    pub(super) fn snapshot(&self) -> KeySnapshot {
        let mut ring = KeyRing::new();
        ring.set_multi_v1_policy(self.multi_v1.clone());
        let mut keys = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            ring.insert(e.key.clone());
            if let Some(pq) = &e.pq {
                ring.insert_pq(pq.clone());
            }
            keys.push(KeyInfo {
                fingerprint: e.key.fingerprint().clone(),
                secret_name: e.secret_name.clone(),
                order_time: e.order_time,
                cert: e.cert.clone(),
                foreign: e.foreign,
                pq_recipient: e.pq.as_ref().map(|p| p.recipient().clone()),
                in_token: e.key.is_external(),
            });
        }
        let times: Vec<SystemTime> = keys.iter().map(|k| k.order_time).collect();
        KeySnapshot {
            ring,
            keys,
            newest: pick_newest(&times),
        }
    }
}

/// Seconds since the epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
