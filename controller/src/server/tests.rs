use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealed_secrets_api::{SealedSecret, UnsealOptions};
use tokio::sync::Semaphore;

use super::routes::method_label;
use super::state::{ServerState, rsa_permits_for};
use super::verify::{BodyError, parse_one, refuse_legacy, rsa_work};
use crate::keys::Keys;
use crate::ratelimit::Gcra;

#[test]
fn bodies_that_are_not_one_sealed_secret_are_client_errors() {
    assert_eq!(parse_one(b"").unwrap_err(), BodyError::Empty);
    assert_eq!(parse_one(b" \n\t").unwrap_err(), BodyError::Empty);
    assert!(matches!(
        parse_one(b"not a sealed secret").unwrap_err(),
        BodyError::Parse(_) | BodyError::None
    ));
    let one = r#"{"apiVersion":"bitnami.com/v1alpha1","kind":"SealedSecret","metadata":{"name":"a","namespace":"n"},"spec":{"encryptedData":{}}}"#;
    assert!(parse_one(one.as_bytes()).is_ok());
    let two = format!("{one}\n{one}");
    assert_eq!(
        parse_one(two.as_bytes()).unwrap_err(),
        BodyError::Several(2)
    );
}

#[test]
fn legacy_data_is_refused_unless_enabled() {
    let mut ss: SealedSecret = serde_json::from_str(
        r#"{"apiVersion":"bitnami.com/v1alpha1","kind":"SealedSecret","metadata":{"name":"a","namespace":"n"},"spec":{"encryptedData":{}}}"#,
    )
    .unwrap();
    let off = UnsealOptions {
        accept_deprecated_v1_data: false,
        ..UnsealOptions::default()
    };
    let on = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..UnsealOptions::default()
    };
    assert_eq!(refuse_legacy(&ss, &off), None);
    ss.spec.data = Some("AAAA".into());
    assert!(
        refuse_legacy(&ss, &off)
            .unwrap()
            .contains("--http-accept-deprecated-v1-data")
    );
    assert_eq!(refuse_legacy(&ss, &on), None);
}

fn test_state(rsa_permits: usize) -> ServerState {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let settings = crate::keys::KeyArgs::parse_for_test(&["--key-size=2048", "--key-ttl=1m"]);
    ServerState {
        keys: Keys::new(settings, "ns".into(), metrics.clone()),
        metrics,
        limiter: Mutex::new(Gcra::new(2, 2)),
        rotate_limiter: Mutex::new(Gcra::new(10, 20)),
        trusted_proxies: vec![],
        rsa_permits: Arc::new(Semaphore::new(rsa_permits)),
        unseal: UnsealOptions::default(),
        timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_work_runs_at_most_the_permitted_tasks_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let state = Arc::new(test_state(2));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (state, running, peak) = (state.clone(), running.clone(), peak.clone());
        tasks.spawn(async move {
            rsa_work(&state, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            })
            .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().is_some());
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "{peak} RSA tasks ran at once");
}

#[test]
fn rsa_work_leaves_a_core_to_reconciling() {
    assert_eq!(rsa_permits_for(0), 1);
    assert_eq!(rsa_permits_for(1), 1);
    assert_eq!(rsa_permits_for(2), 1);
    assert_eq!(rsa_permits_for(8), 7);
}

#[test]
fn unknown_methods_share_one_label() {
    use axum::http::Method;
    assert_eq!(method_label(&Method::POST), "post");
    assert_eq!(method_label(&Method::GET), "get");
    let made_up = Method::from_bytes(b"FROBNICATE").unwrap();
    let other = Method::from_bytes(b"XYZZY").unwrap();
    assert_eq!(method_label(&made_up), "unknown");
    assert_eq!(method_label(&other), "unknown");
}
