//! The stand-in at scale: how fast it serves a controller's traffic when it
//! holds 10,000 SealedSecrets and their Secrets. A benchmark, not a test of speed: it prints
//! figures and asserts only that every write was seen by every watcher.
//!
//! Ignored by default (it takes minutes in a debug build); run it with
//!
//! ```text
//! cargo test -p sealed-secrets-benches --release --test standin_scale -- --ignored --nocapture
//! ```
//!
//! `STANDIN_SCALE_OBJECTS` (default 10000) sets the number of SealedSecrets seeded,
//! `STANDIN_SCALE_RECONCILES` (default 2000) the number of reconciles measured on top of them.
//!
//! The stand-in runs in this process on its own runtime, whose threads are named
//! `kube-standin*`; "stand-in CPU" sums those threads' CPU time from `/proc/self/task`, so it
//! excludes the client side (kube-rs serialising and parsing).

// Test helpers outside #[test] fns fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use harness::cluster::Cluster;
use harness::standin::Config;
use k8s_openapi::api::core::v1::{Event, ObjectReference, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;

#[path = "../tests/support/sealedsecret.rs"]
mod sealedsecret;
use sealedsecret::{CRD_YAML, SealedSecret, SealedSecretSpec};
const NAMESPACES: usize = 10;
const CONCURRENCY: usize = 16;
/// Watchers that only count events, on top of the controller's two: the fan-out.
const EXTRA_WATCHERS: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of this process's threads whose name starts with `kube-standin`.
fn standin_cpu() -> f64 {
    // USER_HZ is 100 on every Linux this runs on.
    const TICKS: f64 = 100.0;
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("kube-standin") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += ticks(11) + ticks(12);
    }
    total as f64 / TICKS
}

/// Wall time and stand-in CPU of one phase.
struct Phase {
    started: Instant,
    cpu: f64,
}

impl Phase {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            cpu: standin_cpu(),
        }
    }

    /// Prints `what`, the wall time, the rate of `ops` and the stand-in CPU per op.
    fn report(self, what: &str, ops: usize, unit: &str) {
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = standin_cpu() - self.cpu;
        println!(
            "{what:<46} {ops:>6} {unit:<9} {wall:>8.2} s  {:>9.0} {unit}/s  stand-in CPU {cpu:>7.2} s ({:.3} ms/{unit})",
            ops as f64 / wall.max(1e-9),
            cpu * 1000.0 / ops.max(1) as f64,
        );
    }
}

fn ss(name: &str) -> SealedSecret {
    let mut s = SealedSecret::new(
        name,
        SealedSecretSpec {
            encrypted_data: (0..3)
                .map(|i| {
                    (
                        format!("k{i}"),
                        "QWdCeTNpNE9KU1dLK1BpVHlTWVpaQQ==".repeat(20),
                    )
                })
                .collect(),
        },
    );
    s.metadata.labels = Some(BTreeMap::from([("app".into(), "bench".into())]));
    s
}

/// What the controller does for one new SealedSecret: look for its Secret, create it
/// (owned by the SealedSecret), write the status, record an Event. Four requests, three
/// writes (five and four with the SealedSecret's own create).
async fn reconcile(client: Client, ns: String, owner: SealedSecret) {
    let name = owner.name_any();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    assert!(secrets.get_opt(&name).await.unwrap().is_none());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "bitnami.com/v1alpha1".into(),
                kind: "SealedSecret".into(),
                name: name.clone(),
                uid: owner.uid().unwrap(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        data: Some(
            (0..3)
                .map(|i| {
                    (
                        format!("k{i}"),
                        k8s_openapi::ByteString(b"value".repeat(20)),
                    )
                })
                .collect(),
        ),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    sealed
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"conditions": [{"type": "Synced", "status": "True"}]}}),
            ),
        )
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(client, &ns);
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            kind: Some("SealedSecret".into()),
            name: Some(name),
            namespace: Some(ns),
            ..ObjectReference::default()
        },
        reason: Some("Unsealed".into()),
        message: Some("SealedSecret unsealed successfully".into()),
        type_: Some("Normal".into()),
        ..Event::default()
    };
    events.create(&PostParams::default(), &event).await.unwrap();
}

/// Creates SealedSecrets `range` (spread over the namespaces) and reconciles each.
async fn create_and_reconcile(client: &Client, range: std::ops::Range<usize>) {
    futures::stream::iter(range)
        .for_each_concurrent(CONCURRENCY, |i| {
            let client = client.clone();
            async move {
                let ns = format!("scale-{}", i % NAMESPACES);
                let api: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
                let created = api
                    .create(&PostParams::default(), &ss(&format!("s{i:06}")))
                    .await
                    .unwrap();
                reconcile(client, ns, created).await;
            }
        })
        .await;
}

/// A raw watch on `api` from `rv` counting ADDED/MODIFIED events until dropped. A stream the
/// server ends (a watcher too slow for its buffer is cut) is resumed from the last version
/// seen, as client-go and kube-rs do; 410 Gone (history too short) fails the benchmark.
fn count_watch<K>(api: Api<K>, rv: String) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let task = tokio::spawn(async move {
        let mut rv = rv;
        loop {
            let stream = api
                .watch(&WatchParams::default().timeout(3600), &rv)
                .await
                .unwrap();
            futures::pin_mut!(stream);
            while let Some(ev) = stream.try_next().await.unwrap() {
                match ev {
                    kube::api::WatchEvent::Added(o) | kube::api::WatchEvent::Modified(o) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        rv = o.resource_version().unwrap_or_default();
                    }
                    kube::api::WatchEvent::Deleted(o) => {
                        rv = o.resource_version().unwrap_or_default();
                    }
                    kube::api::WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                    kube::api::WatchEvent::Error(e) => panic!("watch from {rv} failed: {e:?}"),
                }
            }
        }
    });
    (seen, task)
}

