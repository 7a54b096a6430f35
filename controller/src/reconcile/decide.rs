//! The pure decisions of reconciling (§4.6-4.8): ownership and write mode, merge vs
//! overwrite, semantic equality, immutable targets, status transitions, the source digest,
//! what `--old-gc-behavior` may delete. No I/O; unit-tested in `tests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use sealed_secrets_api::annotations::{
    self, MANAGED, PATCH, SKIP_SET_OWNER_REFERENCES, SOURCE_DIGEST,
};
use sealed_secrets_api::{
    CONDITION_SYNCED, GROUP, KIND, SealedSecret, SealedSecretCondition, SealedSecretStatus,
};
use sealed_secrets_crypto::Fingerprint;

/// Upstream's message for an immutable target (§4.6 step 7).
pub const IMMUTABLE_MESSAGE: &str = "the target Secret is immutable and its data cannot be updated. You can only delete and recreate the Secret";

/// The default Secret type the API server fills in.
pub(super) const OPAQUE: &str = "Opaque";

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
    // Older versions of this controller recorded the source digest here; a produced Secret's
    // annotations are the template's only, as upstream writes them, so the next write drops
    // it (in patch mode too, where other foreign annotations are kept).
    if let Some(a) = out.metadata.annotations.as_mut() {
        a.remove(SOURCE_DIGEST);
        if a.is_empty() {
            out.metadata.annotations = None;
        }
    }
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
/// default).
pub fn finish_desired(mut s: Secret) -> Secret {
    if s.type_.as_deref().is_none_or(str::is_empty) {
        s.type_ = Some(OPAQUE.to_owned());
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a source digest covers besides the keys: the SealedSecret's uid, generation, scope
/// and spec.
fn hash_source(h: &mut aws_lc_rs::digest::Context, ss: &SealedSecret) {
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
        sealed_secrets_api::annotations::scope(ss.metadata.annotations.as_ref())
            .as_str()
            .as_bytes(),
    );
    h.update(b"\0");
    h.update(&serde_json::to_vec(&ss.spec).unwrap_or_default());
    h.update(b"\0");
}

/// The source digest (docs/design.md, "Source digest"), kept in the SealedSecret's
/// `status.sourceDigest`: SHA-256 over the SealedSecret's uid, generation, scope and spec,
/// the uid of the Secret produced from it, and the fingerprints of the keys that opened its
/// values. The value is `sha256:<hex>;keys=<fp>,<fp>`: fingerprints are public, and listing
/// them lets a restart check the digest without decrypting, and re-decrypt when one of those
/// keys is gone. The Secret's uid ties the digest to that one Secret: a Secret deleted and
/// created again (by anyone) is decrypted for again.
pub fn source_digest(ss: &SealedSecret, secret_uid: &str, keys: &BTreeSet<Fingerprint>) -> String {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash_source(&mut h, ss);
    h.update(b"secret-uid=");
    h.update(secret_uid.as_bytes());
    h.update(b"\0");
    let fps: Vec<&str> = keys.iter().map(Fingerprint::as_str).collect();
    h.update(fps.join(",").as_bytes());
    format!("sha256:{};keys={}", hex(h.finish().as_ref()), fps.join(","))
}

/// The digest older versions of this controller wrote into the produced Secret's
/// `sealed-secrets-rs.dev/source-digest` annotation (no Secret uid in it). Read only, so that
/// the first start after an upgrade need not decrypt either; the annotation is removed by
/// that start's write ([`merge`]).
pub fn legacy_source_digest(ss: &SealedSecret, keys: &BTreeSet<Fingerprint>) -> String {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash_source(&mut h, ss);
    let fps: Vec<&str> = keys.iter().map(Fingerprint::as_str).collect();
    h.update(fps.join(",").as_bytes());
    format!("sha256:{};keys={}", hex(h.finish().as_ref()), fps.join(","))
}

/// The key fingerprints a recorded digest lists, when all of them are `present`.
fn recorded_keys(
    recorded: &str,
    present: impl Fn(&Fingerprint) -> bool,
) -> Option<BTreeSet<Fingerprint>> {
    sealed_secrets_api::digest_keys(recorded).filter(|set| set.iter().all(present))
}

/// Whether `recorded` (the SealedSecret's `status.sourceDigest`) is the digest of `ss`
/// producing the Secret with `secret_uid`, with keys all still present in the ring.
pub fn digest_matches(
    recorded: &str,
    ss: &SealedSecret,
    secret_uid: &str,
    present: impl Fn(&Fingerprint) -> bool,
) -> bool {
    !secret_uid.is_empty()
        && recorded_keys(recorded, present)
            .is_some_and(|set| source_digest(ss, secret_uid, &set) == recorded)
}

/// Whether `recorded` (the legacy annotation on a Secret written by an older version) is the
/// legacy digest of `ss` with keys all still present in the ring.
pub fn legacy_digest_matches(
    recorded: &str,
    ss: &SealedSecret,
    present: impl Fn(&Fingerprint) -> bool,
) -> bool {
    recorded_keys(recorded, present).is_some_and(|set| legacy_source_digest(ss, &set) == recorded)
}

/// Whether the data of `existing` may be kept without decrypting `ss` again, and with which
/// keys it was opened: the controller may write it (owned, or annotated `managed`/`patch`)
/// and either the SealedSecret's status records the digest of exactly this object and this
/// Secret, or the Secret carries the matching annotation of an older version. Pure.
pub fn reusable(
    existing: &Secret,
    ss: &SealedSecret,
    present: impl Fn(&Fingerprint) -> bool,
) -> Option<BTreeSet<Fingerprint>> {
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    write_mode(&existing.metadata, uid).ok()?;
    let secret_uid = existing.metadata.uid.as_deref().unwrap_or_default();
    if let Some(d) = ss.status.as_ref().and_then(|s| s.source_digest.as_deref())
        && digest_matches(d, ss, secret_uid, &present)
    {
        return recorded_keys(d, &present);
    }
    let legacy = existing.metadata.annotations.as_ref()?.get(SOURCE_DIGEST)?;
    if legacy_digest_matches(legacy, ss, &present) {
        return recorded_keys(legacy, &present);
    }
    None
}

/// The status to write after a reconcile, or `None` when nothing worth a write changed
/// (§4.8: the condition status/message or observedGeneration; ours: the source digest).
/// `lastUpdateTime` is always now; `lastTransitionTime` only moves when the status value
/// changes. `digest` is what `status.sourceDigest` should hold (`None`: nothing, as after a
/// failure or when the installed CRD prunes the field).
pub fn next_status(
    current: Option<&SealedSecretStatus>,
    generation: Option<i64>,
    error: Option<&str>,
    digest: Option<&str>,
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
    let digest_changed = status.source_digest.as_deref() != digest;
    let changed = value_changed
        || cond.message != message
        || status.observed_generation != generation
        || digest_changed;
    if !changed {
        return None;
    }
    status.source_digest = digest.map(str::to_owned);
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

/// Whether the controller refuses to produce `secret`: a
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

/// Whether `--old-gc-behavior` may delete `secret` for the deleted SealedSecret `uid`: it is
/// controlled by it, or it is the very Secret (same uid) this controller produced from it,
/// `produced` (a Secret produced with `skip-set-owner-references`, or one whose
/// ownerReference was removed by an orphaning delete before the controller saw the
/// deletion). Upstream deletes the same-named Secret unconditionally; a foreign Secret is
/// never removed here. Pure.
pub fn old_gc_deletes(secret: &ObjectMeta, uid: &str, produced: Option<&str>) -> bool {
    if is_controlled_by(secret, uid) {
        return true;
    }
    !uid.is_empty() && produced.is_some_and(|p| !p.is_empty() && secret.uid.as_deref() == Some(p))
}

/// What the SealedSecret watch passes on of each object's metadata: only what queueing a
/// reconcile and forgetting a deleted object need (name, namespace, uid, generation,
/// resourceVersion, deletion time, the `app.kubernetes.io/instance` label of its metric
/// series). The watch's cache keeps less still between reconciles: namespace, name and a
/// hash of uid and generation (`super::cache`). Everything else, encrypted values and
/// template included, is read again when the object is reconciled, so that what a tenant
/// puts into an object's metadata (managedFields, large annotations or labels) is dropped as
/// each event is decoded. Pure.
pub fn cached_metadata(meta: ObjectMeta) -> ObjectMeta {
    let instance = meta
        .labels
        .and_then(|mut l| l.remove(annotations::APP_INSTANCE_LABEL))
        .map(|v| BTreeMap::from([(annotations::APP_INSTANCE_LABEL.to_owned(), v)]));
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        generation: meta.generation,
        resource_version: meta.resource_version,
        deletion_timestamp: meta.deletion_timestamp,
        labels: instance,
        ..ObjectMeta::default()
    }
}

/// What a restart keeps of a Secret's metadata to check its SealedSecret without reading
/// either again (`super::plan::unchanged_at_start`): name, namespace, uid, labels,
/// annotations and ownerReferences, for a Secret a SealedSecret may write (a controller
/// ownerReference to a SealedSecret, or annotated `managed` or `patch`); `None` for any
/// other Secret, whose SealedSecret, if any, is then reconciled as usual. Pure.
pub fn start_secret_facts(meta: &ObjectMeta) -> Option<ObjectMeta> {
    let ours =
        recreate_target(meta).is_some() || annotations::is_true(meta.annotations.as_ref(), PATCH);
    ours.then(|| ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        labels: meta.labels.clone(),
        annotations: meta.annotations.clone(),
        owner_references: meta.owner_references.clone(),
        ..ObjectMeta::default()
    })
}

/// Whether a SealedSecret of `size` bytes (as the API server serves it, JSON) is above
/// `limit` (0: no limit). Pure.
pub fn too_large(size: u64, limit: u64) -> bool {
    limit != 0 && size > limit
}
