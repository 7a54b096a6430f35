//! The invariants every chaos scenario ends with, checked by one shared checker:
//!
//! - every SealedSecret converges: its Secret exists, is owned by it, and every value equals
//!   the plaintext it was sealed from; its status says `Synced=True` with
//!   `observedGeneration == generation`;
//! - foreign Secrets (created before, same names as some SealedSecrets, not owned) are left
//!   byte for byte as they were (data and resourceVersion), and their SealedSecrets say
//!   `Synced=False`;
//! - key Secrets: none lost, none duplicated (the set from before, plus exactly the keys the
//!   scenario expects to be generated);
//! - never two leaders acting at once ([`leadership`]): every write a replica logs, ordered
//!   by its resourceVersion, falls after that replica's latest Lease acquisition and before
//!   any other replica's next one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use sealed_secrets_api::SealedSecret;

/// What a namespace must look like once the controller has converged.
#[derive(Debug, Default)]
pub struct Expected {
    /// SealedSecret name -> the plaintext of every value.
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// Foreign Secret name -> (data, resourceVersion) when it was created.
    pub foreign: BTreeMap<String, (BTreeMap<String, Vec<u8>>, String)>,
}

/// One thing that is not as expected yet (or never will be).
fn problems(expected: &Expected, secrets: &[Secret], sealed: &[SealedSecret]) -> Vec<String> {
    let mut out = Vec::new();
    let secrets: BTreeMap<&str, &Secret> = secrets
        .iter()
        .filter_map(|s| Some((s.metadata.name.as_deref()?, s)))
        .collect();
    let sealed: BTreeMap<&str, &SealedSecret> = sealed
        .iter()
        .filter_map(|s| Some((s.metadata.name.as_deref()?, s)))
        .collect();
    for (name, values) in &expected.values {
        let Some(ss) = sealed.get(name.as_str()) else {
            out.push(format!("SealedSecret {name} is missing"));
            continue;
        };
        let synced = synced_condition(ss);
        if let Some((data, rv)) = expected.foreign.get(name) {
            // A foreign Secret: left alone, and the SealedSecret says why.
            match secrets.get(name.as_str()) {
                None => out.push(format!("foreign Secret {name} was deleted")),
                Some(s) => {
                    if &secret_data(s) != data {
                        out.push(format!("foreign Secret {name} was overwritten (data)"));
                    }
                    if s.metadata.resource_version.as_deref() != Some(rv.as_str()) {
                        out.push(format!(
                            "foreign Secret {name} was written (resourceVersion {rv} -> {:?})",
                            s.metadata.resource_version
                        ));
                    }
                    if s.metadata.owner_references.is_some() {
                        out.push(format!("foreign Secret {name} got owner references"));
                    }
                }
            }
            match synced {
                Some((status, message)) if status == "False" => {
                    if !message.contains("not managed by SealedSecret") {
                        out.push(format!(
                            "SealedSecret {name} over a foreign Secret: unexpected message {message:?}"
                        ));
                    }
                }
                other => out.push(format!(
                    "SealedSecret {name} over a foreign Secret: Synced is {other:?}, want False"
                )),
            }
            continue;
        }
        match secrets.get(name.as_str()) {
            None => out.push(format!("Secret {name} does not exist")),
            Some(s) => {
                let owned = s.metadata.owner_references.iter().flatten().any(|o| {
                    o.controller == Some(true)
                        && o.kind == "SealedSecret"
                        && Some(&o.uid) == ss.metadata.uid.as_ref()
                });
                if !owned {
                    out.push(format!("Secret {name} is not owned by its SealedSecret"));
                }
                let data = secret_data(s);
                let keys: BTreeSet<&String> = data.keys().collect();
                let want: BTreeSet<&String> = values.keys().collect();
                if keys != want {
                    out.push(format!("Secret {name} has keys {keys:?}, want {want:?}"));
                }
                for (k, v) in values {
                    if data.get(k).map(Vec::as_slice) != Some(v.as_bytes()) {
                        // Never print values: say which one differs.
                        out.push(format!(
                            "Secret {name}: value {k} differs from its plaintext"
                        ));
                    }
                }
            }
        }
        match synced {
            Some((status, _)) if status == "True" => {}
            other => out.push(format!(
                "SealedSecret {name}: Synced is {other:?}, want True"
            )),
        }
        let observed = ss.status.as_ref().and_then(|s| s.observed_generation);
        if observed.is_none() || observed != ss.metadata.generation {
            out.push(format!(
                "SealedSecret {name}: observedGeneration {observed:?} != generation {:?}",
                ss.metadata.generation
            ));
        }
    }
    out
}

