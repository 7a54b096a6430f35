//! Reconciling SealedSecrets into Secrets (§4.5-4.9).
//!
//! The decisions are pure functions at the top of this file (ownership and write mode, merge
//! vs overwrite, semantic equality, immutable targets, status transitions, source digest) and
//! are unit-tested without I/O; [`reconcile`] strings them together with API calls, and
//! [`run`] wires watches into kube-runtime's `applier`.
//!
//! Beyond upstream: a produced Secret records `sealed-secrets-rs.dev/source-digest`; when it
//! matches, the SealedSecret is not decrypted again (ownership, labels, annotations and type
//! are still enforced). Secrets are watched metadata-only, and only their deletions are used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ApplierConfig};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt as _, applier, watcher};
use sealed_secrets_api::annotations::{
    self, MANAGED, PATCH, SKIP_SET_OWNER_REFERENCES, SOURCE_DIGEST,
};
use sealed_secrets_api::{
    API_VERSION, CONDITION_SYNCED, GROUP, KIND, SealedSecret, SealedSecretCondition,
    SealedSecretStatus, UnsealError, UnsealOptions,
};
use sealed_secrets_crypto::{Fingerprint, Scope};

use crate::events::{
    EventType, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED, Recorder,
};
use crate::keys::{KeySnapshot, Keys};
use crate::metrics::{ErrorReason, SharedMetrics};

// ---------------------------------------------------------------------------------------
// Pure decisions
// ---------------------------------------------------------------------------------------

/// Upstream's message for an immutable target (§4.6 step 7).
pub const IMMUTABLE_MESSAGE: &str = "the target Secret is immutable and its data cannot be updated. You can only delete and recreate the Secret";

/// The default Secret type the API server fills in.
const OPAQUE: &str = "Opaque";

/// Whether `meta` has a controller ownerReference to the SealedSecret with `uid`
/// (`metav1.IsControlledBy`).
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    !uid.is_empty()
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// How an existing Secret may be written (§4.6 steps 5-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace data, labels, annotations and ownerReferences.
    Overwrite,
    /// Merge data, labels and annotations; replace ownerReferences only when `managed`.
    Patch { take_ownership: bool },
}

/// The existing Secret is neither ours nor annotated `managed`/`patch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmanaged;

/// Decides how to write over an existing Secret.
pub fn write_mode(existing: &ObjectMeta, ss_uid: &str) -> Result<WriteMode, Unmanaged> {
    let ann = existing.annotations.as_ref();
    let owned = is_controlled_by(existing, ss_uid);
    let managed = annotations::is_true(ann, MANAGED);
    let patch = annotations::is_true(ann, PATCH);
    if !owned && !managed && !patch {
        return Err(Unmanaged);
    }
    Ok(if patch {
        WriteMode::Patch {
            take_ownership: managed,
        }
    } else {
        WriteMode::Overwrite
    })
}

fn merge_maps<V: Clone>(
    base: &Option<BTreeMap<String, V>>,
    add: &Option<BTreeMap<String, V>>,
) -> Option<BTreeMap<String, V>> {
    let mut out = base.clone().unwrap_or_default();
    for (k, v) in add.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    (!out.is_empty()).then_some(out)
}

/// The Secret to write over `existing` (§4.6 step 6). `immutable` is never changed on an
/// existing Secret, as upstream.
pub fn merge(existing: &Secret, desired: &Secret, mode: WriteMode) -> Secret {
    let mut out = existing.clone();
    match mode {
        WriteMode::Overwrite => {
            out.data = desired.data.clone();
            out.metadata.annotations = desired.metadata.annotations.clone();
            out.metadata.labels = desired.metadata.labels.clone();
            out.metadata.owner_references = desired.metadata.owner_references.clone();
        }
        WriteMode::Patch { take_ownership } => {
            out.data = merge_maps(&existing.data, &desired.data);
            out.metadata.annotations = merge_maps(
                &existing.metadata.annotations,
                &desired.metadata.annotations,
            );
            out.metadata.labels = merge_maps(&existing.metadata.labels, &desired.metadata.labels);
            if take_ownership {
                out.metadata.owner_references = desired.metadata.owner_references.clone();
            }
        }
    }
    out.type_ = desired.type_.clone();
    out
}

fn norm<V>(m: &Option<BTreeMap<String, V>>) -> Option<&BTreeMap<String, V>> {
    m.as_ref().filter(|m| !m.is_empty())
}

fn norm_refs(r: &Option<Vec<OwnerReference>>) -> &[OwnerReference] {
    r.as_deref().unwrap_or_default()
}

