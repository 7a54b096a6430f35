//! The SealedSecret watch's cache and "spec changed" filter ([`super::CacheWriter`]): pure,
//! no I/O.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMetaExt as _;
use kube::runtime::watcher::Event;

use super::{Cached, ObjectKey, new};

fn mk_in(ns: &str, name: &str, uid: &str, generation: i64) -> Cached {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        uid: Some(uid.into()),
        generation: Some(generation),
        resource_version: Some("7".into()),
        ..Default::default()
    }
    .into_request_partial()
}

fn mk_ss(name: &str, uid: &str, generation: i64) -> Cached {
    mk_in("ns", name, uid, generation)
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey {
        namespace: Arc::from(ns),
        name: Box::from(name),
    }
}

fn names(keys: &[Option<ObjectKey>]) -> Vec<Option<&str>> {
    keys.iter().map(|k| k.as_ref().map(|k| &*k.name)).collect()
}

fn sorted_names(keys: Vec<ObjectKey>) -> Vec<String> {
    let mut names: Vec<String> = keys.into_iter().map(|k| k.name.into_string()).collect();
    names.sort();
    names
}

#[test]
fn only_new_generations_and_recreations_pass() {
    let (_, mut w) = new(false);
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
    .map(|e| w.observe(e))
    .collect();
    assert_eq!(
        names(&seen),
        [Some("a"), None, Some("a"), Some("a"), Some("b")]
    );
}

#[test]
fn the_same_name_in_another_namespace_is_another_object() {
    let (cache, mut w) = new(false);
    assert!(
        w.observe(&Event::Apply(mk_in("one", "a", "u1", 1)))
            .is_some()
    );
    let r = w.observe(&Event::Apply(mk_in("two", "a", "u1", 1)));
    assert_eq!(r, Some(key("two", "a")));
    assert!(
        cache.last_seen(&key("one", "a")).is_some() && cache.last_seen(&key("two", "a")).is_some()
    );
    assert!(cache.last_seen(&key("three", "a")).is_none());
}

#[test]
fn deleted_objects_are_forgotten() {
    let (cache, mut w) = new(false);
    w.observe(&Event::Apply(mk_ss("a", "u1", 1)));
    assert!(cache.last_seen(&key("ns", "a")).is_some());
    assert_eq!(w.observe(&Event::Delete(mk_ss("a", "u1", 1))), None);
    assert!(cache.last_seen(&key("ns", "a")).is_none());
    assert!(cache.keys().is_empty());
    // The same object again (a watch that replays it) is a new one.
    let r = w.observe(&Event::Apply(mk_ss("a", "u1", 1)));
    assert_eq!(r, Some(key("ns", "a")));
}

#[test]
fn a_relist_suppresses_unchanged_objects_and_forgets_vanished_ones() {
    let (cache, mut w) = new(false);
    for ss in [
        mk_ss("a", "u1", 1),
        mk_ss("b", "u2", 1),
        mk_ss("gone", "u3", 1),
    ] {
        w.observe(&Event::Apply(ss));
    }
    let seen: Vec<_> = [
        Event::Init,
        Event::InitApply(mk_ss("a", "u1", 1)),
        Event::InitApply(mk_ss("b", "u2", 5)),
        Event::InitApply(mk_ss("c", "u4", 1)),
        Event::InitDone,
    ]
    .iter()
    .map(|e| w.observe(e))
    .collect();
    assert_eq!(names(&seen), [None, None, Some("b"), Some("c"), None]);
    assert_eq!(sorted_names(cache.keys()), ["a", "b", "c"]);
    assert!(w.relist.is_none());
    // `gone` was deleted while the watch was down: it is a new object if it comes back.
    let r = w.observe(&Event::Apply(mk_ss("gone", "u3", 1)));
    assert_eq!(r, Some(key("ns", "gone")));
}

#[test]
fn during_a_relist_the_cache_keeps_what_it_had() {
    let (cache, mut w) = new(false);
    w.observe(&Event::Apply(mk_ss("a", "u1", 1)));
    w.observe(&Event::Init);
    w.observe(&Event::InitApply(mk_ss("b", "u2", 1)));
    // A reconcile of `a` still finds it until the list is done.
    assert_eq!(sorted_names(cache.keys()), ["a"]);
    w.observe(&Event::InitDone);
    assert_eq!(sorted_names(cache.keys()), ["b"]);
}