fn synced_condition(ss: &SealedSecret) -> Option<(String, String)> {
    ss.status.as_ref()?.conditions.iter().find_map(|c| {
        (c.type_ == "Synced").then(|| (c.status.clone(), c.message.clone().unwrap_or_default()))
    })
}

pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Polls the namespace until every invariant of `expected` holds, or fails after `timeout`
/// with the remaining problems (at most 20 listed). API errors while polling (the test's own
/// client may see injected faults) count as "not yet".
pub async fn converge(
    client: &kube::Client,
    ns: &str,
    expected: &Expected,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    let mut last = vec!["nothing listed yet".to_owned()];
    loop {
        let lists = futures::future::join(
            secrets.list(&ListParams::default()),
            sealed.list(&ListParams::default()),
        )
        .await;
        match lists {
            (Ok(s), Ok(ss)) => {
                last = problems(expected, &s.items, &ss.items);
                if last.is_empty() {
                    return Ok(start.elapsed());
                }
            }
            (Err(e), _) | (_, Err(e)) => last = vec![format!("list failed: {e}")],
        }
        if start.elapsed() > timeout {
            let n = last.len();
            last.truncate(20);
            return Err(format!(
                "not converged after {timeout:?}: {n} problems, first ones:\n  {}",
                last.join("\n  ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Key Secrets by name: (uid, data).
pub type KeySet = BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>;

/// Every key Secret (any `sealedsecrets.bitnami.com/sealed-secrets-key` label value) in the
/// controller namespace.
pub async fn key_set(client: &kube::Client, ctrl_ns: &str) -> Result<KeySet, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ctrl_ns);
    let list = api
        .list(&ListParams::default().labels(sealed_secrets_api::annotations::SEALING_KEY_LABEL))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap_or_default(),
                (s.metadata.uid.clone().unwrap_or_default(), secret_data(s)),
            )
        })
        .collect())
}

/// None lost (every key of `before` still there, same uid and bytes), none duplicated
/// (exactly `new_expected` keys more). Pure.
pub fn keys_kept(before: &KeySet, after: &KeySet, new_expected: usize) -> Result<(), String> {
    for (name, k) in before {
        match after.get(name) {
            None => return Err(format!("key Secret {name} was lost")),
            Some(a) if a != k => return Err(format!("key Secret {name} was changed")),
            Some(_) => {}
        }
    }
    let new: Vec<&String> = after.keys().filter(|n| !before.contains_key(*n)).collect();
    if new.len() != new_expected {
        return Err(format!(
            "{} new key Secrets {new:?}, expected exactly {new_expected}",
            new.len()
        ));
    }
    Ok(())
}

/// One line of a replica's JSON log that matters for leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Logged {
    Acquired,
    /// What (the log message) and which object.
    Wrote(String, String),
}

/// A write by a replica that did not have the right to write: it was not the latest to
/// acquire the Lease, or (shards) not the member the object was assigned to.
#[derive(Debug, Clone)]
pub struct Violation {
    pub replica: String,
    pub resource_version: u64,
    pub what: String,
    pub object: String,
    /// Who had the right to write then (the leader; the object's member).
    pub leader: Option<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} wrote at resourceVersion {} ({} {}) while {} had the right to write",
            self.replica,
            self.resource_version,
            self.what,
            self.object,
            self.leader.as_deref().unwrap_or("nobody")
        )
    }
}

/// What [`leadership`] found.
#[derive(Debug, Default)]
pub struct LeadershipReport {
    /// Lease acquisitions, in the server's order.
    pub acquisitions: Vec<(u64, String)>,
    /// Writes per replica.
    pub writes: BTreeMap<String, usize>,
    /// Writes by a replica that was not the latest to acquire the Lease.
    pub violations: Vec<Violation>,
    /// Log lines that cannot be placed (a write without a resourceVersion).
    pub unplaced: Vec<String>,
}

