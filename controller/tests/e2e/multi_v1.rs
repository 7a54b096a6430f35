//! Key-commitment downgrade: a multi-recipient value of version 1 (no key commitment,
//! crates/crypto/FORMAT.md §2.2) is refused wherever the controller opens a tenant's value,
//! and counted; `--accept-multi-recipient-v1` opens it for a migration window.

use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{PublicKey, Scope, encode_base64, seal_multi_v1};
use serde_json::json;

use crate::common::*;

const REFUSED: &str =
    "sealed_secrets_controller_multi_recipient_v1_values_total{outcome=\"refused\"}";
const ACCEPTED: &str =
    "sealed_secrets_controller_multi_recipient_v1_values_total{outcome=\"accepted\"}";

/// `ns/name` with `password: hunter2` in multi-recipient version 1 for `key`.
fn v1_sealed_secret(key: &PublicKey, ns: &str, name: &str) -> SealedSecret {
    let ct = seal_multi_v1(&[key], &Scope::Strict.label(ns, name), b"hunter2").unwrap();
    serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"encryptedData": {"password": encode_base64(&ct)}},
    }))
    .unwrap()
}

/// The value of the sample `series` (exact name and labels) in an exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_recipient_v1_is_refused_by_default_and_accepted_only_by_flag() {
    let env = Env::new().await;
    let ns = env.ns().to_owned();
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ss = v1_sealed_secret(&key, &ns, "salamander");
    env.create_ss(&ss).await;

    // Unsealing refuses it, says why in the status, and counts it.
    env.wait_ss_where(&ns, "salamander", "the version-1 refusal in status", |s| {
        serde_json::to_string(&s.status)
            .unwrap()
            .contains("multi-recipient version 1 (no key commitment) is refused")
    })
    .await;
    eventually("the refusal to be counted", TIMEOUT, || async {
        (sample(&c.metrics_text().await, REFUSED) >= 1.0).then_some(())
    })
    .await;
    assert!(
        env.secrets(&ns)
            .get_opt("salamander")
            .await
            .unwrap()
            .is_none(),
        "no Secret from a version-1 value"
    );

    // /v1/verify and /v1/rotate refuse it too (and count it).
    let before = sample(&c.metrics_text().await, REFUSED);
    let body = sealed_secrets_api::output::to_json(&ss).into_bytes();
    assert_eq!(c.post("/v1/verify", &body).await.status, 409);
    let r = c.post("/v1/rotate", &body).await;
    assert!(r.status >= 400, "rotate: {} {}", r.status, r.body_text());
    assert!(!r.body_text().contains("hunter2"));
    eventually(
        "verify and rotate refusals to be counted",
        TIMEOUT,
        || async { (sample(&c.metrics_text().await, REFUSED) >= before + 2.0).then_some(()) },
    )
    .await;
    assert_eq!(sample(&c.metrics_text().await, ACCEPTED), 0.0);
    c.process.stop();

    // The migration switch opens it.
    let c = env.start_controller(&["--accept-multi-recipient-v1"]).await;
    let s = env.wait_secret(&ns, "salamander").await;
    assert_eq!(data_of(&s, "password").as_deref(), Some("hunter2"));
    assert_eq!(c.post("/v1/verify", &body).await.status, 200);
    eventually("the accepted value to be counted", TIMEOUT, || async {
        (sample(&c.metrics_text().await, ACCEPTED) >= 1.0).then_some(())
    })
    .await;
}
