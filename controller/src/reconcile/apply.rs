//! The Kubernetes I/O that applies the decisions: read the Secret, unseal (on the blocking
//! pool), create or replace, write the status (with one retry on a 409), Events, metrics,
//! and the retry policy.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource as _;
use kube::api::{Api, DeleteParams, GetParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use sealed_secrets_api::annotations;
use sealed_secrets_api::{
    CONDITION_SYNCED, SealedSecret, SealedSecretStatus, UnsealError, UnsealOptions,
    sealing_key_hints,
};
use sealed_secrets_crypto::Fingerprint;

use crate::events::{
    EventType, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED, Recorder,
};
use crate::keys::{KeySnapshot, Keys};
use crate::leader::{Fence, NotLeading};
use crate::metrics::{ErrorReason, SharedMetrics};

use super::decide::*;
use super::flags::ReconcileArgs;
use super::key_order::KeyOrderMemory;

/// Shared state of all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub keys: Arc<Keys>,
    pub metrics: SharedMetrics,
    pub recorder: Recorder,
    pub settings: ReconcileArgs,
    /// Checked before every write: a replica that is no longer sure to lead writes nothing.
    pub fence: Fence,
    retries: Mutex<HashMap<(String, String), u32>>,
    /// Consecutive failed status writes per SealedSecret: such an object is requeued with
    /// backoff until its status is written, whatever the reconcile outcome.
    status_retries: Mutex<HashMap<(String, String), u32>>,
    /// What opened values so far: the try-order for values without a key hint.
    key_order: Mutex<KeyOrderMemory>,
    /// Whether the installed CRD keeps `status.sourceDigest` ([`DIGEST_UNKNOWN`] until the
    /// first status write tells).
    status_digest: AtomicU8,
    /// With `--old-gc-behavior` only: per SealedSecret, its uid and the uid of the Secret
    /// produced from it, so that a deleted SealedSecret's Secret is recognised even without an
    /// ownerReference (the watch cache keeps no status, and the Secret carries no digest).
    produced: Mutex<HashMap<(String, String), (String, String)>>,
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
        })
    }

    /// Whether status writes carry the source digest: not once the CRD was seen to prune it.
    pub fn records_digest(&self) -> bool {
        self.status_digest.load(Ordering::Relaxed) != DIGEST_PRUNED
    }

    /// Learns from a status write's answer whether the CRD keeps `status.sourceDigest`.
    fn digest_written(&self, sent: Option<&str>, stored: Option<&str>) {
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

    fn retries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u32>> {
        match self.retries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records the outcome of a status write; returns the requeue delay when it failed.
    fn status_written(&self, key: &(String, String), ok: bool) -> Option<Duration> {
        let mut pending = lock(&self.status_retries);
        if ok {
            pending.remove(key);
            return None;
        }
        let n = pending.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        Some(retry_backoff(*n))
    }

    fn status_pending(&self, key: &(String, String)) -> Option<u32> {
        lock(&self.status_retries).get(key).copied()
    }
}

/// A reconcile failure; its [`ReconcileError::reason`] is the metric label and decides the
/// Event reason.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Unseal(UnsealError),
    #[error("failed to get SealedSecret `{object}`")]
    GetSealedSecret {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "SealedSecret `{object}` is {size} bytes, above this controller's limit of {limit} bytes (--max-sealed-secret-size); it is not processed"
    )]
    TooLarge {
        object: String,
        size: u64,
        limit: u64,
    },
    #[error("failed to get Secret `{object}`")]
    Get {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("Resource {name:?} already exists and is not managed by SealedSecret")]
    Unmanaged { name: String },
    #[error("{IMMUTABLE_MESSAGE}")]
    Immutable { object: String },
    #[error("failed to create Secret `{object}`")]
    Create {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to update Secret `{object}`")]
    Update {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    NotLeading(#[from] NotLeading),
    #[error("unsealing task failed")]
    Join(#[source] tokio::task::JoinError),
    #[error(
        "SealedSecret `{object}` asks for a Secret of type {SERVICE_ACCOUNT_TOKEN_TYPE}, which this controller does not create (it would hand out ServiceAccount tokens); start the controller with --allow-service-account-token-secrets to permit it"
    )]
    RefusedType { object: String },
}

impl ReconcileError {
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::Unseal(_) | Self::RefusedType { .. } | Self::TooLarge { .. } => {
                ErrorReason::Unseal
            }
            Self::Unmanaged { .. } => ErrorReason::Unmanaged,
            Self::Get { .. }
            | Self::GetSealedSecret { .. }
            | Self::Immutable { .. }
            | Self::Create { .. }
            | Self::Update { .. }
            | Self::NotLeading(_)
            | Self::Join(_) => ErrorReason::Update,
        }
    }

    /// An API failure that says nothing about the object: the server overloaded (429),
    /// failing (5xx) or unreachable (connection errors, timeouts). Such a failure is retried
    /// with backoff for as long as it lasts without using up `--max-unseal-retries`, so that
    /// an API server's bad moment at an object's last retry never leaves it given up: its
    /// Secret missing, or (an object over a foreign Secret) its status showing the passing
    /// error instead of the lasting reason. Found by the chaos suite (5% 500s at 1,000
    /// objects on the real control plane). Pure.
    pub fn is_transient(&self) -> bool {
        let (Self::Get { source, .. }
        | Self::GetSealedSecret { source, .. }
        | Self::Create { source, .. }
        | Self::Update { source, .. }) = self
        else {
            return false;
        };
        match source {
            kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
            kube::Error::HyperError(_) | kube::Error::Service(_) => true,
            _ => false,
        }
    }

    /// The message for status and Events: the error and its causes (never values).
    pub fn message(&self) -> String {
        let mut out = self.to_string();
        let mut src = std::error::Error::source(self);
        if matches!(self, Self::Unseal(_)) {
            // UnsealError's Display already includes its item causes.
            src = None;
        }
        while let Some(s) = src {
            out.push_str(": ");
            out.push_str(&s.to_string());
            src = s.source();
        }
        out
    }
}

