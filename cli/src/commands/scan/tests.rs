//! The scan's findings, lines and fallbacks.

use super::*;

#[test]
fn finds_secrets_with_lines() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ns1\nstringData:\n  a: b\n---\nkind: Secret\nmetadata: {name: empty}\n";
    let f = scan_text(Path::new("x.yaml"), text);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].line, 6);
    assert_eq!(f[0].object, "ns1/s");
}

#[test]
fn finds_secrets_in_lists_and_json() {
    let text = "{\n  \"kind\": \"List\",\n  \"items\": [\n    {\"kind\": \"Secret\", \"metadata\": {\"name\": \"a\"}, \"data\": {\"k\": \"dg==\"}},\n    {\"kind\": \"Secret\", \"metadata\": {\"name\": \"b\"}, \"data\": {\"k\": \"dg==\"}}\n  ]\n}\n";
    let f = scan_text(Path::new("x.json"), text);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].object, "a");
}

#[test]
fn sealed_secrets_are_not_findings() {
    let text = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: s}\nspec:\n  encryptedData: {a: AgB}\n";
    assert!(scan_text(Path::new("x.yaml"), text).is_empty());
}
