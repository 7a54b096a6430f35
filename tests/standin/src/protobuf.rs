//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) for the kinds typed
//! client-go clients write that way here: `kubectl create namespace|secret|configmap` and
//! helm's release records (Secrets). client-go does not fall back to JSON when protobuf is
//! refused, so these requests failed with 415.
//!
//! The wire format: the 4-byte magic `k8s\0`, then a `runtime.Unknown` whose `raw` field is
//! the object's message (k8s.io/api `core/v1/generated.proto`,
//! k8s.io/apimachinery `meta/v1/generated.proto`; tags copied from there). prost decodes the
//! messages; this module turns them into the JSON the rest of the stand-in stores.
//!
//! Knowing differences from kube-apiserver: only Secrets, ConfigMaps and Namespaces are
//! decoded (other kinds answer 415 naming the kinds that are); `metadata.managedFields` and
//! `metadata.selfLink` in a protobuf body are dropped (the server computes the first, the
//! second is gone since 1.20), as are Namespace status conditions (the server sets the
//! status). Responses are always JSON, which client-go accepts whatever it asked for.

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::resources::ResourceType;

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// The kinds this module decodes, as `(apiVersion, kind)`.
const DECODED: &[(&str, &str)] = &[("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Namespace")];

#[derive(Clone, PartialEq, prost::Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    content_type: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OwnerReference {
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<Time>,
    #[prost(int64, optional, tag = "10")]
    deletion_grace_period_seconds: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    r#type: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NamespaceStatus {
    #[prost(string, optional, tag = "1")]
    phase: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<NamespaceStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Preconditions {
    #[prost(string, optional, tag = "1")]
    uid: Option<String>,
    #[prost(string, optional, tag = "2")]
    resource_version: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    grace_period_seconds: Option<i64>,
    #[prost(message, optional, tag = "2")]
    preconditions: Option<Preconditions>,
    #[prost(bool, optional, tag = "3")]
    orphan_dependents: Option<bool>,
    #[prost(string, optional, tag = "4")]
    propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    dry_run: Vec<String>,
}

/// The JSON form of a protobuf `DeleteOptions` body (typed clients send one with DELETE).
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let bad = |what: &str| {
        ApiError::bad_request(format!(
            "the DeleteOptions body could not be decoded as protobuf: {what}"
        ))
    };
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("the body does not start with the k8s protobuf magic"))?;
    let unknown = Unknown::decode(envelope).map_err(|e| bad(&e.to_string()))?;
    let kind = unknown.type_meta.and_then(|t| t.kind).unwrap_or_default();
    if kind != "DeleteOptions" {
        return Err(bad(&format!("expected DeleteOptions, got {kind:?}")));
    }
    let o = DeleteOptions::decode(unknown.raw.unwrap_or_default().as_slice())
        .map_err(|e| bad(&e.to_string()))?;
    let mut v = json!({});
    if let Some(g) = o.grace_period_seconds {
        v["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = o.preconditions {
        v["preconditions"] = json!({"uid": p.uid, "resourceVersion": p.resource_version});
    }
    if let Some(b) = o.orphan_dependents {
        v["orphanDependents"] = json!(b);
    }
    if let Some(p) = o.propagation_policy {
        v["propagationPolicy"] = json!(p);
    }
    if !o.dry_run.is_empty() {
        v["dryRun"] = json!(o.dry_run);
    }
    Ok(v)
}

/// Whether a request's `Content-Type` is Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().map(str::trim) == Some("application/vnd.kubernetes.protobuf")
}

