//! The in-memory object store: one global, monotonically increasing resourceVersion, a
//! bounded history of changes for watches, and the write semantics of kube-apiserver's
//! generic registry (preconditions, generation, status subresource, finalizers).
//!
//! Knowing differences from a real API server, all deliberate to keep the stand-in small:
//! - no admission, no schema validation, pruning or defaulting of custom resources; objects
//!   are stored as sent (after the metadata rules below);
//! - built-in kinds other than Secrets, Namespaces, Services and CRDs (ServiceAccounts,
//!   Deployments, RBAC, PodDisruptionBudgets, NetworkPolicies, ...) are storage only: no
//!   defaulting, no controllers (a Deployment never gets Pods), no RBAC enforcement;
//! - a Deployment's generation follows spec changes only (kube-apiserver also bumps it when
//!   annotations change);
//! - one stored representation per resource: every served version of a CRD returns the same
//!   object with `apiVersion` rewritten (no conversion);
//! - core `v1` Events and `events.k8s.io/v1` Events are separate collections (kube-apiserver
//!   stores them once and converts);
//! - reads (`get`, `list`) always answer the latest state whatever `resourceVersion` or
//!   `resourceVersionMatch` ask, and list pages are not a consistent snapshot;
//! - `managedFields` and server-side apply: see `fields.rs`;
//! - deleting a CRD removes its custom resources at once, ignoring their finalizers;
//! - garbage collection: see `gc.rs`; per-kind normalisation: see `strategy.rs`.
//!
//! Costs, so that the stand-in keeps up with a controller at 10,000 objects: a
//! write is `O(log n)` plus the size of the object (no scan of other objects; the collector's
//! indexes are updated incrementally); objects are stored behind an `Arc` together with their
//! serialisation, made once and shared by every get, list page and watch event that sends
//! them; a list of one namespace reads only that namespace's range; a watch resuming from a
//! resourceVersion finds its place in the history by binary search.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::fields::{Managed, Manager, Scope};
use super::patch::{self, PatchKind};
pub(crate) use super::resources::ObjKey;
use super::resources::{self, ResKey, ResourceType};

mod gc_index;
mod json;
mod names;
mod write;

pub(crate) use gc_index::{GcIndex, ObjRef};
pub(crate) use json::now_rfc3339;
pub(crate) use json::{finalizers, is_terminating, owner_uids, str_of};
use json::{meta_mut, same_content, spec_changed};
use names::{new_uid, random_suffix, valid_name};

/// A stored object: its JSON tree and, once something sent it, its serialisation.
#[derive(Debug)]
pub struct Obj {
    pub value: Value,
    json: OnceLock<Bytes>,
}

impl Obj {
    pub fn new(value: Value) -> Self {
        Self {
            value,
            json: OnceLock::new(),
        }
    }

    /// The object as JSON, serialised on first use and shared afterwards.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(self.value.to_string()))
            .clone()
    }
}

/// Objects are immutable once stored; a write stores a new one.
pub type Stored = Arc<Obj>;

/// How a write's `managedFields` are made: recorded from the change a manager made (create,
/// update, non-apply patch), or already computed by a server-side apply.
#[derive(Debug)]
pub enum Tracking<'a> {
    Update(&'a Manager),
    Applied(Managed),
}

impl Tracking<'_> {
    /// The managed fields after a write from `old` (`None`: create) to `new`.
    fn managed(self, old: Option<&Value>, new: &Value, scope: Scope) -> Managed {
        match self {
            Self::Applied(m) => m,
            Self::Update(manager) => {
                let mut m = old.map(Managed::of).unwrap_or_default();
                m.record_update(manager, scope, old, new, &now_rfc3339());
                m
            }
        }
    }
}

/// The manager kube-apiserver's own writes are recorded under.
fn apiserver_manager() -> Manager {
    Manager {
        name: "kube-apiserver".into(),
        api_version: "v1".into(),
    }
}

fn set_managed(obj: &mut Value, managed: &Managed) {
    match managed.to_value() {
        Some(v) => meta_mut(obj).insert("managedFields".into(), v),
        None => meta_mut(obj).remove("managedFields"),
    };
}

/// What a watch event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed write, kept in the history and broadcast to watchers.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub res: ResKey,
    pub kind: ChangeKind,
    pub object: Stored,
    /// The previous state for modifications, so that selector watches can turn an object
    /// leaving the selection into `DELETED` and entering it into `ADDED` like kube-apiserver.
    pub old: Option<Stored>,
}

