//! The start-up check's requests ([`super::queue_after_check`]) and the watch's reconcile
//! requests: pure, no I/O.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMetaExt as _;
use kube::runtime::watcher::Event;

use super::{Cached, request};

fn mk_ss(name: &str, uid: &str, generation: i64) -> Cached {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        uid: Some(uid.into()),
        generation: Some(generation),
        resource_version: Some("7".into()),
        ..Default::default()
    }
    .into_request_partial()
}

#[test]
fn requests_name_the_object_by_namespace_and_name() {
    let r = request(&mk_ss("a", "u1", 1));
    assert_eq!((&*r.namespace, &*r.name), ("ns", "a"));
}

#[tokio::test]
async fn after_the_check_only_the_versions_it_found_in_sync_are_skipped() {
    use futures::StreamExt as _;

    use super::queue_after_check;
    use crate::reconcile::spec_hash::spec_hashes;

    let (cache, mut writer) = crate::reconcile::cache::new(true);
    let in_sync: std::collections::HashMap<u64, u64> = [
        // Found in sync at the generation listed: skipped.
        mk_ss("same", "u1", 1),
        // Found in sync at an older generation: changed since, queued.
        mk_ss("changed", "u2", 1),
        // Found in sync, then deleted and created again under the same name: queued.
        mk_ss("recreated", "u3", 1),
    ]
    .iter()
    .map(|ss| spec_hashes(&ss.metadata))
    .collect();
    // The runner waits for the cache's first list too: both must be woken.
    let runner = tokio::spawn({
        let cache = cache.clone();
        async move { cache.ready().await }
    });
    let check = tokio::spawn(async move {
        queue_after_check(&cache, in_sync)
            .await
            .map(|r| r.unwrap().name.into_string())
            .collect::<Vec<String>>()
            .await
    });
    tokio::task::yield_now().await;
    for e in [
        Event::Init,
        Event::InitApply(mk_ss("same", "u1", 1)),
        Event::InitApply(mk_ss("changed", "u2", 2)),
        Event::InitApply(mk_ss("recreated", "u9", 1)),
        // Created after the check's list: never checked, queued.
        Event::InitApply(mk_ss("new", "u4", 1)),
        Event::InitDone,
    ] {
        // The first list is held for the check: nothing queued by the watch.
        assert_eq!(writer.observe(&e), None);
    }
    assert!(runner.await.unwrap());
    let mut queued = check.await.unwrap();
    queued.sort();
    assert_eq!(queued, ["changed", "new", "recreated"]);
}
