//! The Kubernetes I/O that applies the decisions: read the Secret, unseal (on the blocking
//! pool), create or replace, write the status (with one retry on a 409), Events, metrics,
//! and the retry policy.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use sealed_secrets_api::annotations::{self, SOURCE_DIGEST};
use sealed_secrets_api::{
    CONDITION_SYNCED, SealedSecret, SealedSecretStatus, UnsealError, UnsealOptions,
    sealing_key_hints,
};
use sealed_secrets_crypto::Fingerprint;

use crate::events::{
    EventType, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED, Recorder,
};
use crate::keys::{KeySnapshot, Keys};
use crate::metrics::{ErrorReason, SharedMetrics};

use super::decide::*;
use super::key_order::KeyOrderMemory;

/// Switches that change reconciling.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    pub update_status: bool,
    pub old_gc_behavior: bool,
    pub accept_deprecated_v1_data: bool,
    pub max_unseal_retries: u32,
    pub skip_recreate: bool,
    pub label_selector: String,
    pub concurrency: u16,
    /// `--allow-service-account-token-secrets`.
    pub allow_service_account_tokens: bool,
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub keys: Arc<Keys>,
    pub metrics: SharedMetrics,
    pub recorder: Recorder,
    pub settings: ReconcileSettings,
    retries: Mutex<HashMap<(String, String), u32>>,
    /// Consecutive failed status writes per SealedSecret: such an object is requeued with
    /// backoff until its status is written, whatever the reconcile outcome.
    status_retries: Mutex<HashMap<(String, String), u32>>,
    /// What opened values so far: the try-order for values without a key hint.
    key_order: Mutex<KeyOrderMemory>,
}

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
        settings: ReconcileSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            keys,
            metrics,
            recorder,
            settings,
            retries: Mutex::new(HashMap::new()),
            status_retries: Mutex::new(HashMap::new()),
            key_order: Mutex::new(KeyOrderMemory::new()),
        })
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
            Self::Unseal(_) | Self::RefusedType { .. } => ErrorReason::Unseal,
            Self::Unmanaged { .. } => ErrorReason::Unmanaged,
            Self::Get { .. }
            | Self::Immutable { .. }
            | Self::Create { .. }
            | Self::Update { .. }
            | Self::Join(_) => ErrorReason::Update,
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

