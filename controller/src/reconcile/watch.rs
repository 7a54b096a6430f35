//! The watch/queue wiring: SealedSecret and (metadata-only) Secret watches and key changes
//! feed kube-runtime's `applier`, which runs [`super::reconcile`].

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

use super::apply::{Context, error_policy, on_sealed_secret_deleted, reconcile};
use super::decide::recreate_target;

/// One source of reconcile requests.
type QueueStream =
    futures::stream::BoxStream<'static, Result<ObjectRef<SealedSecret>, watcher::Error>>;

/// Hashes uid and generation, so only spec changes (and re-creations) trigger a reconcile,
/// as upstream's "update suppressed" rule (§4.5).
fn spec_version(ss: &SealedSecret) -> Option<u64> {
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
    let ss_api: Api<SealedSecret> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut wc = watcher::Config::default();
    if !ctx.settings.label_selector.is_empty() {
        wc = wc.labels(&ctx.settings.label_selector);
    }
    let (store, writer) = reflector::store::<SealedSecret>();
    let delete_ctx = ctx.clone();
    let sealed = watcher(ss_api, wc.clone())
        .default_backoff()
        .inspect_ok(move |ev| {
            if let watcher::Event::Delete(ss) = ev {
                on_sealed_secret_deleted(&delete_ctx, ss);
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
        let refs: Vec<Result<ObjectRef<SealedSecret>, watcher::Error>> = keys_store
            .state()
            .iter()
            .map(|ss| Ok(ObjectRef::from_obj(ss.as_ref())))
            .collect();
        futures::stream::iter(refs)
    });
    queue.push(key_changes.boxed());

    let config = ApplierConfig::default().concurrency(ctx.settings.concurrency);
    let results = applier(
        |ss, ctx| Box::pin(reconcile(ss, ctx)),
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

fn deleted_secret_target(meta: &PartialObjectMeta<Secret>) -> Option<ObjectRef<SealedSecret>> {
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
