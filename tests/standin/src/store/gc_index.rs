//! The garbage collector's indexes, kept by the store on every committed write (`gc.rs`
//! runs the passes over what they mark).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::json::{is_terminating, owner_uids, str_of};
use crate::resources::{ObjKey, ResKey};

/// A stored object's address: its resource and its key in that resource.
pub type ObjRef = (ResKey, ObjKey);

/// The collector's indexes and its work queue.
#[derive(Debug, Default)]
pub struct GcIndex {
    /// uid → where the object with that uid is stored.
    pub(crate) by_uid: HashMap<String, ObjRef>,
    /// owner uid → the objects naming it in `ownerReferences` (the owner need not exist).
    pub(crate) dependents: HashMap<String, BTreeSet<ObjRef>>,
    /// Objects a write may have given work to; each pass takes the whole set.
    pub(crate) dirty: BTreeSet<ObjRef>,
}

impl GcIndex {
    /// Records that `at` changed from `previous` to `current` (`None`: absent) and marks
    /// what may now have work: the object itself when it has owners or is being deleted,
    /// its dependents when it is gone, and its owners (a foreground deletion may be waiting
    /// for it). Terminating namespaces are marked by the store, which can look them up.
    pub fn record(&mut self, at: &ObjRef, previous: Option<&Value>, current: Option<&Value>) {
        if let Some(prev) = previous {
            if let Some(uid) = str_of(prev, &["metadata", "uid"]) {
                self.by_uid.remove(uid);
                if current.is_none() {
                    for dep in self.dependents.get(uid).into_iter().flatten() {
                        self.dirty.insert(dep.clone());
                    }
                }
            }
            for owner in owner_uids(prev) {
                if let Some(owner_at) = self.by_uid.get(&owner) {
                    self.dirty.insert(owner_at.clone());
                }
                if let Some(deps) = self.dependents.get_mut(&owner) {
                    deps.remove(at);
                    if deps.is_empty() {
                        self.dependents.remove(&owner);
                    }
                }
            }
        }
        let Some(cur) = current else {
            self.dirty.remove(at);
            return;
        };
        if let Some(uid) = str_of(cur, &["metadata", "uid"]) {
            self.by_uid.insert(uid.to_owned(), at.clone());
        }
        let owners = owner_uids(cur);
        for owner in &owners {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(at.clone());
            if let Some(owner_at) = self.by_uid.get(owner) {
                self.dirty.insert(owner_at.clone());
            }
        }
        if !owners.is_empty() || is_terminating(cur) {
            self.dirty.insert(at.clone());
        }
    }

    /// Marks `at` as having work (a terminating namespace whose content changed).
    pub fn mark(&mut self, at: ObjRef) {
        self.dirty.insert(at);
    }

    /// Whether an object with this uid is stored.
    pub(crate) fn exists(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }
}
