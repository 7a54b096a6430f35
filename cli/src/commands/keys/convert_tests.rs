//! The conversion between plain and wrapped key Secrets, with the in-memory backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use k8s_openapi::ByteString;
use sealed_secrets_crypto::CertParams;
use sealed_secrets_kms::fake::FakeWrapper;

use super::*;

fn mk_key_secret(name: &str) -> Secret {
    let key = PrivateKey::generate(2048).unwrap();
    let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("kube-system".into()),
            uid: Some("u1".into()),
            resource_version: Some("7".into()),
            labels: Some(BTreeMap::from([(
                SEALING_KEY_LABEL.to_owned(),
                SEALING_KEY_LABEL_ACTIVE.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([
                (ROTATE_REQUEST.to_owned(), "x".to_owned()),
                ("keep/me".to_owned(), "1".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some(PLAIN_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([
            ("tls.crt".into(), ByteString(cert.pem().as_bytes().to_vec())),
            (
                "tls.key".into(),
                ByteString(key.to_pkcs1_pem().as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

#[tokio::test]
async fn wrap_then_unwrap_gives_back_the_same_key() {
    let kms = FakeWrapper::default();
    let plain = mk_key_secret("sealed-secrets-keyabcde");
    let wrapped = convert(
        &plain,
        "sealed-secrets-keyw1".into(),
        "kube-system",
        "c1",
        &kms,
        Direction::Wrap,
    )
    .await
    .unwrap();
    assert_eq!(kms.stats().wraps(), 1);
    assert_eq!(kms.stats().unwraps(), 1, "the wrap is checked by an unwrap");
    assert!(is_wrapped(&wrapped));
    let data = wrapped.data.as_ref().unwrap();
    assert!(!data.contains_key("tls.key"));
    assert_eq!(data["tls.crt"], plain.data.as_ref().unwrap()["tls.crt"]);
    let m = &wrapped.metadata;
    assert_eq!(m.name.as_deref(), Some("sealed-secrets-keyw1"));
    assert!(m.uid.is_none() && m.resource_version.is_none());
    let ann = m.annotations.as_ref().unwrap();
    assert_eq!(ann[BACKEND_ANNOTATION], "fake");
    assert_eq!(ann["keep/me"], "1");
    assert!(!ann.contains_key(ROTATE_REQUEST));

    let back = convert(
        &wrapped,
        "sealed-secrets-keyp1".into(),
        "kube-system",
        "c1",
        &kms,
        Direction::Unwrap,
    )
    .await
    .unwrap();
    assert_eq!(back.type_.as_deref(), Some(PLAIN_SECRET_TYPE));
    assert_eq!(back.data, plain.data);
    let ann = back.metadata.annotations.as_ref().unwrap();
    assert!(!ann.contains_key(BACKEND_ANNOTATION) && !ann.contains_key(KMS_KEY_ANNOTATION));
}

#[tokio::test]
async fn a_wrap_that_does_not_unwrap_is_refused() {
    let kms = FakeWrapper::default();
    kms.set_unwraps_down(true);
    let plain = mk_key_secret("k");
    let e = convert(
        &plain,
        "k-x".into(),
        "kube-system",
        "c1",
        &kms,
        Direction::Wrap,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CliError::KeyWrapCall { op: "unwrap", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was changed"), "{e}");
}

#[tokio::test]
async fn an_unwrap_needs_the_cluster_the_key_was_wrapped_for() {
    let kms = FakeWrapper::default();
    let wrapped = convert(
        &mk_key_secret("k"),
        "k-w".into(),
        "kube-system",
        "c1",
        &kms,
        Direction::Wrap,
    )
    .await
    .unwrap();
    let e = convert(
        &wrapped,
        "k-p".into(),
        "kube-system",
        "other",
        &kms,
        Direction::Unwrap,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CliError::KeyWrapCall { op: "unwrap", .. }),
        "{e}"
    );
    // A blob moved into another Secret name does not open either.
    let mut moved = wrapped.clone();
    moved.metadata.name = Some("k-moved".into());
    assert!(
        convert(
            &moved,
            "k-p".into(),
            "kube-system",
            "c1",
            &kms,
            Direction::Unwrap
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn a_key_with_another_keys_certificate_is_not_converted() {
    let kms = FakeWrapper::default();
    let mut s = mk_key_secret("k");
    let other = mk_key_secret("o");
    s.data
        .as_mut()
        .unwrap()
        .insert("tls.crt".into(), other.data.unwrap()["tls.crt"].clone());
    let e = convert(&s, "k-w".into(), "kube-system", "c1", &kms, Direction::Wrap)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("certificate of another key"), "{e}");
}

#[test]
fn selection_takes_what_the_direction_converts_and_names_must_exist() {
    let plain = mk_key_secret("p");
    let mut token = mk_key_secret("t");
    token.type_ = Some(sealed_secrets_api::token_key::TOKEN_KEY_SECRET_TYPE.into());
    token.data.as_mut().unwrap().remove("tls.key");
    let mut wrapped = mk_key_secret("w");
    wrapped.data.as_mut().unwrap().remove("tls.key");
    wrapped
        .data
        .as_mut()
        .unwrap()
        .insert(WRAPPED_KEY_FIELD.into(), ByteString(b"x".to_vec()));
    let all = [plain, token, wrapped];
    let names = |v: Vec<&Secret>| {
        v.iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(select(&all, &[], Direction::Wrap, "ns").unwrap()),
        ["p"]
    );
    assert_eq!(
        names(select(&all, &[], Direction::Unwrap, "ns").unwrap()),
        ["w"]
    );
    assert!(select(&all, &["nope".into()], Direction::Wrap, "ns").is_err());
    assert!(select(&all, &["t".into()], Direction::Wrap, "ns").is_err());
    assert!(select(&all, &["w".into()], Direction::Wrap, "ns").is_err());
}

#[test]
fn converted_names_keep_the_controller_prefix() {
    assert_eq!(name_prefix("sealed-secrets-keyabcde"), "sealed-secrets-key");
    assert_eq!(name_prefix("sealed-secrets-key"), "sealed-secrets-key");
    assert_eq!(name_prefix("my-key"), "my-key-");
}
