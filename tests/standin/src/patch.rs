//! Patch application: JSON patch, JSON merge patch and the subset of strategic merge patch
//! that kubectl's client-side apply produces for maps and scalars.
//!
//! Knowing difference: strategic merge of lists by merge key (e.g. containers by `name`) is
//! not implemented; lists are replaced as a whole, as JSON merge patch does. The `$patch`
//! directive on maps (`replace`, `delete`), `$deleteFromPrimitiveList/<key>` and
//! `$setElementOrder/<key>` (ignored, order is the patch's) are understood.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The patch flavours, by request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies `patch` of `kind` to `doc`.
pub fn apply(doc: &mut Value, kind: PatchKind, patch: &[u8]) -> Result<(), ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(format!("invalid patch: {e}"));
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| bad(&e))?;
            json_patch::patch(doc, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })
        }
        PatchKind::Merge => {
            let p: Value = serde_json::from_slice(patch).map_err(|e| bad(&e))?;
            json_patch::merge(doc, &p);
            Ok(())
        }
        PatchKind::Strategic => {
            let p: Value = serde_json::from_slice(patch).map_err(|e| bad(&e))?;
            strategic_merge(doc, &p);
            Ok(())
        }
        // Server-side apply is not a patch of the stored object but a merge with field
        // ownership: `Store::apply`.
        PatchKind::Apply => Err(ApiError::bad_request(
            "an apply patch is not applied as a patch; this is a bug in kube-standin",
        )),
    }
}

/// The body of a server-side apply: YAML (JSON is YAML too; kubectl and helm send JSON).
pub fn parse_apply(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("the apply body is not UTF-8: {e}")))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding YAML of the apply configuration: {e}"
        ))
    })
}

fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *doc = Value::Object(strip_directives(replaced));
            return;
        }
        Some("delete") => {
            *doc = Value::Null;
            return;
        }
        _ => {}
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(d) = doc else { return };
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(del)) = (d.get_mut(field), v) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if v.is_null() {
            d.remove(k);
            continue;
        }
        match d.get_mut(k) {
            Some(existing) if v.is_object() && existing.is_object() => {
                strategic_merge(existing, v);
                if existing.is_null() {
                    d.remove(k);
                }
            }
            _ => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, v);
                if !fresh.is_null() {
                    d.insert(k.clone(), fresh);
                }
            }
        }
    }
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_bodies_are_json_or_yaml() {
        let want = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}});
        assert_eq!(parse_apply(want.to_string().as_bytes()).unwrap(), want);
        let yaml = "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n";
        assert_eq!(parse_apply(yaml.as_bytes()).unwrap(), want);
        assert_eq!(parse_apply(b"a: [").unwrap_err().code, 400);
    }

    #[test]
    fn strategic_merges_maps_and_deletes() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "eA=="}});
        strategic_merge(
            &mut doc,
            &json!({"metadata": {"labels": {"b": null, "c": "3"}}, "data": {"$patch": "replace", "y": "eQ=="}, "$setElementOrder/finalizers": []}),
        );
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "data": {"y": "eQ=="}})
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchKind::Strategic)
        );
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }
}
