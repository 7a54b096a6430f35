//! The pure decisions of reconciling (§4.6-4.8): ownership and write mode, merge vs
//! overwrite, semantic equality, immutable targets, status transitions, the source digest,
//! what `--old-gc-behavior` may delete. No I/O; unit-tested in `tests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use sealed_secrets_api::annotations::{
    self, MANAGED, PATCH, SKIP_SET_OWNER_REFERENCES, SOURCE_DIGEST,
};
use sealed_secrets_api::{
    API_VERSION, CONDITION_SYNCED, GROUP, KIND, SealedSecret, SealedSecretCondition,
    SealedSecretStatus,
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
        sealed_secrets_api::annotations::scope(ss.metadata.annotations.as_ref())
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

/// `ByteString` map helper for tests and callers.
pub fn bytes_map(items: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
        .collect()
}

/// `apiVersion` of produced ownerReferences (re-exported for tests).
pub const OWNER_API_VERSION: &str = API_VERSION;
