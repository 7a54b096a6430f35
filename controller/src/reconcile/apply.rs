//! The shell of a reconcile: reads the SealedSecret and its Secret (at once, from the API
//! server's watch cache: [`super::reads`]), unseals (behind
//! the CPU gate), and carries out what [`super::plan`] decided: the Secret write, the status (with
//! one retry on a 409), the metrics, the Event, the requeue; plus the retry policy and what
//! a deleted SealedSecret leaves to do.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use sealed_secrets_api::annotations;
use sealed_secrets_api::{SealedSecret, SealedSecretStatus, UnsealOptions, sealing_key_hints};
use sealed_secrets_crypto::Fingerprint;
use tokio::time::Instant;

use super::context::{Context, lock};
use super::decide::{
    OPAQUE, desired_metadata_only, finish_desired, retry_backoff, reusable, source_digest,
    too_large,
};
use super::error::ReconcileError;
use super::plan::{Facts, SecretWrite, StatusWrite, Written, plan, secret_write};
use super::queue::RunAgain;
use super::reads::{get_opt_at, read_at, version_number};
use crate::keys::KeySnapshot;
use crate::metrics::ErrorReason;

/// A successful pass: what it wrote, and what the status should record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    written: Written,
    /// The uid of the produced Secret.
    secret_uid: String,
    /// Its source digest ([`source_digest`]).
    digest: String,
    /// The keys that opened the values (decrypting now, or recorded in the digest reused).
    keys: BTreeSet<Fingerprint>,
}

/// Where one reconcile's time went, logged at debug level when it ends ("reconcile
/// phases"): the API calls, the wait for a core and the decryption. A phase it skipped is 0.
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    /// Reading the SealedSecret.
    fetch: Duration,
    /// Reading its Secret.
    get: Duration,
    /// Waiting for a core ([`super::cpugate`]).
    cpu_wait: Duration,
    /// Decrypting (on the blocking pool).
    decrypt: Duration,
    /// Creating or replacing the Secret.
    secret_write: Duration,
    /// Writing the status.
    status: Duration,
    /// Publishing the Event.
    event: Duration,
}

impl Phases {
    fn log(&self, object: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            sealed_secret = %object,
            fetch_ms = ms(self.fetch),
            get_ms = ms(self.get),
            cpu_wait_ms = ms(self.cpu_wait),
            decrypt_ms = ms(self.decrypt),
            secret_write_ms = ms(self.secret_write),
            status_ms = ms(self.status),
            event_ms = ms(self.event),
            "reconcile phases"
        );
    }
}

