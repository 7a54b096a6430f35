//! Golden output tests: kubeseal-shaped JSON and YAML, ciphertexts and fingerprints masked.
//! Regenerate with `UPDATE_GOLDENS=1 cargo test -p sealed-secrets-api`.

use std::path::PathBuf;

use sealed_secrets_api::{SealOptions, SealedSecret, output};
use sealed_secrets_crypto::Scope;

use super::common::*;

fn mask(text: &str, ss: &SealedSecret) -> String {
    let mut out = text.to_owned();
    for (_, ct) in ss.spec.encrypted_data.iter() {
        out = out.replace(ct, "<ciphertext>");
    }
    out.replace(&key_a().fingerprint().to_string(), "<fingerprint>")
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "golden {name} differs (UPDATE_GOLDENS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

const INPUT: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: mysecret
  namespace: myns
  labels:
    app: web
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"password":"leak"}}'
    note: "a <b> & c"
type: Opaque
immutable: true
data:
  username: YWRtaW4=
stringData:
  password: hunter2
"#;

#[test]
fn golden_strict_json_and_yaml() {
    let ss = seal_one(INPUT);
    check("strict.json", &mask(&output::to_json(&ss), &ss));
    check("strict.yaml", &mask(&output::to_yaml(&ss).unwrap(), &ss));
}

#[test]
fn golden_cluster_wide_json_and_yaml() {
    let ss = seal_with(
        "kind: Secret\napiVersion: v1\nmetadata:\n  name: shared\ndata:\n  token: dG9r\n",
        &SealOptions {
            scope: Scope::ClusterWide,
            ..SealOptions::default()
        },
    );
    check("cluster-wide.json", &mask(&output::to_json(&ss), &ss));
    check(
        "cluster-wide.yaml",
        &mask(&output::to_yaml(&ss).unwrap(), &ss),
    );
}

#[test]
fn json_output_shape() {
    let ss = seal_one(INPUT);
    let json = output::to_json(&ss);
    assert!(json.starts_with("{\n  \"kind\": \"SealedSecret\",\n  \"apiVersion\": \"bitnami.com/v1alpha1\",\n  \"metadata\": {"));
    assert!(json.ends_with("}\n"));
    assert!(!json.contains("status"));
    let yaml = output::to_yaml(&ss).unwrap();
    assert!(yaml.starts_with("---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"));
}
