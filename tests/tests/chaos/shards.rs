//! Shards (`--sharding`, docs/design.md "Shards"): three members share a cold start while one
//! is SIGKILLed and replaced; later a member is SIGSTOPped past its Lease and resumed, and a
//! member is added and then removed (SIGTERM). Every object converges, nothing foreign is
//! touched, one key is generated however many members run, and the members' logs, ordered by
//! resourceVersion together with the sharder's assignments and the drain acknowledgements,
//! show no write for an object by a member it was not assigned to ([`ownership`]). The
//! create-to-Secret latency of the objects created while a member joins is reported.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::check::{KeySet, LeadershipReport, Violation};
use crate::*;

/// A member replica: leader election (lease [`LEASE_SECONDS`]) and `--sharding`.
fn spawn_member(env: &mut Env) -> Replica {
    let kubeconfig = env.cluster.kubeconfig().to_path_buf();
    let lease = format!("--leader-election-lease-duration={LEASE_SECONDS}s");
    env.spawn_controller(
        &kubeconfig,
        &["--leader-election=true", &lease, "--sharding"],
    )
}

/// The member identities a replica's log shows it joined the ring as, the latest last.
fn identities(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "joining the shard ring")
        .filter_map(|v| v["member"].as_str().map(str::to_owned))
        .collect()
}

/// What one log line says about an object's ownership.
enum Logged {
    /// The sharder labelled the object for this member.
    Assigned(String),
    /// The member let go of it (drain acknowledged).
    Released,
    /// A member wrote for it (what).
    Wrote(String),
}

/// Proves "each object written only by its member" from the replicas' JSON logs: the
/// sharder logs each assignment and each member each drain acknowledgement and each write
/// with the resourceVersion the API server gave it; sorted by resourceVersion (one server's
/// single sequence) they replay the server's order, and a write is a violation when the
/// object was not assigned to the member that made it at that point. A member's writes are
/// attributed to the identity it last joined as in its own (chronological) log. Writes sent
/// on resuming from a freeze after passing the fence before it are explained as in the
/// leader scenario ([`LeadershipReport::unexplained`]). Pure.
pub fn ownership(logs: &[(String, String)]) -> LeadershipReport {
    let mut events: Vec<(u64, String, String, Logged)> = Vec::new();
    let mut report = LeadershipReport::default();
    for (replica, log) in logs {
        let mut me = String::new();
        for line in log.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let msg = v["msg"].as_str().unwrap_or_default();
            let object = v["sealed_secret"].as_str().unwrap_or_default().to_owned();
            let what = match msg {
                "joining the shard ring" => {
                    me = v["member"].as_str().unwrap_or_default().to_owned();
                    continue;
                }
                "assigned SealedSecret" => {
                    Logged::Assigned(v["member"].as_str().unwrap_or_default().to_owned())
                }
                "drained SealedSecret" => Logged::Released,
                "created Secret" | "updated Secret" | "wrote status" => {
                    Logged::Wrote(msg.to_owned())
                }
                _ => continue,
            };
            let Some(rv) = v["resource_version"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
            else {
                report
                    .unplaced
                    .push(format!("{replica}: `{msg}` without a resourceVersion"));
                continue;
            };
            let who = if me.is_empty() {
                replica.clone()
            } else {
                me.clone()
            };
            events.push((rv, who, object, what));
        }
    }
    events.sort_by_key(|(rv, ..)| *rv);
    let mut owner: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (rv, who, object, what) in events {
        match what {
            Logged::Assigned(member) => {
                report
                    .acquisitions
                    .push((rv, format!("{object} -> {member}")));
                owner.insert(object, Some(member));
            }
            Logged::Released => {
                owner.insert(object, None);
            }
            Logged::Wrote(what) => {
                *report.writes.entry(who.clone()).or_default() += 1;
                let current = owner.get(&object).cloned().flatten();
                if current.as_deref() != Some(who.as_str()) {
                    report.violations.push(Violation {
                        replica: who,
                        resource_version: rv,
                        what,
                        object,
                        leader: current,
                    });
                }
            }
        }
    }
    report
}

