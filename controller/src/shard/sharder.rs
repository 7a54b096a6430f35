//! The sharder, run by the elected leader only (docs/design.md "Shards"): it finds the live
//! members from their Leases, assigns new objects by consistent hashing, and on a change of
//! membership moves objects: directly away from a member that is gone, through the drain
//! label away from a live one. It keeps no cache of the objects: new objects come from a
//! metadata-only watch of the objects without a shard label, and a membership change is
//! handled by a paged metadata-only list. Whatever it reads of an object is decoded as a
//! [`Placement`]: name, namespace, resourceVersion and the ring's labels only.
//!
//! A member counts as live while its Lease names it as holder and the Lease record has
//! changed within the lease duration *as observed on the sharder's clock*, the election's
//! rule ([`crate::leader::may_acquire`]): the member's fence closes at its renew deadline
//! (at most the lease duration) after its last renewal, so by the time the sharder gives a
//! silent member's objects to another, the silent one can no longer write (even if it was
//! only frozen and resumes).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt as _, watcher};

use super::ring::{Ring, object_key};
use super::view::Placement;
use super::{RING_LABEL, and_selector, drain_label, shard_label};
use crate::leader::{Fence, recorded_duration};
use crate::reconcile::initial_list;
use crate::tasks::Stop;

/// Objects per page of the rebalancing list and of the watch's lists (where the API server
/// does not stream them): a page's body is held whole while it is decoded, and a tenant can
/// make each object's metadata large (kube's default of 500 made the leader's peak), so
/// pages are as small as the members' (crate::reconcile::watch), for a few more requests
/// when the membership changes.
const PAGE_SIZE: u32 = 100;

/// At most this many watch events are placed together.
const EVENTS_PER_BATCH: usize = 500;

/// Label patches in flight at once: a cold start of thousands of objects is not assigned one
/// round trip at a time, and the API server is not flooded either.
const PATCHES_IN_FLIGHT: usize = 16;

/// A Lease not renewed for this many lease durations belongs to a member that is gone for
/// good (each process has its own identity): the sharder deletes it.
const FORGET_AFTER_DURATIONS: u32 = 4;

/// What the sharder does with one object. Pure decision of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    /// Leave it as it is.
    Keep,
    /// Label it for this member (and drop any drain label): it has no member, or its member
    /// is gone.
    Assign(String),
    /// Ask its live member to let go of it (the member then removes both labels, and the
    /// object is assigned as a new one).
    Drain,
}

/// What to do with an object labelled `labels`, whose ring owner is `desired`, given the
/// `live` members. Pure.
pub fn decide(
    ring: &str,
    labels: Option<&std::collections::BTreeMap<String, String>>,
    desired: Option<&str>,
    live: &BTreeSet<String>,
) -> Move {
    let Some(desired) = desired else {
        return Move::Keep;
    };
    let get = |k: &str| labels.and_then(|l| l.get(k));
    match get(&shard_label(ring)) {
        None => Move::Assign(desired.to_owned()),
        Some(current) if !live.contains(current) => Move::Assign(desired.to_owned()),
        Some(current) if current == desired => Move::Keep,
        Some(_) if get(&drain_label(ring)).is_some() => Move::Keep,
        Some(_) => Move::Drain,
    }
}

/// What the sharder remembers of a member Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    holder: String,
    renew: Option<String>,
    transitions: i32,
}

/// The members of the ring as seen from their Leases over time.
#[derive(Debug, Default)]
pub struct Members {
    /// Per Lease name: its record and when it was first seen as it is.
    observed: HashMap<String, (Seen, Instant)>,
}

/// The outcome of one look at the Leases.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub live: BTreeSet<String>,
    /// Leases silent for four lease durations: (name, resourceVersion).
    pub forgotten: Vec<(String, String)>,
}