fn norm_type(t: &Option<String>) -> &str {
    t.as_deref().filter(|t| !t.is_empty()).unwrap_or(OPAQUE)
}

/// Whether two Secrets differ in anything the controller writes (semantic equality: absent
/// and empty maps are the same, as are a missing type and `Opaque`).
pub fn differs(a: &Secret, b: &Secret) -> bool {
    norm(&a.data) != norm(&b.data)
        || norm(&a.metadata.labels) != norm(&b.metadata.labels)
        || norm(&a.metadata.annotations) != norm(&b.metadata.annotations)
        || norm_refs(&a.metadata.owner_references) != norm_refs(&b.metadata.owner_references)
        || norm_type(&a.type_) != norm_type(&b.type_)
}

/// Whether writing `merged` over `existing` would only record our source digest on a Secret
/// that has none: one produced by upstream's controller (or by ours before the digest). Such a
/// Secret is left as it is. Rewriting it would change the resourceVersion of every Secret an
/// upstream install made, on the first start after a migration, and wake everything watching
/// them, although nothing they hold changes (issue 10: migration rewrites nothing). The cost:
/// these Secrets are decrypted again on each restart, as upstream always does.
pub fn only_records_digest(existing: &Secret, merged: &Secret) -> bool {
    let has_digest = |s: &Secret| {
        s.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(SOURCE_DIGEST))
    };
    if has_digest(existing) || !has_digest(merged) {
        return false;
    }
    let mut without = merged.clone();
    if let Some(a) = without.metadata.annotations.as_mut() {
        a.remove(SOURCE_DIGEST);
    }
    !differs(existing, &without)
}

/// An immutable Secret's data (or type) cannot change; the API server would refuse, so the
/// controller reports upstream's message without trying.
pub fn violates_immutable(existing: &Secret, merged: &Secret) -> bool {
    existing.immutable == Some(true)
        && (norm(&existing.data) != norm(&merged.data)
            || norm_type(&existing.type_) != norm_type(&merged.type_))
}

/// The Secret a SealedSecret produces, without its data: template metadata with namespace
/// and name forced, the ownerReference unless `skip-set-owner-references`, type, immutable
/// (§2.4). Used when the source digest says the existing data is already right.
pub fn desired_metadata_only(ss: &SealedSecret) -> Secret {
    let t = &ss.spec.template;
    let mut metadata = t.metadata.clone().unwrap_or_default();
    metadata.name = ss.metadata.name.clone();
    metadata.namespace = ss.metadata.namespace.clone();
    if !annotations::is_true(metadata.annotations.as_ref(), SKIP_SET_OWNER_REFERENCES) {
        metadata.owner_references = Some(vec![sealed_secrets_api::unseal::owner_reference(ss)]);
    } else {
        metadata.owner_references = None;
    }
    Secret {
        metadata,
        type_: t.type_.clone(),
        immutable: t.immutable,
        data: None,
        string_data: None,
    }
}

/// Normalises what the controller sends: a missing type becomes `Opaque` (the API server's
/// default), and the source digest is recorded.
pub fn finish_desired(mut s: Secret, digest: &str) -> Secret {
    if s.type_.as_deref().is_none_or(str::is_empty) {
        s.type_ = Some(OPAQUE.to_owned());
    }
    s.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SOURCE_DIGEST.to_owned(), digest.to_owned());
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The source digest (docs/design.md): SHA-256 over the SealedSecret's uid, generation, scope
/// and spec, and the fingerprints of the keys that opened its values. The value is
/// `sha256:<hex>;keys=<fp>,<fp>`: fingerprints are public, and listing them lets a restart
/// check the digest without decrypting, and re-decrypt when one of those keys is gone.
pub fn source_digest(ss: &SealedSecret, keys: &BTreeSet<Fingerprint>) -> String {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    h.update(ss.metadata.uid.as_deref().unwrap_or_default().as_bytes());
    h.update(b"\0");
    h.update(
        ss.metadata
            .generation
            .unwrap_or_default()
            .to_string()
            .as_bytes(),
    );
    h.update(b"\0");
    h.update(
        Scope::from_annotations(ss.metadata.annotations.as_ref())
            .as_str()
            .as_bytes(),
    );
    h.update(b"\0");
    h.update(&serde_json::to_vec(&ss.spec).unwrap_or_default());
    h.update(b"\0");
    let fps: Vec<&str> = keys.iter().map(Fingerprint::as_str).collect();
    h.update(fps.join(",").as_bytes());
    format!("sha256:{};keys={}", hex(h.finish().as_ref()), fps.join(","))
}