/// What a successful pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

/// A successful pass: what it wrote, and what the status should record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    written: Written,
    /// The uid of the produced Secret.
    secret_uid: String,
    /// Its source digest ([`source_digest`]).
    digest: String,
}

/// Produces or refreshes the Secret of one SealedSecret. Upstream's order of checks is kept
/// (unseal errors before ownership errors), except that a matching source digest on an
/// owned Secret skips decryption altogether.
async fn apply(ss: &Arc<SealedSecret>, ctx: &Context) -> Result<Applied, ReconcileError> {
    let ns = ss.metadata.namespace.clone().unwrap_or_default();
    let name = ss.metadata.name.clone().unwrap_or_default();
    let object = format!("{ns}/{name}");
    let uid = ss.metadata.uid.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|source| ReconcileError::Get {
            object: object.clone(),
            source,
        })?;
    let snapshot = ctx.keys.snapshot();

    let reuse = existing
        .as_ref()
        .and_then(|e| reusable(e, ss, |fp| snapshot.ring.get(fp).is_some()).map(|k| (e, k)));

    let (desired, keys) = match reuse {
        Some((e, keys)) => {
            tracing::debug!(sealed_secret = %object, "source digest matches; not decrypting again");
            let mut d = desired_metadata_only(ss);
            d.data = e.data.clone();
            (finish_desired(d), keys)
        }
        None => {
            let (secret, used) = unseal_blocking(ss.clone(), snapshot.clone(), ctx).await?;
            (finish_desired(secret), used)
        }
    };

    if refused_type(&desired, ctx.settings.allow_service_account_tokens) {
        return Err(ReconcileError::RefusedType { object });
    }

    let applied = |written, secret_uid: Option<String>| {
        let secret_uid = secret_uid.unwrap_or_default();
        Applied {
            written,
            digest: source_digest(ss, &secret_uid, &keys),
            secret_uid,
        }
    };
    match existing {
        None => {
            ctx.fence.check()?;
            let created = api
                .create(&PostParams::default(), &desired)
                .await
                .map_err(|source| ReconcileError::Create {
                    object: object.clone(),
                    source,
                })?;
            // The resourceVersion orders this write among all others (the chaos suite
            // checks with it that no write came from a replica that was not the leader).
            tracing::info!(sealed_secret = %object, resource_version = created.metadata.resource_version.as_deref().unwrap_or_default(), "created Secret");
            Ok(applied(Written::Created, created.metadata.uid))
        }
        Some(existing) => {
            let mode = write_mode(&existing.metadata, &uid)
                .map_err(|Unmanaged| ReconcileError::Unmanaged { name: name.clone() })?;
            let merged = merge(&existing, &desired, mode);
            if !differs(&existing, &merged) {
                return Ok(applied(Written::Unchanged, existing.metadata.uid));
            }
            if violates_immutable(&existing, &merged) {
                return Err(ReconcileError::Immutable { object });
            }
            ctx.fence.check()?;
            let updated = api
                .replace(&name, &PostParams::default(), &merged)
                .await
                .map_err(|source| {
                    if is_immutable_rejection(&source) {
                        ReconcileError::Immutable {
                            object: object.clone(),
                        }
                    } else {
                        ReconcileError::Update {
                            object: object.clone(),
                            source,
                        }
                    }
                })?;
            tracing::info!(sealed_secret = %object, resource_version = updated.metadata.resource_version.as_deref().unwrap_or_default(), "updated Secret");
            Ok(applied(Written::Updated, updated.metadata.uid))
        }
    }
}

