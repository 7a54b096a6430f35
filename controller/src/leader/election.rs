//! The election itself: attempts on the Lease, the renew loop, the [`Fence`] and the
//! release at shutdown.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::metrics::SharedMetrics;

/// Whether this replica may still write as the leader, by its own monotonic clock: until
/// the renew deadline after the start of its last successful Lease write. Another replica
/// takes the Lease only once it has seen that write unchanged for a whole lease duration
/// (at least the renew deadline), so a leader that checks the fence before each write never
/// writes after another took over, even when it was frozen (SIGSTOP, a stalled VM) past its
/// lease and resumes with reconciles in flight before its elector has run again.
/// `CLOCK_MONOTONIC` keeps counting while a process is stopped. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Fence(Option<std::sync::Arc<std::sync::Mutex<Gate>>>);

/// The state behind a [`Fence`].
#[derive(Debug, Default)]
struct Gate {
    until: Option<Instant>,
    /// A shard member's fence ([`Fence::member`]): once closed after having been open, it
    /// never opens again.
    one_shot: bool,
    spent: bool,
}

/// A write refused by the [`Fence`].
#[derive(Debug, thiserror::Error)]
#[error(
    "not the leader any more (the Lease was not renewed within the renew deadline); not writing"
)]
pub struct NotLeading;

impl Fence {
    /// No election: always open.
    pub fn open() -> Self {
        Self(None)
    }

    /// With election: closed until the first successful Lease write.
    pub fn elected() -> Self {
        Self(Some(Default::default()))
    }

    /// A shard member's fence (docs/design.md "Shards"): like [`Self::elected`], but once it
    /// has closed (the renew deadline passed, the Lease was lost) it stays closed, even when
    /// the member's own Lease can be renewed again. The leader moves a silent member's
    /// objects without taking its Lease, so a member that resumes after a freeze may still
    /// renew its Lease, yet must not write for the objects it had: it starts again under a
    /// new identity ([`Self::is_spent`]).
    pub fn member() -> Self {
        Self(Some(std::sync::Arc::new(std::sync::Mutex::new(Gate {
            one_shot: true,
            ..Default::default()
        }))))
    }

    fn gate(&self) -> Option<std::sync::MutexGuard<'_, Gate>> {
        self.0
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn set(&self, until: Option<Instant>) {
        let Some(mut g) = self.gate() else { return };
        if g.one_shot {
            // Closed once (the last deadline passed, or the Lease was lost): for good.
            let lapsed = g.until.is_some_and(|t| Instant::now() >= t);
            if g.spent || lapsed || (g.until.is_some() && until.is_none()) {
                g.spent = true;
                g.until = None;
                return;
            }
        }
        g.until = until;
    }

    /// Whether a member fence has closed for good.
    pub fn is_spent(&self) -> bool {
        self.gate().is_some_and(|g| {
            g.spent || (g.one_shot && g.until.is_some_and(|t| Instant::now() >= t))
        })
    }

    /// Ok while this replica may write as the leader.
    pub fn check(&self) -> Result<(), NotLeading> {
        let Some(g) = self.gate() else { return Ok(()) };
        match g.until {
            Some(t) if !g.spent && Instant::now() < t => Ok(()),
            _ => Err(NotLeading),
        }
    }
}

/// Timings (docs/design.md: lease 15s, renew deadline 10s, retry 2s).
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// Labels the Lease carries (a shard member's Lease names its ring; docs/design.md
    /// "Shards"); empty for the leader Lease.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Whether holding this Lease is reported as the `leader` gauge (not for a member Lease).
    pub reports_leader: bool,
}

/// What one attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// The Lease is ours; its resourceVersion after our write orders the acquisition among
    /// all other writes (the chaos suite checks leadership with it).
    Leading {
        resource_version: String,
    },
    Following {
        holder: String,
    },
    /// The write lost a race (409): the record changed under us, or the server says so.
    /// Decided again on the next attempt.
    Conflict,
}

/// A Lease call that failed.
#[derive(Debug, thiserror::Error)]
enum LeaseError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("the Lease call took longer than the renew deadline ({0:?})")]
    TimedOut(Duration),
}

/// Runs one Lease call, bounded by `limit`.
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, LeaseError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(LeaseError::Api),
        Err(_) => Err(LeaseError::TimedOut(limit)),
    }
}

/// What the leader does after a failed renewal (a conflict or an error): keep leading while
/// the last successful renewal is within the renew deadline, as client-go. Pure.
pub fn keeps_leading(since_last_renew: Duration, renew_deadline: Duration) -> bool {
    since_last_renew <= renew_deadline
}

/// How long a Lease promises its holder: its recorded `leaseDurationSeconds` (the holder's
/// setting, which may differ from ours), else our own. Pure.
pub fn recorded_duration(spec: Option<&LeaseSpec>, ours: Duration) -> Duration {
    spec.and_then(|s| s.lease_duration_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(ours, Duration::from_secs)
}

/// The parts of a Lease record whose change proves its holder alive.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: String,
    renew: Option<String>,
    transitions: i32,
}