/// Whether `recorded` (the annotation on the existing Secret) is the digest of `ss` with
/// keys all still present in the ring.
pub fn digest_matches(
    recorded: &str,
    ss: &SealedSecret,
    present: impl Fn(&Fingerprint) -> bool,
) -> bool {
    let Some((_, keys)) = recorded.split_once(";keys=") else {
        return false;
    };
    let mut set = BTreeSet::new();
    for k in keys.split(',').filter(|k| !k.is_empty()) {
        match k.parse::<Fingerprint>() {
            Ok(fp) if present(&fp) => {
                set.insert(fp);
            }
            _ => return false,
        }
    }
    source_digest(ss, &set) == recorded
}

/// The status to write after a reconcile, or `None` when nothing worth a write changed
/// (§4.8: the condition status/message or observedGeneration). `lastUpdateTime` is always
/// now; `lastTransitionTime` only moves when the status value changes.
pub fn next_status(
    current: Option<&SealedSecretStatus>,
    generation: Option<i64>,
    error: Option<&str>,
    now: &Time,
) -> Option<SealedSecretStatus> {
    let mut status = current.cloned().unwrap_or_default();
    let (value, message) = match error {
        None => ("True", None),
        Some(e) => ("False", Some(e.to_owned())),
    };
    let idx = match status
        .conditions
        .iter()
        .position(|c| c.type_ == CONDITION_SYNCED)
    {
        Some(i) => i,
        None => {
            status.conditions.push(SealedSecretCondition {
                type_: CONDITION_SYNCED.to_owned(),
                status: String::new(),
                ..Default::default()
            });
            status.conditions.len() - 1
        }
    };
    let cond = &mut status.conditions[idx];
    let value_changed = cond.status != value;
    let changed =
        value_changed || cond.message != message || status.observed_generation != generation;
    if !changed {
        return None;
    }
    cond.last_update_time = Some(now.clone());
    if value_changed {
        cond.last_transition_time = Some(now.clone());
        cond.status = value.to_owned();
    }
    cond.message = message;
    status.observed_generation = generation;
    Some(status)
}

/// The Secret type that carries a ServiceAccount token (filled in by the token controller).
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

/// Whether the controller refuses to produce `secret` (issue 11 item 15): a
/// service-account-token Secret would give whoever may create SealedSecrets in a namespace a
/// long-lived token of any ServiceAccount there, without any right on Secrets. Upstream
/// produces it; here `--allow-service-account-token-secrets` must say so (docs/design.md).
/// Pure.
pub fn refused_type(secret: &Secret, allow_service_account_tokens: bool) -> bool {
    !allow_service_account_tokens && secret.type_.as_deref() == Some(SERVICE_ACCOUNT_TOKEN_TYPE)
}

/// Requeue delay after the `n`th consecutive failure (exponential, 0.5s base, 5 min cap).
pub fn retry_backoff(n: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << n.saturating_sub(1).min(20));
    Duration::from_millis(ms).min(Duration::from_secs(300))
}

/// The SealedSecret a deleted Secret should bring back (§4.5): its controller owner, or the
/// same-named SealedSecret when the Secret was annotated `managed`.
pub fn recreate_target(meta: &ObjectMeta) -> Option<(String, String)> {
    let ns = meta.namespace.clone()?;
    let owner = meta.owner_references.iter().flatten().find(|o| {
        o.controller == Some(true)
            && o.kind == KIND
            && o.api_version.split('/').next() == Some(GROUP)
    });
    if let Some(o) = owner {
        return Some((ns, o.name.clone()));
    }
    if annotations::is_true(meta.annotations.as_ref(), MANAGED) {
        return Some((ns, meta.name.clone()?));
    }
    None
}

// ---------------------------------------------------------------------------------------
// Reconcile
// ---------------------------------------------------------------------------------------

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
    /// Values opened per key so far: the try-order for values without a key hint.
    usage: Mutex<HashMap<Fingerprint, u64>>,
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
            usage: Mutex::new(HashMap::new()),
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

