//! Field ownership (`metadata.managedFields`) and server-side apply, after kube-apiserver's
//! field manager (k8s.io/apimachinery `managedfields`, sigs.k8s.io/structured-merge-diff):
//! every write records which manager set which fields; an apply
//! (`application/apply-patch+yaml`) merges the applied configuration into the object, fails
//! with 409 when it would change a field another manager owns (unless forced, which takes
//! the field over), and removes the fields its manager applied before and no longer applies,
//! when no other manager owns them.
//!
//! Simplified, knowingly (the stand-in has no schemas; kube-apiserver uses the OpenAPI
//! schema of each kind):
//! - every object is a tree of maps: a field is owned at its leaf (a scalar, a list, `null`
//!   or an empty map); a map is never owned as a whole, so `fieldsV1` has no `.` members on
//!   maps, and lists are atomic (owned whole, like a list without `x-kubernetes-list-type:
//!   map`; kube-apiserver tracks `containers` and other keyed lists item by item with `k:`);
//! - conflicts and ownership compare paths exactly or by prefix (owning `a.b` conflicts with
//!   applying `a` as a leaf, and the other way round);
//! - managers are told apart by name, operation and subresource; an apply never conflicts
//!   with the same manager's own `Update` entry;
//! - `managedFields` a client sends in a write are ignored (kube-apiserver lets a client
//!   replace or reset them);
//! - removing a field a manager stopped applying leaves its parent map, even when empty.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// A field: the keys from the object's root.
pub type Path = Vec<String>;
/// The fields a manager owns (leaves only, see the module docs).
pub type FieldSet = BTreeSet<Path>;

/// Which part of an object a write may change: the main resource ignores `status` when the
/// resource has a status subresource; the status subresource changes only `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Main { status_subresource: bool },
    Status,
}

impl Scope {
    fn subresource(self) -> Option<&'static str> {
        match self {
            Self::Main { .. } => None,
            Self::Status => Some("status"),
        }
    }

    /// Fields never tracked: identity and server-set metadata (kube-apiserver's strip set)
    /// and what this scope cannot change.
    fn tracks(self, path: &[String]) -> bool {
        const STRIPPED_META: &[&str] = &[
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ];
        let first = path.first().map(String::as_str);
        match first {
            Some("apiVersion" | "kind") if path.len() == 1 => return false,
            Some("metadata")
                if path
                    .get(1)
                    .is_some_and(|f| STRIPPED_META.contains(&f.as_str())) =>
            {
                return false;
            }
            _ => {}
        }
        match self {
            Self::Main { status_subresource } => !(status_subresource && first == Some("status")),
            Self::Status => first == Some("status"),
        }
    }
}

/// Who writes: the `fieldManager` query parameter, or the `User-Agent` up to its first `/`
/// (what kube-apiserver falls back to), and the API version of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub name: String,
    pub api_version: String,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// The owned field that `path` collides with: itself, an ancestor or a descendant.
    fn owner_of<'e>(&'e self, path: &Path) -> impl Iterator<Item = &'e Path> + 'e {
        let path = path.clone();
        self.fields
            .iter()
            .filter(move |f| f.starts_with(&path) || path.starts_with(f))
    }

    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {} at {}", self.api_version, self.time));
        }
        s
    }
}

/// The managed fields of an object, as the write being made changes them.
#[derive(Debug, Clone, Default)]
pub struct Managed(Vec<Entry>);

/// A field path as kube-apiserver prints it in conflicts: `.spec.template.data.key`.
fn print_path(p: &Path) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

fn value_at<'v>(obj: &'v Value, path: &Path) -> Option<&'v Value> {
    path.iter().try_fold(obj, |cur, k| cur.as_object()?.get(k))
}

