//! Parsing edge cases: duplicate keys, limits, lists.

use super::*;

#[test]
fn json_duplicate_keys_are_refused_at_any_depth() {
    for input in [
        r#"{"kind":"Secret","kind":"Secret"}"#,
        r#"{"kind":"Secret","data":{"a":"MQ==","a":"Mg=="}}"#,
        r#"[{"x":{"y":1,"y":2}}]"#,
    ] {
        let err = parse_documents(input.as_bytes()).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{input}: {err}");
    }
    assert!(parse_documents(br#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
}

#[test]
fn limits_are_named_with_their_values() {
    let many = "a: 1\n---\n".repeat(limits::MAX_DOCUMENTS + 1);
    let err = parse_documents(many.as_bytes()).map(|_| ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input too large: the number of documents is more than 100000, the limit is 100000"
    );
    let json_many = "{}\n".repeat(limits::MAX_DOCUMENTS + 1);
    let err = parse_documents(json_many.as_bytes())
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("the limit is 100000"), "{err}");
    // What real repositories hold passes: 2,000 documents.
    let fine = "kind: ConfigMap\n---\n".repeat(2_000);
    assert_eq!(
        parse_documents(fine.as_bytes()).map(|d| d.len()).ok(),
        Some(2_000)
    );
}

#[test]
fn typed_lists_are_flattened_for_their_kind_only() {
    let list = br#"{"kind":"SecretList","items":[{"kind":"Secret","metadata":{"name":"a"}},{"kind":"Secret","metadata":{"name":"b"}}]}"#;
    assert_eq!(parse_secrets(list).map(|l| l.len()).ok(), Some(2));
    // A SecretList is not a list of SealedSecrets.
    assert!(parse_sealed_secrets(list).is_err());
}