/// Decrypts on the blocking pool (RSA is CPU work); counts values per key and RSA operations.
async fn unseal_blocking(
    ss: Arc<SealedSecret>,
    snapshot: Arc<KeySnapshot>,
    ctx: &Context,
) -> Result<(Secret, BTreeSet<Fingerprint>), ReconcileError> {
    let opts = UnsealOptions {
        accept_deprecated_v1_data: ctx.settings.accept_deprecated_v1_data,
    };
    let snap = snapshot.clone();
    let ss = with_usage_hints(ss, &ctx.usage_order(&snapshot));
    let result = tokio::task::spawn_blocking(move || {
        sealed_secrets_api::unseal(&ss, &snap.ring, &opts).map(|u| {
            let usage = u.key_usage();
            (u.into_secret(), usage)
        })
    })
    .await
    .map_err(ReconcileError::Join)?;
    snapshot.report_rsa(&ctx.metrics);
    let (mut secret, usage) = result.map_err(ReconcileError::Unseal)?;
    for (fp, n) in &usage {
        ctx.metrics.values_opened(fp.as_str(), *n);
    }
    {
        let mut counts = lock(&ctx.usage);
        for (fp, n) in &usage {
            *counts.entry(fp.clone()).or_insert(0) += n;
        }
    }
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

impl Context {
    /// Keys of the snapshot, most-used first (values without a hint are usually sealed
    /// with the key most others were sealed with).
    fn usage_order(&self, snapshot: &KeySnapshot) -> Vec<Fingerprint> {
        let counts = lock(&self.usage);
        let mut fps: Vec<(u64, Fingerprint)> = snapshot
            .ring
            .fingerprints()
            .map(|fp| (counts.get(fp).copied().unwrap_or(0), fp.clone()))
            .collect();
        fps.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        fps.into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(_, fp)| fp)
            .collect()
    }
}

/// For a SealedSecret without our `sealing-key` hint (e.g. sealed by upstream's kubeseal),
/// a copy whose hint lists `order`, so that the key that opened most values so far is
/// tried first: with several keys this turns O(keys) RSA operations per value into about
/// one. The hint only orders the keys tried; the label and everything else are unchanged.
pub fn with_usage_hints(ss: Arc<SealedSecret>, order: &[Fingerprint]) -> Arc<SealedSecret> {
    let has_hint = ss
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(annotations::SEALING_KEY));
    if has_hint || order.is_empty() {
        return ss;
    }
    let mut copy = (*ss).clone();
    let list: Vec<&str> = order.iter().map(Fingerprint::as_str).collect();
    copy.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(annotations::SEALING_KEY.to_owned(), list.join(","));
    Arc::new(copy)
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

// ---------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------

/// One source of reconcile requests.
type QueueStream =
    futures::stream::BoxStream<'static, Result<ObjectRef<SealedSecret>, watcher::Error>>;

/// Hashes uid and generation, so only spec changes (and re-creations) trigger a reconcile,
/// as upstream's "update suppressed" rule (§4.5).
fn spec_version(ss: &SealedSecret) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ss.metadata.uid.hash(&mut h);
    ss.metadata.generation.hash(&mut h);
    Some(h.finish())
}

/// Runs the reconcile loop for one namespace (`None`: all namespaces) until `stop` resolves
/// (leadership lost, shutdown): then no new reconcile starts and the running ones finish
/// (kube-runtime's applier drains when its queue ends).
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let ss_api: Api<SealedSecret> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut wc = watcher::Config::default();
    if !ctx.settings.label_selector.is_empty() {
        wc = wc.labels(&ctx.settings.label_selector);
    }
    let (store, writer) = reflector::store::<SealedSecret>();
    let delete_ctx = ctx.clone();
    let sealed = watcher(ss_api, wc.clone())
        .default_backoff()
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(ss) = ev {
                on_sealed_secret_deleted(&delete_ctx, ss);
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_version, Default::default())
        .map_ok(|ss| ObjectRef::from_obj(&ss));

    let mut queue: Vec<QueueStream> = vec![sealed.boxed()];

    if !ctx.settings.skip_recreate {
        let secret_api: Api<PartialObjectMeta<Secret>> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let deleted = watcher(secret_api, wc.clone())
            .default_backoff()
            .try_filter_map(|ev| async move {
                Ok(match ev {
                    watcher::Event::Delete(meta) => deleted_secret_target(&meta),
                    _ => None,
                })
            });
        queue.push(deleted.boxed());
    }

    // When keys change (a key added by the watcher, say), SealedSecrets that could not be
    // decrypted get another chance; the digest makes this cheap for the others.
    let keys_store = store.clone();
    let key_changes = tokio_stream_from_watch(ctx.keys.subscribe()).flat_map(move |()| {
        let refs: Vec<Result<ObjectRef<SealedSecret>, watcher::Error>> = keys_store
            .state()
            .iter()
            .map(|ss| Ok(ObjectRef::from_obj(ss.as_ref())))
            .collect();
        futures::stream::iter(refs)
    });
    queue.push(key_changes.boxed());

    let config = ApplierConfig::default().concurrency(ctx.settings.concurrency);
    let results = applier(
        |ss, ctx| Box::pin(reconcile(ss, ctx)),
        error_policy,
        ctx.clone(),
        store,
        futures::stream::select_all(queue).take_until(stop),
        config,
    );
    results
        .for_each(|r| async move {
            if let Err(e) = r {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(_, _) => {}
                    kube::runtime::controller::Error::ObjectNotFound(_) => {}
                    other => tracing::warn!(error = %other, "controller stream error"),
                }
            }
        })
        .await;
}

