//! The reconcile loop around the queue ([`super::run`]), without an API server: the leader's
//! fence is closed, so each reconcile returns at once asking to be requeued in 2 s (what a
//! replica not sure to lead does) and never calls the client.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMetaExt as _;
use kube::runtime::watcher;

use super::{Cached, ObjectKey, run};
use crate::events::Recorder;
use crate::keys::{KeyArgs, Keys};
use crate::metrics::Metrics;
use crate::reconcile::{Context, ReconcileArgs};

fn context() -> Arc<Context> {
    // Never called: every request fails.
    let svc = tower::service_fn(|_req: http::Request<kube::client::Body>| async {
        Err::<http::Response<kube::client::Body>, _>(std::io::Error::other("no API server here"))
    });
    let client = kube::Client::new(svc, "default");
    let metrics = Arc::new(Metrics::new());
    let keys = Keys::new(
        KeyArgs::parse_for_test(&["--key-size=2048"]),
        "kube-system".into(),
        metrics.clone(),
    );
    Context::new(
        client.clone(),
        keys,
        metrics,
        Recorder::new(client, "test".into()),
        ReconcileArgs::for_tests(4, 0),
        crate::leader::Fence::elected(),
    )
}

fn mk_cached(ns: &str, name: &str) -> Cached {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    }
    .into_request_partial()
}

fn request(ns: &str, name: &str) -> Result<ObjectKey, watcher::Error> {
    Ok(ObjectKey {
        namespace: Arc::from(ns),
        name: Box::from(name),
    })
}

/// Reconciles started and ended so far.
fn counts(ctx: &Context) -> (u64, u64) {
    let text = ctx.metrics.encode();
    let count = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        count("sealed_secrets_controller_reconcile_queue_wait_seconds_count"),
        count("sealed_secrets_controller_reconcile_duration_seconds_count"),
    )
}

/// Polls until the counts are `want` (the loop runs on the same runtime).
async fn wait_counts(ctx: &Context, want: (u64, u64)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counts(ctx) != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts {:?}, want {want:?}",
            counts(ctx)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn waits_for_the_cache_skips_gone_objects_requeues_and_stops_when_requests_end() {
    let ctx = context();
    let (cache, mut writer) = crate::reconcile::cache::new(false);
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let runner = tokio::spawn(run(ctx.clone(), cache, rx, true));
    for (ns, name) in [("a", "one"), ("b", "two"), ("a", "gone"), ("a", "one")] {
        tx.unbounded_send(request(ns, name)).unwrap();
    }
    // One thread: each yield lets the loop take in what was sent.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(counts(&ctx), (0, 0), "started before the cache was filled");

    writer.observe(&watcher::Event::Init);
    for obj in [mk_cached("a", "one"), mk_cached("b", "two")] {
        writer.observe(&watcher::Event::InitApply(obj));
    }
    writer.observe(&watcher::Event::InitDone);
    // `one` requested twice: once; `gone` is not in the cache: skipped.
    wait_counts(&ctx, (2, 2)).await;
    let first = tokio::time::Instant::now();

    // Both asked to be requeued in 2 s.
    wait_counts(&ctx, (4, 4)).await;
    assert!(
        first.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        first.elapsed()
    );

    // The requests end (leadership lost, shutdown): the loop returns, its requeues dropped.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(1), runner)
        .await
        .expect("the loop ends with its requests")
        .unwrap();
    assert_eq!(counts(&ctx), (4, 4));
}
