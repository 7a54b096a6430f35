//! The HTTP endpoints (§5): health, certificate, verify (with its rate limit), rotate, and
//! that verify/rotate never render templates (§9.3).

use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::Scope;
use serde_json::json;

use crate::common::*;

fn body(ss: &SealedSecret) -> Vec<u8> {
    sealed_secrets_api::output::to_json(ss).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_cert_verify_rotate() {
    let env = Env::new().await;
    // A generous rate limit here; the limit itself is tested below.
    let c = env
        .start_controller(&["--rate-limit=100", "--rate-limit-burst=100"])
        .await;
    let key = env.served_key(&c).await;
    let ns = env.ns();

    let h = c.get("/healthz").await;
    assert_eq!((h.status, h.body_text().as_str()), (200, "ok\n"));
    let cert = c.get("/v1/cert.pem").await;
    assert_eq!(cert.header("content-type"), Some("application/x-pem-file"));
    assert!(cert.body_text().starts_with("-----BEGIN CERTIFICATE-----"));

    // Verify: 200 when it decrypts, 409 when not, 500 on garbage.
    let good = seal(ns, "db", &[("password", "hunter2")], &key, json!({}));
    assert_eq!(c.post("/v1/verify", &body(&good)).await.status, 200);
    let yaml = sealed_secrets_api::output::to_yaml(&good).unwrap();
    assert_eq!(
        c.post("/v1/verify", yaml.as_bytes()).await.status,
        200,
        "YAML is accepted too"
    );
    let (wrong, _) = make_key(std::time::SystemTime::now());
    let bad = seal(
        ns,
        "db",
        &[("password", "hunter2")],
        wrong.public_key(),
        json!({}),
    );
    assert_eq!(c.post("/v1/verify", &body(&bad)).await.status, 409);
    let mut moved = good.clone();
    moved.metadata.name = Some("other".into());
    assert_eq!(
        c.post("/v1/verify", &body(&moved)).await.status,
        409,
        "strict scope binds the name"
    );
    assert_eq!(
        c.post("/v1/verify", b"not a sealed secret").await.status,
        500
    );

    // Templates are never rendered by verify or rotate: a template that cannot render
    // (unknown function) would fail if it were executed.
    let mut templated = good.clone();
    templated.spec.template.data = Some(
        [(
            "derived".to_owned(),
            "{{ nosuchfunction .password }}".to_owned(),
        )]
        .into(),
    );
    assert_eq!(c.post("/v1/verify", &body(&templated)).await.status, 200);
    let r = c.post("/v1/rotate", &body(&templated)).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let rotated: SealedSecret = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        rotated.spec.template.data.as_ref().unwrap()["derived"],
        "{{ nosuchfunction .password }}",
        "template kept verbatim, not flattened"
    );
    assert_ne!(
        rotated.spec.encrypted_data.get("password"),
        good.spec.encrypted_data.get("password")
    );

    // Rotate takes the scope from the top-level metadata, never from the template: a
    // strict secret whose template claims cluster-wide stays strict.
    let mut sneaky = good.clone();
    sneaky
        .spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations = Some(
        [(
            "sealedsecrets.bitnami.com/cluster-wide".to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    let r = c.post("/v1/rotate", &body(&sneaky)).await;
    assert_eq!(r.status, 200);
    let rotated: SealedSecret = serde_json::from_slice(&r.body).unwrap();
    let ct =
        sealed_secrets_crypto::decode_base64(rotated.spec.encrypted_data.get("password").unwrap())
            .unwrap();
    let sealed_with = sealed_secrets_crypto::envelope(&ct).unwrap();
    assert!(matches!(
        sealed_with,
        sealed_secrets_crypto::Envelope::Upstream { .. }
    ));
    // Round trip through the controller: the rotated object verifies under its strict name...
    assert_eq!(c.post("/v1/verify", &body(&rotated)).await.status, 200);
    // ...and not as a cluster-wide object under another name.
    let mut as_cw = rotated.clone();
    as_cw.metadata.name = Some("elsewhere".into());
    as_cw.metadata.annotations = Some(
        [(
            Scope::ClusterWide.annotation().unwrap().to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    assert_eq!(c.post("/v1/verify", &body(&as_cw)).await.status, 409);
    // Rotate of something that does not decrypt fails.
    assert_eq!(c.post("/v1/rotate", &body(&bad)).await.status, 500);

    let m = c.metrics_text().await;
    assert!(m.contains("sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"409\",method=\"post\"}"), "{m}");
    assert!(m.contains("sealed_secrets_controller_http_request_duration_seconds_bucket{"));
    assert!(m.contains("sealed_secrets_controller_build_info{revision="));
    assert!(m.contains("process_resident_memory_bytes"));
    assert!(metric_sum(&m, "sealed_secrets_controller_keys_active") >= 1.0);
    // Nothing secret leaked into the log.
    assert!(!c.process.log().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_is_rate_limited_with_upstream_headers() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await; // defaults: 2/s, burst 2
    let key = env.served_key(&c).await;
    let good = body(&seal(env.ns(), "db", &[("a", "b")], &key, json!({})));
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let r = c.post("/v1/verify", &good).await;
        assert_eq!(r.header("X-RateLimit-Limit"), Some("3"));
        assert!(
            r.header("X-RateLimit-Remaining").is_some() && r.header("X-RateLimit-Reset").is_some()
        );
        statuses.push(r.status);
        if r.status == 429 {
            limited = Some(r);
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert_eq!(limited.body_text(), "limit exceeded\n");
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(statuses[0], 200);
    // Another client (X-Forwarded-For) has its own budget.
    let r = http(
        &c.http,
        "POST",
        "/v1/verify",
        &[("X-Forwarded-For", "10.1.2.3")],
        &good,
    )
    .await;
    assert_eq!(r.status, 200);
}