/// The fields of `obj` that `scope` tracks (leaves, see the module docs).
pub fn field_set(obj: &Value, scope: Scope) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, scope: Scope, out: &mut FieldSet) {
        let Some(map) = v.as_object() else { return };
        for (k, child) in map {
            path.push(k.clone());
            match child.as_object() {
                Some(m) if !m.is_empty() => walk(child, path, scope, out),
                _ => {
                    if scope.tracks(path) {
                        out.insert(path.clone());
                    }
                }
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(obj, &mut Vec::new(), scope, &mut out);
    out
}

/// `fieldsV1` of a set: `{"f:data": {"f:key": {}}}`, `.` marking a member with children.
fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(format!("f:{k}"), render(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for p in set {
        let node = p
            .iter()
            .fold(&mut root, |n, k| n.children.entry(k.clone()).or_default());
        node.member = true;
    }
    render(&root)
}

/// The set a `fieldsV1` describes; keys other than `f:` and `.` (list items, which the
/// stand-in never writes) are ignored.
fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if !path.is_empty() && (m.is_empty() || m.contains_key(".")) {
            out.insert(path.clone());
        }
        for (k, child) in m {
            if let Some(field) = k.strip_prefix("f:") {
                path.push(field.to_owned());
                walk(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// What an apply found in its way: kube-apiserver's 409 with one cause per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(Vec<(String, Path)>);

impl Conflicts {
    /// The `Status` kube-apiserver answers (`errors.NewApplyConflict`).
    pub fn into_error(self) -> ApiError {
        let message = if let [(manager, path)] = self.0.as_slice() {
            format!(
                "Apply failed with 1 conflict: conflict with {manager}: {}",
                print_path(path)
            )
        } else {
            let mut by_manager: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
            for (m, p) in &self.0 {
                by_manager.entry(m).or_default().push(p);
            }
            let lines: Vec<String> = by_manager
                .iter()
                .flat_map(|(m, ps)| {
                    std::iter::once(format!("conflicts with {m}:"))
                        .chain(ps.iter().map(|p| format!("- {}", print_path(p))))
                })
                .collect();
            format!(
                "Apply failed with {} conflicts: {}",
                self.0.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = self
            .0
            .iter()
            .map(|(m, p)| {
                json!({"type": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": print_path(p)})
            })
            .collect();
        let mut e = ApiError::new(409, "Conflict", message);
        e.details = Some(json!({"causes": causes}));
        e
    }
}

impl Managed {
    /// The entries of `obj`'s `metadata.managedFields` (unreadable entries are dropped).
    pub fn of(obj: &Value) -> Self {
        let entries = obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(Entry {
                    manager: e["manager"].as_str()?.to_owned(),
                    operation: e["operation"].as_str()?.to_owned(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                    time: e["time"].as_str().unwrap_or_default().to_owned(),
                    subresource: e["subresource"].as_str().map(str::to_owned),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
            })
            .collect();
        Self(entries)
    }

    /// `metadata.managedFields`, or `None` when no manager owns anything.
    pub fn to_value(&self) -> Option<Value> {
        let entries: Vec<Value> = self
            .0
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": to_fields_v1(&e.fields),
                });
                if let Some(s) = &e.subresource {
                    v["subresource"] = json!(s);
                }
                v
            })
            .collect();
        (!entries.is_empty()).then_some(Value::Array(entries))
    }

    /// The entry of `manager` for `operation` in `scope`, created empty if missing.
    fn entry(&mut self, manager: &Manager, operation: &str, scope: Scope) -> &mut Entry {
        let sub = scope.subresource();
        let pos = match self
            .0
            .iter()
            .position(|e| e.is(&manager.name, operation, sub))
        {
            Some(p) => p,
            None => {
                self.0.push(Entry {
                    manager: manager.name.clone(),
                    operation: operation.to_owned(),
                    api_version: manager.api_version.clone(),
                    time: String::new(),
                    subresource: sub.map(str::to_owned),
                    fields: FieldSet::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[pos]
    }

    /// Records a create, update or non-apply patch from `old` (`None`: create) to `new`:
    /// the writer owns what it added or changed, other managers lose what it changed, and
    /// fields that are gone are owned by nobody.
    pub fn record_update(
        &mut self,
        manager: &Manager,
        scope: Scope,
        old: Option<&Value>,
        new: &Value,
        now: &str,
    ) {
        let empty = json!({});
        let old = old.unwrap_or(&empty);
        let old_set = field_set(old, scope);
        let new_set = field_set(new, scope);
        let changed: FieldSet = new_set
            .iter()
            .filter(|p| value_at(old, p) != value_at(new, p))
            .cloned()
            .collect();
        let removed: FieldSet = old_set
            .iter()
            .filter(|p| value_at(new, p).is_none())
            .cloned()
            .collect();
        if changed.is_empty() && removed.is_empty() {
            return;
        }
        let sub = scope.subresource();
        for e in &mut self.0 {
            let mine = e.is(&manager.name, "Update", sub);
            e.fields
                .retain(|f| !removed.contains(f) && (mine || !changed.contains(f)));
        }
        // As kube-apiserver: only a writer that took fields gets a (new) entry and time.
        if !changed.is_empty() {
            let entry = self.entry(manager, "Update", scope);
            entry.fields.extend(changed);
            entry.api_version = manager.api_version.clone();
            entry.time = now.to_owned();
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// Server-side apply of `config` by `manager` onto `live` (`None`: the object does not
    /// exist yet). Returns the merged object; fails with the conflicts unless `force`.
    pub fn apply(
        &mut self,
        manager: &Manager,
        scope: Scope,
        live: Option<&Value>,
        config: &Value,
        force: bool,
        now: &str,
    ) -> Result<Value, Conflicts> {
        let empty = json!({});
        let live = live.unwrap_or(&empty);
        let applied = field_set(config, scope);
        let changed: Vec<&Path> = applied
            .iter()
            .filter(|p| value_at(live, p) != value_at(config, p))
            .collect();
        let sub = scope.subresource();
        let mut conflicts = Vec::new();
        for e in self.0.iter().filter(|e| e.manager != manager.name) {
            for p in &changed {
                for owned in e.owner_of(p) {
                    conflicts.push((e.describe(), owned.clone()));
                }
            }
        }
        conflicts.sort();
        conflicts.dedup();
        if !conflicts.is_empty() {
            if !force {
                return Err(Conflicts(conflicts));
            }
            // Forced: the applier takes the fields over.
            for e in self.0.iter_mut().filter(|e| e.manager != manager.name) {
                e.fields
                    .retain(|f| !changed.iter().any(|p| f.starts_with(p) || p.starts_with(f)));
            }
        }
        let mut merged = live.clone();
        merge(&mut merged, config);
        let previous = self
            .0
            .iter()
            .find(|e| e.is(&manager.name, "Apply", sub))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        for dropped in previous.difference(&applied) {
            let owned_elsewhere = self
                .0
                .iter()
                .filter(|e| !e.is(&manager.name, "Apply", sub))
                .any(|e| e.owner_of(dropped).next().is_some());
            if !owned_elsewhere {
                remove_path(&mut merged, dropped);
            }
        }
        // As kube-apiserver: the time changes when the apply changed the object.
        let object_changed = merged != *live;
        let entry = self.entry(manager, "Apply", scope);
        if object_changed || entry.fields != applied || entry.time.is_empty() {
            entry.fields = applied;
            entry.time = now.to_owned();
        }
        entry.api_version = manager.api_version.clone();
        self.0.retain(|e| !e.fields.is_empty());
        Ok(merged)
    }
}

/// Merges an applied configuration into an object: maps key by key, anything else replaced.
fn merge(target: &mut Value, config: &Value) {
    match (target.as_object_mut(), config.as_object()) {
        (Some(t), Some(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = config.clone(),
    }
}

fn remove_path(obj: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_subresource: true,
    };

    fn mgr(name: &str) -> Manager {
        Manager {
            name: name.into(),
            api_version: "v1".into(),
        }
    }

    fn path(p: &str) -> Path {
        p.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn fields_v1_round_trips_and_strips_identity() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "u", "labels": {"app": "x"}},
            "data": {"k": "v", "e": {}}, "list": [1, 2], "status": {"phase": "x"},
        });
        let set = field_set(&obj, MAIN);
        let want: FieldSet = ["metadata.labels.app", "data.k", "data.e", "list"]
            .iter()
            .map(|p| path(p))
            .collect();
        assert_eq!(set, want);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:data": {"f:e": {}, "f:k": {}}, "f:list": {}, "f:metadata": {"f:labels": {"f:app": {}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
        let status = field_set(&obj, Scope::Status);
        assert_eq!(status, FieldSet::from([path("status.phase")]));
    }

    #[test]
    fn apply_conflicts_with_another_managers_changed_field_unless_forced() {
        let mut m = Managed::default();
        let live = json!({"data": {"a": "1", "b": "2"}});
        m.record_update(&mgr("editor"), MAIN, None, &live, "t0");
        // Same value: shared ownership, no conflict.
        let same = json!({"data": {"a": "1"}});
        let merged = m
            .apply(&mgr("helm"), MAIN, Some(&live), &same, false, "t1")
            .unwrap();
        assert_eq!(merged, live);
        // A different value: conflict with the editor.
        let other = json!({"data": {"a": "9"}});
        let err = m
            .clone()
            .apply(&mgr("helm"), MAIN, Some(&live), &other, false, "t2")
            .unwrap_err();
        let e = err.into_error();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"editor\" using v1 at t0: .data.a"
        );
        assert_eq!(e.details.unwrap()["causes"][0]["field"], ".data.a");
        // Forced: helm takes `a` over; the editor keeps `b`.
        let merged = m
            .apply(&mgr("helm"), MAIN, Some(&live), &other, true, "t3")
            .unwrap();
        assert_eq!(merged, json!({"data": {"a": "9", "b": "2"}}));
        let v = m.to_value().unwrap();
        let editor = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "editor")
            .unwrap();
        assert_eq!(editor["fieldsV1"], json!({"f:data": {"f:b": {}}}));
        let helm = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "helm")
            .unwrap();
        assert_eq!(
            (helm["operation"].as_str(), helm["time"].as_str()),
            (Some("Apply"), Some("t3"))
        );
    }

    #[test]
    fn apply_removes_fields_it_stopped_applying_unless_owned_elsewhere() {
        let mut m = Managed::default();
        let first = json!({"data": {"a": "1", "b": "2", "c": "3"}});
        let live = m
            .apply(&mgr("kubectl"), MAIN, None, &first, false, "t0")
            .unwrap();
        // Another manager takes an interest in `c` by writing it.
        let mut edited = live.clone();
        edited["data"]["c"] = json!("30");
        m.record_update(&mgr("editor"), MAIN, Some(&live), &edited, "t1");
        let second = json!({"data": {"a": "1"}});
        let merged = m
            .apply(&mgr("kubectl"), MAIN, Some(&edited), &second, false, "t2")
            .unwrap();
        assert_eq!(merged, json!({"data": {"a": "1", "c": "30"}}));
    }

    #[test]
    fn updates_take_changed_fields_from_other_managers() {
        let mut m = Managed::default();
        let live = m
            .apply(
                &mgr("helm"),
                MAIN,
                None,
                &json!({"spec": {"replicas": 1, "x": "y"}}),
                false,
                "t0",
            )
            .unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(3);
        m.record_update(&mgr("kubectl-scale"), MAIN, Some(&live), &scaled, "t1");
        let v = m.to_value().unwrap();
        assert_eq!(v[0]["manager"], "helm");
        assert_eq!(v[0]["fieldsV1"], json!({"f:spec": {"f:x": {}}}));
        assert_eq!(v[1]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        // Re-applying replicas: 1 now conflicts with the scaler.
        assert!(
            m.apply(
                &mgr("helm"),
                MAIN,
                Some(&scaled),
                &json!({"spec": {"replicas": 1, "x": "y"}}),
                false,
                "t2"
            )
            .is_err()
        );
    }
}
