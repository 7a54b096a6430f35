//! The HTTP endpoints (§5): health, certificate, verify (with its rate limit), rotate, and
//! that verify/rotate never render templates (§9.3).

use harness::hostile;
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
    // A body that is not one SealedSecret is the client's mistake: 400 with the reason.
    let r = c.post("/v1/verify", b"not a sealed secret").await;
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert!(
        r.body_text().contains("not a SealedSecret") || r.body_text().contains("no SealedSecret"),
        "{}",
        r.body_text()
    );
    let r = c.post("/v1/verify", b"").await;
    assert_eq!(
        (r.status, r.body_text().as_str()),
        (
            400,
            "empty request body: expected one SealedSecret (JSON or YAML)\n"
        )
    );
    let r = c.post("/v1/rotate", b"").await;
    assert_eq!(r.status, 400);
    let two = [body(&good), b"\n".to_vec(), body(&good)].concat();
    let r = c.post("/v1/rotate", &two).await;
    assert_eq!(r.status, 400);
    assert!(r.body_text().contains("2 documents"), "{}", r.body_text());

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
            sealed_secrets_api::annotations::scope_annotation(Scope::ClusterWide)
                .unwrap()
                .to_owned(),
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
    // X-Forwarded-For from an untrusted peer is not another client: 20 made-up addresses
    // share the peer's (exhausted) budget.
    let mut allowed = 0;
    for i in 0..20 {
        let xff = format!("10.1.2.{i}");
        let r = http(
            &c.http,
            "POST",
            "/v1/verify",
            &[("X-Forwarded-For", &xff)],
            &good,
        )
        .await;
        if r.status == 200 {
            allowed += 1;
        }
    }
    assert!(
        allowed <= 3,
        "{allowed} of 20 forwarded addresses got through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_trusted_proxies_and_rotate_is_limited() {
    let env = Env::new().await;
    let c = env
        .start_controller(&[
            "--trusted-proxies=127.0.0.0/8",
            "--rotate-rate-limit=1",
            "--rotate-rate-limit-burst=1",
        ])
        .await;
    let key = env.served_key(&c).await;
    let good = body(&seal(env.ns(), "db", &[("a", "b")], &key, json!({})));
    // Behind a trusted proxy each forwarded client has its own budget.
    for i in 0..8 {
        let xff = format!("203.0.113.{i}");
        let r = http(
            &c.http,
            "POST",
            "/v1/verify",
            &[("X-Forwarded-For", &xff)],
            &good,
        )
        .await;
        assert_eq!(r.status, 200, "client {xff}");
    }
    // Rotate is rate-limited too (limit 1, burst 1: two at once, then 429).
    let statuses: Vec<u16> = futures_statuses(&c, "/v1/rotate", &good, 5).await;
    assert_eq!(statuses[0], 200);
    assert!(statuses.contains(&429), "{statuses:?}");
    // Made-up methods are one metric label.
    for m in ["FROB1", "FROB2", "FROB3"] {
        let _ = http(&c.http, m, "/v1/verify", &[], b"").await;
    }
    let text = c.metrics_text().await;
    assert!(text.contains("method=\"unknown\""), "{text}");
    assert!(!text.to_lowercase().contains("frob"), "{text}");
}

async fn futures_statuses(c: &Controller, path: &str, body: &[u8], n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.post(path, body).await.status);
    }
    out
}

/// Slow-loris: clients that send their headers one byte a second are cut off after the
/// header-read timeout, not held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_are_disconnected() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let env = Env::new().await;
    let c = env.start_controller(&["--read-header-timeout=2s"]).await;
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let addr = c.http.clone();
        tasks.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let header = b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let t0 = std::time::Instant::now();
            for b in header.iter() {
                if s.write_all(&[*b]).await.is_err() {
                    return t0.elapsed();
                }
                let mut buf = [0u8; 512];
                // A closed connection shows as EOF (or a reset) on read.
                match tokio::time::timeout(std::time::Duration::from_secs(1), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
                    Ok(Ok(_)) => {
                        // hyper answers 408 before closing; keep reading until EOF.
                    }
                    Err(_) => {}
                }
            }
            panic!("connection still open after sending the whole header slowly");
        });
    }
    let mut worst = std::time::Duration::ZERO;
    while let Some(r) = tasks.join_next().await {
        worst = worst.max(r.unwrap());
    }
    eprintln!(
        "50 slow-loris connections: all closed, the last after {worst:?} (total {:?})",
        start.elapsed()
    );
    assert!(worst < std::time::Duration::from_secs(5), "{worst:?}");
    // The server still answers.
    assert_eq!(c.get("/healthz").await.status, 200);
}

/// 1,100 idle connections: at most `--max-connections` are held by the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped() {
    let env = Env::new().await;
    let c = env
        .start_controller(&["--max-connections=50", "--read-header-timeout=30s"])
        .await;
    let port: u16 = c.http.rsplit(':').next().unwrap().parse().unwrap();
    // The readiness checks' connections gone first, so that what is counted below is the
    // flood's alone.
    eventually("the controller to hold no connection", TIMEOUT, || async {
        (hostile::held_connections(c.pid(), port) == 0).then_some(())
    })
    .await;
    // All at once, each connect bounded: once the kernel's backlog is full a connect hangs in
    // SYN retries, and such a connection is not held by the process either.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1100 {
        let addr = c.http.clone();
        tasks.spawn(async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .ok()
            .and_then(Result::ok)
        });
    }
    let mut conns = Vec::new();
    while let Some(r) = tasks.join_next().await {
        conns.extend(r.unwrap());
    }
    // Once the accept queue is empty the controller has kept or closed each of them: at most
    // its regular slots and the probe slots of one address (they all come from 127.0.0.1).
    // A connection the accept loop has just taken beyond them is closed an instant later, and
    // read in that instant it counts (one did: 55 held, on a busy machine): so the count is
    // read when two reads 100 ms apart agree, with the queue empty before and after.
    let held = eventually(
        "the accept queue to drain and the count to settle",
        TIMEOUT,
        || async {
            let drained = || hostile::accept_backlog(c.pid(), port) == Some(0);
            if !drained() {
                return None;
            }
            let first = hostile::held_connections(c.pid(), port);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let second = hostile::held_connections(c.pid(), port);
            (drained() && first == second).then_some(second)
        },
    )
    .await;
    eprintln!(
        "{} idle connections opened; the controller holds {held} of them",
        conns.len()
    );
    assert!(held <= 50 + 4, "controller holds {held} idle connections");
    drop(conns);
    // Once they are gone the server answers again.
    let h = eventually("healthz after the idle flood", TIMEOUT, || async {
        // A connection reset while the flood drains is "not yet", not a failure.
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            try_http(&c.http, "GET", "/healthz", &[], b""),
        )
        .await;
        r.ok().and_then(Result::ok).filter(|r| r.status == 200)
    })
    .await;
    assert_eq!(h.status, 200);
}
