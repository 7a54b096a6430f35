use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use sealed_secrets_api::{crd, crd_yaml};
use serde_json::Value;

fn crd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/sealedsecrets.bitnami.com.yaml")
}

#[test]
fn crd_file_is_up_to_date() {
    let generated = crd_yaml().unwrap();
    let on_disk = std::fs::read_to_string(crd_path()).unwrap_or_default();
    assert!(
        generated == on_disk,
        "crds/sealedsecrets.bitnami.com.yaml is out of date; regenerate it with:\n  \
         cargo run -p sealed-secrets-api --bin crdgen > crds/sealedsecrets.bitnami.com.yaml"
    );
}

#[test]
fn crd_identity_matches_upstream() {
    let c = crd();
    assert_eq!(
        c.metadata.name.as_deref(),
        Some("sealedsecrets.bitnami.com")
    );
    assert_eq!(c.spec.group, "bitnami.com");
    assert_eq!(c.spec.scope, "Namespaced");
    assert_eq!(c.spec.names.kind, "SealedSecret");
    assert_eq!(c.spec.names.list_kind.as_deref(), Some("SealedSecretList"));
    assert_eq!(c.spec.names.plural, "sealedsecrets");
    assert_eq!(c.spec.names.singular.as_deref(), Some("sealedsecret"));
    assert_eq!(c.spec.versions.len(), 1);
    let v = &c.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let cols: Vec<(String, String, String)> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
        .collect();
    assert_eq!(
        cols,
        vec![
            (
                "Status".into(),
                "string".into(),
                ".status.conditions[0].message".into()
            ),
            (
                "Synced".into(),
                "string".into(),
                ".status.conditions[0].status".into()
            ),
            (
                "Age".into(),
                "date".into(),
                ".metadata.creationTimestamp".into()
            ),
        ]
    );
    let root = schema();
    assert_eq!(root.required, Some(vec!["spec".to_owned()]));
    let spec = &root.properties.as_ref().unwrap()["spec"];
    assert_eq!(spec.required, Some(vec!["encryptedData".to_owned()]));
    let props = spec.properties.as_ref().unwrap();
    assert_eq!(
        props["encryptedData"].x_kubernetes_preserve_unknown_fields,
        Some(true)
    );
    assert_eq!(props["data"].format.as_deref(), Some("byte"));
    let tmeta = &props["template"].properties.as_ref().unwrap()["metadata"];
    assert_eq!(tmeta.x_kubernetes_preserve_unknown_fields, Some(true));
    assert_eq!(tmeta.nullable, Some(true));
}

fn schema() -> JSONSchemaProps {
    crd().spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap()
}

