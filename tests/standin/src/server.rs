//! HTTP front of the stand-in: routing of the Kubernetes REST paths, the resource verbs,
//! fault injection, bearer token auth and the admin API. Discovery is in `discovery.rs`,
//! watch streams in `watch.rs`, the service proxy in `proxy.rs`.
//!
//! Knowing differences from kube-apiserver: plain HTTP/1.1 on loopback (no TLS, no HTTP/2;
//! JSON answers only, protobuf requests for the few kinds of `protobuf.rs`); `Table` output has only Name and Age columns; `fieldValidation`
//! is accepted and ignored; watches by `kubectl get -w` in table form are served as plain
//! objects. Field managers and server-side apply are in `fields.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::discovery;
use super::error::ApiError;
use super::faults::{Faults, Injected};
use super::fields::Manager;
use super::patch::{self, PatchKind};
use super::resources::ResourceType;

use super::list::{list, selectors, table, wants_table};
use super::shared::{
    Ctx, Shared, bytes_response, is_true, json_response, lock, render, render_json,
};
use super::store::{DeleteOpts, Tracking};
use super::{protobuf, proxy, watch};

fn error_response(e: &ApiError) -> Response {
    let mut resp = json_response(e.code, &e.to_status());
    if e.code == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    resp
}

/// Percent-decodes a query component (`+` is a space).
fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

pub(crate) async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Some(token) = &shared.token {
        let expected = format!("Bearer {token}");
        let ok = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected);
        if !ok {
            return error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"));
        }
    }
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    let path = proxy::decode_path(parts.uri.path());
    let query = parse_query(parts.uri.query());
    if let Some(admin) = path.strip_prefix("/standin/v1/") {
        return admin_request(&shared, &parts.method, admin, &body);
    }
    let latency = lock(&shared.faults).faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ctx = Ctx {
        shared: &shared,
        method: &parts.method,
        headers: &parts.headers,
        query: &query,
        body: &body,
    };
    let result = match segs.as_slice() {
        [] => Ok(json_response(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
        )),
        ["version"] => Ok(json_response(200, &discovery::version())),
        ["healthz" | "readyz" | "livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => Ok(json_response(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1")}],
            }),
        )),
        ["api", "v1"] => Ok(json_response(
            200,
            &discovery::resource_list(&shared, "", "v1"),
        )),
        ["apis"] => Ok(json_response(200, &discovery::group_list(&shared))),
        ["apis", g] => discovery::group(&shared, g).map(|v| json_response(200, &v)),
        ["apis", g, v] => {
            let list = discovery::resource_list(&shared, g, v);
            if list["resources"].as_array().is_some_and(|r| r.is_empty()) {
                Err(ApiError::not_found_path())
            } else {
                Ok(json_response(200, &list))
            }
        }
        ["openapi", "v2"] => {
            let protobuf = parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(discovery::wants_openapi_v2_protobuf);
            let (doc, content_type) = discovery::openapi_v2(protobuf);
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type)], doc).into_response())
        }
        ["openapi", "v3"] => Ok(json_response(200, &discovery::openapi_root(&shared))),
        ["openapi", "v3", "api", v] => {
            discovery::openapi_gv(&shared, "", v).map(|d| json_response(200, &d))
        }
        ["openapi", "v3", "apis", g, v] => {
            discovery::openapi_gv(&shared, g, v).map(|d| json_response(200, &d))
        }
        ["api", "v1", "namespaces", ns, "services", svc, "proxy", ..] => {
            let prefix = format!("/api/v1/namespaces/{ns}/services/{svc}/proxy");
            let rest = path
                .get(prefix.len()..)
                .filter(|r| !r.is_empty())
                .unwrap_or("/");
            proxy::proxy(&ctx, ns, svc, rest, parts.uri.query()).await
        }
        ["api", "v1", rest @ ..] => resource_request(&ctx, "", "v1", rest).await,
        ["apis", g, v, rest @ ..] => resource_request(&ctx, g, v, rest).await,
        _ => Err(ApiError::not_found_path()),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

