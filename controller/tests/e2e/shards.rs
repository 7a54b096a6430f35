//! Active-active shards (`--sharding`, docs/design.md "Shards") on one control plane: three
//! members share the SealedSecrets of several namespaces, each object is reconciled by the
//! member its shard label names and no other, one key is generated however many members
//! run; then a member stops (SIGTERM) and another joins: the objects move (directly away from
//! the stopped one, through the drain handshake towards the new one) and every Secret is
//! still produced, by its new owner; a member frozen past its Lease (SIGSTOP) loses its
//! objects and, resumed, joins again under a new identity without writing as the old one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use sealed_secrets_crypto::Certificate;
use serde_json::json;

use crate::common::*;

const RING: &str = "sealed-secrets-controller";
const SHARD_LABEL: &str = "shard.alpha.sharding.timebertt.dev/sealed-secrets-controller";
const DRAIN_LABEL: &str = "drain.alpha.sharding.timebertt.dev/sealed-secrets-controller";

/// A member process; its identity is `<POD_NAME>-<8 hex digits>`.
fn member(env: &Env, pod: &str) -> Controller {
    let c = env.spawn_controller_env(
        &[
            "--leader-election=true",
            "--leader-election-lease-duration=4s",
            "--sharding",
        ],
        &[("POD_NAME", pod)],
    );
    if let Err(e) = harness::cluster::wait_for_port(&c.http, TIMEOUT) {
        panic!("member {pod} did not listen: {e}\n{}", c.process.log());
    }
    c
}

/// The member Leases of the ring whose holder is their name (timebertt's "ready" shards),
/// by name.
async fn live_leases(env: &Env) -> BTreeSet<String> {
    let api: Api<Lease> = Api::namespaced(env.client.clone(), env.ctrl());
    api.list(&ListParams::default().labels(&format!(
        "alpha.sharding.timebertt.dev/controllerring={RING}"
    )))
    .await
    .unwrap()
    .items
    .into_iter()
    .filter(|l| {
        let holder = l.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
        holder.is_some() && holder == l.metadata.name.as_deref()
    })
    .filter_map(|l| l.metadata.name)
    .collect()
}

fn identity_of<'a>(members: &'a BTreeSet<String>, pod: &str) -> &'a str {
    members
        .iter()
        .find(|m| m.starts_with(&format!("{pod}-")))
        .unwrap_or_else(|| panic!("no member Lease of {pod} in {members:?}"))
}

/// Per object (namespace, name): its shard label, when it has no drain label.
async fn owners(env: &Env, namespaces: &[String]) -> BTreeMap<(String, String), Option<String>> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        for ss in env.sealed(ns).list(&ListParams::default()).await.unwrap() {
            let labels = ss.metadata.labels.clone().unwrap_or_default();
            let owner = labels
                .get(SHARD_LABEL)
                .filter(|_| !labels.contains_key(DRAIN_LABEL))
                .cloned();
            out.insert((ns.clone(), ss.metadata.name.clone().unwrap()), owner);
        }
    }
    out
}

/// Per object: the members (Event reporting instances) that unsealed it.
async fn unsealed_by(
    env: &Env,
    namespaces: &[String],
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<_, BTreeSet<String>> = BTreeMap::new();
    for ns in namespaces {
        let api: Api<Event> = Api::namespaced(env.client.clone(), ns);
        for e in api.list(&ListParams::default()).await.unwrap() {
            if e.reason.as_deref() != Some("Unsealed")
                || e.involved_object.kind.as_deref() != Some("SealedSecret")
            {
                continue;
            }
            let name = e.involved_object.name.clone().unwrap_or_default();
            out.entry((ns.clone(), name))
                .or_default()
                .insert(e.reporting_instance.clone().unwrap_or_default());
        }
    }
    out
}

/// Every object's Secret holds its value.
async fn all_secrets_correct(env: &Env, objects: &[(String, String)]) {
    for (ns, name) in objects {
        let want = format!("value-of-{ns}-{name}");
        env.wait_secret_where(
            ns,
            name,
            &format!("Secret {ns}/{name} with its value"),
            |s| data_of(s, "v").as_deref() == Some(want.as_str()),
        )
        .await;
    }
}

