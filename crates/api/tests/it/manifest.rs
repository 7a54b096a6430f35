use proptest::prelude::*;
use sealed_secrets_api::manifest::{parse_documents, parse_sealed_secrets, parse_secrets};
use sealed_secrets_api::output::OutputFormat;

#[test]
fn empty_documents_are_skipped_and_lists_flattened() {
    let docs = parse_documents(b"---\n---\n# only a comment\n---\na: 1\n").unwrap();
    assert_eq!(docs.len(), 1);
    let list = br#"{"apiVersion":"v1","kind":"List","items":[
        {"kind":"Secret","metadata":{"name":"a"},"data":{"x":"eQ=="}},
        {"kind":"Secret","metadata":{"name":"b"},"stringData":{"x":"y"}}]}"#;
    let s = parse_secrets(list).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].data["x"].as_bytes(), b"y");
}

#[test]
fn manifest_errors_name_document_and_field() {
    let e = parse_secrets(b"kind: Secret\nmetadata: {name: a}\ndata: {k: '%%%'}\n").unwrap_err();
    assert_eq!(e.to_string(), "document 1: `data.k` is not valid base64");
    let e =
        parse_secrets(b"kind: Secret\nmetadata: {name: a}\nstringData: {k: [1]}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "document 1: invalid `stringData.k`: not a string"
    );
    let e = parse_secrets(b"metadata: {name: a}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "document 1 is a document without `kind`, expected kind `Secret`"
    );
    let e = parse_secrets(b"- 1\n- 2\n").unwrap_err();
    assert_eq!(e.to_string(), "document 1 is not an object");
    let e = parse_secrets(b"kind: Secret\napiVersion: v2\n").unwrap_err();
    assert!(e.to_string().contains("invalid `apiVersion`"));
    assert!(parse_secrets(b"{\"kind\": \"Secret\",").is_err());
    assert!(parse_secrets(&[0xff, 0xfe]).is_err());
}

#[test]
fn output_format_parsing() {
    assert_eq!("JSON".parse::<OutputFormat>().unwrap(), OutputFormat::Json);
    assert_eq!("yaml".parse::<OutputFormat>().unwrap(), OutputFormat::Yaml);
    let e = "xml".parse::<OutputFormat>().unwrap_err();
    assert!(e.to_string().starts_with("unsupported output format"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn manifest_parsers_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_documents(&bytes);
        let _ = parse_secrets(&bytes);
        let _ = parse_sealed_secrets(&bytes);
    }

    #[test]
    fn manifest_parsers_never_panic_on_yamlish_text(
        text in "(kind: (Secret|SealedSecret|List)\n|metadata: \\{name: [a-z]{1,5}\\}\n|data: \\{[a-z]{1,3}: [A-Za-z0-9=]{0,8}\\}\n|stringData:\n  [a-z]: [a-z]*\n|---\n|\\{|\\}|\\[|\\]|: |\"|'|- |&a |\\*a |!!str |\n){0,24}"
    ) {
        let _ = parse_secrets(text.as_bytes());
        let _ = parse_sealed_secrets(text.as_bytes());
    }
}

#[test]
fn hostile_yaml_is_refused_without_crashing() {
    let deep = "a: ".to_owned() + &"[".repeat(100_000);
    assert!(parse_documents(deep.as_bytes()).is_err());
    let deep_json = "[".repeat(100_000);
    assert!(parse_documents(deep_json.as_bytes()).is_err());
    let laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    // Either refused by the alias budget or parsed; it must simply return.
    let _ = parse_documents(laughs.as_bytes());
}
