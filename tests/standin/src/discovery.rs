//! Discovery: `/version`, the API group and resource lists, and the OpenAPI documents.
//!
//! Knowing differences from kube-apiserver: no aggregated discovery (kubectl and client-go
//! fall back to the legacy per-group-version documents when `/api` and `/apis` answer plain
//! JSON); the OpenAPI documents carry no schemas (see [`openapi_v2`] and [`openapi_root`]).

use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::ResourceType;
use super::shared::{Shared, lock};

/// The Kubernetes release the stand-in imitates: the one the real control plane of
/// `tests/cluster` is built from and the kubectl of `.ci/install-kube-tools.sh` belongs to.
pub const KUBERNETES_MINOR: u32 = 35;
/// `gitVersion`: the release, with semver build metadata naming the stand-in (as k3s does
/// with `+k3s1`): clients comparing versions see 1.35.4, people reading it see what serves.
pub const GIT_VERSION: &str = "v1.35.4+kube-standin";

/// `/version`, with every field a 1.35 kube-apiserver returns (k8s.io/apimachinery
/// `version.Info`): since 1.31 the emulation version (the binary's own unless
/// `--emulated-version` says otherwise) and the minimum compatibility version (one minor
/// below the emulation version).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR.to_string(),
        "emulationMajor": "1",
        "emulationMinor": KUBERNETES_MINOR.to_string(),
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": (KUBERNETES_MINOR - 1).to_string(),
        "gitVersion": GIT_VERSION,
        // No upstream commit is built here; zeros say so rather than borrowing one.
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        // The Go release upstream builds 1.35 with (kubernetes .go-version).
        "goVersion": "go1.25.9",
        "compiler": "gc",
        "platform": format!("{}/{}", go_os(), go_arch()),
    })
}

fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub(super) fn resource_list(shared: &Shared, group: &str, version: &str) -> Value {
    let store = lock(&shared.store);
    let resources: Vec<Value> = store
        .types()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
        .flat_map(ResourceType::discovery_entries)
        .collect();
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

fn groups(shared: &Shared) -> Vec<(String, Vec<String>)> {
    let store = lock(&shared.store);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for t in store.types().filter(|t| !t.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, vs)) => {
                for v in &t.versions {
                    if !vs.contains(v) {
                        vs.push(v.clone());
                    }
                }
            }
            None => out.push((t.group.clone(), t.versions.clone())),
        }
    }
    out
}

pub(super) fn group_list(shared: &Shared) -> Value {
    let gs: Vec<Value> = groups(shared)
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

pub(super) fn group(shared: &Shared, name: &str) -> Result<Value, ApiError> {
    let (g, vs) = groups(shared)
        .into_iter()
        .find(|(g, _)| g == name)
        .ok_or_else(ApiError::not_found_path)?;
    let mut v = group_json(&g, &vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Ok(v)
}

/// `/openapi/v3`: one entry per served group-version.
///
/// Knowing difference: the documents carry no schemas, only each resource's PATCH operation
/// with its `x-kubernetes-group-version-kind` and the `fieldValidation` parameter. That is what
/// kubectl reads to learn that the server validates fields itself (so it skips client-side
/// schema validation for those kinds). Unknown fields are not actually rejected; `kubectl
/// explain` has nothing to explain.
pub(super) fn openapi_root(shared: &Shared) -> Value {
    let store = lock(&shared.store);
    let mut paths = serde_json::Map::new();
    for t in store.types() {
        for v in &t.versions {
            let key = if t.group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{}/{v}", t.group)
            };
            let doc = openapi_doc(store.types(), &t.group, v).to_string();
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&doc, &mut h);
            let hash = format!("{:016X}", std::hash::Hasher::finish(&h));
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn openapi_doc<'a>(
    types: impl Iterator<Item = &'a ResourceType>,
    group: &str,
    version: &str,
) -> Value {
    let mut paths = serde_json::Map::new();
    for t in types.filter(|t| t.group == group && t.versions.iter().any(|v| v == version)) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        paths.insert(path, json!({
            "patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": t.kind},
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }));
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths})
}

pub(super) fn openapi_gv(shared: &Shared, group: &str, version: &str) -> Result<Value, ApiError> {
    let store = lock(&shared.store);
    let doc = openapi_doc(store.types(), group, version);
    if doc["paths"].as_object().is_some_and(|p| p.is_empty()) {
        return Err(ApiError::not_found_path());
    }
    Ok(doc)
}

