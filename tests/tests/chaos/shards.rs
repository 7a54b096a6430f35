//! Shards (`--sharding`, docs/design.md "Shards"): three members, pods `member-0..2`, share
//! the work while one of them is SIGKILLed every `SEALED_SECRETS_CHAOS_KILL_EVERY` seconds
//! (in turn, the leader among them, each started again at once under the same pod name, as
//! its kubelet would: it joins under a new identity), first during a cold start, then during
//! steady creates (one object at a time at a fixed rate); later a member is SIGSTOPped past
//! its Lease and resumed, a member is added and another removed (SIGTERM). Every object
//! converges, nothing foreign is touched, one key is generated however many members and
//! leaders came and went, and the members' logs, ordered by resourceVersion together with
//! the sharder's assignments and the drain acknowledgements, show no write for an object by
//! a member it was not assigned to ([`ownership`]). The create-to-Secret latency of the
//! objects created during the kills and during the rebalancing is reported (p50, p99, max).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::{WatchStreamExt as _, watcher};

use crate::check::{self, KeySet, LeadershipReport, Violation};
use crate::*;

/// The ring's labels (its name defaults to the leader Lease's, `sealed-secrets-controller`).
const SHARD_LABEL: &str = "shard.alpha.sharding.timebertt.dev/sealed-secrets-controller";
const DRAIN_LABEL: &str = "drain.alpha.sharding.timebertt.dev/sealed-secrets-controller";

/// The member identities a replica's log shows it joined the ring as, the latest last.
fn identities(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "joining the shard ring")
        .filter_map(|v| v["member"].as_str().map(str::to_owned))
        .collect()
}

/// The member processes, by slot: slot `i` is pod `member-<i>`, a killed member is started
/// again in its slot, a removed one leaves its slot empty. Every process ever started stays
/// in `all` (the ownership proof reads every log).
struct Members {
    all: Vec<Replica>,
    slots: Vec<Option<usize>>,
    /// The slot the next rotating kill hits.
    next: usize,
    kills: usize,
    leader_kills: usize,
    /// Held by the steady creates for each create, and by [`Members::kill`] from the wait
    /// for the sharder to finish placing until the leader is killed.
    creates: Arc<tokio::sync::Mutex<()>>,
}

impl Members {
    /// A member in `slot`: leader election (lease [`LEASE_SECONDS`]) and `--sharding`.
    fn spawn(&mut self, env: &mut Env, slot: usize) {
        let kubeconfig = env.cluster.kubeconfig().to_path_buf();
        let lease = format!("--leader-election-lease-duration={LEASE_SECONDS}s");
        let pod = format!("member-{slot}");
        let r = env.spawn_controller_env(
            &kubeconfig,
            &["--leader-election=true", &lease, "--sharding"],
            &[("POD_NAME", &pod)],
        );
        self.all.push(r);
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[slot] = Some(self.all.len() - 1);
    }

    fn at(&self, slot: usize) -> &Replica {
        &self.all[self.slots[slot].expect("a member in this slot")]
    }

    fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|s| self.slots[*s].is_some())
            .collect()
    }

    /// The slot of the member that leads (and runs the sharder), if one answers so now.
    async fn leader(&self) -> Option<usize> {
        for s in self.live() {
            if self.at(s).is_leader().await {
                return Some(s);
            }
        }
        None
    }

    /// Waits for a leader whose sharder counts `n` members; its slot.
    async fn wait_sharder(&self, n: usize) -> usize {
        eventually(
            &format!("a sharder counting {n} members"),
            Duration::from_secs(60),
            || async {
                for s in self.live() {
                    let r = self.at(s);
                    if r.is_leader().await
                        && r.metric("sealed_secrets_controller_shard_members").await
                            == Some(n as f64)
                    {
                        return Some(s);
                    }
                }
                None
            },
        )
        .await
    }

    /// A live follower's slot, not among `not`.
    async fn follower(&self, not: &[usize]) -> usize {
        let leader = self.wait_sharder(self.live().len()).await;
        self.live()
            .into_iter()
            .find(|s| *s != leader && !not.contains(s))
            .expect("a follower")
    }

    /// The identities the running members last joined as.
    fn current_identities(&self) -> Vec<String> {
        self.live()
            .into_iter()
            .filter_map(|s| identities(&self.at(s).process.log()).pop())
            .collect()
    }

    /// SIGKILLs the leader (`leader`) or the next follower in turn, and starts it again at
    /// once. Before the leader is killed the sharder is let finish what it was doing (every
    /// object labelled for a running member, no drain pending; the steady creates paused
    /// meanwhile): a patch it sent but had not logged when killed would be an assignment the
    /// ownership proof cannot see (the assignment would stand, the proof would flag its
    /// member's writes). Followers are killed at any moment.
    async fn kill(&mut self, env: &mut Env, leader: bool) {
        // Just after a leader was killed nobody leads for up to a Lease; one that does not
        // answer in time must not be taken for a follower.
        let leading = eventually("a leader", Duration::from_secs(60), || self.leader()).await;
        let slot = if leader {
            leading
        } else {
            let followers: Vec<usize> = self.live().into_iter().filter(|s| *s != leading).collect();
            let s = followers[self.next % followers.len()];
            self.next += 1;
            s
        };
        let creates = self.creates.clone();
        let _paused = if slot == leading {
            // New objects keep the sharder busy: they wait until the leader is killed.
            let paused = creates.lock().await;
            self.wait_placed(env).await;
            self.leader_kills += 1;
            Some(paused)
        } else {
            None
        };
        let i = self.slots[slot].expect("a live slot");
        self.all[i].signal("KILL");
        while self.all[i].process.is_running() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kills += 1;
        self.spawn(env, slot);
    }

    /// Waits until every SealedSecret is labelled for a running member and none is asked to
    /// drain: the sharder has nothing in flight.
    async fn wait_placed(&self, env: &Env) {
        let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), env.ns());
        eventually(
            "every SealedSecret placed on a running member",
            converge_timeout(n_objects()),
            || async {
                let members = self.current_identities();
                // Labels only, and a pause between looks: at thousands of objects a full
                // list every 50 ms would load the API server the members need.
                let list = api.list_metadata(&ListParams::default()).await.ok()?;
                let placed = list.items.iter().all(|ss| {
                    let labels = ss.metadata.labels.clone().unwrap_or_default();
                    !labels.contains_key(DRAIN_LABEL)
                        && labels.get(SHARD_LABEL).is_some_and(|m| members.contains(m))
                });
                if !placed {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                placed.then_some(())
            },
        )
        .await;
    }
}

/// When each owned Secret of the workload namespace was first seen (a watch: the latency
/// measured is the controller's, not a poll interval's).
struct FirstSeen {
    seen: Arc<Mutex<BTreeMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FirstSeen {
    async fn start(env: &Env) -> Self {
        let api: Api<Secret> = Api::namespaced(env.client.clone(), env.ns());
        let seen: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
        let ready = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (seen, ready) = (seen.clone(), ready.clone());
            async move {
                let mut events = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(ev) = events.next().await {
                    match ev {
                        Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                            if s.metadata.owner_references.is_some()
                                && let Some(name) = s.metadata.name
                            {
                                seen.lock()
                                    .unwrap()
                                    .entry(name)
                                    .or_insert_with(Instant::now);
                            }
                        }
                        Ok(watcher::Event::InitDone) => ready.store(true, Ordering::Relaxed),
                        _ => {}
                    }
                }
            }
        });
        eventually("the Secret watch", Duration::from_secs(30), || async {
            ready.load(Ordering::Relaxed).then_some(())
        })
        .await;
        Self { seen, task }
    }

    /// Create-to-Secret latency of each object of `created` that has a Secret.
    fn latencies(&self, created: &BTreeMap<String, Instant>) -> Vec<Duration> {
        let seen = self.seen.lock().unwrap();
        created
            .iter()
            .filter_map(|(n, at)| Some(seen.get(n)?.saturating_duration_since(*at)))
            .collect()
    }
}

