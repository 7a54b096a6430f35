//! The SealedSecret watch's cache: which objects exist, by namespace and name, with the hash
//! of the version last seen of each (uid and generation) and the resourceVersion it last
//! reported (the reconcile reads the object no older than that: [`super::reads`]). It is also the "spec changed"
//! filter: only spec changes (a new generation) and re-creations (a new uid) trigger a
//! reconcile, as upstream's "update suppressed" rule (§4.5).
//!
//! A reconcile reads the whole object by name and uses nothing else of the cache, so the
//! cache keeps nothing else: one table slot (namespace, name and two `u64`) and the name per
//! object, with one copy of each namespace. kube-runtime's reflector store, which it
//! replaces, kept two copies of name, namespace, uid and resourceVersion and a whole
//! `ObjectMeta` per object: about 0.7 KiB per object, 7 MB of a warm restart's 20.4 MB heap
//! peak at 10,000 (docs/design.md, "What the controller keeps"). Like the store, the cache rebuilds
//! itself on every re-list, so objects deleted while the watch was down are forgotten too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher;

use super::queue::ObjectKey;
use super::reads::version_number;
use super::spec_hash::{key_hash, version_hash};

/// What the SealedSecret watch delivers of an object: its metadata, as
/// [`super::decide::cached_metadata`] keeps it.
pub(super) type Cached = kube::core::PartialObjectMeta<sealed_secrets_api::SealedSecret>;

/// What the cache holds of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// Hash of its uid and generation ([`version_hash`]).
    version: u64,
    /// Its resourceVersion as last reported ([`super::reads::version_number`]; 0: unknown).
    seen: u64,
}

/// Object → what the cache holds of it.
type Objects = HashMap<ObjectKey, Entry>;

/// The cache as the reconcile loop reads it (cheap to clone).
#[derive(Clone)]
pub(super) struct WatchCache {
    objects: Arc<RwLock<Objects>>,
    ready: tokio::sync::watch::Receiver<bool>,
}

/// The cache as the watch fills it: [`CacheWriter::observe`] takes in every event.
pub(super) struct CacheWriter {
    objects: Arc<RwLock<Objects>>,
    ready: tokio::sync::watch::Sender<bool>,
    /// During a (re-)list: what has been listed so far, swapped in at its end.
    relist: Option<Objects>,
    /// One copy of each namespace's name, shared by its objects' keys.
    namespaces: HashSet<Arc<str>>,
    /// Until the first list is done: queue nothing it lists. The start-up check, running
    /// beside that list, decides which of them to queue (`super::watch::queue_after_check`).
    hold_first_list: bool,
}

/// An empty cache, not ready until the watch's first list is in it.
pub(super) fn new(hold_first_list: bool) -> (WatchCache, CacheWriter) {
    let objects = Arc::new(RwLock::new(Objects::new()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let reader = WatchCache {
        objects: objects.clone(),
        ready: rx,
    };
    let writer = CacheWriter {
        objects,
        ready: tx,
        relist: None,
        namespaces: HashSet::new(),
        hold_first_list,
    };
    (reader, writer)
}

impl WatchCache {
    /// Waits until the watch's first list is in the cache; `false` if it never will be (the
    /// watch is gone). Wakes every waiter.
    pub(super) async fn ready(&self) -> bool {
        self.ready.clone().wait_for(|ready| *ready).await.is_ok()
    }

    /// The resourceVersion the watch last reported of the object (`Some(0)`: not a number);
    /// `None` when the object is not in the cache.
    pub(super) fn last_seen(&self, key: &ObjectKey) -> Option<u64> {
        read(&self.objects).get(key).map(|e| e.seen)
    }

    /// Every object, in no particular order.
    pub(super) fn keys(&self) -> Vec<ObjectKey> {
        read(&self.objects).keys().cloned().collect()
    }

    /// The objects whose hashes ([`super::spec_hash::spec_hashes`]) are not those `skip`
    /// holds for them.
    pub(super) fn keys_but(&self, skip: &HashMap<u64, u64>) -> Vec<ObjectKey> {
        read(&self.objects)
            .iter()
            .filter(|(key, entry)| {
                skip.get(&key_hash(&key.namespace, &key.name)) != Some(&entry.version)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

impl CacheWriter {
    /// Takes in one watch event; returns the object to reconcile, if any.
    pub(super) fn observe(&mut self, event: &watcher::Event<Cached>) -> Option<ObjectKey> {
        match event {
            watcher::Event::Init => {
                self.relist = Some(Objects::new());
                None
            }
            watcher::Event::InitDone => {
                if let Some(mut listed) = self.relist.take() {
                    listed.shrink_to_fit();
                    // The old table is freed after the lock is let go.
                    let old = std::mem::replace(&mut *write(&self.objects), listed);
                    drop(old);
                    // Namespaces no object is in any more.
                    self.namespaces.retain(|ns| Arc::strong_count(ns) > 1);
                }
                self.hold_first_list = false;
                self.ready.send_replace(true);
                None
            }
            watcher::Event::Delete(ss) => {
                let key = self.key(&ss.metadata);
                write(&self.objects).remove(&key);
                if let Some(listed) = &mut self.relist {
                    listed.remove(&key);
                }
                None
            }
            watcher::Event::Apply(ss) | watcher::Event::InitApply(ss) => {
                let key = self.key(&ss.metadata);
                let version = version_hash(ss.metadata.uid.as_deref(), ss.metadata.generation);
                let entry = Entry {
                    version,
                    seen: version_number(ss.metadata.resource_version.as_deref()),
                };
                // Changed: against what the cache holds (during a re-list, the list before it).
                let (before, held) = match (&mut self.relist, event) {
                    (Some(listed), watcher::Event::InitApply(_)) => {
                        listed.insert(key.clone(), entry);
                        let before = read(&self.objects).get(&key).map(|e| e.version);
                        (before, self.hold_first_list)
                    }
                    _ => (
                        write(&self.objects)
                            .insert(key.clone(), entry)
                            .map(|e| e.version),
                        false,
                    ),
                };
                (before != Some(version) && !held).then_some(key)
            }
        }
    }

    /// The object's key, its namespace shared with the other objects of the namespace.
    fn key(&mut self, meta: &ObjectMeta) -> ObjectKey {
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let namespace = match self.namespaces.get(ns) {
            Some(ns) => ns.clone(),
            None => {
                let ns: Arc<str> = Arc::from(ns);
                self.namespaces.insert(ns.clone());
                ns
            }
        };
        ObjectKey {
            namespace,
            name: Box::from(meta.name.as_deref().unwrap_or_default()),
        }
    }
}

fn read(objects: &RwLock<Objects>) -> RwLockReadGuard<'_, Objects> {
    objects.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(objects: &RwLock<Objects>) -> RwLockWriteGuard<'_, Objects> {
    objects.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