/// Deletes every object's Secret and waits for each to be produced again, with its value:
/// the Secret watch of every member sees the deletion, but only the object's owner has the
/// object in its cache, so the owner is the one that writes it (the Events tell).
async fn recreate_all(env: &Env, objects: &[(String, String)]) {
    for (ns, name) in objects {
        env.secrets(ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    all_secrets_correct(env, objects).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_the_objects_and_rebalance_when_one_leaves_and_one_joins() {
    let env = Env::new().await;
    let (a, b, c) = (
        member(&env, "member-a"),
        member(&env, "member-b"),
        member(&env, "member-c"),
    );
    let pem = eventually("a certificate", TIMEOUT, || async { a.cert().await }).await;
    let key = Certificate::from_pem(pem.as_bytes())
        .unwrap()
        .public_key()
        .clone();
    // Objects are created once the sharder counts all three members, so that each is
    // placed once (a member joining later would take some over, through a drain).
    let leader = eventually("the sharder to count 3 members", TIMEOUT, || async {
        for m in [&a, &b, &c] {
            if m.metric("sealed_secrets_controller_leader").await == 1.0
                && m.metric("sealed_secrets_controller_shard_members").await == 3.0
            {
                return Some(m.pid());
            }
        }
        None
    })
    .await;

    let extra = [
        env.cluster.namespace("shard").await.unwrap(),
        env.cluster.namespace("shard").await.unwrap(),
    ];
    let namespaces: Vec<String> = std::iter::once(env.ns().to_owned())
        .chain(extra.iter().map(|n| n.name().to_owned()))
        .collect();
    let mut objects = Vec::new();
    for ns in &namespaces {
        for i in 0..12 {
            let name = format!("s{i}");
            let value = format!("value-of-{ns}-{name}");
            env.create_ss(&seal(ns, &name, &[("v", &value)], &key, json!({})))
                .await;
            objects.push((ns.clone(), name));
        }
    }
    all_secrets_correct(&env, &objects).await;

    // Every object is labelled for a live member, all three have some, and each was
    // unsealed by its owner and no other member.
    let first = live_leases(&env).await;
    assert_eq!(first.len(), 3, "{first:?}");
    let placed = owners(&env, &namespaces).await;
    let mut per_member: BTreeMap<String, usize> = BTreeMap::new();
    for (object, owner) in &placed {
        let owner = owner
            .clone()
            .unwrap_or_else(|| panic!("{object:?} has no shard"));
        assert!(
            first.contains(&owner),
            "{object:?} on {owner}, not a member"
        );
        *per_member.entry(owner).or_default() += 1;
    }
    assert_eq!(
        per_member.len(),
        3,
        "every member owns objects: {per_member:?}"
    );
    let reporters = eventually("an Unsealed Event per object", TIMEOUT, || async {
        let r = unsealed_by(&env, &namespaces).await;
        (r.len() == objects.len()).then_some(r)
    })
    .await;
    for (object, by) in &reporters {
        let owner = placed[object].clone().unwrap();
        assert_eq!(
            by,
            &BTreeSet::from([owner]),
            "{object:?} unsealed by {by:?}"
        );
    }
    assert_eq!(env.key_secrets().await.len(), 1, "one key, generated once");

    // member-b stops (and gives its Lease up), member-d joins.
    let gone = identity_of(&first, "member-b").to_owned();
    let stopped_leader = b.pid() == leader;
    b.signal("TERM");
    let d = member(&env, "member-d");
    let now = eventually("member-d's Lease and member-b's gone", TIMEOUT, || async {
        let l = live_leases(&env).await;
        (l.len() == 3 && !l.contains(&gone)).then_some(l)
    })
    .await;
    let joined = identity_of(&now, "member-d").to_owned();
    let moved = eventually(
        "every object on a live member, some on member-d",
        TIMEOUT,
        || async {
            let o = owners(&env, &namespaces).await;
            let all_live = o
                .values()
                .all(|m| m.as_ref().is_some_and(|m| now.contains(m)));
            (all_live && o.values().any(|m| m.as_deref() == Some(joined.as_str()))).then_some(o)
        },
    )
    .await;

    // Some objects went to member-d from members that stayed: only the drain handshake
    // moves those.
    let drained = moved
        .iter()
        .filter(|(o, m)| {
            m.as_deref() == Some(joined.as_str()) && placed[*o].as_deref() != Some(gone.as_str())
        })
        .count();
    assert!(
        drained > 0,
        "no object moved from a live member to member-d: {moved:?}"
    );

    // Every Secret is produced again by its object's new owner.
    recreate_all(&env, &objects).await;
    let after = unsealed_by(&env, &namespaces).await;
    for (object, by) in &after {
        let (before, owner) = (
            placed[object].clone().unwrap(),
            moved[object].clone().unwrap(),
        );
        assert!(
            by.contains(&owner),
            "{object:?} not recreated by its owner {owner}: {by:?}"
        );
        assert!(
            by.iter().all(|r| *r == before || *r == owner),
            "{object:?} unsealed by {by:?}, owners {before} then {owner}"
        );
    }
    assert_eq!(
        env.key_secrets().await.len(),
        1,
        "one key, whichever member leads (the stopped one led: {stopped_leader})"
    );

    // A member frozen past its Lease (SIGSTOP): its objects move directly to the others;
    // resumed (SIGCONT), its fence stays closed, it gives its Lease up and joins again under
    // a new identity, and never writes (no Event) as the old one.
    let mut followers = Vec::new();
    for (m, pod) in [(&a, "member-a"), (&c, "member-c"), (&d, "member-d")] {
        if m.metric("sealed_secrets_controller_leader").await == 0.0 {
            followers.push((m, pod));
        }
    }
    let (frozen, pod) = followers[0];
    let old = identity_of(&live_leases(&env).await, pod).to_owned();
    let reported = |by: BTreeMap<(String, String), BTreeSet<String>>| {
        by.values().filter(|r| r.contains(&old)).count()
    };
    let before_freeze = reported(unsealed_by(&env, &namespaces).await);
    frozen.signal("STOP");
    eventually("the frozen member's objects moved", TIMEOUT, || async {
        let o = owners(&env, &namespaces).await;
        o.values()
            .all(|m| m.as_ref().is_some_and(|m| *m != old))
            .then_some(())
    })
    .await;
    frozen.signal("CONT");
    eventually(
        "the resumed member back under a new identity",
        TIMEOUT,
        || async {
            let l = live_leases(&env).await;
            let prefix = format!("{pod}-");
            (!l.contains(&old) && l.iter().any(|m| m.starts_with(&prefix))).then_some(())
        },
    )
    .await;
    recreate_all(&env, &objects).await;
    assert_eq!(
        reported(unsealed_by(&env, &namespaces).await),
        before_freeze,
        "the frozen member wrote as {old} after it resumed"
    );
    assert_eq!(env.key_secrets().await.len(), 1);
    drop((a, c, d));
}