/// Waits until the metric `name` of some replica in `among` satisfies `ok`; its index.
async fn replica_where(
    replicas: &[Replica],
    among: &[usize],
    what: &str,
    ok: impl Fn(&Replica) -> futures::future::BoxFuture<'_, bool>,
) -> usize {
    eventually(what, Duration::from_secs(60), || async {
        for &i in among {
            if ok(&replicas[i]).await {
                return Some(i);
            }
        }
        None
    })
    .await
}

/// For each SealedSecret of `batch` the controller must produce a Secret for, how long after
/// `since` its Secret was first seen (lists every 50 ms: an upper bound by that much).
async fn secret_latencies(
    env: &Env,
    batch: &[SealedSecret],
    w: &Workload,
    since: Instant,
    timeout: Duration,
) -> Vec<Duration> {
    let mut waiting: std::collections::BTreeSet<String> = batch
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .filter(|n| !w.expected.foreign.contains_key(n))
        .collect();
    let api: Api<Secret> = Api::namespaced(env.client.clone(), env.ns());
    let mut seen = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() && since.elapsed() < timeout {
        if let Ok(list) = api.list(&ListParams::default()).await {
            for s in list.items {
                if s.metadata.owner_references.is_some()
                    && let Some(name) = s.metadata.name
                    && waiting.remove(&name)
                {
                    seen.push(since.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// The `p`th percentile (nearest rank) of `d`; zero when empty.
fn percentile(d: &[Duration], p: usize) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    let rank = (v.len() * p).div_ceil(100).max(1);
    v.get(rank - 1).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_kill_stop_add_remove() {
    let n = n_objects();
    let mut env = Env::new().await;
    let mut row = Row::new("shards", &env.cluster, n);
    let keys_before = KeySet::new();
    let mut replicas = vec![
        spawn_member(&mut env),
        spawn_member(&mut env),
        spawn_member(&mut env),
    ];
    let all: Vec<usize> = (0..3).collect();
    let leader = replica_where(&replicas, &all, "a sharder counting 3 members", |r| {
        Box::pin(async {
            r.is_leader().await
                && r.metric("sealed_secrets_controller_shard_members").await == Some(3.0)
        })
    })
    .await;
    let key = env.wait_generated_key().await;
    let w = env.workload(n, &key).await;
    let quarter = n.div_ceil(4);
    let batches: Vec<&[SealedSecret]> = w.sealed.chunks(quarter.max(1)).collect();
    let owned_through = |k: usize| -> usize { batches[..k].iter().map(|b| w.owned_in(b)).sum() };
    // A follower is the one killed, stopped and removed: the leader's own failover is the
    // leader scenario's.
    let follower = |replicas: &[Replica], not: &[usize]| -> Vec<usize> {
        (0..replicas.len()).filter(|i| !not.contains(i)).collect()
    };

    // 1. Cold start of the first quarter; a follower SIGKILLed once a third of it exists,
    //    and a replacement joins.
    env.create_all(batches[0]).await;
    env.wait_owned(w.owned_in(batches[0]) / 3, converge_timeout(n))
        .await;
    let killed = follower(&replicas, &[leader])[0];
    replicas[killed].signal("KILL");
    replicas.push(spawn_member(&mut env));
    env.wait_owned(owned_through(1), converge_timeout(n)).await;

    // 2. A follower SIGSTOPped with the second quarter arriving, held past its Lease (its
    //    objects move directly), then resumed: it rejoins under a new identity.
    let stopped = follower(&replicas, &[leader, killed])[0];
    env.create_all(batches[1]).await;
    replicas[stopped].signal("STOP");
    let stop_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 4)).await;
    replicas[stopped].signal("CONT");
    eventually(
        "the resumed member to join again",
        Duration::from_secs(30),
        || async { (identities(&replicas[stopped].process.log()).len() >= 2).then_some(()) },
    )
    .await;
    env.wait_owned(owned_through(2), converge_timeout(n)).await;
    let stop_recovered = stop_at.elapsed();

    // 3. A member added with the third quarter (objects drain to it), then removed (SIGTERM)
    //    with the fourth (its objects go back directly once it released its Lease).
    let added_at = Instant::now();
    replicas.push(spawn_member(&mut env));
    let added = replicas.len() - 1;
    let third = batches.get(2).copied().unwrap_or_default();
    env.create_all(third).await;
    let latency = secret_latencies(&env, third, &w, added_at, converge_timeout(n)).await;
    env.wait_owned(owned_through(batches.len().min(3)), converge_timeout(n))
        .await;
    let rebalance = added_at.elapsed();
    replicas[added].signal("TERM");
    env.create_all(batches.get(3).copied().unwrap_or_default())
        .await;
    env.check(&w, &keys_before, 1).await;

    let logs: Vec<(String, String)> = replicas
        .iter()
        .map(|r| (r.label.clone(), r.process.log()))
        .collect();
    let report = ownership(&logs);
    println!(
        "assignments: {}; writes per member: {:?}; the stopped member recovered in {stop_recovered:?}, \
         the added member's third converged {rebalance:?} after it joined; create-to-Secret \
         latency while rebalancing: p50 {:?}, p99 {:?} ({} objects)",
        report.acquisitions.len(),
        report.writes,
        percentile(&latency, 50),
        percentile(&latency, 99),
        latency.len()
    );
    println!(
        "writes for an object not assigned to the writer: {}{}",
        report.violations.len(),
        report
            .violations
            .iter()
            .map(|v| format!("\n  {v}"))
            .collect::<String>()
    );
    let unexplained = report.unexplained(CONCURRENCY);
    assert!(
        unexplained.is_empty(),
        "an object was written by a member it was not assigned to:\n  {}",
        unexplained.join("\n  ")
    );
    assert!(
        !report.acquisitions.is_empty(),
        "no assignment logged: the proof above had nothing to check"
    );
    row.restarts = "1 SIGKILL, 1 SIGSTOP/CONT, 1 added, 1 SIGTERM".into();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(msg: &str, rv: u64, object: &str, member: &str) -> String {
        serde_json::json!({"msg": msg, "resource_version": rv.to_string(), "sealed_secret": object, "member": member}).to_string()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 99), Duration::from_millis(99));
        assert_eq!(percentile(&d, 50), Duration::from_millis(50));
        assert_eq!(percentile(&[], 99), Duration::ZERO);
    }

    #[test]
    fn writes_are_checked_against_the_assignments() {
        let sharder = [
            line("assigned SealedSecret", 2, "ns/x", "a-1"),
            line("assigned SealedSecret", 20, "ns/x", "b-1"),
        ]
        .join("\n");
        let a = [
            line("joining the shard ring", 0, "", "a-1"),
            line("created Secret", 3, "ns/x", ""),
            line("drained SealedSecret", 10, "ns/x", ""),
        ]
        .join("\n");
        let b = [
            line("joining the shard ring", 0, "", "b-1"),
            line("wrote status", 21, "ns/x", ""),
        ]
        .join("\n");
        let logs = |a: &str| {
            vec![
                ("leader".to_owned(), sharder.clone()),
                ("r1".to_owned(), a.to_owned()),
                ("r2".to_owned(), b.clone()),
            ]
        };
        let ok = ownership(&logs(&a));
        assert!(ok.violations.is_empty(), "{:?}", ok.violations);
        // a writes after it let go (between its release and b's assignment): caught.
        let late = format!("{a}\n{}", line("updated Secret", 15, "ns/x", ""));
        let bad = ownership(&logs(&late));
        assert_eq!(bad.violations.len(), 1);
        assert_eq!(bad.unexplained(0).len(), 1);
        // A rejoined member writes as its new identity, which was never assigned the object.
        let rejoined = format!(
            "{a}\n{}\n{}",
            line("joining the shard ring", 0, "", "a-2"),
            line("created Secret", 25, "ns/x", "")
        );
        let bad = ownership(&logs(&rejoined));
        assert_eq!(bad.violations.len(), 1);
        assert_eq!(bad.violations[0].replica, "a-2");
    }
}
