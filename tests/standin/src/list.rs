//! Lists: pages with continue tokens, label and field selectors, the list body built from
//! stored serialisations, and `Table` answers (Name and Age columns only) for kubectl.

use std::collections::HashMap;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, header};
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::ResourceType;
use super::select::{FieldSelector, LabelSelector};
use axum::response::Response;

use super::shared::{
    Ctx, bytes_response, json_response, lock, render, render_json, render_metadata_json,
    wants_metadata,
};
use super::store::Obj;

pub(super) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| first.contains("as=Table"))
}

fn age(created: &str) -> String {
    let Ok(t) = created.parse::<jiff::Timestamp>() else {
        return "<unknown>".to_owned();
    };
    let secs = jiff::Timestamp::now()
        .as_second()
        .saturating_sub(t.as_second())
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub(super) fn table(items: &[Value], rv: &str) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let name = o["metadata"]["name"].clone();
            let created = o["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default();
            json!({"cells": [name, age(created)], "object": o})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0},
        ],
        "rows": rows,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    ns: String,
    name: String,
}
/// The `labelSelector` and `fieldSelector` query parameters of list, watch and
/// deletecollection (absent = match everything).
pub(super) fn selectors(
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    Ok((
        LabelSelector::parse(param("labelSelector"))?,
        FieldSelector::parse(param("fieldSelector"))?,
    ))
}

pub(super) fn list(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(ctx.query)?;
    let (items, rv) = lock(&ctx.shared.store).list(rt, ns);
    let mut items: Vec<_> = items
        .into_iter()
        .filter(|o| labels.matches(&o.value) && fields.matches(&o.value))
        .collect();
    if let Some(token) = ctx.query.get("continue").filter(|t| !t.is_empty()) {
        let start: ContinueToken = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
        // Items are sorted by (namespace, name): the page starts after the token's key.
        let after = |o: &Obj| {
            let k = (
                o.value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default(),
                o.value["metadata"]["name"].as_str().unwrap_or_default(),
            );
            k > (start.ns.as_str(), start.name.as_str())
        };
        let first = items.partition_point(|o| !after(o));
        items.drain(..first);
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = ctx
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        if let Some(last) = items.last() {
            let token = ContinueToken {
                ns: last.value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: last.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            let raw = serde_json::to_vec(&token).unwrap_or_default();
            meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if wants_table(ctx.headers) {
        let values: Vec<Value> = items
            .iter()
            .map(|o| render(o.value.clone(), rt, version))
            .collect();
        let mut t = table(&values, &rv.to_string());
        t["metadata"] = meta;
        return Ok(json_response(200, &t));
    }
    if wants_metadata(ctx.headers) {
        let head = json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        });
        let items = items.iter().map(|o| render_metadata_json(o));
        return Ok(bytes_response(200, list_body(&head, items)));
    }
    let head = json!({
        "kind": rt.list_kind,
        "apiVersion": rt.api_version(version),
        "metadata": meta,
    });
    let items = items.iter().map(|o| render_json(o, rt, version));
    Ok(bytes_response(200, list_body(&head, items)))
}

/// `head` (a JSON object) with an `items` array of already serialised objects appended:
/// a list answer built from the stored serialisations, without copying any object tree.
fn list_body(head: &Value, items: impl Iterator<Item = Bytes>) -> Bytes {
    let mut out = head.to_string().into_bytes();
    // `head` serialises as `{...}`; reopen it.
    out.pop();
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(br#""items":["#);
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}
