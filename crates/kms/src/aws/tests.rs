//! How the service's error codes map to [`WrapError`]: the cases local-kms cannot produce
//! (it checks no signature and has no grants or throttling).

use super::*;

fn kms() -> AwsKms {
    let mut c = AwsKmsConfig::new("alias/k", "eu-west-1");
    c.endpoint = Some("http://127.0.0.1:9".into());
    AwsKms::new(c).unwrap_or_else(|e| panic!("{e}"))
}

fn category(status: u16, body: &str) -> &'static str {
    kms()
        .api_error(status, body.as_bytes(), "alias/k")
        .category()
}

#[test]
fn error_codes_map_to_categories() {
    let cases = [
        (
            400,
            r#"{"__type":"AccessDeniedException","message":"x"}"#,
            "denied",
        ),
        (
            400,
            r#"{"__type":"com.amazonaws.kms#AccessDeniedException"}"#,
            "denied",
        ),
        (400, r#"{"__type":"UnrecognizedClientException"}"#, "denied"),
        (400, r#"{"__type":"ExpiredTokenException"}"#, "denied"),
        (400, r#"{"__type":"DisabledException"}"#, "key_disabled"),
        (
            400,
            r#"{"__type":"KMSInvalidStateException"}"#,
            "key_disabled",
        ),
        (400, r#"{"__type":"NotFoundException"}"#, "key_not_found"),
        (
            400,
            r#"{"__type":"InvalidCiphertextException"}"#,
            "invalid_ciphertext",
        ),
        (
            400,
            r#"{"__type":"IncorrectKeyException"}"#,
            "invalid_ciphertext",
        ),
        (400, r#"{"__type":"ThrottlingException"}"#, "throttled"),
        (500, r#"{"__type":"KMSInternalException"}"#, "unreachable"),
        (503, "<html>busy</html>", "unreachable"),
        (400, r#"{"__type":"ValidationException"}"#, "rejected"),
        (400, "not json", "rejected"),
    ];
    for (status, body, want) in cases {
        assert_eq!(category(status, body), want, "{status} {body}");
    }
}

#[test]
fn the_services_message_is_not_repeated() {
    // Free text may echo request fields; only the code is kept.
    let e = kms().api_error(
        400,
        br#"{"__type":"ValidationException","message":"PLAINTEXT-ECHO"}"#,
        "k",
    );
    assert!(!e.to_string().contains("PLAINTEXT-ECHO"), "{e}");
    let e = kms().api_error(400, br#"{"__type":"Evil\nCode with spaces"}"#, "k");
    assert!(e.to_string().contains("unknown"), "{e}");
}

#[test]
fn settings_are_checked() {
    let bad = |endpoint: &str| {
        let mut c = AwsKmsConfig::new("alias/k", "eu-west-1");
        c.endpoint = Some(endpoint.into());
        AwsKms::new(c).err().map(|e| e.category())
    };
    assert_eq!(bad("ftp://x"), Some("config"));
    assert_eq!(bad("http://user:pw@host"), Some("config"));
    assert_eq!(bad("https://host/path"), Some("config"));
    assert!(AwsKms::new(AwsKmsConfig::new(" ", "eu-west-1")).is_err());
    assert!(AwsKms::new(AwsKmsConfig::new("k", "eu west")).is_err());
    let default =
        AwsKms::new(AwsKmsConfig::new("k", "eu-west-1")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        default
            .describe()
            .contains("https://kms.eu-west-1.amazonaws.com")
    );
}
