//! Lease-based leader election (`coordination.k8s.io/v1`), so that `replicas: 2+` works
//! (upstream supports one replica only, §4.9/§9.4). Only the leader reconciles and renews
//! keys; every replica serves the certificate and verify and follows keys via the watcher.
//!
//! The algorithm is client-go's: a candidate takes the Lease when its record has not changed
//! for a lease duration *as observed on the candidate's own clock* (so clock skew between
//! nodes does not matter); the leader renews every retry period and steps down when it could
//! not renew within the renew deadline.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::metrics::SharedMetrics;

/// Timings (docs/design.md: lease 15s, renew deadline 10s, retry 2s).
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// What one attempt found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    Leading,
    Following { holder: String },
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
    use rand::Rng as _;
    let base = std::env::var(crate::config::env::POD_NAME)
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "sealed-secrets-controller".to_owned());
    let suffix: u32 = rand::rng().random();
    format!("{base}_{suffix:08x}")
}

/// Runs the election forever, publishing leadership on `tx`.
pub async fn run(
    client: kube::Client,
    cfg: ElectionConfig,
    tx: watch::Sender<bool>,
    metrics: SharedMetrics,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut observed: Option<(Record, Instant)> = None;
    let mut last_renew: Option<Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    loop {
        let result = attempt(&api, &cfg, &mut observed).await;
        let leading = *tx.borrow();
        match result {
            Ok(Attempt::Leading) => {
                last_renew = Some(Instant::now());
                if !leading {
                    tracing::info!(lease = %cfg.lease_name, identity = %cfg.identity, "became the leader");
                    metrics.leader.set(1);
                    let _ = tx.send(true);
                }
            }
            Ok(Attempt::Following { holder }) => {
                if leading {
                    tracing::warn!(lease = %cfg.lease_name, %holder, "lost leadership");
                    metrics.leader.set(0);
                    let _ = tx.send(false);
                } else {
                    tracing::debug!(%holder, "following the leader");
                }
            }
            Err(e) => {
                let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    last_error_log = Some(Instant::now());
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
                if leading && last_renew.is_none_or(|t| t.elapsed() > cfg.renew_deadline) {
                    tracing::warn!(lease = %cfg.lease_name, "could not renew the lease within the renew deadline; stepping down");
                    metrics.leader.set(0);
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
) -> Result<Attempt, kube::Error> {
    let duration_secs = i32::try_from(cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.lease_name.clone()),
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
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following {
                holder: String::new(),
            }),
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
        cfg.lease_duration,
    ) {
        return Ok(Attempt::Following {
            holder: record.holder,
        });
    }
    let spec = lease.spec.get_or_insert_with(Default::default);
    if record.holder != cfg.identity {
        spec.acquire_time = Some(now_micro());
        spec.lease_transitions = Some(record.transitions + 1);
        spec.holder_identity = Some(cfg.identity.clone());
    }
    spec.renew_time = Some(now_micro());
    spec.lease_duration_seconds = Some(duration_secs);
    match api
        .replace(&cfg.lease_name, &PostParams::default(), &lease)
        .await
    {
        Ok(l) => {
            *observed = Some((record_of(&l), Instant::now()));
            Ok(Attempt::Leading)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following {
            holder: record.holder,
        }),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up on shutdown so that another replica takes over at once. A renewal that
/// lands between the read and the write makes the write conflict (409, seen on a real API
/// server during shutdown); the release then reads the Lease again, a few times.
pub async fn release(client: kube::Client, cfg: &ElectionConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    for attempt in 1..=3 {
        let Ok(Some(mut lease)) = api.get_opt(&cfg.lease_name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        match api
            .replace(&cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %cfg.lease_name, "released the leader lease");
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 3 => continue,
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
    fn identities_are_unique() {
        assert_ne!(identity(), identity());
    }
}