impl Members {
    /// Takes in the ring's Leases as listed at `now`. Pure but for the memory it updates.
    pub fn observe(&mut self, leases: &[Lease], now: Instant, ours: Duration) -> Census {
        let mut census = Census::default();
        let mut observed = HashMap::with_capacity(leases.len());
        for l in leases {
            let Some(name) = l.metadata.name.clone() else {
                continue;
            };
            let spec = l.spec.clone().unwrap_or_default();
            let seen = Seen {
                holder: spec.holder_identity.clone().unwrap_or_default(),
                renew: spec.renew_time.as_ref().map(|t| t.0.to_string()),
                transitions: spec.lease_transitions.unwrap_or_default(),
            };
            let since = match self.observed.remove(&name) {
                Some((s, t)) if s == seen => t,
                _ => now,
            };
            let silent = now.duration_since(since);
            let duration = recorded_duration(l.spec.as_ref(), ours);
            if seen.holder == name && silent < duration {
                census.live.insert(name.clone());
            } else if silent >= duration * FORGET_AFTER_DURATIONS {
                census.forgotten.push((
                    name.clone(),
                    l.metadata.resource_version.clone().unwrap_or_default(),
                ));
            }
            observed.insert(name, (seen, since));
        }
        self.observed = observed;
        census
    }
}

/// The sharder's settings.
#[derive(Clone)]
pub struct Sharder {
    pub client: kube::Client,
    /// The controller namespace, where the member Leases are.
    pub namespace: String,
    pub ring: String,
    /// The watched namespaces (`None`: all).
    pub scopes: Vec<Option<String>>,
    /// `--label-selector`: objects outside it are not ours to shard.
    pub label_selector: String,
    /// The member Leases' default duration (when a Lease records none).
    pub lease_duration: Duration,
    /// How often the Leases are looked at.
    pub period: Duration,
    /// The leader's fence: the sharder writes only while this replica surely leads.
    pub fence: Fence,
    pub metrics: crate::metrics::SharedMetrics,
}