/// `namespace/name`, as logs, errors and Events name an object.
fn object_name(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The Secret a SealedSecret writes, as read, and how long the read took.
struct SecretRead {
    existing: Result<Option<Secret>, kube::Error>,
    took: Duration,
}

impl SecretRead {
    /// Reads it no older than `version` (0: a quorum read; [`super::reads`]).
    async fn get(api: &Api<Secret>, name: &str, version: u64) -> Self {
        let started = Instant::now();
        let existing = get_opt_at(api, name, version).await;
        Self {
            existing,
            took: started.elapsed(),
        }
    }
}

/// Produces or refreshes the Secret of one SealedSecret. Upstream's order of checks is kept
/// (unseal errors before ownership errors), except that a matching source digest on an
/// owned Secret skips decryption altogether. `read` is its Secret when already read.
async fn apply(
    ss: &Arc<SealedSecret>,
    ctx: &Context,
    phases: &mut Phases,
    read: Option<SecretRead>,
) -> Result<Applied, ReconcileError> {
    let ns = ss.namespace().unwrap_or_default();
    let name = ss.name_any();
    let object = object_name(&ss.metadata);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let read = match read {
        Some(r) => r,
        None => SecretRead::get(&api, &name, ctx.secrets_seen.get()).await,
    };
    phases.get = read.took;
    let existing = read.existing.map_err(|source| ReconcileError::Get {
        object: object.clone(),
        source,
    })?;
    let snapshot = ctx.keys.snapshot();

    let reuse = existing
        .as_ref()
        .and_then(|e| reusable(e, ss, |fp| snapshot.ring.holds(fp)).map(|k| (e, k)));
    let (desired, keys) = match reuse {
        Some((e, keys)) => {
            tracing::debug!(sealed_secret = %object, "source digest matches; not decrypting again");
            let mut d = desired_metadata_only(ss);
            d.data = e.data.clone();
            (finish_desired(d), keys)
        }
        None => {
            let (secret, used) = unseal_blocking(ss.clone(), snapshot.clone(), ctx, phases).await?;
            (finish_desired(secret), used)
        }
    };

    let write = secret_write(
        ss,
        &object,
        existing.as_ref(),
        desired,
        ctx.settings.allow_service_account_tokens,
    )?;
    let written = write.written();
    let writing = Instant::now();
    let secret_uid = match write {
        SecretWrite::Unchanged => existing.and_then(|e| e.metadata.uid),
        SecretWrite::Create(desired) => {
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
            created.metadata.uid
        }
        SecretWrite::Replace(merged) => {
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
            updated.metadata.uid
        }
    };
    phases.secret_write = writing.elapsed();
    let secret_uid = secret_uid.unwrap_or_default();
    Ok(Applied {
        written,
        digest: source_digest(ss, &secret_uid, &keys),
        secret_uid,
        keys,
    })
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
    phases: &mut Phases,
) -> Result<(Secret, BTreeSet<Fingerprint>), ReconcileError> {
    let namespace = ss.namespace().unwrap_or_default();
    let hinted = !sealing_key_hints(&ss.metadata).is_empty();
    let opts = UnsealOptions {
        accept_deprecated_v1_data: ctx.settings.accept_deprecated_v1_data,
        key_order: lock(&ctx.key_order).order(&namespace, snapshot.ring.fingerprints()),
    };
    // One decryption per core and class: a namespace with nothing else decrypting runs at
    // once at normal priority; a backlog runs at lower priority, the next core going to the
    // namespace decrypting least (docs/design.md, "Reconcile queue").
    let waiting = Instant::now();
    let permit = ctx.cpu_gate.enter(&namespace).await;
    let decrypting = Instant::now();
    phases.cpu_wait = decrypting - waiting;
    ctx.metrics
        .unseal_cpu_wait
        .observe(phases.cpu_wait.as_secs_f64());
    let result = permit
        .run(move || {
            sealed_secrets_api::unseal(&ss, &snapshot.ring, &opts).map(|u| {
                let usage = u.key_usage();
                let rsa = u.rsa_operations();
                (u.format_usage().clone(), u.into_secret(), usage, rsa)
            })
        })
        .await
        .map_err(ReconcileError::Join)?;
    phases.decrypt = decrypting.elapsed();
    let rsa = match &result {
        Ok((_, _, _, rsa)) => *rsa,
        Err(e) => e.rsa_operations(),
    };
    ctx.metrics.rsa_decryptions.inc_by(rsa);
    let (formats, mut secret, usage, _) = result.map_err(ReconcileError::Unseal)?;
    ctx.metrics.values_opened_by_format(&formats);
    for (fp, n) in &usage {
        ctx.metrics.values_opened(fp.as_str(), *n);
    }
    lock(&ctx.key_order).record(&namespace, &usage, hinted);
    if secret.type_.is_none() {
        secret.type_ = Some(OPAQUE.to_owned());
    }
    Ok((secret, usage.into_keys().collect()))
}

/// Reads the whole SealedSecret `ns/name` (`None`: it is gone) and its size as served, no
/// older than `version` (0: a quorum read; [`super::reads`]). The text is read first so
/// that the size is known exactly; it is dropped once parsed.
async fn fetch(
    client: &kube::Client,
    ns: &str,
    name: &str,
    version: u64,
) -> Result<Option<(SealedSecret, u64)>, kube::Error> {
    let text = read_at(version, |params| async move {
        let request = kube::core::Request::new(SealedSecret::url_path(&(), Some(ns)))
            .get(name, &params)
            .map_err(kube::Error::BuildRequest)?;
        client.request_text(request).await
    })
    .await?;
    let Some(text) = text else {
        return Ok(None);
    };
    let size = u64::try_from(text.len()).unwrap_or(u64::MAX);
    let ss = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
    Ok(Some((ss, size)))
}

fn action(again: RunAgain) -> Action {
    again.map_or_else(Action::await_change, Action::requeue)
}

/// One reconcile of the SealedSecret the watch cache names: the cache holds its namespace
/// and name only (`super::cache`; `meta` carries no more), so the whole object is read here,
/// reconciled, and dropped.
pub async fn reconcile_cached(
    meta: Arc<PartialObjectMeta<SealedSecret>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    run_cached(meta, ctx).await.map(action)
}

/// [`reconcile_cached`], for the reconcile queue.
pub(super) async fn run_cached(
    meta: Arc<PartialObjectMeta<SealedSecret>>,
    ctx: Arc<Context>,
) -> Result<RunAgain, ReconcileError> {
    if ctx.fence.check().is_err() {
        return Ok(not_leading(&meta.metadata));
    }
    let ns = meta.namespace().unwrap_or_default();
    let name = meta.name_any();
    let fetching = Instant::now();
    // Its Secret is read beside it: the reads do not depend on each other (every write is
    // conditional on what was read), and on a busy API server each round trip is a large
    // part of a reconcile's time (docs/design.md, "Reconcile queue").
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // A shard member decides from this read whether the object is still its own, and an
    // object it has just let go of must not look like its own to it: a cached read may
    // predate the member's own release, so a member reads the SealedSecret from etcd.
    let seen = match ctx.settings.shard {
        Some(_) => 0,
        None => version_number(meta.metadata.resource_version.as_deref()),
    };
    let (fetched, read) = tokio::join!(
        async {
            let fetched = fetch(&ctx.client, &ns, &name, seen).await;
            (fetched, fetching.elapsed())
        },
        SecretRead::get(&secrets, &name, ctx.secrets_seen.get())
    );
    let (fetched, fetch_took) = fetched;
    let fetched = fetched.map_err(|source| {
        let object = object_name(&meta.metadata);
        let e = ReconcileError::GetSealedSecret { object, source };
        tracing::warn!(sealed_secret = %object_name(&meta.metadata), error = %e.message(), "reconcile failed");
        e
    })?;
    match fetched {
        // Deleted meanwhile: the watch reports the deletion.
        None => Ok(None),
        Some((ss, size)) => {
            // A shard member reconciles only its own objects and lets go of drained ones.
            if let Some(again) = super::sharded::before_reconcile(&ctx, &ss.metadata).await {
                return Ok(again);
            }
            let phases = Phases {
                fetch: fetch_took,
                ..Phases::default()
            };
            reconcile_sized(Arc::new(ss), ctx, size, phases, Some(read)).await
        }
    }
}

/// One reconcile of one SealedSecret (§4.6): unseal and write, then status, metrics, Events.
pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    reconcile_sized(ss, ctx, 0, Phases::default(), None)
        .await
        .map(action)
}

