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

#[tokio::test]
async fn the_recipient_endpoint_serves_the_newest_keys_recipient_or_says_to_rotate() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use sealed_secrets_api::seal::AGE_RECIPIENT_PATH;
    use sealed_secrets_crypto::{CertParams, PqIdentity, PrivateKey};
    use tower::ServiceExt as _;

    let state = Arc::new(test_state(1));
    let get = |state: Arc<ServerState>| async move {
        let resp = super::routes::router(state)
            .oneshot(
                Request::get(AGE_RECIPIENT_PATH)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let ctype = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    };
    let key = PrivateKey::generate(2048).unwrap();
    let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
    let loaded = |name: &str, secs: u64, pq: Option<PqIdentity>| crate::keys::LoadedKey {
        secret_name: name.into(),
        key: key.clone(),
        cert: cert.clone(),
        order_time: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        foreign: false,
        future_not_before: false,
        pq,
        pq_error: None,
    };
    // An upstream key: 404, one line that says what to do.
    state.keys.register(loaded("upstream-key", 100, None));
    let (status, ctype, body) = get(state.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert!(
        body.contains("rotate") && body.contains("upstream-key"),
        "{body}"
    );
    assert_eq!(body.lines().count(), 1);

    // A newer key with an identity: its recipient.
    let id = PqIdentity::generate().unwrap();
    state.keys.register(crate::keys::LoadedKey {
        key: PrivateKey::generate(2048).unwrap(),
        ..loaded("new-key", 200, Some(id.clone()))
    });
    let (status, ctype, body) = get(state.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert_eq!(body, format!("{}\n", id.recipient()));
    assert!(
        state.metrics.encode().contains(
            "http_requests_total{path=\"/v1/age-recipient.txt\",code=\"200\",method=\"get\"} 1"
        ),
        "instrumented like /v1/cert.pem"
    );
}