/// `DeleteOptions` fields the stand-in honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOpts {
    pub fn from_body(body: &Value) -> Self {
        let s = |v: &Value| v.as_str().map(str::to_owned);
        let mut opts = Self {
            propagation: s(&body["propagationPolicy"]),
            precondition_uid: s(&body["preconditions"]["uid"]),
            precondition_rv: s(&body["preconditions"]["resourceVersion"]),
        };
        if opts.propagation.is_none() && body["orphanDependents"].as_bool() == Some(true) {
            opts.propagation = Some("Orphan".to_owned());
        }
        opts
    }
}

/// Where a watch starts: either synthetic `ADDED` events for the current state or the history
/// after a resourceVersion, plus the receiver for what follows.
#[derive(Debug)]
pub struct WatchStart {
    pub initial: Vec<Arc<Change>>,
    /// The resourceVersion the stream is consistent with once `initial` is sent.
    pub last_rv: u64,
    pub rx: broadcast::Receiver<Arc<Change>>,
}

/// The state behind the stand-in's mutex.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    pub(super) types: BTreeMap<ResKey, ResourceType>,
    /// Per resource, sorted by namespace then name, so one namespace is one range.
    pub(super) objects: HashMap<ResKey, BTreeMap<ObjKey, Stored>>,
    /// Committed changes in resourceVersion order, at most `history_limit` of them.
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches starting before this resourceVersion get 410 Gone.
    compacted_rv: u64,
    events: broadcast::Sender<Arc<Change>>,
    pub(super) service_ip: u32,
    pub(super) gc: GcIndex,
}

/// How many changes a watcher may fall behind before it is cut (it then resumes from its
/// last resourceVersion, which the history must still hold: keep `history_limit` above this).
const WATCH_BUFFER: usize = 4096;

pub(super) const NAMESPACES: (&str, &str) = ("", "namespaces");
pub(super) const CRDS: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");

