//! The shard member's side of reconciling (docs/design.md "Shards"): the watch hooks that
//! keep a member's cache to its own objects and let drain requests through, the drain
//! acknowledgement before a reconcile, and telling a moved object from a deleted one. The
//! member's Lease and lifecycle are in `crate::shard::member`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use sealed_secrets_api::SealedSecret;

use super::context::Context;
use super::queue::RunAgain;
use crate::shard::{Member, Ownership, drain_label, shard_label};

/// What the SealedSecret watch of a member caches: what `strip` keeps, plus the drain label
/// when present, so that the "spec changed" filter can let a drain request through.
pub fn cached(
    member: Option<&Member>,
    meta: ObjectMeta,
    strip: impl FnOnce(ObjectMeta) -> ObjectMeta,
) -> ObjectMeta {
    let drain = member.map(|m| drain_label(&m.ring)).filter(|k| {
        meta.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(k.as_str()))
    });
    let mut kept = strip(meta);
    if let Some(key) = drain {
        kept.labels
            .get_or_insert_with(Default::default)
            .insert(key, String::new());
    }
    kept
}

/// Whether a cached object of a member's watch carries the drain label (the watch selects
/// the member's own objects, so the shard label need not be checked here).
pub fn drain_asked(member: Option<&Member>, cached: &ObjectMeta) -> bool {
    member.is_some_and(|m| {
        cached
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(&drain_label(&m.ring)))
    })
}

/// Decides, from the object as just read, whether a member reconciles it: `None` to
/// reconcile; otherwise when to look at it again. A drained object has both labels removed
/// (behind the member's fence) and is not reconciled; the reconcile queue never runs two
/// reconciles of one object at once, so the one in flight when the drain was asked has
/// finished by now.
pub async fn before_reconcile(ctx: &Context, ss: &ObjectMeta) -> Option<RunAgain> {
    let member = ctx.settings.shard.as_ref()?;
    let object = format!(
        "{}/{}",
        ss.namespace.as_deref().unwrap_or_default(),
        ss.name.as_deref().unwrap_or_default()
    );
    match member.ownership(ss.labels.as_ref()) {
        Ownership::Reconcile => None,
        Ownership::NotOurs => {
            tracing::debug!(sealed_secret = %object, "not this member's SealedSecret any more; not reconciling");
            Some(None)
        }
        Ownership::Drain => {
            if ctx.fence.check().is_err() {
                return Some(Some(Duration::from_secs(2)));
            }
            match release_object(&ctx.client, member, ss).await {
                Ok(Some(rv)) => {
                    // The resourceVersion orders the release among the members' writes.
                    tracing::info!(sealed_secret = %object, resource_version = %rv, "drained SealedSecret");
                    Some(None)
                }
                Ok(None) => {
                    tracing::debug!(sealed_secret = %object, "the SealedSecret changed while draining it; the watch brings it again");
                    Some(None)
                }
                Err(e) => {
                    tracing::warn!(sealed_secret = %object, error = %e, "failed to acknowledge a drain; retrying");
                    Some(Some(Duration::from_secs(1)))
                }
            }
        }
    }
}

/// Removes the shard and drain labels of the object, if it is still the member's one (the
/// resourceVersion it was read at is the precondition); the resourceVersion of the release
/// (`None`: the object had changed, and nothing was written).
async fn release_object(
    client: &kube::Client,
    member: &Member,
    ss: &ObjectMeta,
) -> Result<Option<String>, kube::Error> {
    let api: Api<SealedSecret> =
        Api::namespaced(client.clone(), ss.namespace.as_deref().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": ss.resource_version,
            "labels": { shard_label(&member.ring): null, drain_label(&member.ring): null },
        }
    });
    match api
        .patch_metadata(
            ss.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(o) => Ok(o.metadata.resource_version),
        // Changed meanwhile: the watch brings the new version, and the drain is asked again.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// A member's watch reports a DELETE both when the object is deleted and when it leaves the
/// member's selector (moved to another member): only the first is a deletion (whose Secret
/// `--old-gc-behavior` deletes), so the object is read again to tell.
pub fn on_deleted(ctx: &Arc<Context>, cached: &ObjectMeta) {
    let (ctx, cached) = (ctx.clone(), cached.clone());
    tokio::spawn(async move {
        let ns = cached.namespace.clone().unwrap_or_default();
        let name = cached.name.clone().unwrap_or_default();
        let api: Api<SealedSecret> = Api::namespaced(ctx.client.clone(), &ns);
        match api.get_metadata_opt(&name).await {
            Ok(Some(now)) if now.metadata.uid == cached.uid => {
                // Moved: the new member reports its condition from now on.
                let instance = cached
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(sealed_secrets_api::annotations::APP_INSTANCE_LABEL))
                    .cloned()
                    .unwrap_or_default();
                ctx.metrics.remove_condition(&ns, &name, &instance);
            }
            Ok(_) => super::deleted::on_sealed_secret_deleted(&ctx, &cached),
            Err(e) => {
                tracing::warn!(sealed_secret = %format!("{ns}/{name}"), error = %e, "failed to tell a deleted SealedSecret from a moved one");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::cached_metadata;

    fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("n".into()),
            namespace: Some("ns".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn the_cache_keeps_the_drain_label_only() {
        let m = Member {
            ring: "r".into(),
            identity: "a".into(),
        };
        let drain = drain_label("r");
        let shard = shard_label("r");
        let full = meta(&[(&shard, "a"), (&drain, "true"), ("other", "x")]);
        let kept = cached(Some(&m), full, cached_metadata);
        assert!(drain_asked(Some(&m), &kept));
        let labels = kept.labels.unwrap();
        assert!(!labels.contains_key(&shard) && !labels.contains_key("other"));
        let plain = cached(Some(&m), meta(&[(&shard, "a")]), cached_metadata);
        assert!(!drain_asked(Some(&m), &plain));
        // Without sharding nothing changes.
        let unsharded = cached(None, meta(&[(&drain, "")]), cached_metadata);
        assert!(!drain_asked(None, &unsharded));
        assert_eq!(unsharded.labels, None);
    }
}