impl LeadershipReport {
    /// The violations a fenced controller cannot have. A replica checks its fence right
    /// before each write, but a replica frozen (SIGSTOP) between that check and sending the
    /// request sends it when it resumes, possibly after another took over: the Kubernetes
    /// API has no fencing token that could refuse it. That leaves at most one such write per
    /// reconcile in flight at the freeze (`in_flight`, the controller's concurrency), each
    /// for a different object: the next write of the same reconcile checks the fence again.
    /// Anything beyond that (two writes for one object, more writes than reconciles in
    /// flight, writes placed nowhere) is a leader acting after losing the Lease. Pure.
    pub fn unexplained(&self, in_flight: usize) -> Vec<String> {
        let mut out: Vec<String> = self.unplaced.clone();
        let mut per_replica: BTreeMap<&str, Vec<&Violation>> = BTreeMap::new();
        for v in &self.violations {
            per_replica.entry(&v.replica).or_default().push(v);
        }
        for (replica, vs) in per_replica {
            let mut objects = BTreeSet::new();
            let twice: Vec<&&Violation> =
                vs.iter().filter(|v| !objects.insert(&v.object)).collect();
            if vs.len() > in_flight || !twice.is_empty() {
                out.push(format!(
                    "{replica}: {} writes without the right to write (a Lease lost, an object moved) \
                     ({} at most can have been in flight at a freeze), {} of them a second write for \
                     the same object:\n    {}",
                    vs.len(),
                    in_flight,
                    twice.len(),
                    vs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n    ")
                ));
            }
        }
        out
    }
}

/// The log messages of the controller's writes for an object (each with the resourceVersion
/// the API server gave it and the object as `sealed_secret`).
pub const WRITES: [&str; 3] = ["created Secret", "updated Secret", "wrote status"];

/// The lines of the replicas' JSON logs (`--log-format json`) that `classify` keeps (it is
/// given the replica's label and the line, in each replica's own order), ordered by the
/// resourceVersion each logged: the resourceVersions of one API server are one increasing
/// sequence (the stand-in's counter, etcd's revision), so this replays the server's own
/// order. A kept line without a resourceVersion cannot be placed: it goes to
/// `report.unplaced`. Pure.
pub fn replay<T>(
    logs: &[(String, String)],
    report: &mut LeadershipReport,
    mut classify: impl FnMut(&str, &serde_json::Value) -> Option<T>,
) -> Vec<(u64, T)> {
    let mut events = Vec::new();
    for (replica, log) in logs {
        for line in log.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(what) = classify(replica, &v) else {
                continue;
            };
            match v["resource_version"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
            {
                Some(rv) => events.push((rv, what)),
                None => report.unplaced.push(format!(
                    "{replica}: `{}` without a resourceVersion",
                    v["msg"].as_str().unwrap_or_default()
                )),
            }
        }
    }
    events.sort_by_key(|(rv, _)| *rv);
    events
}

/// Prints the writes `report` found made without the right (`heading`: what they are) and
/// fails with `failure` when some are more than a fenced controller can have sent on
/// resuming from a freeze ([`LeadershipReport::unexplained`]), or when `report` saw no
/// acquisition at all (the proof had nothing to check).
pub fn report_violations(report: &LeadershipReport, heading: &str, failure: &str) {
    println!(
        "{heading}: {}{}",
        report.violations.len(),
        report
            .violations
            .iter()
            .map(|v| format!("\n  {v}"))
            .collect::<String>()
    );
    let unexplained = report.unexplained(crate::CONCURRENCY);
    assert!(
        unexplained.is_empty(),
        "{failure}:\n  {}",
        unexplained.join("\n  ")
    );
    assert!(
        !report.acquisitions.is_empty(),
        "nothing acquired in the logs: the proof had nothing to check"
    );
}

