//! A shard member: its Lease, its reconcilers (run only while it holds the Lease, every write
//! fenced by it), the drain acknowledgement, and the watch hooks that keep its cache to its
//! own objects (docs/design.md "Shards").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use sealed_secrets_api::SealedSecret;
use tokio::sync::watch;

use super::{Member, Ownership, RING_LABEL, drain_label, shard_label};
use crate::leader::{self, ElectionConfig, Fence};
use crate::metrics::SharedMetrics;
use crate::reconcile::{self, Context};
use crate::tasks::{Stop, Tasks};

/// The member's Lease: named after the member (timebertt's protocol: the sharder ignores a
/// Lease whose holder is not its name), labelled with the ring, with the leader Lease's
/// timings. Not reported as the `leader` gauge.
pub fn lease_config(leader_cfg: &ElectionConfig, member: &Member) -> ElectionConfig {
    ElectionConfig {
        lease_name: member.identity.clone(),
        identity: member.identity.clone(),
        labels: BTreeMap::from([(RING_LABEL.to_owned(), member.ring.clone())]),
        reports_leader: false,
        ..leader_cfg.clone()
    }
}

/// What a member needs to (re)start under a new identity.
pub struct MemberParts {
    pub client: kube::Client,
    pub keys: Arc<crate::keys::Keys>,
    pub metrics: SharedMetrics,
    /// The reconcile flags (the member's shard is filled in per identity).
    pub settings: crate::reconcile::ReconcileArgs,
    /// The leader election's settings: a member Lease has the same timings.
    pub election: ElectionConfig,
    pub ring: String,
    pub scopes: Vec<Option<String>>,
}

impl std::fmt::Debug for MemberParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberParts")
            .field("ring", &self.ring)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Runs this replica as a member until `stop`. A member whose fence closed for good (frozen
/// or cut off past its renew deadline: its objects may have moved) stops its reconcilers,
/// gives its Lease up and joins again under a new identity, so it never writes for an object
/// it may no longer own.
pub async fn run(parts: MemberParts, stop: Stop) {
    loop {
        let member = Member {
            ring: parts.ring.clone(),
            identity: super::identity(),
        };
        let fence = Fence::member();
        let mut settings = parts.settings.clone();
        settings.shard = Some(member.clone());
        let ctx = Context::new(
            parts.client.clone(),
            parts.keys.clone(),
            parts.metrics.clone(),
            crate::events::Recorder::new(parts.client.clone(), member.identity.clone()),
            settings,
            fence.clone(),
        );
        tracing::info!(ring = %member.ring, member = %member.identity, "joining the shard ring");
        let lease = lease_config(&parts.election, &member);
        let stopped = run_as(ctx, lease, fence, &parts, stop.clone()).await;
        if stopped {
            return;
        }
        tracing::warn!(member = %member.identity, "the shard lease lapsed (this replica was frozen or cut off): its objects may have moved; joining again under a new identity");
    }
}

/// Runs one identity: holds its Lease, runs the reconcilers while it holds it (drained when
/// it is lost) until `stop` (true) or the fence closed for good (false); then drains them,
/// stops renewing and gives the Lease up, so that the sharder reassigns its objects at once.
async fn run_as(
    ctx: Arc<Context>,
    lease: ElectionConfig,
    fence: Fence,
    parts: &MemberParts,
    stop: Stop,
) -> bool {
    let (tx, mut holding) = watch::channel(false);
    let mut elector = Tasks::new("shard-lease");
    elector.spawn_until_stopped(leader::run(
        ctx.client.clone(),
        lease.clone(),
        tx,
        parts.metrics.clone(),
        fence.clone(),
    ));
    let mut watchdog = tokio::time::interval(lease.retry_period.min(Duration::from_secs(1)));
    let mut group: Option<Tasks> = None;
    let stopped = loop {
        let held = *holding.borrow_and_update();
        if held && group.is_none() && !fence.is_spent() {
            tracing::info!(member = %lease.identity, "holding the shard lease: reconciling this member's SealedSecrets");
            let mut g = Tasks::new("shard");
            for scope in &parts.scopes {
                let (ctx, scope) = (ctx.clone(), scope.clone());
                g.spawn_draining(|stop| reconcile::run(ctx, scope, stop.requested()));
            }
            group = Some(g);
        } else if !held && let Some(g) = group.take() {
            tracing::warn!(member = %lease.identity, "lost the shard lease: stopping reconciliation");
            g.drain().await;
        }
        tokio::select! {
            r = holding.changed() => if r.is_err() { break false },
            _ = watchdog.tick() => if fence.is_spent() { break false },
            () = stop.clone().requested() => break true,
        }
    };
    if let Some(g) = group {
        g.drain().await;
    }
    elector.drain().await;
    leader::release(ctx.client.clone(), &lease).await;
    stopped
}

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
/// reconcile; otherwise what the reconcile returns instead. A drained object has both labels
/// removed (behind the member's fence) and is not reconciled; the applier never runs two
/// reconciles of one object at once, so the one in flight when the drain was asked has
/// finished by now.
pub async fn before_reconcile(ctx: &Context, ss: &ObjectMeta) -> Option<Action> {
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
            Some(Action::await_change())
        }
        Ownership::Drain => {
            if ctx.fence.check().is_err() {
                return Some(Action::requeue(Duration::from_secs(2)));
            }
            match release_object(&ctx.client, member, ss).await {
                Ok(Some(rv)) => {
                    // The resourceVersion orders the release among the members' writes.
                    tracing::info!(sealed_secret = %object, resource_version = %rv, "drained SealedSecret");
                    Some(Action::await_change())
                }
                Ok(None) => {
                    tracing::debug!(sealed_secret = %object, "the SealedSecret changed while draining it; the watch brings it again");
                    Some(Action::await_change())
                }
                Err(e) => {
                    tracing::warn!(sealed_secret = %object, error = %e, "failed to acknowledge a drain; retrying");
                    Some(Action::requeue(Duration::from_secs(1)))
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
            Ok(_) => reconcile::deleted::on_sealed_secret_deleted(&ctx, &cached),
            Err(e) => {
                tracing::warn!(sealed_secret = %format!("{ns}/{name}"), error = %e, "failed to tell a deleted SealedSecret from a moved one");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let kept = cached(Some(&m), full, reconcile::cached_metadata);
        assert!(drain_asked(Some(&m), &kept));
        let labels = kept.labels.unwrap();
        assert!(!labels.contains_key(&shard) && !labels.contains_key("other"));
        let plain = cached(Some(&m), meta(&[(&shard, "a")]), reconcile::cached_metadata);
        assert!(!drain_asked(Some(&m), &plain));
        // Without sharding nothing changes.
        let unsharded = cached(None, meta(&[(&drain, "")]), reconcile::cached_metadata);
        assert!(!drain_asked(None, &unsharded));
        assert_eq!(unsharded.labels, None);
    }

    #[test]
    fn member_lease_is_named_after_its_holder() {
        let leader = ElectionConfig {
            namespace: "ns".into(),
            lease_name: "sealed-secrets-controller".into(),
            identity: "pod_1234".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            labels: BTreeMap::new(),
            reports_leader: true,
        };
        let m = Member {
            ring: "ring".into(),
            identity: "pod-1-00ff00ff".into(),
        };
        let c = lease_config(&leader, &m);
        assert_eq!(c.lease_name, c.identity);
        assert_eq!(c.labels.get(RING_LABEL).map(String::as_str), Some("ring"));
        assert!(!c.reports_leader);
        assert_eq!(c.lease_duration, leader.lease_duration);
    }
}
