//! Cold start with SealedSecrets already there, then a restart; with many (run explicitly:
//! `cargo test -p sealed-secrets-controller --test e2e -- --ignored cold_start --nocapture`;
//! `SEALED_SECRETS_E2E_COLD_START_N` sets the count, default 1000).

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::common::*;

async fn count_secrets(api: &Api<Secret>) -> usize {
    api.list(&ListParams::default()).await.unwrap().items.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn cold_start_many_sealed_secrets() {
    let n: usize = std::env::var("SEALED_SECRETS_E2E_COLD_START_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    cold_start_then_restart(n).await;
}

/// The small version, in CI: SealedSecrets that exist before the controller starts are all
/// served (the watch's first list queues them through the start-up check), and a restart
/// opens none of them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_there_before_the_start_are_served_and_not_opened_again_after_a_restart() {
    cold_start_then_restart(40).await;
}

async fn cold_start_then_restart(n: usize) {
    let env = Env::new().await;
    // Two keys loaded, values sealed with the older one: without the hint, upstream would
    // try keys in random order.
    let (old, old_cert) = make_key(SystemTime::now() - Duration::from_secs(7200));
    let (new, new_cert) = make_key(SystemTime::now() - Duration::from_secs(3600));
    env.put_key_secret(
        "sealed-secrets-keyold00",
        old.to_pkcs1_pem().as_bytes(),
        old_cert.pem().as_bytes(),
        true,
    )
    .await;
    env.put_key_secret(
        "sealed-secrets-keynew00",
        new.to_pkcs1_pem().as_bytes(),
        new_cert.pem().as_bytes(),
        true,
    )
    .await;
    let ns = env.ns().to_owned();
    for i in 0..n {
        let mut ss = seal(
            &ns,
            &format!("s{i}"),
            &[("user", "u"), ("password", "p")],
            old.public_key(),
            json!({}),
        );
        if i % 2 == 1 {
            // Half without the hint annotation, as upstream's kubeseal produces them.
            ss.metadata.annotations = None;
        }
        env.create_ss(&ss).await;
    }
    let secrets = env.secrets(&ns);
    let start = Instant::now();
    let mut c = env.start_controller(&["--concurrency=16"]).await;
    // Both backends stream a watch's initial events (the real one: Kubernetes 1.35).
    c.process
        .wait_for_log("first_lists=stream", TIMEOUT)
        .unwrap_or_else(|e| {
            panic!(
                "{e}
{}",
                c.process.log()
            )
        });
    eventually(
        &format!("{n} Secrets"),
        Duration::from_secs(600),
        || async { (count_secrets(&secrets).await >= n).then_some(()) },
    )
    .await;
    let cold = start.elapsed();
    let rsa = c
        .metric("sealed_secrets_controller_rsa_decryptions_total")
        .await;
    let opened = c
        .metric("sealed_secrets_controller_key_values_opened_total")
        .await;
    println!(
        "cold start: {n} SealedSecrets ({} values) -> Secrets in {cold:?}; RSA decryptions: {rsa}; values opened: {opened}",
        2 * n
    );
    assert_eq!(opened as usize, 2 * n);
    c.process.stop();

    let start = Instant::now();
    let c2 = env.start_controller(&["--concurrency=16"]).await;
    eventually(
        "the restart to go through all",
        Duration::from_secs(600),
        || async {
            (c2.metric("sealed_secrets_controller_unseal_requests_total")
                .await as usize
                >= n
                && c2.process.log().matches("source digest matches").count() >= n)
                .then_some(())
        },
    )
    .await;
    let warm = start.elapsed();
    let rsa2 = c2
        .metric("sealed_secrets_controller_rsa_decryptions_total")
        .await;
    println!("restart: {n} SealedSecrets checked in {warm:?}; RSA decryptions: {rsa2}");
    assert_eq!(rsa2, 0.0);
}