#[test]
fn the_first_list_is_held_for_the_start_up_check_and_later_ones_are_not() {
    let (_, mut w) = new(true);
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
    .map(|e| w.observe(e))
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
}

#[test]
fn the_check_skips_exactly_the_versions_it_was_given() {
    use super::super::spec_hash::spec_hashes;

    let (cache, mut w) = new(false);
    for ss in [
        mk_ss("a", "u1", 1),
        mk_ss("b", "u2", 2),
        mk_in("other", "a", "u1", 1),
    ] {
        w.observe(&Event::Apply(ss));
    }
    let skip = [mk_ss("a", "u1", 1), mk_ss("b", "u2", 1)]
        .iter()
        .map(|ss| spec_hashes(&ss.metadata))
        .collect();
    let left = cache.keys_but(&skip);
    let mut left: Vec<(String, String)> = left
        .into_iter()
        .map(|k| (k.namespace.to_string(), k.name.into_string()))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ("ns".to_owned(), "b".to_owned()),
            ("other".to_owned(), "a".to_owned())
        ]
    );
}

#[test]
fn objects_of_a_namespace_share_its_name_and_an_emptied_one_is_let_go() {
    let (cache, mut w) = new(false);
    w.observe(&Event::Apply(mk_in("one", "a", "u1", 1)));
    w.observe(&Event::Apply(mk_in("one", "b", "u2", 1)));
    let keys = cache.keys();
    assert!(Arc::ptr_eq(&keys[0].namespace, &keys[1].namespace));
    drop(keys);
    // A re-list after namespace `one` was deleted: its name is not kept.
    for e in [
        Event::Init,
        Event::InitApply(mk_in("two", "c", "u3", 1)),
        Event::InitDone,
    ] {
        w.observe(&e);
    }
    assert_eq!(w.namespaces.len(), 1);
    assert!(w.namespaces.contains("two"));
}

#[tokio::test]
async fn readiness_wakes_every_waiter_once_the_first_list_is_in() {
    let (cache, mut w) = new(false);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.ready().await })
        })
        .collect();
    tokio::task::yield_now().await;
    w.observe(&Event::Init);
    w.observe(&Event::InitApply(mk_ss("a", "u1", 1)));
    tokio::task::yield_now().await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "ready before the list was done"
    );
    w.observe(&Event::InitDone);
    for waiter in waiters {
        assert!(waiter.await.unwrap());
    }
    // Later waiters return at once, even after the watch is gone.
    drop(w);
    assert!(cache.ready().await);
}

#[tokio::test]
async fn a_cache_whose_watch_ends_before_its_first_list_is_never_ready() {
    let (cache, w) = new(false);
    drop(w);
    assert!(!cache.ready().await);
}

/// `mk_ss` at resourceVersion `rv`.
fn at(name: &str, generation: i64, rv: &str) -> Cached {
    let mut ss = mk_ss(name, "u1", generation);
    ss.metadata.resource_version = Some(rv.into());
    ss
}

#[test]
fn the_last_reported_resource_version_is_kept_for_the_reads() {
    let (cache, mut w) = new(false);
    assert_eq!(cache.last_seen(&key("ns", "a")), None);
    assert!(w.observe(&Event::Apply(at("a", 1, "10"))).is_some());
    assert_eq!(cache.last_seen(&key("ns", "a")), Some(10));
    // A status write queues nothing, but its version is the one to read no older than.
    assert_eq!(w.observe(&Event::Apply(at("a", 1, "12"))), None);
    assert_eq!(cache.last_seen(&key("ns", "a")), Some(12));
    // A version that is not a number is kept as unknown (a quorum read).
    assert_eq!(w.observe(&Event::Apply(at("a", 1, "x9"))), None);
    assert_eq!(cache.last_seen(&key("ns", "a")), Some(0));
    // A re-list: the cache serves the versions before it until the list is swapped in.
    w.observe(&Event::Init);
    assert_eq!(w.observe(&Event::InitApply(at("a", 1, "20"))), None);
    assert_eq!(cache.last_seen(&key("ns", "a")), Some(0));
    w.observe(&Event::InitDone);
    assert_eq!(cache.last_seen(&key("ns", "a")), Some(20));
    w.observe(&Event::Delete(at("a", 1, "21")));
    assert_eq!(cache.last_seen(&key("ns", "a")), None);
}