/// Proves "never two leaders acting at once" from the replicas' JSON logs (debug level for
/// `wrote status`). The controller logs the resourceVersion the API server gave each of its
/// writes ([`WRITES`]) and the Lease's resourceVersion when it became leader; replayed in
/// the server's order ([`replay`]), a write is a violation when the replica that made it was
/// not the last one to acquire the Lease before it, i.e. another replica had taken over and
/// this one still acted. Pure.
pub fn leadership(logs: &[(String, String)]) -> LeadershipReport {
    let mut report = LeadershipReport::default();
    let events = replay(logs, &mut report, |replica, v| {
        let msg = v["msg"].as_str().unwrap_or_default();
        let what = if msg == "became the leader" {
            Logged::Acquired
        } else if WRITES.contains(&msg) {
            Logged::Wrote(
                msg.to_owned(),
                v["sealed_secret"].as_str().unwrap_or_default().to_owned(),
            )
        } else {
            return None;
        };
        Some((replica.to_owned(), what))
    });
    let mut leader: Option<String> = None;
    for (rv, (replica, what)) in events {
        match what {
            Logged::Acquired => {
                leader = Some(replica.clone());
                report.acquisitions.push((rv, replica));
            }
            Logged::Wrote(what, object) => {
                *report.writes.entry(replica.clone()).or_default() += 1;
                if leader.as_deref() != Some(replica.as_str()) {
                    report.violations.push(Violation {
                        replica,
                        resource_version: rv,
                        what,
                        object,
                        leader: leader.clone(),
                    });
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(msg: &str, rv: u64) -> String {
        line_for(msg, rv, "ns/x")
    }

    fn line_for(msg: &str, rv: u64, object: &str) -> String {
        serde_json::json!({"time": "t", "level": "INFO", "msg": msg, "resource_version": rv.to_string(), "sealed_secret": object}).to_string()
    }

    #[test]
    fn writes_of_the_latest_acquirer_only_are_accepted() {
        let a = [
            line("became the leader", 1),
            line("created Secret", 2),
            line("wrote status", 3),
        ]
        .join("\n");
        let b = [line("became the leader", 10), line("created Secret", 11)].join("\n");
        let ok = leadership(&[("a".into(), a.clone()), ("b".into(), b.clone())]);
        assert!(ok.violations.is_empty(), "{:?}", ok.violations);
        assert_eq!(ok.acquisitions.len(), 2);
        assert_eq!(ok.writes["a"], 2);

        // A writes after B took over (a stopped leader resuming): caught.
        let late = format!("{a}\n{}", line("updated Secret", 12));
        let bad = leadership(&[("a".into(), late.clone()), ("b".into(), b.clone())]);
        assert_eq!(bad.violations.len(), 1, "{:?}", bad.violations);
        assert!(
            bad.violations[0]
                .to_string()
                .contains("a wrote at resourceVersion 12")
        );
        // One write per reconcile in flight at a freeze is explained...
        assert!(bad.unexplained(8).is_empty());
        assert_eq!(bad.unexplained(0).len(), 1);
        // ...a second write for the same object is not (it passed a fence check after
        // the takeover).
        let twice = format!("{late}\n{}", line("wrote status", 13));
        let bad = leadership(&[("a".into(), twice), ("b".into(), b.clone())]);
        assert_eq!(bad.unexplained(8).len(), 1);
        // Writes for different objects, up to the number in flight: explained.
        let spread = format!(
            "{a}\n{}\n{}",
            line_for("wrote status", 12, "ns/y"),
            line_for("wrote status", 13, "ns/z")
        );
        let r = leadership(&[("a".into(), spread), ("b".into(), b.clone())]);
        assert_eq!(r.violations.len(), 2);
        assert!(r.unexplained(2).is_empty());
        assert_eq!(r.unexplained(1).len(), 1);

        // A write before anybody led: caught.
        let early = leadership(&[("b".into(), format!("{}\n{b}", line("wrote status", 5)))]);
        assert_eq!(early.violations.len(), 1);

        // A write line without a resourceVersion cannot be placed: reported.
        let unplaced = leadership(&[(
            "a".into(),
            r#"{"msg":"created Secret","sealed_secret":"ns/x"}"#.into(),
        )]);
        assert_eq!(unplaced.unexplained(8).len(), 1);
    }

    #[test]
    fn key_sets_lose_nothing_and_gain_exactly_the_expected() {
        let k = |n: &str| (n.to_owned(), ("uid".to_owned(), BTreeMap::new()));
        let before: KeySet = [k("a")].into();
        assert!(keys_kept(&before, &before, 0).is_ok());
        assert!(keys_kept(&before, &[k("a"), k("b")].into(), 1).is_ok());
        assert!(keys_kept(&before, &[k("a"), k("b")].into(), 0).is_err());
        assert!(keys_kept(&before, &[k("b")].into(), 1).is_err());
        assert!(keys_kept(&KeySet::new(), &[k("b"), k("c")].into(), 1).is_err());
    }
}
