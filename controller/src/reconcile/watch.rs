//! The watch/queue wiring: metadata-only SealedSecret and Secret watches and key changes
//! feed the reconcile queue ([`super::runner`]), which runs [`super::reconcile_cached`].
//!
//! The SealedSecret watch asks the API server for metadata only, so encrypted values never
//! reach the controller through it, and its cache ([`super::cache`]) keeps only the object's
//! namespace and name and a hash of its uid and generation: memory per SealedSecret stays
//! about a hundred bytes whatever its size. Each reconcile reads the whole object and drops it
//! when done (docs/design.md, "What the controller keeps"). Reconcile requests name objects
//! by namespace and name only, so a cold start's queue of every object costs little more
//! than the names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

use super::cache::{self, Cached, WatchCache};
use super::context::Context;
use super::decide::{cached_metadata, recreate_target};
use super::deleted::on_sealed_secret_deleted;
use super::initial_list;
use super::lean_meta::LeanMeta;
use super::queue::ObjectKey;
use super::warm::{FirstSecretList, in_sync_at_start};

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;

/// One source of reconcile requests.
type QueueStream = futures::stream::BoxStream<'static, Result<ObjectKey, watcher::Error>>;

/// Objects per page of the SealedSecret watch's lists where the API server does not stream
/// them ([`initial_list`]; kube's default is 500): a page is held whole while it is decoded,
/// and a tenant can make each object's metadata large, so smaller pages bound that peak, for
/// a few more requests at start-up.
const LIST_PAGE_SIZE: u32 = 100;

/// Objects per page of the Secret watch's lists. It keeps no cache, so a page is all it
/// holds, and its first list is on the path of every restart: at 50,000 Secrets each page
/// costs the API server 15-20 ms beyond its objects (pages of 500: about 2.8 s in all). Its
/// first list is not streamed: at 20,000 the API server took 2.5 s to stream their
/// metadata, about twice the cost of pages.
const SECRET_PAGE_SIZE: u32 = 2000;

/// The reconcile request for `ss`: its namespace and name.
fn request(ss: &Cached) -> ObjectKey {
    ObjectKey {
        namespace: Arc::from(ss.metadata.namespace.as_deref().unwrap_or_default()),
        name: Box::from(ss.metadata.name.as_deref().unwrap_or_default()),
    }
}