fn deleted_secret_target(meta: &PartialObjectMeta<Secret>) -> Option<ObjectRef<SealedSecret>> {
    recreate_target(&meta.metadata).map(|(ns, name)| ObjectRef::new(&name).within(&ns))
}

/// A stream that yields once per change of a `watch` channel (skipping the initial value).
fn tokio_stream_from_watch(rx: tokio::sync::watch::Receiver<u64>) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        // Coalesce bursts of key changes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        rx.borrow_and_update();
        Some(((), rx))
    })
}

/// Whether `--old-gc-behavior` may delete `secret` for the deleted SealedSecret `ss`: it is
/// controlled by it, or it records the source digest of exactly this SealedSecret (a
/// Secret produced with `skip-set-owner-references`, or one whose ownerReference was
/// removed by an orphaning delete before the controller saw the deletion). Upstream deletes
/// the same-named Secret unconditionally; a foreign Secret is never removed here. Pure.
///
/// A delete that waits for finalizers (an orphaning delete waits for the garbage collector,
/// which is also what strips the ownerReference) makes the API server increment
/// `metadata.generation` as it sets `deletionTimestamp`, so the deleted object's generation
/// is one past the one the Secret's digest recorded; that generation is tried too.
pub fn old_gc_deletes(secret: &ObjectMeta, ss: &SealedSecret) -> bool {
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    if is_controlled_by(secret, uid) {
        return true;
    }
    let Some(d) = secret
        .annotations
        .as_ref()
        .and_then(|a| a.get(SOURCE_DIGEST))
    else {
        return false;
    };
    if uid.is_empty() {
        return false;
    }
    if digest_matches(d, ss, |_| true) {
        return true;
    }
    match (&ss.metadata.deletion_timestamp, ss.metadata.generation) {
        (Some(_), Some(g)) if g > 1 => {
            let mut before = ss.clone();
            before.metadata.generation = Some(g - 1);
            digest_matches(d, &before, |_| true)
        }
        _ => false,
    }
}