/// [`reconcile`] of an object of `size` bytes as served (0: not known), which is refused
/// when above `--max-sealed-secret-size`: the Secret write, then what [`plan`] decides.
/// `read` is its Secret when already read.
async fn reconcile_sized(
    ss: Arc<SealedSecret>,
    ctx: Arc<Context>,
    size: u64,
    mut phases: Phases,
    read: Option<SecretRead>,
) -> Result<RunAgain, ReconcileError> {
    if ctx.fence.check().is_err() {
        return Ok(not_leading(&ss.metadata));
    }
    ctx.metrics.unseal_requests.inc();
    let ns = ss.namespace().unwrap_or_default();
    let name = ss.name_any();
    let object = object_name(&ss.metadata);
    let limit = ctx.settings.max_sealed_secret_size;
    let outcome = if too_large(size, limit) {
        Err(ReconcileError::TooLarge {
            object: object.clone(),
            size,
            limit,
        })
    } else {
        apply(&ss, &ctx, &mut phases, read).await
    };
    if matches!(outcome, Err(ReconcileError::NotLeading(_))) {
        return Ok(not_leading(&ss.metadata));
    }
    let digest = outcome
        .as_ref()
        .ok()
        .filter(|_| ctx.records_digest())
        .map(|a| a.digest.as_str());
    let key = (ns.clone(), name.clone());
    let now = Time(jiff::Timestamp::now());
    let plan = plan(
        &ss,
        Facts {
            outcome: outcome.as_ref().map(|a| a.written),
            digest,
            update_status: ctx.settings.update_status,
            retrying_status: ctx.status_pending(&key).is_some(),
            now: &now,
        },
    );

    let mut status_retry = None;
    match plan.status {
        StatusWrite::Off => {}
        StatusWrite::UpToDate => {
            ctx.status_written(&key, true);
        }
        StatusWrite::Write(status) => {
            if ctx.fence.check().is_err() {
                return Ok(not_leading(&ss.metadata));
            }
            let writing = Instant::now();
            let written = write_status(&ctx.client, &ss, status).await;
            phases.status = writing.elapsed();
            if let Ok(Some(stored)) = &written {
                ctx.digest_written(digest, stored.source_digest.as_deref());
            }
            if let Err(e) = &written {
                tracing::warn!(sealed_secret = %object, error = %e, "failed to update status; retrying with backoff");
                ctx.metrics.unseal_error(ErrorReason::Status, &ns);
            }
            status_retry = ctx.status_written(&key, written.is_ok());
        }
    }
    let instance = ss
        .labels()
        .get(annotations::APP_INSTANCE_LABEL)
        .cloned()
        .unwrap_or_default();
    ctx.metrics
        .set_condition(&ns, &name, &instance, plan.condition);
    let opened_by = outcome.as_ref().ok().map(|a| &a.keys);
    ctx.metrics.record_value_formats(&ns, &name, &ss, opened_by);

    match outcome {
        Ok(applied) => {
            ctx.retries().remove(&key);
            if ctx.settings.old_gc_behavior {
                let ss_uid = ss.uid().unwrap_or_default();
                lock(&ctx.produced).insert(key, (ss_uid, applied.secret_uid));
            }
            let publishing = Instant::now();
            publish(&ctx, &ss, plan.event).await;
            phases.event = publishing.elapsed();
            phases.log(&object);
            // A failed status write comes back with backoff ([`super::Plan::requeue`]).
            Ok(status_retry)
        }
        Err(e) => {
            let msg = e.message();
            tracing::warn!(sealed_secret = %object, reason = e.reason().as_str(), error = %msg, "reconcile failed");
            ctx.metrics.unseal_error(e.reason(), &ns);
            let publishing = Instant::now();
            publish(&ctx, &ss, plan.event).await;
            phases.event = publishing.elapsed();
            phases.log(&object);
            Err(e)
        }
    }
}