fn record_of(l: &Lease) -> Record {
    let spec = l.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.unwrap_or_default(),
        renew: spec.renew_time.map(|t| t.0.to_string()),
        transitions: spec.lease_transitions.unwrap_or_default(),
    }
}

/// Whether a candidate may take a Lease: nobody holds it, or its record has not changed for
/// a whole lease duration as observed locally. Pure.
pub fn may_acquire(
    holder: &str,
    me: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> bool {
    holder.is_empty() || holder == me || unchanged_for >= lease_duration
}

/// A unique identity: `POD_NAME` (or the host name) plus a random suffix, as client-go.
pub fn identity() -> String {
    format!("{}_{:08x}", identity_base(), identity_suffix())
}

/// What this process is called: `POD_NAME`, else the host name, else the controller's name.
pub fn identity_base() -> String {
    std::env::var(crate::env::POD_NAME)
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "sealed-secrets-controller".to_owned())
}

/// The random part of an identity, so that a process started again under the same name is
/// a new candidate or member.
pub fn identity_suffix() -> u32 {
    use rand::Rng as _;
    rand::rng().random()
}

/// Runs the election forever, publishing leadership on `tx`.
pub async fn run(
    client: kube::Client,
    cfg: ElectionConfig,
    tx: watch::Sender<bool>,
    metrics: SharedMetrics,
    fence: Fence,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed: Option<(Record, Instant)> = None;
    let mut last_renew: Option<Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let result = attempt(&api, &cfg, &mut observed).await;
        let leading = *tx.borrow();
        let failure = match result {
            Ok(Attempt::Leading { resource_version }) => {
                last_renew = Some(Instant::now());
                // From the start of the attempt: the write landed after it.
                fence.set(Some(started + cfg.renew_deadline));
                if !leading {
                    if cfg.reports_leader {
                        tracing::info!(lease = %cfg.lease_name, identity = %cfg.identity, %resource_version, "became the leader");
                        metrics.leader.set(1);
                    } else {
                        tracing::info!(lease = %cfg.lease_name, %resource_version, "holding the Lease");
                    }
                    let _ = tx.send(true);
                }
                None
            }
            Ok(Attempt::Following { holder }) => {
                fence.set(None);
                if leading {
                    tracing::warn!(lease = %cfg.lease_name, %holder, "lost leadership: another replica holds the lease");
                    if cfg.reports_leader {
                        metrics.leader.set(0);
                    }
                    let _ = tx.send(false);
                } else {
                    tracing::debug!(%holder, "following the leader");
                }
                None
            }
            Ok(Attempt::Conflict) => Some(None),
            Err(e) => Some(Some(e)),
        };
        if let Some(error) = failure {
            if let Some(e) = &error
                && last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30))
            {
                last_error_log = Some(Instant::now());
                let forbidden = matches!(e, LeaseError::Api(kube::Error::Api(s)) if s.code == 403);
                if forbidden {
                    tracing::error!(
                        error = %e,
                        "leader election is forbidden: the controller needs get, create and update on \
                         leases.coordination.k8s.io `{}` in namespace `{}`; grant them (deploy/base/rbac-controller.yaml \
                         does) or run a single replica with --leader-election=false",
                        cfg.lease_name, cfg.namespace
                    );
                } else {
                    tracing::warn!(error = %e, "leader election attempt failed");
                }
            }
            if leading {
                let since = last_renew.map_or(Duration::MAX, |t| t.elapsed());
                if keeps_leading(since, cfg.renew_deadline) {
                    tracing::debug!(
                        conflict = error.is_none(),
                        "lease renewal failed; retrying within the renew deadline"
                    );
                } else {
                    fence.set(None);
                    tracing::warn!(lease = %cfg.lease_name, "could not renew the lease within the renew deadline; stepping down");
                    if cfg.reports_leader {
                        metrics.leader.set(0);
                    }
                    let _ = tx.send(false);
                }
            }
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