/// Produces or refreshes the Secret of one SealedSecret. Upstream's order of checks is kept
/// (unseal errors before ownership errors), except that a matching source digest on an
/// owned Secret skips decryption altogether.
async fn apply(ss: &Arc<SealedSecret>, ctx: &Context) -> Result<Written, ReconcileError> {
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

    let reusable = existing.as_ref().filter(|e| {
        write_mode(&e.metadata, &uid).is_ok()
            && e.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SOURCE_DIGEST))
                .is_some_and(|d| digest_matches(d, ss, |fp| snapshot.ring.get(fp).is_some()))
    });

    let desired = match reusable {
        Some(e) => {
            tracing::debug!(sealed_secret = %object, "source digest matches; not decrypting again");
            let digest = e
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SOURCE_DIGEST))
                .cloned()
                .unwrap_or_default();
            let mut d = desired_metadata_only(ss);
            d.data = e.data.clone();
            finish_desired(d, &digest)
        }
        None => {
            let (secret, used) = unseal_blocking(ss.clone(), snapshot.clone(), ctx).await?;
            let digest = source_digest(ss, &used);
            finish_desired(secret, &digest)
        }
    };

    if refused_type(&desired, ctx.settings.allow_service_account_tokens) {
        return Err(ReconcileError::RefusedType { object });
    }

    match existing {
        None => {
            api.create(&PostParams::default(), &desired)
                .await
                .map_err(|source| ReconcileError::Create {
                    object: object.clone(),
                    source,
                })?;
            tracing::info!(sealed_secret = %object, "created Secret");
            Ok(Written::Created)
        }
        Some(existing) => {
            let mode = write_mode(&existing.metadata, &uid)
                .map_err(|Unmanaged| ReconcileError::Unmanaged { name: name.clone() })?;
            let merged = merge(&existing, &desired, mode);
            if !differs(&existing, &merged) || only_records_digest(&existing, &merged) {
                return Ok(Written::Unchanged);
            }
            if violates_immutable(&existing, &merged) {
                return Err(ReconcileError::Immutable { object });
            }
            api.replace(&name, &PostParams::default(), &merged)
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
            tracing::info!(sealed_secret = %object, "updated Secret");
            Ok(Written::Updated)
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

/// One reconcile of one SealedSecret (§4.6): unseal and write, then status, metrics, Events.
pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.metrics.unseal_requests.inc();
    let ns = ss.metadata.namespace.clone().unwrap_or_default();
    let name = ss.metadata.name.clone().unwrap_or_default();
    let outcome = apply(&ss, &ctx).await;
    let message = outcome.as_ref().err().map(ReconcileError::message);

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
            &now,
        ) {
            let before = ss
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_SYNCED))
                .map(|c| c.status.clone());
            transitioned =
                before.as_deref() != Some(if message.is_none() { "True" } else { "False" });
            let written = write_status(&ctx.client, &ss, status).await;
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
        Ok(written) => {
            ctx.retries().remove(&key);
            // A pass that only retries a status write publishes no second Event.
            let status_only = retrying_status && written == Written::Unchanged;
            if (written != Written::Unchanged || transitioned) && !status_only {
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
                ReconcileError::Unseal(_) | ReconcileError::RefusedType { .. } => {
                    (REASON_UNSEAL_FAILED, format!("Failed to unseal: {msg}"))
                }
                _ => (REASON_UPDATE_FAILED, msg),
            };
            ctx.recorder
                .publish(&ss, EventType::Warning, reason, &text)
                .await;
            Err(e)
        }
    }
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
/// object is read again once and the status written over the fresh copy.
async fn write_status(
    client: &kube::Client,
    ss: &SealedSecret,
    status: SealedSecretStatus,
) -> Result<(), kube::Error> {
    let ns = ss.metadata.namespace.clone().unwrap_or_default();
    let name = ss.metadata.name.clone().unwrap_or_default();
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    let mut obj = ss.clone();
    obj.status = Some(status.clone());
    obj.metadata.managed_fields = None;
    match api
        .replace_status(&name, &PostParams::default(), &obj)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut fresh = api.get(&name).await?;
            if fresh.metadata.uid != ss.metadata.uid
                || fresh.metadata.generation != ss.metadata.generation
            {
                // Changed meanwhile: the next reconcile writes the right status.
                return Ok(());
            }
            fresh.status = Some(status);
            fresh.metadata.managed_fields = None;
            api.replace_status(&name, &PostParams::default(), &fresh)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Retries with backoff up to `--max-unseal-retries`, then waits for the next change
/// (§4.9). Immutable targets and refused Secret types are not retried (only a change can fix
/// them). Either way, an object whose status could not
/// be written is requeued with backoff until it is: a given-up object still has to show
/// `Synced=False` with its reason.
pub fn error_policy(ss: Arc<SealedSecret>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = (
        ss.metadata.namespace.clone().unwrap_or_default(),
        ss.metadata.name.clone().unwrap_or_default(),
    );
    let status_retry = ctx.status_pending(&key).map(retry_backoff);
    let give_up = || status_retry.map_or_else(Action::await_change, Action::requeue);
    if matches!(
        err,
        ReconcileError::Immutable { .. } | ReconcileError::RefusedType { .. }
    ) {
        ctx.retries().remove(&key);
        return give_up();
    }
    let mut retries = ctx.retries();
    let n = retries.entry(key.clone()).or_insert(0);
    *n += 1;
    if *n > ctx.settings.max_unseal_retries {
        retries.remove(&key);
        tracing::warn!(sealed_secret = %format!("{}/{}", key.0, key.1), "giving up after {} retries until the next change", ctx.settings.max_unseal_retries);
        return give_up();
    }
    Action::requeue(retry_backoff(*n))
}

/// Upstream counts deletes as unseal requests and drops their condition series; with
/// `--old-gc-behavior` it deletes the Secret itself (see [`old_gc_deletes`]).
pub(super) fn on_sealed_secret_deleted(ctx: &Arc<Context>, ss: &SealedSecret) {
    ctx.metrics.unseal_requests.inc();
    let ns = ss.metadata.namespace.clone().unwrap_or_default();
    let name = ss.metadata.name.clone().unwrap_or_default();
    ctx.metrics
        .remove_condition(&ns, &name, &instance_label(ss));
    ctx.retries().remove(&(ns.clone(), name.clone()));
    lock(&ctx.status_retries).remove(&(ns.clone(), name.clone()));
    if !ctx.settings.old_gc_behavior {
        return;
    }
    let deleted = ss.clone();
    let client = ctx.client.clone();
    tokio::spawn(async move {
        let api: Api<Secret> = Api::namespaced(client, &ns);
        match api.get_opt(&name).await {
            Ok(Some(s)) if old_gc_deletes(&s.metadata, &deleted) => {
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