impl Drop for FirstSeen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates `sealed` 16 at a time, noting when the API server acknowledged each.
async fn create_timed(env: &Env, sealed: &[SealedSecret], created: &mut BTreeMap<String, Instant>) {
    let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), env.ns());
    let results: Vec<_> = futures::stream::iter(sealed.iter().cloned())
        .map(|ss| {
            let api = api.clone();
            async move {
                let r = api.create(&PostParams::default(), &ss).await;
                (
                    ss.metadata.name.unwrap_or_default(),
                    r.map(|_| Instant::now()),
                )
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (name, r) in results {
        created.insert(name, r.expect("create SealedSecret"));
    }
}

/// "p50 .., p99 .., max .. (n objects)" of `d`.
fn summary(d: &[Duration]) -> String {
    format!(
        "p50 {:.2?}, p99 {:.2?}, max {:.2?} ({} objects)",
        percentile(d, 50),
        percentile(d, 99),
        percentile(d, 100),
        d.len()
    )
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
/// with the resourceVersion the API server gave it; replayed in the server's order
/// ([`check::replay`]), a write is a violation when the object was not assigned to the
/// member that made it at that point. A member's writes are attributed to the identity it
/// last joined as in its own (chronological) log. Writes sent on resuming from a freeze after
/// passing the fence before it are explained as in the leader scenario
/// ([`LeadershipReport::unexplained`]). Pure.
pub fn ownership(logs: &[(String, String)]) -> LeadershipReport {
    let mut report = LeadershipReport::default();
    let mut me: BTreeMap<String, String> = BTreeMap::new();
    let events = check::replay(logs, &mut report, |replica, v| {
        let msg = v["msg"].as_str().unwrap_or_default();
        let member = v["member"].as_str().unwrap_or_default().to_owned();
        let what = match msg {
            "joining the shard ring" => {
                me.insert(replica.to_owned(), member);
                return None;
            }
            "assigned SealedSecret" => Logged::Assigned(member),
            "drained SealedSecret" => Logged::Released,
            m if check::WRITES.contains(&m) => Logged::Wrote(m.to_owned()),
            _ => return None,
        };
        let who = me
            .get(replica)
            .cloned()
            .unwrap_or_else(|| replica.to_owned());
        let object = v["sealed_secret"].as_str().unwrap_or_default().to_owned();
        Some((who, object, what))
    });
    let mut owner: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (rv, (who, object, what)) in events {
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
    let every = kill_every();
    let mut env = Env::new().await;
    let mut row = Row::new("shards", &env.cluster, n);
    let keys_before = KeySet::new();
    let mut m = Members {
        all: Vec::new(),
        slots: Vec::new(),
        next: 0,
        kills: 0,
        leader_kills: 0,
        creates: Arc::default(),
    };
    for slot in 0..3 {
        m.spawn(&mut env, slot);
    }
    m.wait_sharder(3).await;
    let key = env.wait_generated_key().await;
    let w = env.workload(n, &key).await;
    let seen = FirstSeen::start(&env).await;
    // Phases by tenths: cold start 4, steady creates 3, then 1 each for the freeze, the
    // member added and the member removed.
    let tenth = |k: usize| k * n / 10;
    let cold = &w.sealed[..tenth(4)];
    let steady = &w.sealed[tenth(4)..tenth(7)];
    let frozen_batch = &w.sealed[tenth(7)..tenth(8)];
    let added_batch = &w.sealed[tenth(8)..tenth(9)];
    let removed_batch = &w.sealed[tenth(9)..];
    let owned_through = |end: usize| w.owned_in(&w.sealed[..end]);
    // 1. Cold start: a member SIGKILLed once a third of the Secrets exist, then another every
    //    period until every Secret exists.
    env.create_all(cold).await;
    let target = owned_through(tenth(4));
    let at_first_kill = env.wait_owned(target / 3, converge_timeout(n)).await;
    let cold_started = Instant::now();
    let mut next_kill = Instant::now();
    while env.owned_secrets().await.is_none_or(|c| c < target) {
        assert!(
            cold_started.elapsed() < converge_timeout(n),
            "the cold start did not converge"
        );
        if Instant::now() >= next_kill {
            m.kill(&mut env, false).await;
            next_kill += every;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cold_kills = m.kills;
    let cold_took = cold_started.elapsed();

    // 2. Steady creates: the batch created one object at a time at a fixed rate over two
    //    periods, a member SIGKILLed in the middle of each: the leader first (the sharder and
    //    key management move to another member while objects keep coming), then the next
    //    member in turn.
    let creator = tokio::spawn({
        let api: Api<SealedSecret> = Api::namespaced(env.client.clone(), env.ns());
        let batch = steady.to_vec();
        let creates = m.creates.clone();
        let gap = every * 2 / u32::try_from(batch.len().max(1)).unwrap();
        async move {
            let mut created = BTreeMap::new();
            let mut tick = tokio::time::interval(gap);
            for ss in batch {
                tick.tick().await;
                let _turn = creates.lock().await;
                api.create(&PostParams::default(), &ss)
                    .await
                    .expect("create SealedSecret");
                created.insert(ss.metadata.name.unwrap_or_default(), Instant::now());
            }
            created
        }
    });
    let start = Instant::now();
    for k in 0..2 {
        tokio::time::sleep_until((start + every * k + every / 2).into()).await;
        m.kill(&mut env, k == 0).await;
    }
    let steady_created = creator.await.expect("the creator task");
    env.wait_owned(owned_through(tenth(7)), converge_timeout(n))
        .await;
    let steady_took = start.elapsed();

    // 3. A follower SIGSTOPped with the next batch arriving, held past its Lease (its objects
    //    move directly), then resumed: it rejoins under a new identity.
    let stopped = m.follower(&[]).await;
    let mut frozen_created = BTreeMap::new();
    create_timed(&env, frozen_batch, &mut frozen_created).await;
    m.at(stopped).signal("STOP");
    let stop_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 4)).await;
    m.at(stopped).signal("CONT");
    eventually(
        "the resumed member to join again",
        Duration::from_secs(30),
        || async { (identities(&m.at(stopped).process.log()).len() >= 2).then_some(()) },
    )
    .await;
    env.wait_owned(owned_through(tenth(8)), converge_timeout(n))
        .await;
    let stop_recovered = stop_at.elapsed();

    // 4. A member added with the next batch (objects drain to it), then another removed
    //    (SIGTERM) with the last (its objects move directly once it released its Lease).
    let rebalance_at = Instant::now();
    m.spawn(&mut env, 3);
    let mut rebalance_created = BTreeMap::new();
    create_timed(&env, added_batch, &mut rebalance_created).await;
    env.wait_owned(owned_through(tenth(9)), converge_timeout(n))
        .await;
    let removed = m.follower(&[3]).await;
    m.at(removed).signal("TERM");
    m.slots[removed] = None;
    create_timed(&env, removed_batch, &mut rebalance_created).await;
    env.check(&w, &keys_before, 1).await;
    let rebalance = rebalance_at.elapsed();

    let logs: Vec<(String, String)> = m
        .all
        .iter()
        .map(|r| (r.label.clone(), r.process.log()))
        .collect();
    let report = ownership(&logs);
    // Objects over a foreign Secret never get one.
    let ours = |c: &BTreeMap<String, Instant>| {
        c.iter()
            .filter(|(n, _)| !w.expected.foreign.contains_key(*n))
            .map(|(n, t)| (n.clone(), *t))
            .collect::<BTreeMap<_, _>>()
    };
    println!(
        "SIGKILLs: {} ({cold_kills} during the cold start, the first at {at_first_kill}/{target} \
         Secrets, converged {cold_took:.1?} after it; {} of the leader; one every {every:?}); \
         assignments: {}; writes per member: {:?}; the stopped member recovered in \
         {stop_recovered:?}; create-to-Secret latency during the steady creates with kills \
         ({steady_took:.1?}): {}; while a member was added and one removed ({rebalance:.1?}): \
         {}; after the freeze: {}",
        m.kills,
        m.leader_kills,
        report.acquisitions.len(),
        report.writes,
        summary(&seen.latencies(&ours(&steady_created))),
        summary(&seen.latencies(&ours(&rebalance_created))),
        summary(&seen.latencies(&ours(&frozen_created))),
    );
    check::report_violations(
        &report,
        "writes for an object not assigned to the writer",
        "an object was written by a member it was not assigned to",
    );
    assert!(
        m.leader_kills >= 1,
        "the leader was never among the members killed"
    );
    row.restarts = format!(
        "{} SIGKILL ({} leader), 1 SIGSTOP/CONT, 1 added, 1 SIGTERM",
        m.kills, m.leader_kills
    );
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
