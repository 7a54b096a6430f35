//! Issue 11 hardening on the controller side: legacy `spec.data` through verify/rotate
//! (item 5), planted keys (item 8), and service-account-token Secrets (item 15).

use std::time::{Duration, SystemTime};

use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{PublicKey, Scope};
use serde_json::json;

use crate::common::*;

/// A v1 SealedSecret whose decrypted Secret carries a last-applied annotation with the
/// plaintext and server fields, as `kubectl get secret -o json | kubeseal` of old produced.
fn legacy_with_last_applied(env: &Env, key: &PublicKey, name: &str) -> SealedSecret {
    let inner = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": name, "namespace": env.ns(), "uid": "0000-1111", "resourceVersion": "42",
            "labels": {"v1": "yes"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    "{\"data\":{\"foo\":\"hunter2\"},\"kind\":\"Secret\"}"
            }
        },
        "data": {"foo": sealed_secrets_crypto::encode_base64(b"hunter2")},
    });
    let ct = sealed_secrets_crypto::seal(
        key,
        &Scope::Strict.label(env.ns(), name),
        inner.to_string().as_bytes(),
    )
    .unwrap();
    let mut ss = SealedSecret::new(name, Default::default());
    ss.metadata.namespace = Some(env.ns().to_owned());
    ss.spec.data = Some(sealed_secrets_crypto::encode_base64(&ct));
    ss
}

fn body(ss: &SealedSecret) -> Vec<u8> {
    sealed_secrets_api::output::to_json(ss).into_bytes()
}

/// Item 5: verify and rotate refuse `spec.data` by default; when enabled, rotate's answer
/// has neither the last-applied annotation nor server fields of the decrypted Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_data_through_verify_and_rotate() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ss = body(&legacy_with_last_applied(&env, &key, "old"));
    for path in ["/v1/verify", "/v1/rotate"] {
        let r = c.post(path, &ss).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body_text());
        assert!(
            r.body_text().contains("--http-accept-deprecated-v1-data"),
            "{}",
            r.body_text()
        );
    }
    c.process.stop();

    let c = env
        .start_controller(&["--http-accept-deprecated-v1-data"])
        .await;
    assert_eq!(c.post("/v1/verify", &ss).await.status, 200);
    let r = c.post("/v1/rotate", &ss).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let text = r.body_text();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("last-applied-configuration"), "{text}");
    assert!(
        !text.contains("0000-1111") && !text.contains("resourceVersion"),
        "{text}"
    );
    let rotated: SealedSecret = serde_json::from_str(&text).unwrap();
    assert!(rotated.spec.data.is_none());
    assert_eq!(
        rotated
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()["v1"],
        "yes"
    );
    // The stripped form still unseals to the same data.
    let mut rotated = rotated;
    rotated.metadata.namespace = Some(env.ns().to_owned());
    let (_, s) = env.unseal(&rotated).await;
    assert_eq!(data_of(&s, "foo").as_deref(), Some("hunter2"));
}

/// Item 8: a key Secret with a certificate dated in the future does not become the newest
/// key; a key Secret whose certificate belongs to another key is refused; keys the
/// controller did not generate are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_keys_do_not_take_over() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let original = c.cert().await.unwrap();
    assert_eq!(
        c.metric("sealed_secrets_controller_keys_foreign").await,
        0.0
    );

    let (future, future_cert) = make_key(SystemTime::now() + Duration::from_secs(365 * 86400));
    env.put_key_secret(
        "planted-future",
        future.to_pkcs1_pem().as_bytes(),
        future_cert.pem().as_bytes(),
        true,
    )
    .await;
    let (a, _) = make_key(SystemTime::now());
    let (_, b_cert) = make_key(SystemTime::now());
    env.put_key_secret(
        "planted-mismatch",
        a.to_pkcs1_pem().as_bytes(),
        b_cert.pem().as_bytes(),
        true,
    )
    .await;
    // The future-dated key is loaded (it can decrypt) and counted as foreign...
    eventually("the planted key to be registered", TIMEOUT, || async {
        (c.metric("sealed_secrets_controller_keys_active").await == 2.0).then_some(())
    })
    .await;
    assert_eq!(
        c.metric("sealed_secrets_controller_keys_foreign").await,
        1.0
    );
    // The metric moves before the lines are written: wait for each line.
    for line in [
        "was not generated by this controller",
        "NotBefore is in the future",
        "`planted-mismatch` is refused: its `tls.crt` does not belong to its `tls.key`",
    ] {
        c.process
            .wait_for_log(line, TIMEOUT)
            .unwrap_or_else(|e| panic!("{line}: {e}\n{}", c.process.log()));
    }
    // ...but the certificate served is still the controller's own.
    assert_eq!(c.cert().await.unwrap(), original);
    // A key generated now (renewal) is newer than anything honest and is served.
    let before = env.key_secrets().await.len();
    c.signal("USR1");
    eventually("a renewed key", TIMEOUT, || async {
        (env.key_secrets().await.len() > before).then_some(())
    })
    .await;
    let served = eventually("the renewed certificate served", TIMEOUT, || async {
        c.cert().await.filter(|p| *p != original)
    })
    .await;
    assert_ne!(served, future_cert.pem());
}

/// Item 15: a template asking for a service-account-token Secret is refused unless the flag
/// allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_token_secrets_are_refused_by_default() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns().to_owned();
    let sa = json!({
        "type": "kubernetes.io/service-account-token",
        "metadata": {"annotations": {"kubernetes.io/service-account.name": "default"}},
    });
    env.create_ss(&seal(&ns, "token", &[("x", "y")], &key, sa.clone()))
        .await;
    let ev = env.wait_event(&ns, "token", "ErrUnsealFailed").await;
    assert!(
        ev.message
            .as_deref()
            .unwrap()
            .contains("--allow-service-account-token-secrets"),
        "{ev:?}"
    );
    env.wait_ss_where(&ns, "token", "Synced=False", |ss| {
        ss.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.status == "False"
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.contains("service-account-token"))
            })
        })
    })
    .await;
    // Barrier: an ordinary SealedSecret created after it is unsealed.
    env.unseal(&seal(&ns, "plain", &[("x", "y")], &key, json!({})))
        .await;
    assert!(env.secrets(&ns).get_opt("token").await.unwrap().is_none());
    c.process.stop();

    let _c = env
        .start_controller(&["--allow-service-account-token-secrets"])
        .await;
    let (_, s) = env
        .unseal(&seal(&ns, "allowed", &[("x", "y")], &key, sa))
        .await;
    assert_eq!(
        s.type_.as_deref(),
        Some("kubernetes.io/service-account-token")
    );
}
