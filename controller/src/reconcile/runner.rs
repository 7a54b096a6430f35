//! The reconcile loop: takes reconcile requests from the watches, asks the [`FairQueue`]
//! which to start, runs up to `--concurrency` reconciles at once, and queues their requeues.
//! It replaces kube-runtime's `applier`, whose queue is one FIFO by deadline for all
//! namespaces (docs/design.md, "Reconcile queue"), and keeps what the applier did around it:
//! nothing starts before the watch cache has its first list, an object gone from the cache
//! is skipped (the watch reports its deletion), and when the requests end (leadership lost,
//! shutdown) no new reconcile starts and the running ones finish.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt as _};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMetaExt as _;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::apply::{retry_policy, run_cached};
use super::cache::{Cached, WatchCache};
use super::context::Context;
use super::queue::RunAgain;
use super::queue::{FairQueue, ObjectKey};

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;

/// What a reconcile starts from: the object's namespace and name, and the resourceVersion
/// its watch last reported (`seen`, 0: unknown), which it reads the object no older than
/// ([`super::reads`]).
fn cached(k: &ObjectKey, seen: u64) -> Cached {
    ObjectMeta {
        name: Some(k.name.to_string()),
        namespace: (!k.namespace.is_empty()).then(|| k.namespace.to_string()),
        resource_version: (seen != 0).then(|| seen.to_string()),
        ..ObjectMeta::default()
    }
    .into_request_partial()
}

/// One reconcile and its retry policy: when to run the object again.
async fn reconcile_one(obj: Arc<Cached>, ctx: Arc<Context>) -> RunAgain {
    let started = Instant::now();
    let again = match run_cached(obj.clone(), ctx.clone()).await {
        Ok(again) => again,
        Err(e) => retry_policy(obj.as_ref(), &e, &ctx),
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    again
}

/// How long after another namespace's prompt start a busy namespace runs no more reconciles
/// at once than decryptions may run ([`FairQueue::crowded`]): long enough to cover a quiet
/// namespace that creates every few seconds. While it lasts the busy namespace may drain
/// slower; measured, its drains stayed within the spread of runs without the limit in three
/// runs of five (docs/design.md, "Reconcile queue").
const CROWDED_WINDOW: Duration = Duration::from_secs(10);

/// Runs reconciles of the objects `requests` names until it ends, then lets the running
/// ones finish. `spare`: keep a slot for a namespace that runs nothing ([`FairQueue::new`]).
pub(super) async fn run(
    ctx: Arc<Context>,
    cache: WatchCache,
    requests: impl Stream<Item = Result<ObjectKey, watcher::Error>> + Send,
    spare: bool,
) {
    let mut queue = FairQueue::new(usize::from(ctx.settings.concurrency), spare).crowded(
        super::cpugate::permits(ctx.settings.unseal_concurrency),
        CROWDED_WINDOW,
    );
    let mut running = FuturesUnordered::new();
    let mut requests = pin!(requests);
    let mut open = true;
    let cache_ready = {
        let cache = cache.clone();
        async move { cache.ready().await }
    };
    let mut cache_ready = pin!(cache_ready);
    // Until the first list is in the cache, requests are queued but nothing starts (as the
    // applier held its runner).
    let mut started = false;
    loop {
        if started && open {
            let now = Instant::now();
            while let Some(s) = queue.pop_ready(now) {
                let Some(seen) = cache.last_seen(&s.key) else {
                    queue.done(&s.key);
                    continue;
                };
                let obj = cached(&s.key, seen);
                let obj_ref = ObjectRef::from_obj(&obj);
                ctx.metrics
                    .reconcile_queue_wait
                    .observe(s.waited.as_secs_f64());
                let span = tracing::info_span!("reconciling object", "object.ref" = %obj_ref);
                let fut = reconcile_one(Arc::new(obj), ctx.clone()).instrument(span);
                let key = s.key;
                running.push(async move { (key, fut.await) });
            }
        }
        if !open && running.is_empty() {
            return;
        }
        let deadline = queue.next_deadline();
        tokio::select! {
            request = requests.next(), if open => match request {
                Some(Ok(key)) => queue.push(key, Instant::now()),
                Some(Err(e)) => tracing::warn!(error = %e, "controller stream error"),
                None => open = false,
            },
            Some((key, again)) = running.next(), if !running.is_empty() => {
                queue.done(&key);
                if let Some(after) = again {
                    queue.requeue_at(key, Instant::now() + after);
                }
            }
            () = sleep_until(deadline), if open && started && deadline.is_some() => {}
            ready = &mut cache_ready, if !started => {
                if !ready {
                    tracing::warn!("the watch cache will not fill: its writer is gone");
                }
                started = true;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
