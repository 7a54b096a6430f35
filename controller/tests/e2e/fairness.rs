//! Fairness between namespaces (docs/design.md, "Reconcile queue"): a backlog in one
//! namespace does not hold back another namespace's SealedSecrets, and the queue's metrics
//! are served.
//!
//! The check is on order, not time, so a slow machine cannot make it flake: every
//! SealedSecret exists before the controller starts, so all of them are queued at once,
//! namespace A's (which the API server lists first) ahead of B's. The resourceVersions of
//! the Secrets then say in which order they were written. A queue that serves requests in
//! arrival order writes B's Secrets after all of A's; the fair queue writes them among A's
//! first few. Every decryption passes the CPU gate (one per core, fair between namespaces),
//! whose wait histogram counts them.

use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use kube::api::ListParams;
use serde_json::json;

use crate::common::*;

/// SealedSecrets in the busy namespace, and in the quiet one.
const BUSY: usize = 200;
const QUIET: usize = 5;

/// The resourceVersions of the Secrets in `ns` (a cluster-wide write order on the API
/// server and the stand-in alike; the chaos suite orders writes by them too).
async fn secret_versions(env: &Env, ns: &str) -> Vec<u64> {
    env.secrets(ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| {
            s.metadata
                .resource_version
                .as_deref()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_in_one_namespace_does_not_hold_back_another() {
    let env = Env::new().await;
    // Namespace names sort in list order: "fair-a-…" before "fair-b-…".
    let busy_ns = env.cluster.namespace("fair-a").await.unwrap();
    let quiet_ns = env.cluster.namespace("fair-b").await.unwrap();
    let (key, cert) = make_key(SystemTime::now() - Duration::from_secs(60));
    env.put_key_secret(
        "sealed-secrets-keyfair0",
        key.to_pkcs1_pem().as_bytes(),
        cert.pem().as_bytes(),
        true,
    )
    .await;
    let public = key.public_key();
    let objects: Vec<_> = (0..BUSY)
        .map(|i| (busy_ns.name(), i))
        .chain((0..QUIET).map(|i| (quiet_ns.name(), i)))
        .map(|(ns, i)| seal(ns, &format!("s{i}"), &[("v", "x")], public, json!({})))
        .collect();
    futures::stream::iter(&objects)
        .for_each_concurrent(8, |ss| async {
            env.create_ss(ss).await;
        })
        .await;

    let c = env.start_controller(&[]).await;
    eventually("every Secret", Duration::from_secs(120), || async {
        let busy = secret_versions(&env, busy_ns.name()).await.len();
        let quiet = secret_versions(&env, quiet_ns.name()).await.len();
        (busy == BUSY && quiet == QUIET).then_some(())
    })
    .await;

    let quiet_done = secret_versions(&env, quiet_ns.name())
        .await
        .into_iter()
        .max()
        .unwrap();
    let busy_before = secret_versions(&env, busy_ns.name())
        .await
        .into_iter()
        .filter(|rv| *rv < quiet_done)
        .count();
    // Fair: B's objects start within the first slots (about QUIET of A's run beside them);
    // arrival order: all of A's first.
    assert!(
        busy_before < BUSY / 4,
        "{busy_before} of {BUSY} Secrets of the busy namespace were written before the quiet namespace's last one\n{}",
        c.process.log()
    );

    // Every reconcile waited in the queue and ran, and every decryption passed the CPU
    // gate: the three histograms counted them.
    for name in [
        "sealed_secrets_controller_reconcile_queue_wait_seconds_count",
        "sealed_secrets_controller_reconcile_duration_seconds_count",
        "sealed_secrets_controller_unseal_cpu_wait_seconds_count",
    ] {
        eventually(name, TIMEOUT, || async {
            (c.metric(name).await >= (BUSY + QUIET) as f64).then_some(())
        })
        .await;
    }
}