/// Runs the reconcile loop for one namespace (`None`: all namespaces) until `stop` resolves
/// (leadership lost, shutdown): then no new reconcile starts and the running ones finish
/// ([`super::runner::run`] drains when its requests end).
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client = ctx.client.clone();
    let ss_api: Api<Cached> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut wc = watcher::Config::default();
    if !ctx.settings.label_selector.is_empty() {
        wc = wc.labels(&ctx.settings.label_selector);
    }
    let mut queue: Vec<QueueStream> = Vec::new();

    // The Secret watch reports deletions; its first list also gives the start-up check the
    // metadata of the Secrets ([`super::warm`]).
    let first_secrets = if ctx.settings.skip_recreate {
        None
    } else {
        // Decoded without managedFields: its pages are held whole ([`super::lean_meta`]).
        let secret_api: Api<LeanMeta<Secret>> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (mut first, rx) = FirstSecretList::new();
        // A shard member starts under a new identity with no object assigned yet: nothing
        // for the start-up check, so the Secrets' metadata is not collected for it.
        let warm = ctx.settings.shard.is_none();
        let seen_ctx = ctx.clone();
        let deleted = watcher(secret_api, wc.clone().page_size(SECRET_PAGE_SIZE))
            .default_backoff()
            .inspect_ok(move |ev| {
                match ev {
                    watcher::Event::Apply(m)
                    | watcher::Event::InitApply(m)
                    | watcher::Event::Delete(m) => seen_ctx
                        .secrets_seen
                        .observe(m.metadata.resource_version.as_deref()),
                    watcher::Event::Init | watcher::Event::InitDone => {}
                }
                if warm {
                    first.observe(ev);
                }
            })
            .try_filter_map(|ev| async move {
                Ok(match ev {
                    watcher::Event::Delete(meta) => deleted_secret_target(&meta),
                    _ => None,
                })
            });
        queue.push(deleted.boxed());
        warm.then_some(rx)
    };

    // The start-up check runs beside the SealedSecret watch's first list, which queues
    // nothing: once both are done, the objects listed and not found in sync are queued.
    // With `--skip-recreate` there is no Secret watch to take the Secrets' metadata from, and
    // every object is reconciled at start, as before.
    let (cache, mut writer) = cache::new(first_secrets.is_some());
    if let Some(rx) = first_secrets {
        let (ctx, namespace, cache) = (ctx.clone(), namespace.clone(), cache.clone());
        let after_check = async move {
            let in_sync = match rx.await {
                Ok(secrets) => {
                    let in_sync = in_sync_at_start(&ctx, namespace.as_deref(), secrets).await;
                    // The list pages and the Secrets' metadata are freed: give them back.
                    crate::allocator::release_freed();
                    in_sync
                }
                // The Secret watch ended: the reconcile loop is stopping.
                Err(_) => HashMap::new(),
            };
            queue_after_check(&cache, in_sync).await
        };
        queue.push(futures::stream::once(after_check).flatten().boxed());
    }
    let delete_ctx = ctx.clone();
    // A shard member watches its own objects only, keeps their drain label and queues
    // objects whose drain was asked for whatever their spec ([`super::sharded`]).
    let ss_selector = ctx.settings.sealed_secret_selector();
    let ss_wc = match ss_selector.is_empty() {
        true => wc.clone(),
        false => wc.clone().labels(&ss_selector),
    };
    // Its first list as a stream where the API server serves one ([`super::initial_list`]).
    let ss_wc = initial_list::probe(&ss_api).await.apply(ss_wc);
    let member = ctx.settings.shard.clone();
    let drained = member.clone();
    let sealed = watcher(ss_api, ss_wc.page_size(LIST_PAGE_SIZE))
        .default_backoff()
        .modify(move |m| {
            let meta = std::mem::take(&mut m.metadata);
            m.metadata = super::sharded::cached(member.as_ref(), meta, cached_metadata);
        })
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(ss) = ev {
                if delete_ctx.settings.shard.is_some() {
                    super::sharded::on_deleted(&delete_ctx, &ss.metadata);
                } else {
                    on_sealed_secret_deleted(&delete_ctx, &ss.metadata);
                }
            }
        })
        .try_filter_map(move |ev| {
            let queued = writer.observe(&ev).or_else(|| match &ev {
                watcher::Event::Apply(ss) | watcher::Event::InitApply(ss)
                    if super::sharded::drain_asked(drained.as_ref(), &ss.metadata) =>
                {
                    Some(request(ss))
                }
                _ => None,
            });
            futures::future::ready(Ok(queued))
        });
    queue.insert(0, sealed.boxed());

    // When keys change (a key added by the watcher, say), SealedSecrets that could not be
    // decrypted get another chance; the digest makes this cheap for the others.
    let keys_cache = cache.clone();
    let key_changes = tokio_stream_from_watch(ctx.keys.subscribe())
        .flat_map(move |()| futures::stream::iter(keys_cache.keys()).map(Ok));
    queue.push(key_changes.boxed());

    // Keeping a slot spare for a quiet namespace only helps when there can be several.
    let spare = namespace.is_none();
    super::runner::run(
        ctx.clone(),
        cache,
        futures::stream::select_all(queue).take_until(stop),
        spare,
    )
    .await;
}

/// The reconcile requests of the start-up check: once the SealedSecret watch's first list is
/// in the cache, every object there but those found in sync (`in_sync`: the "spec changed"
/// filter's hashes of the versions the check saw). An object changed since its check has
/// other hashes and is queued; one changed after the list is queued by the watch too (the
/// queue merges the two requests); one deleted meanwhile is not in the cache.
async fn queue_after_check(
    cache: &WatchCache,
    in_sync: HashMap<u64, u64>,
) -> impl Stream<Item = Result<ObjectKey, watcher::Error>> + Send + use<> {
    // `false` means the watch is gone (the loop is stopping): the cache holds what it holds.
    cache.ready().await;
    futures::stream::iter(cache.keys_but(&in_sync)).map(Ok)
}

fn deleted_secret_target(meta: &LeanMeta<Secret>) -> Option<ObjectKey> {
    recreate_target(&meta.metadata).map(|(ns, name)| ObjectKey {
        namespace: Arc::from(ns),
        name: Box::from(name),
    })
}

/// A stream that yields once per change of a `watch` channel (skipping the initial value).
fn tokio_stream_from_watch(rx: tokio::sync::watch::Receiver<u64>) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        // Coalesce bursts of key changes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        rx.borrow_and_update();
        Some(((), rx))
    })
}