/// Publishes the planned Event, unless this replica stopped leading meanwhile.
async fn publish(ctx: &Context, ss: &SealedSecret, event: Option<super::plan::PlannedEvent>) {
    if let Some(ev) = event
        && ctx.fence.check().is_ok()
    {
        ctx.recorder
            .publish(ss, ev.type_, ev.reason, &ev.message)
            .await;
    }
}

/// A reconcile that stopped before a write because this replica is no longer sure to lead
/// ([`Fence`]): nothing written, no Event; retried later in case the Lease is renewed after
/// all (else the leader group is drained before then).
fn not_leading(meta: &ObjectMeta) -> RunAgain {
    tracing::debug!(sealed_secret = %object_name(meta), "not writing: the Lease is not renewed");
    Some(Duration::from_secs(2))
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
    let (ns, name) = (ss.namespace().unwrap_or_default(), ss.name_any());
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
            tracing::debug!(sealed_secret = %format!("{ns}/{name}"), "status write conflicted; writing over a fresh read");
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
    action(retry_policy(obj.as_ref(), err, &ctx))
}

/// [`error_policy`], for the reconcile queue.
pub(super) fn retry_policy<K: kube::Resource>(
    obj: &K,
    err: &ReconcileError,
    ctx: &Context,
) -> RunAgain {
    let key = (
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default(),
    );
    let status_retry = ctx.status_pending(&key).map(retry_backoff);
    let give_up = || status_retry;
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
    Some(retry_backoff(*n))
}