async fn wait_count(what: &str, counter: &AtomicUsize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while counter.load(Ordering::Relaxed) < want {
        assert!(
            Instant::now() < deadline,
            "{what}: saw {} of {want} events",
            counter.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run with --ignored --nocapture (see the module docs)"]
async fn scale_10k_objects() {
    let objects = env_usize("STANDIN_SCALE_OBJECTS", 10_000);
    let reconciles = env_usize("STANDIN_SCALE_RECONCILES", 2_000);
    let cluster = Cluster::standin(Config::default()).unwrap();
    let client = cluster.client().await.unwrap();
    let crd: CustomResourceDefinition = serde_saphyr::from_str(CRD_YAML).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    for n in 0..NAMESPACES {
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("scale-{n}")}})).unwrap();
        Api::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let all_ss: Api<SealedSecret> = Api::all(client.clone());
    let all_secrets: Api<Secret> = Api::all(client.clone());
    // The controller's two watches (SealedSecrets, Secrets), plus idle ones on SealedSecrets.
    let (ss_seen, t1) = count_watch(all_ss.clone(), "1".into());
    let (secret_seen, t2) = count_watch(all_secrets.clone(), "1".into());
    let extra: Vec<_> = (0..EXTRA_WATCHERS)
        .map(|_| count_watch(all_ss.clone(), "1".into()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    println!(
        "\nkube-standin at scale: {objects} SealedSecrets in {NAMESPACES} namespaces, \
         {CONCURRENCY} concurrent clients, 2 + {EXTRA_WATCHERS} watchers"
    );
    // The seed in steps of 1,000, to show how the cost per object grows with the store.
    let p = Phase::start();
    let mut done = 0;
    while done < objects {
        let step = 1000.min(objects - done);
        let q = Phase::start();
        create_and_reconcile(&client, done..done + step).await;
        done += step;
        q.report(&format!("  seed step up to {done}"), step, "objects");
    }
    p.report(
        "seed: create + reconcile (4 writes, 1 read)",
        objects,
        "objects",
    );

    let p = Phase::start();
    create_and_reconcile(&client, objects..objects + reconciles).await;
    p.report("at scale: create + reconcile", reconciles * 5, "requests");
    let total = objects + reconciles;
    // Every SealedSecret: ADDED then MODIFIED (status); every Secret: ADDED.
    let p = Phase::start();
    wait_count("controller SealedSecret watch", &ss_seen, 2 * total).await;
    wait_count("controller Secret watch", &secret_seen, total).await;
    for (seen, _) in &extra {
        wait_count("extra watch", seen, 2 * total).await;
    }
    p.report("watch lag after the last write", 1, "drain");

    let p = Phase::start();
    for _ in 0..5 {
        let l = all_ss.list(&ListParams::default()).await.unwrap();
        assert_eq!(l.items.len(), total);
    }
    p.report("list all SealedSecrets", 5, "lists");
    let p = Phase::start();
    let ns0: Api<SealedSecret> = Api::namespaced(client.clone(), "scale-0");
    for _ in 0..50 {
        let l = ns0.list(&ListParams::default()).await.unwrap();
        assert_eq!(l.items.len(), total.div_ceil(NAMESPACES));
    }
    p.report("list SealedSecrets of one namespace", 50, "lists");
    let p = Phase::start();
    let mut pages = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let l = all_secrets.list(&params).await.unwrap();
        pages += 1;
        match l.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => break,
        }
    }
    p.report("list all Secrets in pages of 500", pages, "pages");
    let p = Phase::start();
    let (initial, t3) = count_watch(all_ss.clone(), "0".into());
    wait_count("watch from 0", &initial, total).await;
    p.report(
        "watch from resourceVersion 0 (initial events)",
        total,
        "events",
    );
    t3.abort();

    // Fan-out: status patches seen by every SealedSecret watcher.
    let updates = 1000.min(total);
    let before: Vec<usize> = extra
        .iter()
        .map(|(s, _)| s.load(Ordering::Relaxed))
        .collect();
    let p = Phase::start();
    futures::stream::iter(0..updates)
        .for_each_concurrent(CONCURRENCY, |i| {
            let client = client.clone();
            async move {
                let api: Api<SealedSecret> =
                    Api::namespaced(client, &format!("scale-{}", i % NAMESPACES));
                api.patch_status(
                    &format!("s{i:06}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"observedGeneration": 1}})),
                )
                .await
                .unwrap();
            }
        })
        .await;
    for ((seen, _), b) in extra.iter().zip(before) {
        wait_count("fan-out", seen, b + updates).await;
    }
    p.report(
        &format!("status patches seen by {} watchers", EXTRA_WATCHERS + 1),
        updates,
        "updates",
    );
    for t in [t1, t2]
        .into_iter()
        .chain(extra.into_iter().map(|(_, t)| t))
    {
        t.abort();
    }
}