pub(super) fn key(k: (&str, &str)) -> ResKey {
    (k.0.to_owned(), k.1.to_owned())
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let mut store = Self {
            rv: 0,
            types: BTreeMap::new(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 0,
            events,
            service_ip: 0,
            gc: GcIndex::default(),
        };
        for t in resources::builtins() {
            store.objects.entry(t.key()).or_default();
            store.types.insert(t.key(), t);
        }
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let ns_obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            // Creating the well-known namespaces in an empty store cannot fail.
            let manager = apiserver_manager();
            let _ = store.create(
                &key(NAMESPACES),
                "",
                ns_obj,
                Tracking::Update(&manager),
                false,
            );
        }
        store
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn types(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// The resource served at `group/version/plural`, or 404 as for an unknown path.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<ResourceType, ApiError> {
        self.types
            .get(&(group.to_owned(), plural.to_owned()))
            .filter(|t| t.versions.iter().any(|v| v == version))
            .cloned()
            .ok_or_else(ApiError::not_found_path)
    }

    fn okey(rt: &ResourceType, ns: &str, name: &str) -> ObjKey {
        if rt.namespaced {
            (ns.to_owned(), name.to_owned())
        } else {
            (String::new(), name.to_owned())
        }
    }

    fn lookup(&self, rt: &ResourceType, okey: &ObjKey) -> Result<Stored, ApiError> {
        self.objects
            .get(&rt.key())
            .and_then(|m| m.get(okey))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &okey.1))
    }

    /// The object at `at`, if stored.
    pub(super) fn stored(&self, at: &ObjRef) -> Option<Stored> {
        self.objects.get(&at.0).and_then(|m| m.get(&at.1)).cloned()
    }

    /// The resource type stored under `res`.
    pub(super) fn types_get(&self, res: &ResKey) -> Option<ResourceType> {
        self.types.get(res).cloned()
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Stored, ApiError> {
        self.lookup(rt, &Self::okey(rt, ns, name))
    }

    /// All objects of a resource (in one namespace when `ns` is given), sorted by
    /// namespace and name, and the resourceVersion of the list.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> (Vec<Stored>, u64) {
        let Some(m) = self.objects.get(&rt.key()) else {
            return (Vec::new(), self.rv);
        };
        let items = match ns.filter(|_| rt.namespaced) {
            None => m.values().cloned().collect(),
            Some(ns) => Self::namespace_range(m, ns)
                .map(|(_, v)| v.clone())
                .collect(),
        };
        (items, self.rv)
    }

    /// The objects of one namespace: a range of the `(namespace, name)`-sorted map.
    fn namespace_range<'m>(
        m: &'m BTreeMap<ObjKey, Stored>,
        ns: &str,
    ) -> impl Iterator<Item = (&'m ObjKey, &'m Stored)> {
        m.range((ns.to_owned(), String::new())..)
            .take_while(move |((ons, _), _)| ons == ns)
    }

    /// Every object in namespace `ns`, of every resource, and whether it is terminating.
    pub(super) fn namespace_content(&self, ns: &str) -> Vec<(ObjRef, bool)> {
        let mut out = Vec::new();
        for (res, m) in &self.objects {
            for (okey, obj) in Self::namespace_range(m, ns) {
                out.push(((res.clone(), okey.clone()), is_terminating(&obj.value)));
            }
        }
        out
    }

    /// Removes a namespace object (its content is gone); whether it wrote.
    pub(super) fn remove_namespace(&mut self, name: &str) -> bool {
        let Some(rt) = self.types_get(&key(NAMESPACES)) else {
            return false;
        };
        let okey = (String::new(), name.to_owned());
        match self.lookup(&rt, &okey) {
            Ok(obj) => {
                self.remove(&rt, okey, obj.value.clone(), Some(obj));
                true
            }
            Err(_) => false,
        }
    }

    /// Every object, for state dumps.
    pub fn dump(&self) -> Value {
        let mut out = Map::new();
        for (k, objs) in &self.objects {
            if objs.is_empty() {
                continue;
            }
            let name = if k.0.is_empty() {
                k.1.clone()
            } else {
                format!("{}.{}", k.1, k.0)
            };
            out.insert(
                name,
                Value::Array(objs.values().map(|o| o.value.clone()).collect()),
            );
        }
        json!({"resourceVersion": self.rv.to_string(), "objects": out})
    }

    /// Drops the whole watch history: watches from any earlier resourceVersion get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    /// Stores `obj` (or removes the object, for `Deleted`) under a new resourceVersion,
    /// updates the collector's indexes, records the change and tells the watchers.
    fn commit(
        &mut self,
        res: &ResKey,
        okey: ObjKey,
        kind: ChangeKind,
        mut obj: Value,
        old: Option<Stored>,
    ) -> Stored {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let stored = Arc::new(Obj::new(obj));
        let objs = self.objects.entry(res.clone()).or_default();
        let previous = if kind == ChangeKind::Deleted {
            objs.remove(&okey)
        } else {
            objs.insert(okey.clone(), stored.clone())
        };
        let at = (res.clone(), okey);
        let current = (kind != ChangeKind::Deleted).then_some(&stored.value);
        self.gc
            .record(&at, previous.as_ref().map(|p| &p.value), current);
        // The namespace controller waits for a terminating namespace's content to go.
        if !at.1.0.is_empty() {
            let ns_at = (key(NAMESPACES), (String::new(), at.1.0.clone()));
            if self
                .stored(&ns_at)
                .is_some_and(|n| is_terminating(&n.value))
            {
                self.gc.mark(ns_at);
            }
        }
        let change = Arc::new(Change {
            rv: self.rv,
            res: at.0,
            kind,
            object: stored.clone(),
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_rv = dropped.rv;
            }
        }
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(change);
        stored
    }

    /// Starts a watch on `rt` (in `ns` if given). `from`: `None` for "from the current state"
    /// (synthetic ADDED events first, as for `resourceVersion` unset or `0`), `Some(rv)` to
    /// replay the history after `rv`; 410 Gone when that part of the history is compacted.
    pub fn watch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let rx = self.events.subscribe();
        let res = rt.key();
        let initial = match from {
            None => {
                let (items, _) = self.list(rt, ns);
                items
                    .into_iter()
                    .map(|object| {
                        Arc::new(Change {
                            rv: self.rv,
                            res: res.clone(),
                            kind: ChangeKind::Added,
                            object,
                            old: None,
                        })
                    })
                    .collect()
            }
            Some(rv) if rv < self.compacted_rv => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted_rv
                )));
            }
            Some(rv) => {
                let start = self.history.partition_point(|c| c.rv <= rv);
                self.history
                    .range(start..)
                    .filter(|c| c.res == res)
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchStart {
            initial,
            last_rv: self.rv.max(from.unwrap_or(0)),
            rx,
        })
    }
}
