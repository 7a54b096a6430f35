//! The SealedSecret watch's spec-change filter ([`super::SpecVersions`]) and reconcile
//! requests: pure, no I/O.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMetaExt as _;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use super::{Cached, SpecVersions, object_ref};

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

fn names(refs: &[Option<ObjectRef<Cached>>]) -> Vec<Option<&str>> {
    refs.iter()
        .map(|r| r.as_ref().map(|r| r.name.as_str()))
        .collect()
}

#[test]
fn only_new_generations_and_recreations_pass() {
    let mut v = SpecVersions::default();
    let seen: Vec<_> = [
        Event::Apply(mk_ss("a", "u1", 1)),
        // A status or metadata write: same generation.
        Event::Apply(mk_ss("a", "u1", 1)),
        Event::Apply(mk_ss("a", "u1", 2)),
        // Deleted and created again under the same name: a new uid.
        Event::Apply(mk_ss("a", "u2", 2)),
        Event::Apply(mk_ss("b", "u3", 1)),
    ]
    .iter()
    .map(|e| v.observe(e))
    .collect();
    assert_eq!(
        names(&seen),
        [Some("a"), None, Some("a"), Some("a"), Some("b")]
    );
}

#[test]
fn deleted_objects_are_forgotten() {
    let mut v = SpecVersions::default();
    v.observe(&Event::Apply(mk_ss("a", "u1", 1)));
    assert_eq!(v.observe(&Event::Delete(mk_ss("a", "u1", 1))), None);
    assert!(v.current.is_empty(), "{v:?}");
    // The same object again (a watch that replays it) is a new one.
    let r = v.observe(&Event::Apply(mk_ss("a", "u1", 1)));
    assert_eq!(r.map(|r| r.name), Some("a".to_owned()));
}

#[test]
fn a_relist_suppresses_unchanged_objects_and_forgets_vanished_ones() {
    let mut v = SpecVersions::default();
    for ss in [
        mk_ss("a", "u1", 1),
        mk_ss("b", "u2", 1),
        mk_ss("gone", "u3", 1),
    ] {
        v.observe(&Event::Apply(ss));
    }
    let seen: Vec<_> = [
        Event::Init,
        Event::InitApply(mk_ss("a", "u1", 1)),
        Event::InitApply(mk_ss("b", "u2", 5)),
        Event::InitApply(mk_ss("c", "u4", 1)),
        Event::InitDone,
    ]
    .iter()
    .map(|e| v.observe(e))
    .collect();
    assert_eq!(names(&seen), [None, None, Some("b"), Some("c"), None]);
    assert_eq!(v.current.len(), 3, "{v:?}");
    assert!(v.relist.is_none());
    // `gone` was deleted while the watch was down: it is a new object if it comes back.
    let r = v.observe(&Event::Apply(mk_ss("gone", "u3", 1)));
    assert_eq!(r.map(|r| r.name), Some("gone".to_owned()));
}

#[test]
fn requests_name_the_object_without_uid_or_version() {
    let ss = mk_ss("a", "u1", 1);
    let r = object_ref(&ss);
    assert_eq!(r, ObjectRef::from_obj(&ss));
    assert_eq!(r.namespace.as_deref(), Some("ns"));
    assert_eq!(r.extra.uid, None);
    assert_eq!(r.extra.resource_version, None);
}

#[test]
fn the_first_list_is_held_for_the_start_up_check_and_later_ones_are_not() {
    let mut v = SpecVersions {
        hold_first_list: true,
        ..SpecVersions::default()
    };
    let seen: Vec<_> = [
        Event::Init,
        Event::InitApply(mk_ss("a", "u1", 1)),
        Event::InitApply(mk_ss("b", "u2", 1)),
        Event::InitDone,
        // After the first list: a new generation is queued as always.
        Event::Apply(mk_ss("a", "u1", 2)),
        Event::Apply(mk_ss("b", "u2", 1)),
        // A re-list (after a watch error) queues what changed.
        Event::Init,
        Event::InitApply(mk_ss("a", "u1", 2)),
        Event::InitApply(mk_ss("b", "u2", 3)),
        Event::InitDone,
    ]
    .iter()
    .map(|e| v.observe(e))
    .collect();
    assert_eq!(
        names(&seen),
        [
            None,
            None,
            None,
            None,
            Some("a"),
            None,
            None,
            None,
            Some("b"),
            None
        ]
    );
    assert_eq!(v.current.len(), 2, "{v:?}");
}

#[tokio::test]
async fn after_the_check_only_the_versions_it_found_in_sync_are_skipped() {
    use futures::StreamExt as _;
    use kube::runtime::reflector;

    use super::queue_after_check;
    use crate::reconcile::spec_hash::spec_hashes;

    let (store, mut writer) = reflector::store::<Cached>();
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
    let (listed, listed_rx) = tokio::sync::oneshot::channel();
    // The runner waits for the store's first list too: both must be woken.
    let runner = tokio::spawn({
        let store = store.clone();
        async move { store.wait_until_ready().await.is_ok() }
    });
    let check = tokio::spawn(async move {
        queue_after_check(&store, listed_rx, in_sync)
            .await
            .map(|r| r.unwrap().name)
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
        writer.apply_watcher_event(&e);
    }
    listed.send(()).unwrap();
    assert!(runner.await.unwrap());
    let mut queued = check.await.unwrap();
    queued.sort();
    assert_eq!(queued, ["changed", "new", "recreated"]);
}
