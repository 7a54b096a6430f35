//! What kube-controller-manager's garbage collector and namespace controller do, done
//! incrementally: the store keeps indexes by uid and by owner up to date on every committed
//! write (`store/gc_index.rs`), with a set of objects a write may have given work to. A pass
//! looks only at those, so a write costs `O(log n)` however many objects are stored (scanning
//! and copying every object after each write made the stand-in the bottleneck at 10,000
//! SealedSecrets).
//!
//! Knowing differences from kube-controller-manager: owners are looked up by uid across all
//! namespaces (the real collector also checks the owner's kind and namespace); foreground
//! deletion deletes dependents in the background before releasing the owner, without
//! `blockOwnerDeletion` ordering.

use std::collections::HashSet;

use serde_json::Value;

use super::fields::Manager;
use super::store::ObjRef;
use super::store::{
    DeleteOpts, NAMESPACES, Store, Tracking, finalizers, is_terminating, key, owner_uids, str_of,
};

/// What one pass decided; done after the decisions so that they see one state.
enum Action {
    Delete(ObjRef),
    DropOwners(ObjRef, HashSet<String>),
    DropFinalizer(ObjRef, &'static str),
    RemoveNamespace(String),
}

impl Store {
    /// One pass of the garbage collector and namespace controller over the objects writes
    /// have marked since the last pass. Returns how many writes it made (each of which may
    /// mark more objects for the next pass).
    pub fn gc_pass(&mut self) -> usize {
        let dirty = std::mem::take(&mut self.gc.dirty);
        let mut actions = Vec::new();
        for at in dirty {
            if let Some(obj) = self.stored(&at) {
                self.decide(&at, &obj.value, &mut actions);
            }
        }
        actions.into_iter().filter(|a| self.act(a)).count()
    }

    fn decide(&self, at: &ObjRef, obj: &Value, actions: &mut Vec<Action>) {
        let owners = owner_uids(obj);
        if !owners.is_empty() {
            let dangling: HashSet<String> = owners
                .iter()
                .filter(|u| !self.gc.exists(u))
                .cloned()
                .collect();
            if dangling.len() == owners.len() {
                if !is_terminating(obj) {
                    actions.push(Action::Delete(at.clone()));
                }
            } else if !dangling.is_empty() {
                actions.push(Action::DropOwners(at.clone(), dangling));
            }
        }
        if !is_terminating(obj) {
            return;
        }
        let uid = str_of(obj, &["metadata", "uid"])
            .unwrap_or_default()
            .to_owned();
        let deps: Vec<(ObjRef, bool)> = self
            .gc
            .dependents
            .get(&uid)
            .into_iter()
            .flatten()
            .filter_map(|d| {
                self.stored(d)
                    .map(|o| (d.clone(), is_terminating(&o.value)))
            })
            .collect();
        let fins = finalizers(obj);
        if fins.iter().any(|f| f == "orphan") {
            for (dep, _) in &deps {
                actions.push(Action::DropOwners(
                    dep.clone(),
                    HashSet::from([uid.clone()]),
                ));
            }
            actions.push(Action::DropFinalizer(at.clone(), "orphan"));
        }
        if fins.iter().any(|f| f == "foregroundDeletion") {
            if deps.is_empty() {
                actions.push(Action::DropFinalizer(at.clone(), "foregroundDeletion"));
            } else {
                for (dep, terminating) in deps {
                    if !terminating {
                        actions.push(Action::Delete(dep));
                    }
                }
            }
        }
        if at.0 == key(NAMESPACES) {
            let content = self.namespace_content(&at.1.1);
            if content.is_empty() {
                if fins.is_empty() {
                    actions.push(Action::RemoveNamespace(at.1.1.clone()));
                }
            } else {
                for (item, terminating) in content {
                    if !terminating {
                        actions.push(Action::Delete(item));
                    }
                }
            }
        }
    }