async fn resource_request(
    ctx: &Ctx<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    // Which shape: /namespaces/{ns}/{plural}[/{name}[/{sub}]] or /{plural}[/{name}[/{sub}]].
    let (rt, ns, name, sub) = {
        let store = lock(&ctx.shared.store);
        match rest {
            ["namespaces", ns, plural, tail @ ..]
                if store
                    .resource(group, version, plural)
                    .is_ok_and(|t| t.namespaced) =>
            {
                let rt = store.resource(group, version, plural)?;
                (
                    rt,
                    Some((*ns).to_owned()),
                    tail.first().copied(),
                    tail.get(1).copied(),
                )
            }
            [plural, tail @ ..] => {
                let rt = store.resource(group, version, plural)?;
                (rt, None, tail.first().copied(), tail.get(1).copied())
            }
            [] => return Err(ApiError::not_found_path()),
        }
    };
    if rest.len() > 5 || (ns.is_none() && rest.len() > 3) {
        return Err(ApiError::not_found_path());
    }
    if rt.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::not_found_path());
    }
    match sub {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some(_) => return Err(ApiError::not_found_path()),
    }
    let status_only = sub.is_some();
    let is_update = matches!(*ctx.method, Method::PUT | Method::PATCH);
    let injected = lock(&ctx.shared.faults).roll(is_update);
    match injected {
        Injected::None => {}
        Injected::Error500 => {
            return Err(ApiError::new(
                500,
                "InternalError",
                "Internal error occurred: injected by kube-standin fault injection",
            ));
        }
        Injected::Error429 => {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later (injected by kube-standin)",
            );
            e.details = Some(json!({"retryAfterSeconds": 1}));
            return Err(e);
        }
        Injected::Conflict => {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name.unwrap_or_default(),
            ));
        }
    }
    let ns_str = ns.clone().unwrap_or_default();
    let dry_run = ctx.query.get("dryRun").is_some_and(|v| v == "All");
    let shared = ctx.shared;
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let protobuf = protobuf::is_protobuf(content_type);
    if matches!(*ctx.method, Method::POST | Method::PUT) && content_type.contains("cbor") {
        // client-go falls back to JSON when CBOR is refused with 415.
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
        )));
    }
    let parse_body = || -> Result<Value, ApiError> {
        if protobuf {
            return match *ctx.method {
                Method::DELETE => protobuf::decode_delete_options(ctx.body),
                _ => protobuf::decode(ctx.body, &rt),
            };
        }
        serde_json::from_slice(ctx.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })
    };
    let method = ctx.method.clone();
    match (method, name) {
        (Method::GET, None) if is_true(ctx.query, "watch") => {
            watch::watch(ctx, &rt, version, ns.as_deref())
        }
        (Method::GET, None) => list(ctx, &rt, version, ns.as_deref()),
        (Method::GET, Some(name)) => {
            *lock(&shared.object_gets)
                .entry((rt.plural.clone(), ns_str.clone()))
                .or_insert(0) += 1;
            let obj = lock(&shared.store).get(&rt, &ns_str, name)?;
            if wants_table(ctx.headers) {
                let rv = obj.value["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                return Ok(json_response(
                    200,
                    &table(&[render(obj.value.clone(), &rt, version)], &rv),
                ));
            }
            Ok(bytes_response(200, render_json(&obj, &rt, version)))
        }
        (Method::POST, None) => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource: create of {} needs a namespace",
                    rt.plural
                )));
            }
            let body = parse_body()?;
            let manager = manager(ctx, &rt, version);
            let tracking = Tracking::Update(&manager);
            let obj = lock(&shared.store).create(&rt.key(), &ns_str, body, tracking, dry_run)?;
            Ok(bytes_response(201, render_json(&obj, &rt, version)))
        }
        (Method::PUT, Some(name)) => {
            let body = parse_body()?;
            let manager = manager(ctx, &rt, version);
            let obj = lock(&shared.store).update(
                &rt,
                &ns_str,
                name,
                body,
                &manager,
                status_only,
                dry_run,
            )?;
            shared.gc.notify_one();
            Ok(bytes_response(200, render_json(&obj, &rt, version)))
        }
        (Method::PATCH, Some(name)) => {
            let ct = ctx
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = PatchKind::from_content_type(ct).ok_or_else(|| {
                ApiError::unsupported_media_type(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"))
            })?;
            let manager = manager(ctx, &rt, version);
            let force = is_true(ctx.query, "force");
            let obj = if kind == PatchKind::Apply {
                if !ctx.query.contains_key("fieldManager") {
                    return Err(ApiError::invalid(
                        "PatchOptions.meta.k8s.io",
                        "",
                        "fieldManager: Required value: is required for apply patch",
                    ));
                }
                let config = patch::parse_apply(ctx.body)?;
                lock(&shared.store).apply(
                    &rt,
                    &ns_str,
                    name,
                    config,
                    &manager,
                    force,
                    status_only,
                    dry_run,
                )?
            } else {
                if ctx.query.contains_key("force") {
                    return Err(ApiError::invalid(
                        "PatchOptions.meta.k8s.io",
                        "",
                        "force: Forbidden: may not be specified for non-apply patch",
                    ));
                }
                lock(&shared.store).patch(
                    &rt,
                    &ns_str,
                    name,
                    kind,
                    ctx.body,
                    &manager,
                    status_only,
                    dry_run,
                )?
            };
            shared.gc.notify_one();
            Ok(bytes_response(200, render_json(&obj, &rt, version)))
        }
        (Method::DELETE, Some(name)) if !status_only => {
            let opts = if ctx.body.is_empty() {
                DeleteOpts::default()
            } else {
                DeleteOpts::from_body(&parse_body()?)
            };
            let mut opts = opts;
            if let Some(p) = ctx.query.get("propagationPolicy") {
                opts.propagation = Some(p.clone());
            }
            let (obj, gone) = lock(&shared.store).delete(&rt, &ns_str, name, &opts, dry_run)?;
            shared.gc.notify_one();
            if !gone {
                return Ok(bytes_response(202, render_json(&obj, &rt, version)));
            }
            if rt.custom {
                // apiextensions-apiserver returns the deleted object (ReturnDeletedObject).
                return Ok(bytes_response(200, render_json(&obj, &rt, version)));
            }
            Ok(json_response(
                200,
                &json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": obj.value["metadata"]["uid"]},
                }),
            ))
        }
        (Method::DELETE, None) => {
            let (labels, fields) = selectors(ctx.query)?;
            let mut store = lock(&shared.store);
            let (items, _) = store.list(&rt, ns.as_deref());
            let mut deleted = Vec::new();
            for item in items
                .iter()
                .map(|o| &o.value)
                .filter(|o| labels.matches(o) && fields.matches(o))
            {
                let (ins, iname) = (
                    item["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    item["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                if let Ok((obj, _)) =
                    store.delete(&rt, &ins, &iname, &DeleteOpts::default(), dry_run)
                {
                    deleted.push(render(obj.value.clone(), &rt, version));
                }
            }
            let rv = store.current_rv().to_string();
            drop(store);
            shared.gc.notify_one();
            Ok(json_response(
                200,
                &json!({"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": {"resourceVersion": rv}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// The field manager of a write: `fieldManager`, else the `User-Agent` up to its first `/`
/// (printable characters, at most 128), as kube-apiserver's `managerOrUserAgent` does; so
/// a client sending neither (kube-rs by default) is the manager `""`.
fn manager(ctx: &Ctx<'_>, rt: &ResourceType, version: &str) -> Manager {
    let name = ctx
        .query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            let ua = ctx
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            ua.split('/')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(128)
                .collect()
        });
    Manager {
        name,
        api_version: rt.api_version(version),
    }
}

fn admin_request(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> Response {
    let parse = || {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    };
    let result: Result<Value, ApiError> = match (method, path) {
        (&Method::GET, "dump") => {
            let mut d = lock(&shared.store).dump();
            d["endpoints"] = json!(
                lock(&shared.endpoints)
                    .iter()
                    .map(|((ns, n), a)| (format!("{ns}/{n}"), a.clone()))
                    .collect::<std::collections::BTreeMap<_, _>>()
            );
            d["faults"] = json!(lock(&shared.faults).faults);
            Ok(d)
        }
        (&Method::POST, "compact") => {
            let mut s = lock(&shared.store);
            s.compact();
            Ok(json!({"compactedResourceVersion": s.current_rv().to_string()}))
        }
        (&Method::GET, "faults") => Ok(json!(lock(&shared.faults).faults)),
        (&Method::PUT, "faults") => parse().and_then(|v| {
            let f: Faults =
                serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
            lock(&shared.faults).faults = f.clone();
            Ok(json!(f))
        }),
        (&Method::POST, "endpoints") => parse().and_then(|v| {
            let (Some(ns), Some(name), Some(addr)) = (
                v["namespace"].as_str(),
                v["name"].as_str(),
                v["address"].as_str(),
            ) else {
                return Err(ApiError::bad_request(
                    "expected {\"namespace\", \"name\", \"address\"}",
                ));
            };
            lock(&shared.endpoints).insert((ns.to_owned(), name.to_owned()), addr.to_owned());
            Ok(v)
        }),
        _ => Err(ApiError::not_found_path()),
    };
    match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}

/// The background loop doing what kube-controller-manager's garbage collector and
/// namespace controller do.
pub(crate) async fn gc_loop(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            () = shared.gc.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => return,
        }
        // A small delay, as a real controller reacts asynchronously to the delete.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut store = lock(&shared.store);
        for _ in 0..16 {
            if store.gc_pass() == 0 {
                break;
            }
        }
    }
}

/// The address a `SocketAddr` answers on, for kubeconfig `server:` URLs.
pub(crate) fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
