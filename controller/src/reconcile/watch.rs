//! The watch/queue wiring: metadata-only SealedSecret and Secret watches and key changes
//! feed kube-runtime's `applier`, which runs [`super::reconcile_cached`].
//!
//! The SealedSecret watch asks the API server for metadata only, so encrypted values never
//! reach the controller through it, and its cache keeps only [`cached_metadata`]: memory
//! per SealedSecret stays a few hundred bytes whatever its size. Each reconcile reads the
//! whole object and drops it when done (docs/design.md, "What the controller keeps").

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ApplierConfig;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt as _, applier, watcher};
use sealed_secrets_api::SealedSecret;

use super::apply::{error_policy, reconcile_cached};
use super::context::Context;
use super::decide::{cached_metadata, recreate_target};
use super::deleted::on_sealed_secret_deleted;

/// What the SealedSecret watch caches per object.
type Cached = PartialObjectMeta<SealedSecret>;

/// One source of reconcile requests.
type QueueStream = futures::stream::BoxStream<'static, Result<ObjectRef<Cached>, watcher::Error>>;

/// Objects per page of the SealedSecret watch's lists (kube's default is 500): a page is
/// held whole while it is decoded, and a tenant can make each object's metadata large, so
/// smaller pages bound that peak, for a few more requests at start-up.
const LIST_PAGE_SIZE: u32 = 100;

/// Hashes uid and generation, so only spec changes (and re-creations) trigger a reconcile,
/// as upstream's "update suppressed" rule (§4.5).
fn spec_version(ss: &Cached) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ss.metadata.uid.hash(&mut h);
    ss.metadata.generation.hash(&mut h);
    Some(h.finish())
}

/// Runs the reconcile loop for one namespace (`None`: all namespaces) until `stop` resolves
/// (leadership lost, shutdown): then no new reconcile starts and the running ones finish
/// (kube-runtime's applier drains when its queue ends).
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
    let (store, writer) = reflector::store::<Cached>();
    let delete_ctx = ctx.clone();
    let sealed = watcher(ss_api, wc.clone().page_size(LIST_PAGE_SIZE))
        .default_backoff()
        .modify(|m| m.metadata = cached_metadata(std::mem::take(&mut m.metadata)))
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(ss) = ev {
                on_sealed_secret_deleted(&delete_ctx, &ss.metadata);
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_version, Default::default())
        .map_ok(|ss| ObjectRef::from_obj(&ss));

    let mut queue: Vec<QueueStream> = vec![sealed.boxed()];

    if !ctx.settings.skip_recreate {
        let secret_api: Api<PartialObjectMeta<Secret>> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let deleted = watcher(secret_api, wc.clone())
            .default_backoff()
            .try_filter_map(|ev| async move {
                Ok(match ev {
                    watcher::Event::Delete(meta) => deleted_secret_target(&meta),
                    _ => None,
                })
            });
        queue.push(deleted.boxed());
    }

    // When keys change (a key added by the watcher, say), SealedSecrets that could not be
    // decrypted get another chance; the digest makes this cheap for the others.
    let keys_store = store.clone();
    let key_changes = tokio_stream_from_watch(ctx.keys.subscribe()).flat_map(move |()| {
        let refs: Vec<Result<ObjectRef<Cached>, watcher::Error>> = keys_store
            .state()
            .iter()
            .map(|ss| Ok(ObjectRef::from_obj(ss.as_ref())))
            .collect();
        futures::stream::iter(refs)
    });
    queue.push(key_changes.boxed());

    let config = ApplierConfig::default().concurrency(ctx.settings.concurrency);
    let results = applier(
        |ss, ctx| Box::pin(reconcile_cached(ss, ctx)),
        error_policy,
        ctx.clone(),
        store,
        futures::stream::select_all(queue).take_until(stop),
        config,
    );
    results
        .for_each(|r| async move {
            if let Err(e) = r {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(_, _) => {}
                    kube::runtime::controller::Error::ObjectNotFound(_) => {}
                    other => tracing::warn!(error = %other, "controller stream error"),
                }
            }
        })
        .await;
}

fn deleted_secret_target(meta: &PartialObjectMeta<Secret>) -> Option<ObjectRef<Cached>> {
    recreate_target(&meta.metadata).map(|(ns, name)| ObjectRef::new(&name).within(&ns))
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