async fn attempt(
    api: &Api<Lease>,
    cfg: &ElectionConfig,
    observed: &mut Option<(Record, Instant)>,
) -> Result<Attempt, LeaseError> {
    let duration_secs = i32::try_from(cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let limit = cfg.renew_deadline;
    let Some(mut lease) = bounded(limit, api.get_opt(&cfg.lease_name)).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.lease_name.clone()),
                labels: (!cfg.labels.is_empty()).then(|| cfg.labels.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match bounded(limit, api.create(&PostParams::default(), &lease)).await {
            Ok(l) => Ok(Attempt::Leading {
                resource_version: l.metadata.resource_version.unwrap_or_default(),
            }),
            Err(LeaseError::Api(kube::Error::Api(s))) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        };
    };
    let record = record_of(&lease);
    let now = Instant::now();
    let since = match observed {
        Some((r, t)) if *r == record => *t,
        _ => {
            *observed = Some((record.clone(), now));
            now
        }
    };
    if !may_acquire(
        &record.holder,
        &cfg.identity,
        now.duration_since(since),
        recorded_duration(lease.spec.as_ref(), cfg.lease_duration),
    ) {
        return Ok(Attempt::Following {
            holder: record.holder,
        });
    }
    // Labels someone removed are put back (the sharder finds members by them).
    let labels = lease.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in &cfg.labels {
        labels.insert(k.clone(), v.clone());
    }
    let spec = lease.spec.get_or_insert_with(Default::default);
    if record.holder != cfg.identity {
        spec.acquire_time = Some(now_micro());
        spec.lease_transitions = Some(record.transitions + 1);
        spec.holder_identity = Some(cfg.identity.clone());
    }
    spec.renew_time = Some(now_micro());
    spec.lease_duration_seconds = Some(duration_secs);
    match bounded(
        limit,
        api.replace(&cfg.lease_name, &PostParams::default(), &lease),
    )
    .await
    {
        Ok(l) => {
            *observed = Some((record_of(&l), Instant::now()));
            Ok(Attempt::Leading {
                resource_version: l.metadata.resource_version.unwrap_or_default(),
            })
        }
        Err(LeaseError::Api(kube::Error::Api(s))) if s.code == 409 => Ok(Attempt::Conflict),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up on shutdown so that another replica takes over at once. A renewal that
/// lands between the read and the write makes the write conflict (409, seen on a real API
/// server during shutdown); the release then reads the Lease again, a few times.
pub async fn release(client: kube::Client, cfg: &ElectionConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let limit = cfg.renew_deadline;
    for attempt in 1..=3 {
        let Ok(Some(mut lease)) = bounded(limit, api.get_opt(&cfg.lease_name)).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        match bounded(
            limit,
            api.replace(&cfg.lease_name, &PostParams::default(), &lease),
        )
        .await
        {
            Ok(_) => {
                tracing::info!(lease = %cfg.lease_name, "released the leader lease");
                return;
            }
            Err(LeaseError::Api(kube::Error::Api(s))) if s.code == 409 && attempt < 3 => continue,
            Err(e) => {
                tracing::warn!(error = %e, "failed to release the leader lease");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquisition_rules() {
        let d = Duration::from_secs(15);
        assert!(may_acquire("", "me", Duration::ZERO, d));
        assert!(may_acquire("me", "me", Duration::ZERO, d));
        assert!(!may_acquire("other", "me", Duration::from_secs(14), d));
        assert!(may_acquire("other", "me", Duration::from_secs(15), d));
    }

    #[test]
    fn failed_renewals_are_retried_until_the_renew_deadline() {
        let deadline = Duration::from_secs(10);
        assert!(keeps_leading(Duration::from_secs(2), deadline));
        assert!(keeps_leading(Duration::from_secs(10), deadline));
        assert!(!keeps_leading(Duration::from_millis(10_001), deadline));
        assert!(!keeps_leading(Duration::MAX, deadline));
    }

    #[test]
    fn takeover_waits_for_the_recorded_duration() {
        let ours = Duration::from_secs(15);
        let spec = |secs: Option<i32>| LeaseSpec {
            lease_duration_seconds: secs,
            ..Default::default()
        };
        assert_eq!(
            recorded_duration(Some(&spec(Some(60))), ours),
            Duration::from_secs(60)
        );
        assert_eq!(recorded_duration(Some(&spec(None)), ours), ours);
        assert_eq!(recorded_duration(Some(&spec(Some(0))), ours), ours);
        assert_eq!(recorded_duration(Some(&spec(Some(-5))), ours), ours);
        assert_eq!(recorded_duration(None, ours), ours);
        // A holder that promised 60s is not taken over after our 15s.
        let d = recorded_duration(Some(&spec(Some(60))), ours);
        assert!(!may_acquire("other", "me", Duration::from_secs(20), d));
        assert!(may_acquire("other", "me", Duration::from_secs(60), d));
    }

    #[test]
    fn fence_opens_on_renewal_and_closes_at_the_deadline() {
        assert!(Fence::open().check().is_ok());
        let f = Fence::elected();
        assert!(f.check().is_err(), "closed before the first renewal");
        f.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(f.clone().check().is_ok());
        f.set(Some(Instant::now() - Duration::from_millis(1)));
        assert!(f.check().is_err(), "closed once the deadline passed");
        f.set(None);
        assert!(f.check().is_err());
        // The leader's fence opens again on the next renewal.
        f.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(f.check().is_ok());
    }

    #[test]
    fn a_member_fence_never_reopens_once_it_lapsed() {
        let f = Fence::member();
        assert!(
            f.check().is_err() && !f.is_spent(),
            "closed, not spent, before the first renewal"
        );
        f.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(f.check().is_ok());
        f.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(f.check().is_ok(), "renewed in time");
        f.set(Some(Instant::now() - Duration::from_millis(1)));
        assert!(f.is_spent(), "the deadline passed (frozen past it)");
        // Resumed, its elector renews the Lease: the fence stays closed.
        f.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(f.check().is_err() && f.is_spent());
        // Lost (another holder, or a renewal failed past the deadline): closed for good too.
        let g = Fence::member();
        g.set(Some(Instant::now() + Duration::from_secs(60)));
        g.set(None);
        g.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(g.check().is_err() && g.is_spent());
    }

    #[test]
    fn identities_are_unique() {
        assert_ne!(identity(), identity());
    }
}