/// Upstream counts deletes as unseal requests and drops their condition series; with
/// `--old-gc-behavior` it deletes the Secret itself (see [`old_gc_deletes`]).
fn on_sealed_secret_deleted(ctx: &Arc<Context>, ss: &SealedSecret) {
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

/// `ByteString` map helper for tests and callers.
pub fn bytes_map(items: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
        .collect()
}

/// `apiVersion` of produced ownerReferences (re-exported for tests).
pub const OWNER_API_VERSION: &str = API_VERSION;

#[cfg(test)]
mod tests {
    use super::*;
    use sealed_secrets_api::SecretTemplateSpec;

    const UID: &str = "uid-1";

    fn mk_ss(name: &str) -> SealedSecret {
        let mut ss = SealedSecret::new(name, Default::default());
        ss.metadata.namespace = Some("ns".into());
        ss.metadata.uid = Some(UID.into());
        ss.metadata.generation = Some(1);
        ss.spec.encrypted_data.insert("a", "AgBy");
        ss
    }

    fn mk_secret(annotations: &[(&str, &str)], owner_uid: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("ns".into()),
                annotations: (!annotations.is_empty()).then(|| {
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect()
                }),
                labels: Some([("old".to_owned(), "l".to_owned())].into()),
                owner_references: owner_uid.map(|u| {
                    vec![OwnerReference {
                        api_version: API_VERSION.into(),
                        kind: KIND.into(),
                        name: "s".into(),
                        uid: u.into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..Default::default()
            },
            data: Some(bytes_map(&[("keep", b"1"), ("a", b"old")])),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    fn mk_desired() -> Secret {
        let mut d = desired_metadata_only(&mk_ss("s"));
        d.metadata.labels = Some([("new".to_owned(), "l".to_owned())].into());
        d.data = Some(bytes_map(&[("a", b"new")]));
        d
    }

    #[test]
    fn ownership_decisions() {
        assert_eq!(
            write_mode(&mk_secret(&[], Some(UID)).metadata, UID),
            Ok(WriteMode::Overwrite)
        );
        assert_eq!(
            write_mode(&mk_secret(&[], Some("other")).metadata, UID),
            Err(Unmanaged)
        );
        assert_eq!(
            write_mode(&mk_secret(&[], None).metadata, UID),
            Err(Unmanaged)
        );
        assert_eq!(
            write_mode(&mk_secret(&[(MANAGED, "true")], None).metadata, UID),
            Ok(WriteMode::Overwrite)
        );
        assert_eq!(
            write_mode(&mk_secret(&[(MANAGED, "True")], None).metadata, UID),
            Err(Unmanaged)
        );
        assert_eq!(
            write_mode(&mk_secret(&[(PATCH, "true")], None).metadata, UID),
            Ok(WriteMode::Patch {
                take_ownership: false
            })
        );
        assert_eq!(
            write_mode(
                &mk_secret(&[(PATCH, "true"), (MANAGED, "true")], None).metadata,
                UID
            ),
            Ok(WriteMode::Patch {
                take_ownership: true
            })
        );
        // A non-controller ownerReference is not ownership.
        let mut s = mk_secret(&[], Some(UID));
        s.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(write_mode(&s.metadata, UID), Err(Unmanaged));
    }

    #[test]
    fn overwrite_replaces_everything_we_write() {
        let existing = mk_secret(&[(MANAGED, "true")], None);
        let m = merge(&existing, &mk_desired(), WriteMode::Overwrite);
        assert_eq!(m.data, Some(bytes_map(&[("a", b"new")])));
        assert_eq!(
            m.metadata.labels,
            Some([("new".to_owned(), "l".to_owned())].into())
        );
        assert_eq!(m.metadata.annotations, None);
        assert_eq!(m.metadata.owner_references.as_ref().unwrap()[0].uid, UID);
        assert!(differs(&existing, &m));
    }

    #[test]
    fn a_secret_without_digest_is_not_rewritten_only_to_record_one() {
        // As upstream's controller leaves it: owned, same data and metadata, no digest.
        let mut existing = mk_secret(&[], Some(UID));
        let desired = finish_desired(mk_desired(), "sha256:ab;keys=k");
        existing.data = desired.data.clone();
        existing.metadata.labels = desired.metadata.labels.clone();
        let merged = merge(&existing, &desired, WriteMode::Overwrite);
        assert!(differs(&existing, &merged));
        assert!(only_records_digest(&existing, &merged));
        // Any other change is still written, digest included.
        let mut stale = existing.clone();
        stale.data = Some(bytes_map(&[("a", b"old")]));
        assert!(!only_records_digest(
            &stale,
            &merge(&stale, &desired, WriteMode::Overwrite)
        ));
        // A Secret that already records a digest gets the new one.
        let mut ours = existing.clone();
        ours.metadata.annotations =
            Some([(SOURCE_DIGEST.to_owned(), "sha256:old".to_owned())].into());
        assert!(!only_records_digest(
            &ours,
            &merge(&ours, &desired, WriteMode::Overwrite)
        ));
    }

    #[test]
    fn patch_merges_and_takes_ownership_only_when_managed() {
        let existing = mk_secret(&[(PATCH, "true")], None);
        let m = merge(
            &existing,
            &mk_desired(),
            WriteMode::Patch {
                take_ownership: false,
            },
        );
        assert_eq!(m.data, Some(bytes_map(&[("a", b"new"), ("keep", b"1")])));
        let labels = m.metadata.labels.as_ref().unwrap();
        assert_eq!((labels["old"].as_str(), labels["new"].as_str()), ("l", "l"));
        assert_eq!(m.metadata.annotations.as_ref().unwrap()[PATCH], "true");
        assert!(m.metadata.owner_references.is_none());
        let m = merge(
            &existing,
            &mk_desired(),
            WriteMode::Patch {
                take_ownership: true,
            },
        );
        assert_eq!(m.metadata.owner_references.as_ref().unwrap()[0].uid, UID);
    }

    #[test]
    fn semantic_equality_ignores_empty_vs_absent() {
        let mut a = mk_secret(&[], Some(UID));
        let mut b = a.clone();
        assert!(!differs(&a, &b));
        a.metadata.annotations = Some(BTreeMap::new());
        b.type_ = None;
        assert!(!differs(&a, &b));
        b.type_ = Some("kubernetes.io/tls".into());
        assert!(differs(&a, &b));
    }

    #[test]
    fn immutable_targets_refuse_data_changes_only() {
        let mut existing = mk_secret(&[], Some(UID));
        existing.immutable = Some(true);
        let m = merge(&existing, &mk_desired(), WriteMode::Overwrite);
        assert!(violates_immutable(&existing, &m));
        let mut same_data = mk_desired();
        same_data.data = existing.data.clone();
        let m = merge(&existing, &same_data, WriteMode::Overwrite);
        assert!(!violates_immutable(&existing, &m));
        assert_eq!(m.immutable, Some(true));
    }

    #[test]
    fn desired_metadata_follows_template() {
        let mut ss = mk_ss("s");
        ss.spec.template = SecretTemplateSpec {
            metadata: Some(ObjectMeta {
                name: Some("ignored".into()),
                namespace: Some("elsewhere".into()),
                labels: Some([("app".to_owned(), "x".to_owned())].into()),
                ..Default::default()
            }),
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            immutable: Some(true),
            data: None,
        };
        let d = desired_metadata_only(&ss);
        assert_eq!(d.metadata.name.as_deref(), Some("s"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(d.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        assert_eq!(d.metadata.owner_references.as_ref().unwrap().len(), 1);
        ss.spec.template.metadata.as_mut().unwrap().annotations =
            Some([(SKIP_SET_OWNER_REFERENCES.to_owned(), "true".to_owned())].into());
        assert!(
            desired_metadata_only(&ss)
                .metadata
                .owner_references
                .is_none()
        );
    }

    #[test]
    fn digest_changes_with_inputs_and_checks_keys() {
        let ss = mk_ss("s");
        let fp: Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .parse()
            .unwrap();
        let keys: BTreeSet<Fingerprint> = [fp.clone()].into();
        let d = source_digest(&ss, &keys);
        assert!(d.starts_with("sha256:") && d.ends_with(&format!(";keys={fp}")));
        assert!(digest_matches(&d, &ss, |_| true));
        assert!(
            !digest_matches(&d, &ss, |_| false),
            "a removed key forces decryption"
        );
        let mut ss2 = ss.clone();
        ss2.metadata.generation = Some(2);
        assert!(!digest_matches(&d, &ss2, |_| true));
        let mut ss3 = ss.clone();
        ss3.spec.encrypted_data.insert("b", "AgBz");
        assert!(!digest_matches(&d, &ss3, |_| true));
        let mut ss4 = ss.clone();
        ss4.metadata.uid = Some("uid-2".into());
        assert!(!digest_matches(&d, &ss4, |_| true));
        let mut ss5 = ss.clone();
        ss5.metadata.annotations =
            Some([(annotations::CLUSTER_WIDE.to_owned(), "true".to_owned())].into());
        assert!(!digest_matches(&d, &ss5, |_| true));
        assert!(!digest_matches("garbage", &ss, |_| true));
        let forged = d.replace(";keys=", ";keys=SHA256:x,");
        assert!(!digest_matches(&forged, &ss, |_| true));
    }

    fn time(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn status_transitions() {
        // First success: condition created, transition == update.
        let s1 = next_status(None, Some(1), None, &time(10)).unwrap();
        let c = &s1.conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Synced", "True"));
        assert_eq!(c.last_transition_time, c.last_update_time);
        assert_eq!(s1.observed_generation, Some(1));
        // Same result, same generation: no write.
        assert!(next_status(Some(&s1), Some(1), None, &time(20)).is_none());
        // New generation, still success: update time moves, transition does not.
        let s2 = next_status(Some(&s1), Some(2), None, &time(20)).unwrap();
        assert_eq!(s2.observed_generation, Some(2));
        assert_eq!(s2.conditions[0].last_transition_time, Some(time(10)));
        assert_eq!(s2.conditions[0].last_update_time, Some(time(20)));
        // Failure: transition with message.
        let s3 = next_status(Some(&s2), Some(2), Some("boom"), &time(30)).unwrap();
        assert_eq!(s3.conditions[0].status, "False");
        assert_eq!(s3.conditions[0].message.as_deref(), Some("boom"));
        assert_eq!(s3.conditions[0].last_transition_time, Some(time(30)));
        // Same failure again: no write; a different message is written.
        assert!(next_status(Some(&s3), Some(2), Some("boom"), &time(40)).is_none());
        assert!(next_status(Some(&s3), Some(2), Some("other"), &time(40)).is_some());
        // Back to success clears the message.
        let s4 = next_status(Some(&s3), Some(2), None, &time(50)).unwrap();
        assert_eq!(s4.conditions[0].message, None);
        assert_eq!(s4.conditions.len(), 1);
    }

    #[test]
    fn recreate_targets() {
        let owned = mk_secret(&[], Some(UID));
        assert_eq!(
            recreate_target(&owned.metadata),
            Some(("ns".into(), "s".into()))
        );
        let managed = mk_secret(&[(MANAGED, "true")], None);
        assert_eq!(
            recreate_target(&managed.metadata),
            Some(("ns".into(), "s".into()))
        );
        assert_eq!(
            recreate_target(&mk_secret(&[(PATCH, "true")], None).metadata),
            None
        );
        assert_eq!(recreate_target(&mk_secret(&[], None).metadata), None);
    }

    #[test]
    fn usage_hints_only_for_unhinted_objects() {
        let fp: Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .parse()
            .unwrap();
        let ss = Arc::new(mk_ss("s"));
        let hinted = with_usage_hints(ss.clone(), std::slice::from_ref(&fp));
        assert_eq!(
            hinted.metadata.annotations.as_ref().unwrap()[annotations::SEALING_KEY],
            fp.as_str()
        );
        assert_eq!(
            Scope::from_annotations(hinted.metadata.annotations.as_ref()),
            Scope::Strict
        );
        assert!(Arc::ptr_eq(&with_usage_hints(ss.clone(), &[]), &ss));
        assert!(Arc::ptr_eq(&with_usage_hints(hinted.clone(), &[]), &hinted));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(retry_backoff(1), Duration::from_millis(500));
        assert_eq!(retry_backoff(2), Duration::from_millis(1000));
        assert_eq!(retry_backoff(40), Duration::from_secs(300));
    }

    #[test]
    fn error_messages_and_reasons() {
        let e = ReconcileError::Unmanaged { name: "db".into() };
        assert_eq!(
            e.message(),
            "Resource \"db\" already exists and is not managed by SealedSecret"
        );
        assert_eq!(e.reason(), ErrorReason::Unmanaged);
        let e = ReconcileError::Immutable {
            object: "ns/db".into(),
        };
        assert!(e.message().contains("the target Secret is immutable"));
        assert_eq!(e.reason(), ErrorReason::Update);
        let e = ReconcileError::RefusedType {
            object: "ns/sa".into(),
        };
        assert!(
            e.message()
                .contains("--allow-service-account-token-secrets")
        );
        assert_eq!(e.reason(), ErrorReason::Unseal);
    }

    #[test]
    fn service_account_token_secrets_need_the_flag() {
        let mut s = mk_desired();
        assert!(!refused_type(&s, false));
        s.type_ = Some(SERVICE_ACCOUNT_TOKEN_TYPE.into());
        assert!(refused_type(&s, false));
        assert!(!refused_type(&s, true));
        s.type_ = Some("kubernetes.io/tls".into());
        assert!(!refused_type(&s, false));
    }
    #[test]
    fn old_gc_deletes_only_what_this_sealed_secret_produced() {
        let ss = mk_ss("s");
        assert!(old_gc_deletes(&mk_secret(&[], Some(UID)).metadata, &ss));
        assert!(!old_gc_deletes(
            &mk_secret(&[], Some("other")).metadata,
            &ss
        ));
        assert!(!old_gc_deletes(
            &mk_secret(&[(MANAGED, "true")], None).metadata,
            &ss
        ));
        // No ownerReference (orphaned, or skip-set-owner-references) but our digest.
        let d = source_digest(&ss, &BTreeSet::new());
        assert!(old_gc_deletes(
            &mk_secret(&[(SOURCE_DIGEST, &d)], None).metadata,
            &ss
        ));
        // The digest of another object (same name, another uid) is not ours.
        let mut other = ss.clone();
        other.metadata.uid = Some("uid-2".into());
        let d2 = source_digest(&other, &BTreeSet::new());
        assert!(!old_gc_deletes(
            &mk_secret(&[(SOURCE_DIGEST, &d2)], None).metadata,
            &ss
        ));
    }

    #[test]
    fn old_gc_deletes_after_the_generation_bump_of_a_finalizing_delete() {
        let mut ss = mk_ss("s");
        ss.metadata.generation = Some(1);
        let d = source_digest(&ss, &BTreeSet::new());
        let secret = mk_secret(&[(SOURCE_DIGEST, &d)], None);
        // What the watch reports for an orphaning delete on a real API server.
        let mut deleted = ss.clone();
        deleted.metadata.generation = Some(2);
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(old_gc_deletes(&secret.metadata, &deleted));
        // Without a deletion, a newer generation is another spec: not ours to delete.
        let mut newer = ss.clone();
        newer.metadata.generation = Some(2);
        assert!(!old_gc_deletes(&secret.metadata, &newer));
        // Two generations past it is not the deletion's bump either.
        deleted.metadata.generation = Some(3);
        assert!(!old_gc_deletes(&secret.metadata, &deleted));
    }
}