/// The media type of `/openapi/v2` as protobuf (the gnostic `openapi_v2.Document` message),
/// as kube-openapi answers it. client-go asks for the older spelling with an `@`
/// (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which Go's `mime` parser
/// rejects in a response's `Content-Type`; kube-openapi accepts both and answers this one.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an `Accept` header asks `/openapi/v2` for protobuf (either spelling).
pub fn wants_openapi_v2_protobuf(accept: &str) -> bool {
    accept.split(',').any(|a| {
        let media = a.split(';').next().unwrap_or_default().trim();
        media.starts_with("application/com.github.proto-openapi.spec.v2")
            && media.ends_with("+protobuf")
    })
}

/// `/openapi/v2` as JSON, or as protobuf when `protobuf` (see
/// [`wants_openapi_v2_protobuf`]).
///
/// kubectl needs this document only for client-side validation, which it does where the
/// server cannot validate fields itself: for a `kind: List` (no OpenAPI v3 path carries
/// `v1/List`) it validates each item against the v2 schemas, and fails when `/openapi/v2`
/// cannot be fetched and decoded. Knowing difference: the document has no paths and no
/// definitions, so every item passes (kubectl skips kinds it has no schema for, as it does
/// for custom resources without a schema); `kubectl explain` has nothing to explain.
/// kube-apiserver serves the schemas of every kind.
pub fn openapi_v2(protobuf: bool) -> (Vec<u8>, &'static str) {
    if protobuf {
        // openapi_v2.Document (github.com/google/gnostic-models openapiv2/OpenAPIv2.proto):
        // swagger = 1, info = 2 { title = 1, version = 2 }; empty paths and definitions are
        // omitted, as proto3 omits empty messages.
        let mut info = Vec::new();
        proto_bytes(&mut info, 1, b"Kubernetes");
        proto_bytes(&mut info, 2, GIT_VERSION.as_bytes());
        let mut doc = Vec::new();
        proto_bytes(&mut doc, 1, b"2.0");
        proto_bytes(&mut doc, 2, &info);
        return (doc, OPENAPI_V2_PROTOBUF);
    }
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": {},
        "definitions": {},
    });
    (doc.to_string().into_bytes(), "application/json")
}

/// Appends a length-delimited protobuf field (wire type 2).
fn proto_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    proto_varint(out, u64::from(field << 3 | 2));
    proto_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn proto_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_a_1_35_release_with_all_fields() {
        let v = version();
        assert_eq!(
            (v["major"].as_str(), v["minor"].as_str()),
            (Some("1"), Some("35"))
        );
        assert_eq!(v["emulationMinor"], "35");
        assert_eq!(v["minCompatibilityMinor"], "34");
        assert!(GIT_VERSION.starts_with(&format!("v1.{KUBERNETES_MINOR}.")));
        for f in [
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        ] {
            assert!(v[f].as_str().is_some_and(|s| !s.is_empty()), "{f}");
        }
    }

    /// Bytes checked by hand against the proto definition: field 1 "2.0", field 2 a
    /// message holding field 1 "Kubernetes" and field 2 the version.
    #[test]
    fn openapi_v2_protobuf_encoding() {
        let (doc, ct) = openapi_v2(true);
        assert_eq!(ct, OPENAPI_V2_PROTOBUF);
        let mut want = vec![0x0a, 3, b'2', b'.', b'0', 0x12];
        let info_len = 2 + 10 + 2 + GIT_VERSION.len();
        want.push(info_len as u8);
        want.extend_from_slice(&[0x0a, 10]);
        want.extend_from_slice(b"Kubernetes");
        want.extend_from_slice(&[0x12, GIT_VERSION.len() as u8]);
        want.extend_from_slice(GIT_VERSION.as_bytes());
        assert_eq!(doc, want);
        assert!(wants_openapi_v2_protobuf(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
        assert!(wants_openapi_v2_protobuf(
            "application/json;q=0.9, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!wants_openapi_v2_protobuf("application/json"));
        let mut long = Vec::new();
        proto_varint(&mut long, 300);
        assert_eq!(long, [0xac, 0x02]);
    }
}
