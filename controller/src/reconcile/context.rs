//! The [`Context`] every reconcile shares: the client, keys, metrics and Event recorder, the
//! flags, the leader's fence, and what reconciles remember between passes (retry counts,
//! pending status writes, the key try-order, whether the CRD keeps the source digest, and
//! the Secrets produced for `--old-gc-behavior`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cpugate::{CpuGate, permits};
use super::decide::retry_backoff;
use super::flags::ReconcileArgs;
use super::key_order::KeyOrderMemory;
use super::reads::Newest;
use crate::events::Recorder;
use crate::keys::Keys;
use crate::leader::Fence;
use crate::metrics::SharedMetrics;

/// Shared state of all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub keys: Arc<Keys>,
    pub metrics: SharedMetrics,
    pub recorder: Recorder,
    pub settings: ReconcileArgs,
    /// Checked before every write: a replica that is no longer sure to lead writes nothing.
    pub fence: Fence,
    pub(super) retries: Mutex<HashMap<(String, String), u32>>,
    /// Consecutive failed status writes per SealedSecret: such an object is requeued with
    /// backoff until its status is written, whatever the reconcile outcome.
    pub(super) status_retries: Mutex<HashMap<(String, String), u32>>,
    /// What opened values so far: the try-order for values without a key hint.
    pub(super) key_order: Mutex<KeyOrderMemory>,
    /// Whether the installed CRD keeps `status.sourceDigest` ([`DIGEST_UNKNOWN`] until the
    /// first status write tells).
    status_digest: AtomicU8,
    /// With `--old-gc-behavior` only: per SealedSecret, its uid and the uid of the Secret
    /// produced from it, so that a deleted SealedSecret's Secret is recognised even without an
    /// ownerReference (the watch cache keeps no status, and the Secret carries no digest).
    pub(super) produced: Mutex<HashMap<(String, String), (String, String)>>,
    /// One decryption per core and class at a time, fair between namespaces ([`CpuGate`]).
    pub(super) cpu_gate: Arc<CpuGate>,
    /// The newest resourceVersion the Secret watches reported: a reconcile reads its Secret
    /// no older than that ([`super::reads`]).
    pub(super) secrets_seen: Newest,
}

/// [`Context::status_digest`]: not known yet whether the CRD keeps `status.sourceDigest`.
const DIGEST_UNKNOWN: u8 = 0;
/// The CRD keeps it (ours).
const DIGEST_KEPT: u8 = 1;
/// The CRD prunes it (upstream's): every start decrypts again, as upstream does.
const DIGEST_PRUNED: u8 = 2;

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        keys: Arc<Keys>,
        metrics: SharedMetrics,
        recorder: Recorder,
        settings: ReconcileArgs,
        fence: Fence,
    ) -> Arc<Self> {
        let cpu_gate = CpuGate::new(permits(settings.unseal_concurrency));
        Arc::new(Self {
            client,
            keys,
            metrics,
            recorder,
            settings,
            fence,
            retries: Mutex::new(HashMap::new()),
            status_retries: Mutex::new(HashMap::new()),
            key_order: Mutex::new(KeyOrderMemory::new()),
            status_digest: AtomicU8::new(DIGEST_UNKNOWN),
            produced: Mutex::new(HashMap::new()),
            cpu_gate,
            secrets_seen: Newest::default(),
        })
    }

    /// Whether status writes carry the source digest: not once the CRD was seen to prune it.
    pub fn records_digest(&self) -> bool {
        self.status_digest.load(Ordering::Relaxed) != DIGEST_PRUNED
    }

    /// Learns from a status write's answer whether the CRD keeps `status.sourceDigest`.
    pub(super) fn digest_written(&self, sent: Option<&str>, stored: Option<&str>) {
        if sent.is_none() {
            return;
        }
        let seen = if stored == sent {
            DIGEST_KEPT
        } else {
            DIGEST_PRUNED
        };
        let before = self.status_digest.swap(seen, Ordering::Relaxed);
        if seen == DIGEST_PRUNED && before != DIGEST_PRUNED {
            tracing::info!(
                "the installed SealedSecret CRD does not keep status.sourceDigest (upstream's CRD): SealedSecrets are decrypted again at every start, as upstream's controller does; install this project's CRD to avoid it"
            );
        }
    }

    pub(super) fn retries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u32>> {
        match self.retries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records the outcome of a status write; returns the requeue delay when it failed.
    pub(super) fn status_written(&self, key: &(String, String), ok: bool) -> Option<Duration> {
        let mut pending = lock(&self.status_retries);
        if ok {
            pending.remove(key);
            return None;
        }
        let n = pending.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        Some(retry_backoff(*n))
    }

    pub(super) fn status_pending(&self, key: &(String, String)) -> Option<u32> {
        lock(&self.status_retries).get(key).copied()
    }
}

/// The guarded value, also after a panic elsewhere poisoned the lock.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
