//! What every handler shares: the server's state, one request's parts, and the helpers that
//! render objects and write JSON responses. A leaf below the handlers (`server.rs`,
//! `discovery.rs`, `list.rs`, `watch.rs`, `proxy.rs`), so none of them imports another's home.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::faults::FaultState;
use crate::resources::ResourceType;
use crate::store::{Obj, Store};

/// Annotation on a Service naming the `HOST:PORT` its proxy requests go to: the alternative
/// to `--endpoint NS/NAME=HOST:PORT` when the address is known where the Service is created.
pub const ENDPOINT_ANNOTATION: &str = "sealed-secrets-rs.dev/standin-endpoint";

/// State shared by all requests.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    pub endpoints: Mutex<HashMap<(String, String), String>>,
    pub token: Option<String>,
    pub gc: Notify,
    pub bookmark_interval: Duration,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Watch streams started, for tests checking that clients reconnect.
    pub watches: std::sync::atomic::AtomicU64,
    /// GETs of single objects served so far, by resource (plural) and namespace, for tests
    /// checking that a client does not read objects one by one.
    pub object_gets: Mutex<HashMap<(String, String), u64>>,
}

/// Locks a mutex, recovering from poisoning: a panicking request must not wedge the server.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A response whose JSON body is already serialised.
pub(crate) fn bytes_response(code: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One request's parts, for the handlers.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub query: &'a HashMap<String, String>,
    pub body: &'a Bytes,
}

/// The object as served at `version` (one stored representation, see store.rs).
pub(crate) fn render(mut obj: Value, rt: &ResourceType, version: &str) -> Value {
    obj["apiVersion"] = json!(rt.api_version(version));
    obj
}

/// Whether the client asked for metadata only (`Accept: ...;as=PartialObjectMetadata` or
/// `...;as=PartialObjectMetadataList`, as kube-apiserver serves to metadata informers).
pub(crate) fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

/// The object as a `meta.k8s.io/v1` `PartialObjectMetadata` (its metadata only), serialised:
/// what kube-apiserver sends for metadata-only lists and watches, so that such a client never
/// receives the rest of the object.
pub(crate) fn render_metadata_json(obj: &Obj) -> Bytes {
    Bytes::from(
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.value["metadata"],
        })
        .to_string(),
    )
}

/// [`render`] serialised: the stored serialisation when `version` is the stored one (no
/// copy), else a rewritten copy.
pub(crate) fn render_json(obj: &Obj, rt: &ResourceType, version: &str) -> Bytes {
    if obj.value["apiVersion"].as_str() == Some(rt.api_version(version).as_str()) {
        return obj.json();
    }
    Bytes::from(render(obj.value.clone(), rt, version).to_string())
}

pub(crate) fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}