    /// Does one action; whether it wrote.
    fn act(&mut self, action: &Action) -> bool {
        match action {
            Action::Delete((res, okey)) => self.types_get(res).is_some_and(|rt| {
                self.delete(&rt, &okey.0, &okey.1, &DeleteOpts::default(), false)
                    .is_ok()
            }),
            Action::DropOwners(at, uids) => self.rewrite(at, |obj| {
                if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| !r["uid"].as_str().is_some_and(|u| uids.contains(u)));
                }
            }),
            Action::DropFinalizer(at, fin) => self.rewrite(at, |obj| {
                if let Some(f) = obj["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x.as_str() != Some(*fin));
                }
            }),
            Action::RemoveNamespace(name) => self.remove_namespace(name),
        }
    }

    /// Replaces the object at `at` by what `change` makes of it, as an update would.
    fn rewrite(&mut self, at: &ObjRef, change: impl FnOnce(&mut Value)) -> bool {
        let Some(rt) = self.types_get(&at.0) else {
            return false;
        };
        let Some(old) = self.stored(at) else {
            return false;
        };
        let mut new = old.value.clone();
        change(&mut new);
        let manager = Manager {
            name: "kube-controller-manager".into(),
            api_version: rt.api_version(rt.storage_version()),
        };
        let tracking = Tracking::Update(&manager);
        self.replace(&rt, at.1.clone(), old, new, tracking, false, false)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::ResKey;

    fn mgr() -> Manager {
        Manager {
            name: "test".into(),
            api_version: "v1".into(),
        }
    }

    fn secrets() -> ResKey {
        (String::new(), "secrets".to_owned())
    }

    fn mk_secret(store: &mut Store, name: &str, owner_uid: Option<&str>) -> String {
        let mut obj = json!({"metadata": {"name": name}, "data": {}});
        if let Some(uid) = owner_uid {
            obj["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "Secret", "name": "o", "uid": uid}]);
        }
        let out = store
            .create(&secrets(), "default", obj, Tracking::Update(&mgr()), false)
            .unwrap();
        out.value["metadata"]["uid"].as_str().unwrap().to_owned()
    }

    fn names(store: &Store) -> Vec<String> {
        let rt = store.types_get(&secrets()).unwrap();
        let (items, _) = store.list(&rt, Some("default"));
        items
            .iter()
            .map(|o| o.value["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Writes of objects without owners or deletion leave the collector nothing to look at;
    /// a dependent is looked at once, and again only when its owner goes.
    #[test]
    fn only_marked_objects_are_examined() {
        let mut store = Store::new(100);
        for i in 0..50 {
            mk_secret(&mut store, &format!("plain{i}"), None);
        }
        assert!(store.gc.dirty.is_empty());
        let owner = mk_secret(&mut store, "owner", None);
        mk_secret(&mut store, "dep", Some(&owner));
        assert_eq!(store.gc.dirty.len(), 2, "the dependent and its owner");
        assert_eq!(store.gc_pass(), 0);
        assert!(store.gc.dirty.is_empty());
        let rt = store.types_get(&secrets()).unwrap();
        store
            .delete(&rt, "default", "owner", &DeleteOpts::default(), false)
            .unwrap();
        assert_eq!(store.gc.dirty.len(), 1, "only the orphaned dependent");
        assert_eq!(store.gc_pass(), 1);
        assert!(!names(&store).contains(&"dep".to_owned()));
        assert_eq!(store.gc_pass(), 0);
    }

    #[test]
    fn dangling_owner_is_dropped_when_another_owner_lives() {
        let mut store = Store::new(100);
        let live = mk_secret(&mut store, "live", None);
        let obj = json!({"metadata": {"name": "dep", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Secret", "name": "live", "uid": live},
            {"apiVersion": "v1", "kind": "Secret", "name": "gone", "uid": "no-such-uid"},
        ]}});
        store
            .create(&secrets(), "default", obj, Tracking::Update(&mgr()), false)
            .unwrap();
        assert_eq!(store.gc_pass(), 1);
        let rt = store.types_get(&secrets()).unwrap();
        let dep = store.get(&rt, "default", "dep").unwrap();
        let refs = dep.value["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], live.as_str());
    }

    #[test]
    fn terminating_namespace_waits_for_its_content() {
        let mut store = Store::new(100);
        let ns_rt = store.types_get(&key(NAMESPACES)).unwrap();
        store
            .create(
                &key(NAMESPACES),
                "",
                json!({"metadata": {"name": "doomed"}}),
                Tracking::Update(&mgr()),
                false,
            )
            .unwrap();
        let obj = json!({"metadata": {"name": "held", "finalizers": ["x/y"]}});
        store
            .create(&secrets(), "doomed", obj, Tracking::Update(&mgr()), false)
            .unwrap();
        store
            .delete(&ns_rt, "", "doomed", &DeleteOpts::default(), false)
            .unwrap();
        // The Secret is marked for deletion but held by its finalizer; the namespace stays.
        while store.gc_pass() > 0 {}
        assert!(store.get(&ns_rt, "", "doomed").is_ok());
        let rt = store.types_get(&secrets()).unwrap();
        let held = store.get(&rt, "doomed", "held").unwrap();
        assert!(is_terminating(&held.value));
        let mut released = held.value.clone();
        released["metadata"]["finalizers"] = json!([]);
        store
            .update(&rt, "doomed", "held", released, &mgr(), false, false)
            .unwrap();
        while store.gc_pass() > 0 {}
        assert!(store.get(&ns_rt, "", "doomed").is_err());
    }
}
