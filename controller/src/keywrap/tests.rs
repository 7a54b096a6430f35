//! The key-wrapping decisions, with an in-memory backend that counts its calls.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_crypto::{CertParams, PrivateKey};
use sealed_secrets_kms::fake::FakeWrapper;
use sealed_secrets_kms::{BACKEND_ANNOTATION, KMS_KEY_ANNOTATION, Wrapper};

use super::*;
use crate::keys::{KeyArgs, key_secret};
use crate::metrics::Metrics;

fn plain_key_secret() -> Secret {
    let key = PrivateKey::generate(2048).unwrap();
    let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
    let pq = sealed_secrets_crypto::PqIdentity::generate().unwrap();
    let s = key_secret(
        &KeyArgs::parse_for_test(&["--key-size=2048"]),
        "kube-system",
        &key,
        &cert,
        &pq,
    );
    assert!(s.data.as_ref().unwrap().contains_key("age.key"));
    s
}

fn wrap_with(kms: &Arc<FakeWrapper>) -> KeyWrap {
    KeyWrap::new(
        Some(kms.clone() as Arc<dyn Wrapper>),
        "c1".into(),
        "kube-system".into(),
        None,
    )
}

#[tokio::test]
async fn a_new_key_is_stored_wrapped_and_opens_with_one_call() {
    let kms = Arc::new(FakeWrapper::default());
    let kw = wrap_with(&kms);
    let plain = plain_key_secret();
    let (wrapped, fresh) = kw.seal_new(plain.clone(), "k-").await.unwrap();
    assert!(fresh.is_some());
    let name = wrapped.metadata.name.clone().unwrap();
    assert!(name.starts_with("k-") && wrapped.metadata.generate_name.is_none());
    assert_eq!(wrapped.type_.as_deref(), Some(WRAPPED_SECRET_TYPE));
    let data = wrapped.data.as_ref().unwrap();
    assert!(data.contains_key(WRAPPED_KEY_FIELD) && data.contains_key("tls.crt"));
    assert!(!data.contains_key("tls.key") && !data.contains_key("age.key"));
    let ann = wrapped.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[BACKEND_ANNOTATION], "fake");
    assert_eq!(ann[KMS_KEY_ANNOTATION], "fake-key");
    // No private bytes anywhere in the stored Secret.
    let stored = serde_json::to_vec(&wrapped).unwrap();
    let pem = &plain.data.as_ref().unwrap()["tls.key"].0;
    assert!(!stored.windows(40).any(|w| pem.windows(40).any(|p| p == w)));

    // Another process (a restart): one unwrap, then none for the unchanged Secret.
    let kw2 = wrap_with(&kms);
    for _ in 0..3 {
        match kw2.open(&wrapped).await {
            Opened::Unwrapped(s) => {
                assert_eq!(s.data, plain.data);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kms.stats().unwraps(), 1);
    // The writer itself remembers what it wrapped: no call at all.
    assert_eq!(kw.remember(fresh.unwrap()), name);
    assert!(matches!(kw.open(&wrapped).await, Opened::Unwrapped(_)));
    assert_eq!(kms.stats().unwraps(), 1);
}

#[tokio::test]
async fn a_copied_wrapped_key_is_refused_and_reported() {
    let kms = Arc::new(FakeWrapper::default());
    let kw = wrap_with(&kms);
    let (mut copy, _) = kw.seal_new(plain_key_secret(), "k-").await.unwrap();
    copy.metadata.name = Some("stolen".into());
    assert!(matches!(kw.open(&copy).await, Opened::Unusable));
    let u = kw.unusable();
    assert!(!u["stolen"].transient);
    assert!(
        u["stolen"].reason.contains("does not open"),
        "{}",
        u["stolen"].reason
    );
    // Not a transient failure: new keys are still made.
    assert!(kw.seal_new(plain_key_secret(), "k-").await.is_ok());
    let (ready, body) = readiness(1, &u);
    assert!(ready && body.contains("`stolen`"), "{body}");
    kw.forget("stolen");
    assert!(kw.unusable().is_empty());
}

#[tokio::test]
async fn a_wrapped_key_without_backend_is_unusable() {
    let kms = Arc::new(FakeWrapper::default());
    let (wrapped, _) = wrap_with(&kms)
        .seal_new(plain_key_secret(), "k-")
        .await
        .unwrap();
    let none = KeyWrap::new(None, String::new(), "kube-system".into(), None);
    assert!(matches!(none.open(&wrapped).await, Opened::Unusable));
    let name = wrapped.metadata.name.unwrap();
    assert!(
        none.unusable()[&name]
            .reason
            .contains("no key-wrapping backend")
    );
    // Without a backend new keys stay plain.
    let plain = plain_key_secret();
    let (out, fresh) = none.seal_new(plain.clone(), "k-").await.unwrap();
    assert!(fresh.is_none() && out == plain);
}

#[tokio::test]
async fn an_outage_blocks_new_keys_until_the_waiting_key_opens() {
    let kms = Arc::new(FakeWrapper::default());
    let (wrapped, _) = wrap_with(&kms)
        .seal_new(plain_key_secret(), "k-")
        .await
        .unwrap();
    let kw = Arc::new(wrap_with(&kms));
    kms.set_down(true);
    assert!(matches!(kw.open(&wrapped).await, Opened::Unusable));
    let name = wrapped.metadata.name.clone().unwrap();
    assert!(kw.unusable()[&name].transient);
    assert!(matches!(
        kw.seal_new(plain_key_secret(), "k-").await,
        Err(SealError::Pending(1))
    ));
    let (ready, body) = readiness(0, &kw.unusable());
    assert!(!ready && body.contains(&name), "{body}");

    // The retry loop opens it once the service is back, and registers the key.
    let metrics = Arc::new(Metrics::new());
    let keys = Keys::new(
        KeyArgs::parse_for_test(&["--key-size=2048"]),
        "kube-system".into(),
        metrics.clone(),
    );
    keys.set_key_wrap(kw.clone());
    let task = tokio::spawn(kw.clone().retry_loop(keys.clone()));
    kms.set_down(false);
    tokio::time::timeout(std::time::Duration::from_secs(10), kw.settled())
        .await
        .unwrap();
    task.abort();
    assert!(kw.unusable().is_empty());
    assert_eq!(keys.snapshot().keys.len(), 1);
    assert_eq!(keys.snapshot().keys[0].secret_name, name);
    let text = metrics.encode();
    assert!(
        text.contains("key_wrap_calls_total{backend=\"fake\",operation=\"unwrap\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("key_wrap_errors_total{backend=\"fake\"} 1"),
        "{text}"
    );
}

#[test]
fn retry_delays() {
    assert!(retry_delay(true, 1) < retry_delay(true, 4));
    assert!(retry_delay(true, 30) <= std::time::Duration::from_secs(30));
    assert_eq!(retry_delay(false, 1), PERMANENT_RETRY);
}

#[test]
fn flags_need_key_and_cluster() {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        w: KeyWrapArgs,
    }
    let p = |a: &[&str]| {
        T::try_parse_from(std::iter::once("x").chain(a.iter().copied()))
            .unwrap()
            .w
    };
    assert!(p(&[]).check().is_ok());
    assert_eq!(p(&[]).backend, WrapBackend::None);
    assert!(p(&["--key-wrap-backend=aws-kms"]).check().is_err());
    assert!(
        p(&["--key-wrap-backend=aws-kms", "--key-wrap-key=alias/x"])
            .check()
            .is_err()
    );
    assert!(
        p(&[
            "--key-wrap-backend=aws-kms",
            "--key-wrap-key=alias/x",
            "--key-wrap-cluster=c"
        ])
        .check()
        .is_ok()
    );
    let e = p(&[
        "--key-wrap-backend=pkcs11",
        "--key-wrap-key=w",
        "--key-wrap-cluster=c",
    ])
    .check();
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("--key-wrap-pkcs11-module")
    );
    assert!(T::try_parse_from(["x", "--key-wrap-backend=vault"]).is_err());
}
