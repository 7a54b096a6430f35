//! JSON helpers of the store: metadata access and the equality rules that decide whether a
//! write changes anything (and whether it counts as a spec change for `generation`).

use serde_json::{Map, Value, json};

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn str_of<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
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

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn is_terminating(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

pub(crate) fn owner_uids(obj: &Value) -> Vec<String> {
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
pub(super) fn spec_changed(old: &Value, new: &Value, ignore_status: bool) -> bool {
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
pub(super) fn same_content(a: &Value, b: &Value) -> bool {
    equal_except(a, b, &["metadata"], Some(&["resourceVersion"]))
}