fn is_immutable_rejection(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 && s.message.contains("immutable"))
}

/// Decrypts on the blocking pool (RSA is CPU work), trying first the keys that opened similar
/// objects ([`KeyOrderMemory`]); counts values per key and RSA operations, failures included.
async fn unseal_blocking(
    ss: Arc<SealedSecret>,
    snapshot: Arc<KeySnapshot>,
    ctx: &Context,
) -> Result<(Secret, BTreeSet<Fingerprint>), ReconcileError> {
    let namespace = ss.metadata.namespace.clone().unwrap_or_default();
    let hinted = !sealing_key_hints(&ss.metadata).is_empty();
    let opts = UnsealOptions {
        accept_deprecated_v1_data: ctx.settings.accept_deprecated_v1_data,
        key_order: lock(&ctx.key_order).order(&namespace, snapshot.ring.fingerprints()),
    };
    let result = tokio::task::spawn_blocking(move || {
        sealed_secrets_api::unseal(&ss, &snapshot.ring, &opts).map(|u| {
            let usage = u.key_usage();
            let rsa = u.rsa_operations();
            (u.into_secret(), usage, rsa)
        })
    })
    .await
    .map_err(ReconcileError::Join)?;
    let rsa = match &result {
        Ok((_, _, rsa)) => *rsa,
        Err(e) => e.rsa_operations(),
    };
    ctx.metrics.rsa_decryptions.inc_by(rsa);
    let (mut secret, usage, _) = result.map_err(ReconcileError::Unseal)?;
    for (fp, n) in &usage {
        ctx.metrics.values_opened(fp.as_str(), *n);
    }
    lock(&ctx.key_order).record(&namespace, &usage, hinted);
    if secret.type_.is_none() {
        secret.type_ = Some(OPAQUE.to_owned());
    }
    Ok((secret, usage.into_keys().collect()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Reads the whole SealedSecret `ns/name` (`None`: it is gone) and its size as served. The
/// text is read first so that the size is known exactly; it is dropped once parsed.
async fn fetch(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<(SealedSecret, u64)>, kube::Error> {
    let request = kube::core::Request::new(SealedSecret::url_path(&(), Some(ns)))
        .get(name, &GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    let text = match client.request_text(request).await {
        Ok(t) => t,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = u64::try_from(text.len()).unwrap_or(u64::MAX);
    let ss = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
    Ok(Some((ss, size)))
}

/// One reconcile of the SealedSecret the watch cache names: the cache holds metadata only
/// ([`cached_metadata`]), so the whole object is read here, reconciled, and dropped.
pub async fn reconcile_cached(
    meta: Arc<PartialObjectMeta<SealedSecret>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if ctx.fence.check().is_err() {
        return Ok(not_leading(&meta.metadata));
    }
    let ns = meta.metadata.namespace.clone().unwrap_or_default();
    let name = meta.metadata.name.clone().unwrap_or_default();
    let fetched = fetch(&ctx.client, &ns, &name).await.map_err(|source| {
        let e = ReconcileError::GetSealedSecret {
            object: format!("{ns}/{name}"),
            source,
        };
        tracing::warn!(sealed_secret = %format!("{ns}/{name}"), error = %e.message(), "reconcile failed");
        e
    })?;
    match fetched {
        // Deleted meanwhile: the watch reports the deletion.
        None => Ok(Action::await_change()),
        Some((ss, size)) => reconcile_sized(Arc::new(ss), ctx, size).await,
    }
}

/// One reconcile of one SealedSecret (§4.6): unseal and write, then status, metrics, Events.
pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    reconcile_sized(ss, ctx, 0).await
}

/// [`reconcile`] of an object of `size` bytes as served (0: not known), which is refused
/// when above `--max-sealed-secret-size`.
async fn reconcile_sized(
    ss: Arc<SealedSecret>,
    ctx: Arc<Context>,
    size: u64,
) -> Result<Action, ReconcileError> {
    if ctx.fence.check().is_err() {
        return Ok(not_leading(&ss.metadata));
    }
    ctx.metrics.unseal_requests.inc();
    let ns = ss.metadata.namespace.clone().unwrap_or_default();
    let name = ss.metadata.name.clone().unwrap_or_default();
    let limit = ctx.settings.max_sealed_secret_size;
    let outcome = if too_large(size, limit) {
        Err(ReconcileError::TooLarge {
            object: format!("{ns}/{name}"),
            size,
            limit,
        })
    } else {
        apply(&ss, &ctx).await
    };
    if matches!(outcome, Err(ReconcileError::NotLeading(_))) {
        return Ok(not_leading(&ss.metadata));
    }
    let message = outcome.as_ref().err().map(ReconcileError::message);
    let digest = outcome
        .as_ref()
        .ok()
        .filter(|_| ctx.records_digest())
        .map(|a| a.digest.as_str());

    let key = (ns.clone(), name.clone());
    let retrying_status = ctx.status_pending(&key).is_some();
    let mut transitioned = false;
    let mut status_retry = None;
    if ctx.settings.update_status {
        let now = Time(jiff::Timestamp::now());
        if let Some(status) = next_status(
            ss.status.as_ref(),
            ss.metadata.generation,
            message.as_deref(),
            digest,
            &now,
        ) {
            let before = ss
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_SYNCED))
                .map(|c| c.status.clone());
            transitioned =
                before.as_deref() != Some(if message.is_none() { "True" } else { "False" });
            if ctx.fence.check().is_err() {
                return Ok(not_leading(&ss.metadata));
            }
            let written = write_status(&ctx.client, &ss, status).await;
            if let Ok(Some(stored)) = &written {
                ctx.digest_written(digest, stored.source_digest.as_deref());
            }
            if let Err(e) = &written {
                tracing::warn!(sealed_secret = %format!("{ns}/{name}"), error = %e, "failed to update status; retrying with backoff");
                ctx.metrics.unseal_error(ErrorReason::Status, &ns);
            }
            status_retry = ctx.status_written(&key, written.is_ok());
        } else {
            ctx.status_written(&key, true);
        }
    }
    let instance = instance_label(&ss);
    ctx.metrics.set_condition(
        &ns,
        &name,
        &instance,
        if message.is_none() { "True" } else { "False" },
    );

    match outcome {
        Ok(applied) => {
            let written = applied.written;
            ctx.retries().remove(&key);
            if ctx.settings.old_gc_behavior {
                lock(&ctx.produced).insert(
                    key.clone(),
                    (
                        ss.metadata.uid.clone().unwrap_or_default(),
                        applied.secret_uid,
                    ),
                );
            }
            // A pass that only retries a status write publishes no second Event.
            let status_only = retrying_status && written == Written::Unchanged;
            if (written != Written::Unchanged || transitioned)
                && !status_only
                && ctx.fence.check().is_ok()
            {
                ctx.recorder
                    .publish(
                        &ss,
                        EventType::Normal,
                        REASON_UNSEALED,
                        "SealedSecret unsealed successfully",
                    )
                    .await;
            }
            // The Secret is right but the status is not written: come back until it is
            // (a status-only change never triggers a reconcile by itself).
            Ok(status_retry.map_or_else(Action::await_change, Action::requeue))
        }
        Err(e) => {
            let msg = message.unwrap_or_default();
            tracing::warn!(sealed_secret = %format!("{ns}/{name}"), reason = e.reason().as_str(), error = %msg, "reconcile failed");
            ctx.metrics.unseal_error(e.reason(), &ns);
            let (reason, text) = match &e {
                ReconcileError::Unseal(_)
                | ReconcileError::RefusedType { .. }
                | ReconcileError::TooLarge { .. } => {
                    (REASON_UNSEAL_FAILED, format!("Failed to unseal: {msg}"))
                }
                _ => (REASON_UPDATE_FAILED, msg),
            };
            if ctx.fence.check().is_ok() {
                ctx.recorder
                    .publish(&ss, EventType::Warning, reason, &text)
                    .await;
            }
            Err(e)
        }
    }
}

/// A reconcile that stopped before a write because this replica is no longer sure to lead
/// ([`Fence`]): nothing written, no Event; retried later in case the Lease is renewed after
/// all (else the leader group is drained before then).
fn not_leading(meta: &ObjectMeta) -> Action {
    tracing::debug!(sealed_secret = %format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()), "not writing: the Lease is not renewed");
    Action::requeue(Duration::from_secs(2))
}

fn instance_label(ss: &SealedSecret) -> String {
    ss.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(annotations::APP_INSTANCE_LABEL))
        .cloned()
        .unwrap_or_default()
}

/// PUTs the status subresource (upstream RBAC grants `update` only); on a conflict the
/// object is read again once and the status written over the fresh copy. Returns the status
/// the API server stored (`None`: not written, the object changed meanwhile), which tells
/// whether the CRD keeps `status.sourceDigest`.
async fn write_status(
    client: &kube::Client,
    ss: &SealedSecret,
    status: SealedSecretStatus,
) -> Result<Option<SealedSecretStatus>, kube::Error> {
    let ns = ss.metadata.namespace.clone().unwrap_or_default();
    let name = ss.metadata.name.clone().unwrap_or_default();
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    let mut obj = ss.clone();
    obj.status = Some(status.clone());
    obj.metadata.managed_fields = None;
    let written = |o: &SealedSecret| {
        tracing::debug!(sealed_secret = %format!("{ns}/{name}"), resource_version = o.metadata.resource_version.as_deref().unwrap_or_default(), "wrote status");
    };
    match api
        .replace_status(&name, &PostParams::default(), &obj)
        .await
    {
        Ok(o) => {
            written(&o);
            Ok(Some(o.status.unwrap_or_default()))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut fresh = api.get(&name).await?;
            if fresh.metadata.uid != ss.metadata.uid
                || fresh.metadata.generation != ss.metadata.generation
            {
                // Changed meanwhile: the next reconcile writes the right status.
                return Ok(None);
            }
            fresh.status = Some(status);
            fresh.metadata.managed_fields = None;
            api.replace_status(&name, &PostParams::default(), &fresh)
                .await
                .map(|o| {
                    written(&o);
                    Some(o.status.unwrap_or_default())
                })
        }
        Err(e) => Err(e),
    }
}

/// Retries with backoff up to `--max-unseal-retries`, then waits for the next change
/// (§4.9); transient API failures ([`ReconcileError::is_transient`]) are retried beyond. Immutable targets and refused Secret types are not retried (only a change can fix
/// them). Either way, an object whose status could not
/// be written is requeued with backoff until it is: a given-up object still has to show
/// `Synced=False` with its reason.
pub fn error_policy<K: kube::Resource>(
    obj: Arc<K>,
    err: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let key = (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    );
    let status_retry = ctx.status_pending(&key).map(retry_backoff);
    let give_up = || status_retry.map_or_else(Action::await_change, Action::requeue);
    if matches!(
        err,
        ReconcileError::Immutable { .. }
            | ReconcileError::RefusedType { .. }
            | ReconcileError::TooLarge { .. }
    ) {
        ctx.retries().remove(&key);
        return give_up();
    }
    let mut retries = ctx.retries();
    let n = retries.entry(key.clone()).or_insert(0);
    *n += 1;
    if *n > ctx.settings.max_unseal_retries && !err.is_transient() {
        retries.remove(&key);
        tracing::warn!(sealed_secret = %format!("{}/{}", key.0, key.1), "giving up after {} retries until the next change", ctx.settings.max_unseal_retries);
        return give_up();
    }
    Action::requeue(retry_backoff(*n))
}

/// Upstream counts deletes as unseal requests and drops their condition series; with
/// `--old-gc-behavior` it deletes the Secret itself (see [`old_gc_deletes`]). `deleted` is
/// the watch cache's copy ([`cached_metadata`]).
pub(super) fn on_sealed_secret_deleted(ctx: &Arc<Context>, deleted: &ObjectMeta) {
    ctx.metrics.unseal_requests.inc();
    let ns = deleted.namespace.clone().unwrap_or_default();
    let name = deleted.name.clone().unwrap_or_default();
    let instance = deleted
        .labels
        .as_ref()
        .and_then(|l| l.get(annotations::APP_INSTANCE_LABEL))
        .cloned()
        .unwrap_or_default();
    ctx.metrics.remove_condition(&ns, &name, &instance);
    let key = (ns.clone(), name.clone());
    ctx.retries().remove(&key);
    lock(&ctx.status_retries).remove(&key);
    let uid = deleted.uid.clone().unwrap_or_default();
    // The Secret this controller produced from exactly this object (not from an older one
    // of the same name).
    let produced = lock(&ctx.produced)
        .remove(&key)
        .filter(|(ss_uid, _)| *ss_uid == uid)
        .map(|(_, secret_uid)| secret_uid);
    if !ctx.settings.old_gc_behavior {
        return;
    }
    let client = ctx.client.clone();
    tokio::spawn(async move {
        let api: Api<Secret> = Api::namespaced(client, &ns);
        match api.get_opt(&name).await {
            Ok(Some(s)) if old_gc_deletes(&s.metadata, &uid, produced.as_deref()) => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: s.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => {
                        tracing::info!(secret = %format!("{ns}/{name}"), "deleted Secret of deleted SealedSecret")
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "failed to delete Secret")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "failed to read Secret")
            }
        }
    });
}