/// The JSON object a protobuf body of a `rt` write describes.
pub fn decode(body: &[u8], rt: &ResourceType) -> Result<Value, ApiError> {
    let bad = |what: &str| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as protobuf: {what}"
        ))
    };
    let unsupported = || {
        let kinds: Vec<&str> = DECODED.iter().map(|(_, k)| *k).collect();
        ApiError::unsupported_media_type(format!(
            "kube-standin decodes application/vnd.kubernetes.protobuf only for {}, not for {}; send JSON",
            kinds.join(", "),
            rt.kind
        ))
    };
    if !rt.group.is_empty() || !DECODED.iter().any(|(_, k)| *k == rt.kind) {
        return Err(unsupported());
    }
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("the body does not start with the k8s protobuf magic"))?;
    let unknown = Unknown::decode(envelope).map_err(|e| bad(&e.to_string()))?;
    if unknown
        .content_encoding
        .as_deref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err(bad("content encodings are not supported"));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if !DECODED.contains(&(api_version.as_str(), kind.as_str())) || kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({api_version}/{kind}) does not match the resource ({})",
            rt.kind
        )));
    }
    let raw = unknown.raw.unwrap_or_default();
    let decode_err = |e: prost::DecodeError| bad(&format!("{kind}: {e}"));
    let b64 = |m: BTreeMap<String, Vec<u8>>| -> Value {
        m.into_iter()
            .map(|(k, v)| {
                (
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect::<Map<String, Value>>()
            .into()
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    match kind.as_str() {
        "Secret" => {
            let s = Secret::decode(raw.as_slice()).map_err(decode_err)?;
            obj.insert("metadata".into(), meta(s.metadata.unwrap_or_default()));
            if !s.data.is_empty() {
                obj.insert("data".into(), b64(s.data));
            }
            if !s.string_data.is_empty() {
                obj.insert("stringData".into(), json!(s.string_data));
            }
            if let Some(t) = s.r#type {
                obj.insert("type".into(), json!(t));
            }
            if let Some(i) = s.immutable {
                obj.insert("immutable".into(), json!(i));
            }
        }
        "ConfigMap" => {
            let c = ConfigMap::decode(raw.as_slice()).map_err(decode_err)?;
            obj.insert("metadata".into(), meta(c.metadata.unwrap_or_default()));
            if !c.data.is_empty() {
                obj.insert("data".into(), json!(c.data));
            }
            if !c.binary_data.is_empty() {
                obj.insert("binaryData".into(), b64(c.binary_data));
            }
            if let Some(i) = c.immutable {
                obj.insert("immutable".into(), json!(i));
            }
        }
        _ => {
            let n = Namespace::decode(raw.as_slice()).map_err(decode_err)?;
            obj.insert("metadata".into(), meta(n.metadata.unwrap_or_default()));
            if let Some(spec) = n.spec.filter(|s| !s.finalizers.is_empty()) {
                obj.insert("spec".into(), json!({"finalizers": spec.finalizers}));
            }
            if let Some(phase) = n.status.and_then(|s| s.phase) {
                obj.insert("status".into(), json!({"phase": phase}));
            }
        }
    }
    Ok(Value::Object(obj))
}

fn time(t: Time) -> Value {
    match jiff::Timestamp::from_second(t.seconds.unwrap_or(0)) {
        Ok(ts) => json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        Err(_) => Value::Null,
    }
}

fn meta(m: ObjectMeta) -> Value {
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    for (k, v) in [
        ("name", m.name),
        ("generateName", m.generate_name),
        ("namespace", m.namespace),
        ("uid", m.uid),
        ("resourceVersion", m.resource_version),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            put(k, json!(v));
        }
    }
    if let Some(g) = m.generation {
        put("generation", json!(g));
    }
    if let Some(t) = m.creation_timestamp {
        put("creationTimestamp", time(t));
    }
    if let Some(t) = m.deletion_timestamp {
        put("deletionTimestamp", time(t));
    }
    if let Some(s) = m.deletion_grace_period_seconds {
        put("deletionGracePeriodSeconds", json!(s));
    }
    if !m.labels.is_empty() {
        put("labels", json!(m.labels));
    }
    if !m.annotations.is_empty() {
        put("annotations", json!(m.annotations));
    }
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .into_iter()
            .map(|r| {
                let mut o = json!({
                    "apiVersion": r.api_version.unwrap_or_default(),
                    "kind": r.kind.unwrap_or_default(),
                    "name": r.name.unwrap_or_default(),
                    "uid": r.uid.unwrap_or_default(),
                });
                if let Some(c) = r.controller {
                    o["controller"] = json!(c);
                }
                if let Some(b) = r.block_owner_deletion {
                    o["blockOwnerDeletion"] = json!(b);
                }
                o
            })
            .collect();
        put("ownerReferences", json!(refs));
    }
    if !m.finalizers.is_empty() {
        put("finalizers", json!(m.finalizers));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtins;

    fn rt(kind: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|t| t.kind == kind && t.group.is_empty())
            .unwrap()
    }

    /// Encodes like client-go: magic, then `Unknown{typeMeta, raw}`.
    fn envelope(kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn secret_with_metadata_and_binary_data() {
        let s = Secret {
            metadata: Some(ObjectMeta {
                name: Some("s".into()),
                namespace: Some("ns".into()),
                labels: BTreeMap::from([("owner".into(), "helm".into())]),
                owner_references: vec![OwnerReference {
                    api_version: Some("v1".into()),
                    kind: Some("ConfigMap".into()),
                    name: Some("o".into()),
                    uid: Some("u".into()),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                creation_timestamp: Some(Time {
                    seconds: Some(0),
                    nanos: Some(0),
                }),
                ..ObjectMeta::default()
            }),
            data: BTreeMap::from([("k".into(), vec![0, 255, b'a'])]),
            r#type: Some("Opaque".into()),
            string_data: BTreeMap::new(),
            immutable: Some(true),
        };
        let v = decode(&envelope("Secret", s.encode_to_vec()), &rt("Secret")).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": true,
                "data": {"k": "AP9h"},
                "metadata": {
                    "name": "s", "namespace": "ns", "labels": {"owner": "helm"},
                    "creationTimestamp": "1970-01-01T00:00:00Z",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u", "controller": true}],
                },
            })
        );
    }

    /// Bytes written by hand from the .proto tags (not by prost): a Namespace named `x`.
    #[test]
    fn namespace_from_hand_written_bytes() {
        // Namespace{metadata(1): ObjectMeta{name(1): "x"}}
        let raw = [0x0a, 0x03, 0x0a, 0x01, b'x'];
        let v = decode(&envelope("Namespace", raw.to_vec()), &rt("Namespace")).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let cm = ConfigMap::default().encode_to_vec();
        let e = decode(&envelope("ConfigMap", cm.clone()), &rt("Secret")).unwrap_err();
        assert_eq!(e.code, 400);
        let e = decode(&cm, &rt("ConfigMap")).unwrap_err();
        assert!(e.message.contains("magic"), "{}", e.message);
        let e = decode(&envelope("ServiceAccount", vec![]), &rt("ServiceAccount")).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(
            e.message.contains("Secret, ConfigMap, Namespace"),
            "{}",
            e.message
        );
        let mut truncated = envelope("ConfigMap", vec![0x12, 0x10]);
        truncated.truncate(truncated.len() - 1);
        assert_eq!(decode(&truncated, &rt("ConfigMap")).unwrap_err().code, 400);
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        let opts = DeleteOptions {
            propagation_policy: Some("Background".into()),
            preconditions: Some(Preconditions {
                uid: Some("u".into()),
                resource_version: None,
            }),
            ..DeleteOptions::default()
        };
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("meta.k8s.io/v1".into()),
                kind: Some("DeleteOptions".into()),
            }),
            raw: Some(opts.encode_to_vec()),
            ..Unknown::default()
        };
        let body = [MAGIC.to_vec(), u.encode_to_vec()].concat();
        assert_eq!(
            decode_delete_options(&body).unwrap(),
            json!({"propagationPolicy": "Background", "preconditions": {"uid": "u", "resourceVersion": null}})
        );
        assert!(!is_protobuf("application/json"));
    }
}
