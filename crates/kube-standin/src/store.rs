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
//! Costs, so that the stand-in keeps up with a controller at 10,000 objects (issue 14): a
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
use super::gc::{GcIndex, ObjRef};
use super::patch::{self, PatchKind};
use super::resources::{self, ResKey, ResourceType};
use super::strategy::{new_uid, random_suffix, valid_name};

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

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

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(super) fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match &mut obj["metadata"] {
        Value::Object(m) => m,
        // Both levels were made objects just above.
        _ => unreachable!("metadata was just made an object"),
    }
}

pub(super) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn is_terminating(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

pub(super) fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether two objects are equal in every top-level field but those in `skip`, and, when
/// `meta_skip` is given, in their metadata but for the fields in `meta_skip` (compares in
/// place: no copies of the objects).
fn equal_except(a: &Value, b: &Value, skip: &[&str], meta_skip: Option<&[&str]>) -> bool {
    fn fields<'v>(v: &'v Value, skip: &[&str]) -> Vec<(&'v String, &'v Value)> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .collect()
    }
    if fields(a, skip) != fields(b, skip) {
        return false;
    }
    match meta_skip {
        None => true,
        Some(m) => fields(&a["metadata"], m) == fields(&b["metadata"], m),
    }
}

/// Whether the parts that count as a spec change (all but metadata, apiVersion, kind, and
/// status when `ignore_status`) differ.
fn spec_changed(old: &Value, new: &Value, ignore_status: bool) -> bool {
    let skip: &[&str] = if ignore_status {
        &["metadata", "apiVersion", "kind", "status"]
    } else {
        &["metadata", "apiVersion", "kind"]
    };
    !equal_except(old, new, skip, None)
}

