//! A shard member: its Lease and its reconcilers, run only while it holds the Lease, every
//! write fenced by it (docs/design.md "Shards"). What a member's reconciles do differently
//! (its selector, the drain acknowledgement) is in `crate::reconcile::sharded`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Member, RING_LABEL};
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

#[cfg(test)]
mod tests {
    use super::*;

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