/// A small structural-schema validator: types, required, formats, and unknown fields (which
/// the API server would prune, so a kubeseal field landing there is a bug).
fn validate(v: &Value, s: &JSONSchemaProps, path: &str, errors: &mut Vec<String>) {
    if v.is_null() {
        // The API server prunes nulls of non-nullable fields; nothing to reject.
        return;
    }
    let ty = s.type_.as_deref();
    let ok = match (ty, v) {
        (None, _) => true,
        (Some("object"), Value::Object(_)) => true,
        (Some("string"), Value::String(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64(),
        (Some("array"), Value::Array(_)) => true,
        _ => false,
    };
    if !ok {
        errors.push(format!("{path}: expected {ty:?}, got {v}"));
        return;
    }
    if s.format.as_deref() == Some("byte")
        && sealed_secrets_crypto::decode_base64(v.as_str().unwrap_or("")).is_err()
    {
        errors.push(format!("{path}: not base64"));
    }
    match v {
        Value::Object(m) => {
            for r in s.required.iter().flatten() {
                if !m.contains_key(r) {
                    errors.push(format!("{path}: missing required {r}"));
                }
            }
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                if let Some(cs) = s.properties.as_ref().and_then(|p| p.get(k)) {
                    validate(child, cs, &p, errors);
                } else if let Some(JSONSchemaPropsOrBool::Schema(ap)) = &s.additional_properties {
                    validate(child, ap, &p, errors);
                } else if s.x_kubernetes_preserve_unknown_fields != Some(true) {
                    errors.push(format!("{p}: unknown field (would be pruned)"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(is)) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    validate(item, is, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn assert_accepted(doc: &str) {
    let v: Value = if doc.trim_start().starts_with('{') {
        serde_json::from_str(doc).unwrap()
    } else {
        serde_saphyr::from_str(doc).unwrap()
    };
    let mut errors = Vec::new();
    validate(&v, &schema(), "", &mut errors);
    assert!(
        errors.is_empty(),
        "schema rejects upstream output: {errors:?}"
    );
    // And our types read it.
    let ss: sealed_secrets_api::SealedSecret = serde_json::from_value(v).unwrap();
    assert!(!ss.spec.encrypted_data.is_empty());
}

/// kubeseal before apimachinery's omitzero change: `creationTimestamp: null` in both blocks.
const UPSTREAM_OLD_JSON: &str = r#"{
  "kind": "SealedSecret",
  "apiVersion": "bitnami.com/v1alpha1",
  "metadata": {
    "name": "mysecret",
    "namespace": "default",
    "creationTimestamp": null
  },
  "spec": {
    "template": {
      "metadata": {
        "name": "mysecret",
        "namespace": "default",
        "creationTimestamp": null
      },
      "type": "Opaque"
    },
    "encryptedData": {
      "foo": "AgBy3i4OJSWK+PiTySYZZA=="
    }
  }
}
"#;

/// Current kubeseal (omitzero): no creationTimestamp; cluster-wide; labels; immutable.
const UPSTREAM_NEW_JSON: &str = r#"{
  "kind": "SealedSecret",
  "apiVersion": "bitnami.com/v1alpha1",
  "metadata": {
    "name": "mysecret",
    "annotations": {
      "sealedsecrets.bitnami.com/cluster-wide": "true"
    }
  },
  "spec": {
    "template": {
      "metadata": {
        "name": "mysecret",
        "labels": {
          "app": "web"
        },
        "annotations": {
          "sealedsecrets.bitnami.com/cluster-wide": "true"
        }
      },
      "type": "kubernetes.io/dockerconfigjson",
      "immutable": true
    },
    "encryptedData": {
      ".dockerconfigjson": "AgBy3i4OJSWK+PiTySYZZA==",
      "other": "AgAAAA=="
    }
  }
}
"#;

const UPSTREAM_OLD_YAML: &str = r#"---
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  creationTimestamp: null
  name: mysecret
  namespace: default
spec:
  encryptedData:
    foo: AgBy3i4OJSWK+PiTySYZZA==
  template:
    data:
      conn: "postgres://{{ .user }}:{{ .foo }}@db"
    metadata:
      creationTimestamp: null
      finalizers:
      - example.com/keep
      name: mysecret
      namespace: default
    type: Opaque
"#;

#[test]
fn schema_accepts_upstream_output_with_creation_timestamp_null() {
    assert_accepted(UPSTREAM_OLD_JSON);
    assert_accepted(UPSTREAM_OLD_YAML);
}

#[test]
fn schema_accepts_upstream_output_without_creation_timestamp() {
    assert_accepted(UPSTREAM_NEW_JSON);
}

#[test]
fn schema_accepts_our_output() {
    let ss = super::common::seal_one(
        r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a","namespace":"b","labels":{"x":"y"}},"type":"Opaque","immutable":true,"stringData":{"k":"v"}}"#,
    );
    assert_accepted(&sealed_secrets_api::output::to_json(&ss));
    assert_accepted(&sealed_secrets_api::output::to_yaml(&ss).unwrap());
}

#[test]
fn validator_catches_bad_documents() {
    let mut errors = Vec::new();
    let bad: Value = serde_json::json!({"spec": {"template": {"immutable": "yes", "bogus": 1}}});
    validate(&bad, &schema(), "", &mut errors);
    assert_eq!(errors.len(), 3, "{errors:?}");
}