/// Equal apart from resourceVersion: such an update is a no-op that kube-apiserver answers
/// without a new resourceVersion or watch event. (`managedFields` change only with the
/// fields they describe, so an unchanged object has unchanged `managedFields`.)
fn same_content(a: &Value, b: &Value) -> bool {
    equal_except(a, b, &["metadata"], Some(&["resourceVersion"]))
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

    pub fn create(
        &mut self,
        rt_key: &ResKey,
        ns: &str,
        mut obj: Value,
        tracking: Tracking<'_>,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        let rt = self
            .types
            .get(rt_key)
            .cloned()
            .ok_or_else(ApiError::not_found_path)?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let api_version = rt.api_version(rt.storage_version());
        if let Some(k) = obj["kind"].as_str()
            && k != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the provided object ({k}) does not match the resource ({})",
                rt.kind
            )));
        }
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(rt.kind);
        let meta = meta_mut(&mut obj);
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(mns) if !mns.is_empty() && mns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => name = format!("{prefix}{}", random_suffix()),
                _ => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            }
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                format!(
                    "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        if rt.has_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        // With a status subresource, kube-apiserver's strategies reset the status on create
        // (custom resources, Deployments, PodDisruptionBudgets, Services); Namespace and CRD
        // status is then set by `normalize`.
        if rt.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        self.check_namespace(&rt, ns)?;
        let okey = Self::okey(&rt, ns, &name);
        if self
            .objects
            .get(rt_key)
            .is_some_and(|m| m.contains_key(&okey))
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let scope = Scope::Main {
            status_subresource: rt.status_subresource,
        };
        let managed = tracking.managed(None, &obj, scope);
        set_managed(&mut obj, &managed);
        self.normalize(&rt, &mut obj, true)?;
        if dry_run {
            return Ok(Arc::new(Obj::new(obj)));
        }
        let out = self.commit(rt_key, okey, ChangeKind::Added, obj, None);
        self.after_write(&rt, &out.value);
        Ok(out)
    }

    /// PUT: `new` replaces the object (or only its status when `status_only`).
    #[allow(clippy::too_many_arguments)] // mirrors the PUT request's parts one to one
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        new: Value,
        manager: &Manager,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        let okey = Self::okey(rt, ns, name);
        let old = self.lookup(rt, &okey)?;
        if let Some(bname) = str_of(&new, &["metadata", "name"])
            && bname != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        match str_of(&new, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty()) {
            Some(rv) if Some(rv) != str_of(&old.value, &["metadata", "resourceVersion"]) => {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
            None if rt.custom => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            _ => {}
        }
        let tracking = Tracking::Update(manager);
        self.replace(rt, okey, old, new, tracking, status_only, dry_run)
    }

    /// PATCH: the patch is applied to the stored object; a resourceVersion the patch sets is a
    /// precondition, as in kube-apiserver.
    #[allow(clippy::too_many_arguments)] // mirrors the PATCH request's parts one to one
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        manager: &Manager,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        if kind == PatchKind::Strategic && rt.custom {
            return Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let okey = Self::okey(rt, ns, name);
        let old = self.lookup(rt, &okey)?;
        let mut new = old.value.clone();
        patch::apply(&mut new, kind, body)?;
        if str_of(&new, &["metadata", "resourceVersion"])
            != str_of(&old.value, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let tracking = Tracking::Update(manager);
        self.replace(rt, okey, old, new, tracking, status_only, dry_run)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply of `config` by
    /// `manager` (see `fields.rs`); creates the object when it does not exist.
    #[allow(clippy::too_many_arguments)] // mirrors the PATCH request's parts one to one
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        config: Value,
        manager: &Manager,
        force: bool,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON or YAML object",
            ));
        }
        match config["kind"].as_str() {
            Some(k) if k == rt.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind of the applied object ({k}) does not match the resource ({})",
                    rt.kind
                )));
            }
            None => {
                return Err(ApiError::bad_request(
                    "invalid object type: kind must be set",
                ));
            }
        }
        if config["apiVersion"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion must be set",
            ));
        }
        if let Some(bname) = str_of(&config, &["metadata", "name"])
            && bname != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({bname}) does not match the name on the URL ({name})"
            )));
        }
        let scope = if status_only {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.status_subresource,
            }
        };
        let now = now_rfc3339();
        let okey = Self::okey(rt, ns, name);
        let old = match self.lookup(rt, &okey) {
            Ok(old) => old,
            Err(e) if e.code == 404 && !status_only => {
                let mut managed = Managed::default();
                let mut obj = managed
                    .apply(manager, scope, None, &config, force, &now)
                    .map_err(|c| c.into_error())?;
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let tracking = Tracking::Applied(managed);
                return self.create(&rt.key(), ns, obj, tracking, dry_run);
            }
            Err(e) => return Err(e),
        };
        if let Some(rv) = str_of(&config, &["metadata", "resourceVersion"])
            && Some(rv) != str_of(&old.value, &["metadata", "resourceVersion"])
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let mut managed = Managed::of(&old.value);
        let merged = managed
            .apply(manager, scope, Some(&old.value), &config, force, &now)
            .map_err(|c| c.into_error())?;
        let tracking = Tracking::Applied(managed);
        self.replace(rt, okey, old, merged, tracking, status_only, dry_run)
    }

    /// Stores `new` in place of `old` with the metadata rules of an update.
    #[allow(clippy::too_many_arguments)] // the parts of a write, one to one
    pub(super) fn replace(
        &mut self,
        rt: &ResourceType,
        okey: ObjKey,
        old: Stored,
        mut new: Value,
        tracking: Tracking<'_>,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Stored, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let name = okey.1.clone();
        if status_only {
            let status = new.get("status").cloned();
            new = old.value.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else if rt.status_subresource {
            match old.value.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        new["apiVersion"] = old.value["apiVersion"].clone();
        new["kind"] = old.value["kind"].clone();
        let old_meta = &old.value["metadata"];
        let meta = meta_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("managedFields");
        let scope = if status_only {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: rt.status_subresource,
            }
        };
        let managed = tracking.managed(Some(&old.value), &new, scope);
        set_managed(&mut new, &managed);
        if is_terminating(&old.value) {
            let before: HashSet<String> = finalizers(&old.value).into_iter().collect();
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &name,
                    format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"
                    ),
                ));
            }
        }
        self.normalize(rt, &mut new, false)?;
        if rt.has_generation && spec_changed(&old.value, &new, rt.status_subresource) {
            let g = old.value["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        if same_content(&old.value, &new) {
            return Ok(old);
        }
        if dry_run {
            return Ok(Arc::new(Obj::new(new)));
        }
        if is_terminating(&new) && finalizers(&new).is_empty() && rt.key() != key(NAMESPACES) {
            return Ok(self.remove(rt, okey, new, Some(old)));
        }
        let out = self.commit(&rt.key(), okey, ChangeKind::Modified, new, Some(old));
        self.after_write(rt, &out.value);
        Ok(out)
    }

    fn remove(
        &mut self,
        rt: &ResourceType,
        okey: ObjKey,
        obj: Value,
        old: Option<Stored>,
    ) -> Stored {
        let out = self.commit(&rt.key(), okey, ChangeKind::Deleted, obj, old);
        if rt.key() == key(CRDS)
            && let Ok(t) = resources::from_crd(&out.value)
        {
            let objs: Vec<(ObjKey, Stored)> = self
                .objects
                .get(&t.key())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            for (k, v) in objs {
                self.commit(&t.key(), k, ChangeKind::Deleted, v.value.clone(), None);
            }
            self.types.remove(&t.key());
            self.objects.remove(&t.key());
        }
        out
    }

    /// DELETE. Returns the object and whether it is gone (`false`: finalizers pending).
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        dry_run: bool,
    ) -> Result<(Stored, bool), ApiError> {
        let okey = Self::okey(rt, ns, name);
        let old = self.lookup(rt, &okey)?;
        if rt.key() == key(NAMESPACES) && ["default", "kube-system", "kube-public"].contains(&name)
        {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        if let Some(uid) = &opts.precondition_uid {
            let actual = str_of(&old.value, &["metadata", "uid"]).unwrap_or_default();
            if uid != actual {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}", super::error::qualified(&rt.group, &rt.plural))).with_details(&rt.group, &rt.plural, name));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            let actual = str_of(&old.value, &["metadata", "resourceVersion"]).unwrap_or_default();
            if rv != actual {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}", super::error::qualified(&rt.group, &rt.plural))).with_details(&rt.group, &rt.plural, name));
            }
        }
        if is_terminating(&old.value) {
            return Ok((old, false));
        }
        let mut fins = finalizers(&old.value);
        match opts.propagation.as_deref() {
            Some("Orphan") => fins.push("orphan".to_owned()),
            Some("Foreground") => fins.push("foregroundDeletion".to_owned()),
            _ => {}
        }
        let namespace = rt.key() == key(NAMESPACES);
        if fins.is_empty() && !namespace {
            if dry_run {
                return Ok((old, true));
            }
            let out = self.remove(rt, okey, old.value.clone(), Some(old));
            return Ok((out, true));
        }
        let mut new = old.value.clone();
        let meta = meta_mut(&mut new);
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if fins.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(fins));
        }
        if namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        if dry_run {
            return Ok((Arc::new(Obj::new(new)), false));
        }
        let out = self.commit(&rt.key(), okey, ChangeKind::Modified, new, Some(old));
        Ok((out, false))
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