/// A sharder call that failed.
#[derive(Debug, thiserror::Error)]
enum ShardError {
    #[error("not the leader any more; not writing")]
    NotLeading(#[from] crate::leader::NotLeading),
    #[error("failed to label SealedSecret `{object}`")]
    Label {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to list SealedSecrets for rebalancing")]
    List(#[source] kube::Error),
}

impl std::fmt::Debug for Sharder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharder")
            .field("ring", &self.ring)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Sharder {
    fn objects(&self, scope: Option<&str>) -> Api<Placement> {
        match scope {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Runs until `stop` (leadership lost, shutdown); a patch under way finishes.
    pub async fn run(self, stop: Stop) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let lease_selector = format!("{RING_LABEL}={}", self.ring);
        let unassigned_selector = and_selector(
            &self.label_selector,
            &format!("!{}", shard_label(&self.ring)),
        );
        // At a cold start every object is unassigned: the watch's first list takes them one
        // at a time where the API server streams it, as the members' watches do.
        let first_list = match self.scopes.first() {
            Some(scope) => initial_list::probe(&self.objects(scope.as_deref())).await,
            None => initial_list::InitialList::Pages,
        };
        let config = first_list.apply(
            watcher::Config::default()
                .labels(&unassigned_selector)
                .page_size(PAGE_SIZE),
        );
        let watches = self.scopes.iter().map(|s| {
            watcher(self.objects(s.as_deref()), config.clone())
                .default_backoff()
                .boxed()
        });
        let mut unassigned = futures::stream::select_all(watches).ready_chunks(EVENTS_PER_BATCH);
        let mut members = Members::default();
        let mut ring = Ring::default();
        let mut live = BTreeSet::new();
        let mut dirty = false;
        // Nothing is placed until the membership has been stable for two looks after the
        // sharder started: replicas started together (a cold start, a rollout) join within
        // moments of each other, and placing everything on the first one only to drain
        // two thirds of it again would have it decrypt objects it gives away.
        let settle = self.period * 2;
        let mut stable_since = Instant::now();
        let mut settled = false;
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(ring = %self.ring, "sharder started");
        loop {
            tokio::select! {
                () = stop.clone().requested() => break,
                _ = tick.tick() => {
                    match leases.list(&ListParams::default().labels(&lease_selector)).await {
                        Ok(list) => {
                            let census = members.observe(&list.items, Instant::now(), self.lease_duration);
                            if census.live != live {
                                tracing::info!(ring = %self.ring, members = ?census.live, "shard membership changed: rebalancing");
                                live = census.live;
                                self.metrics.shard_members.set(i64::try_from(live.len()).unwrap_or(i64::MAX));
                                ring = Ring::new(&live.iter().collect::<Vec<_>>());
                                dirty = true;
                                stable_since = Instant::now();
                            }
                            for (name, rv) in census.forgotten {
                                self.forget(&leases, &name, rv).await;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "failed to list the shard Leases"),
                    }
                    settled |= !ring.is_empty() && stable_since.elapsed() >= settle;
                    if dirty && settled {
                        match self.rebalance(&ring, &live).await {
                            Ok(clean) => dirty = !clean,
                            Err(e) => tracing::warn!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "rebalancing failed; retrying"),
                        }
                    }
                }
                // Events that arrived together (a start-up list, a burst of creates) are
                // placed together, a few patches at a time.
                events = unassigned.next() => {
                    let Some(events) = events else { break };
                    let mut new = Vec::new();
                    for ev in events {
                        match ev {
                            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => new.push(o.metadata),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "watch of unassigned SealedSecrets failed"),
                        }
                    }
                    if !settled {
                        // Placed by the first rebalance, which lists every object.
                        dirty = true;
                        continue;
                    }
                    if let Err(e) = self.place_all(new, &ring, &live).await {
                        tracing::warn!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "failed to assign a SealedSecret; retrying at the next rebalance");
                        dirty = true;
                    }
                },
            }
        }
        self.metrics.shard_members.set(0);
        tracing::info!(ring = %self.ring, "sharder stopped");
    }

    /// Applies [`decide`] to one object; `Ok(false)` when it changed meanwhile (409: looked
    /// at again at the next rebalance).
    async fn place(
        &self,
        meta: &ObjectMeta,
        ring: &Ring,
        live: &BTreeSet<String>,
    ) -> Result<bool, ShardError> {
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let desired = ring.owner(&object_key(ns, name));
        let decision = decide(&self.ring, meta.labels.as_ref(), desired, live);
        let labels = match &decision {
            Move::Keep => return Ok(true),
            Move::Assign(member) => serde_json::json!({
                shard_label(&self.ring): member,
                drain_label(&self.ring): null,
            }),
            Move::Drain => serde_json::json!({ drain_label(&self.ring): "true" }),
        };
        // The resourceVersion it was seen at: a decision on a stale view is refused.
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": meta.resource_version, "labels": labels }
        });
        self.fence.check()?;
        match self
            .objects(Some(ns))
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(o) => {
                // The resourceVersion orders the assignment among the members' writes (the
                // chaos suite checks with it that each write came from the object's member).
                let rv = o.metadata.resource_version.as_deref().unwrap_or_default();
                match &decision {
                    Move::Assign(member) => {
                        tracing::debug!(sealed_secret = %format!("{ns}/{name}"), %member, resource_version = rv, "assigned SealedSecret")
                    }
                    _ => {
                        tracing::debug!(sealed_secret = %format!("{ns}/{name}"), resource_version = rv, "asked to drain SealedSecret")
                    }
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
            Err(source) => Err(ShardError::Label {
                object: format!("{ns}/{name}"),
                source,
            }),
        }
    }

    /// [`Self::place`] for each of `objects`, [`PATCHES_IN_FLIGHT`] at a time; `Ok(false)` when
    /// some changed meanwhile, the first error otherwise (the others still ran).
    async fn place_all(
        &self,
        objects: Vec<ObjectMeta>,
        ring: &Ring,
        live: &BTreeSet<String>,
    ) -> Result<bool, ShardError> {
        let results: Vec<Result<bool, ShardError>> = futures::stream::iter(objects)
            .map(|o| async move { self.place(&o, ring, live).await })
            .buffer_unordered(PATCHES_IN_FLIGHT)
            .collect()
            .await;
        let mut clean = true;
        for r in results {
            clean &= r?;
        }
        Ok(clean)
    }

    /// Lists every object (metadata only, in pages) and places each; `Ok(false)` when some
    /// changed meanwhile.
    async fn rebalance(&self, ring: &Ring, live: &BTreeSet<String>) -> Result<bool, ShardError> {
        let mut clean = true;
        let (mut assigned, mut drained) = (0u64, 0u64);
        for scope in &self.scopes {
            let api = self.objects(scope.as_deref());
            let mut token: Option<String> = None;
            loop {
                let mut lp = ListParams::default().limit(PAGE_SIZE);
                if !self.label_selector.is_empty() {
                    lp = lp.labels(&self.label_selector);
                }
                if let Some(t) = &token {
                    lp = lp.continue_token(t);
                }
                let page = api.list(&lp).await.map_err(ShardError::List)?;
                let mut moving = Vec::new();
                for o in page.items {
                    let ns = o.metadata.namespace.as_deref().unwrap_or_default();
                    let name = o.metadata.name.as_deref().unwrap_or_default();
                    let desired = ring.owner(&object_key(ns, name));
                    match decide(&self.ring, o.metadata.labels.as_ref(), desired, live) {
                        Move::Keep => continue,
                        Move::Assign(_) => assigned += 1,
                        Move::Drain => drained += 1,
                    }
                    moving.push(o.metadata);
                }
                clean &= self.place_all(moving, ring, live).await?;
                token = page.metadata.continue_.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        tracing::info!(ring = %self.ring, assigned, drained, "rebalanced");
        Ok(clean)
    }

    /// Deletes the Lease of a member gone for good (unchanged since it was listed).
    async fn forget(&self, leases: &Api<Lease>, name: &str, resource_version: String) {
        if self.fence.check().is_err() {
            return;
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: None,
                resource_version: Some(resource_version),
            }),
            ..Default::default()
        };
        match leases.delete(name, &dp).await {
            Ok(_) => {
                tracing::info!(lease = %name, "deleted the Lease of a shard member gone for good")
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "failed to delete a stale shard Lease")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn labels(pairs: &[(String, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect()
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn new_objects_and_objects_of_gone_members_are_assigned_directly() {
        let (s, d) = (shard_label("r"), drain_label("r"));
        let l = live(&["a", "b"]);
        assert_eq!(decide("r", None, Some("a"), &l), Move::Assign("a".into()));
        let gone = labels(&[(s.clone(), "c")]);
        assert_eq!(
            decide("r", Some(&gone), Some("b"), &l),
            Move::Assign("b".into())
        );
        // Even when draining: a gone member cannot acknowledge.
        let gone_draining = labels(&[(s, "c"), (d, "true")]);
        assert_eq!(
            decide("r", Some(&gone_draining), Some("a"), &l),
            Move::Assign("a".into())
        );
    }

    #[test]
    fn objects_of_live_members_move_only_through_a_drain() {
        let (s, d) = (shard_label("r"), drain_label("r"));
        let l = live(&["a", "b"]);
        let on_a = labels(&[(s.clone(), "a")]);
        assert_eq!(decide("r", Some(&on_a), Some("a"), &l), Move::Keep);
        assert_eq!(decide("r", Some(&on_a), Some("b"), &l), Move::Drain);
        let draining = labels(&[(s, "a"), (d, "true")]);
        assert_eq!(decide("r", Some(&draining), Some("b"), &l), Move::Keep);
        // No member at all: nothing to do.
        assert_eq!(decide("r", None, None, &live(&[])), Move::Keep);
    }

    fn lease(name: &str, holder: &str, renew_secs: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(renew_secs).unwrap())),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_member_is_live_until_silent_for_its_lease_duration() {
        let mut m = Members::default();
        let ours = Duration::from_secs(15);
        let t0 = Instant::now();
        let c = m.observe(&[lease("a", "a", 1), lease("b", "b", 1)], t0, ours);
        assert_eq!(c.live, live(&["a", "b"]));
        // a renews, b is silent: b stays live for 15 s on our clock, then is not.
        let c = m.observe(
            &[lease("a", "a", 2), lease("b", "b", 1)],
            t0 + Duration::from_secs(14),
            ours,
        );
        assert_eq!(c.live, live(&["a", "b"]));
        let c = m.observe(
            &[lease("a", "a", 3), lease("b", "b", 1)],
            t0 + Duration::from_secs(15),
            ours,
        );
        assert_eq!(c.live, live(&["a"]));
        assert!(c.forgotten.is_empty());
        // Silent for four durations: forgotten (its Lease is deleted).
        let c = m.observe(
            &[lease("a", "a", 4), lease("b", "b", 1)],
            t0 + Duration::from_secs(60),
            ours,
        );
        assert_eq!(c.forgotten, vec![("b".to_owned(), "7".to_owned())]);
    }

    #[test]
    fn a_released_or_foreign_lease_is_not_a_member() {
        let mut m = Members::default();
        let t0 = Instant::now();
        let c = m.observe(
            &[lease("a", "", 1), lease("b", "someone-else", 1)],
            t0,
            Duration::from_secs(15),
        );
        assert!(c.live.is_empty());
    }
}
