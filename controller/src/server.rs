//! The HTTP endpoints (§5): `/healthz`, `/v1/cert.pem`, `/v1/verify` (rate-limited) and
//! `/v1/rotate` on `--listen-addr`; `/metrics` on `--listen-metrics-addr`.
//!
//! Verify and rotate **never render templates** (§9.3: that made upstream a decryption
//! oracle): they use `sealed_secrets_api::verify`/`decrypt_items`/`reseal`, and rotate takes
//! the scope from the SealedSecret's top-level metadata only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use sealed_secrets_api::{SealedSecret, UnsealOptions};

use crate::keys::Keys;
use crate::metrics::SharedMetrics;
use crate::ratelimit::Gcra;

/// State shared by the handlers.
#[derive(Debug)]
pub struct ServerState {
    pub keys: Arc<Keys>,
    pub metrics: SharedMetrics,
    pub limiter: Mutex<Gcra>,
    pub unseal: UnsealOptions,
    pub timeout: Duration,
}

const INSTRUMENTED: [&str; 3] = ["/v1/verify", "/v1/rotate", "/v1/cert.pem"];

/// The main router. Methods are not restricted, as upstream's ServeMux.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", any(healthz))
        .route("/v1/cert.pem", any(cert))
        .route("/v1/verify", any(verify))
        .route("/v1/rotate", any(rotate))
        .layer(middleware::from_fn_with_state(state.clone(), instrument))
        .with_state(state)
}

/// Router of the metrics server.
pub fn metrics_router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn instrument(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = match tokio::time::timeout(state.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    };
    if INSTRUMENTED.contains(&path.as_str()) {
        state.metrics.observe_http(
            &path,
            &method,
            resp.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
    }
    resp
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn cert(State(state): State<Arc<ServerState>>) -> Response {
    let snap = state.keys.snapshot();
    match snap.newest() {
        Some(k) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            k.cert.pem().to_owned(),
        )
            .into_response(),
        None => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot get certificate\n",
        ),
    }
}

fn text(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Exactly one SealedSecret document (JSON or YAML with apiVersion/kind), as upstream's
/// universal decoder requires.
fn parse_one(body: &[u8]) -> Result<SealedSecret, String> {
    let mut docs = sealed_secrets_api::parse_sealed_secrets(body).map_err(|e| e.to_string())?;
    match docs.len() {
        1 => docs
            .pop()
            .ok_or_else(|| "no SealedSecret in the request body".to_owned()),
        0 => Err("no SealedSecret in the request body".to_owned()),
        n => Err(format!("expected one SealedSecret, got {n} documents")),
    }
}

fn rate_limit_key(path: &str, headers: &HeaderMap) -> String {
    let xff = headers
        .get("X-Forwarded-For")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    format!("{path}{xff}")
}

async fn verify(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let decision = {
        let mut limiter = match state.limiter.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        limiter.check(&rate_limit_key("/v1/verify", &headers), Instant::now())
    };
    let mut resp = if !decision.allowed {
        text(StatusCode::TOO_MANY_REQUESTS, "limit exceeded\n")
    } else {
        verify_body(&state, body).await
    };
    for (k, v) in decision.headers() {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

async fn verify_body(state: &Arc<ServerState>, body: Bytes) -> Response {
    let ss = match parse_one(&body) {
        Ok(ss) => ss,
        Err(e) => {
            tracing::info!(error = %e, "verify: cannot decode request");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let snap = state.keys.snapshot();
    let opts = state.unseal;
    let ring = snap.clone();
    let result =
        tokio::task::spawn_blocking(move || sealed_secrets_api::verify(&ss, &ring.ring, &opts))
            .await;
    snap.report_rsa(&state.metrics);
    match result {
        Ok(Ok(_)) => StatusCode::OK.into_response(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "verify: does not decrypt");
            StatusCode::CONFLICT.into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn rotate(State(state): State<Arc<ServerState>>, body: Bytes) -> Response {
    let ss = match parse_one(&body) {
        Ok(ss) => ss,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    let snap = state.keys.snapshot();
    let opts = state.unseal;
    let ring = snap.clone();
    let result = tokio::task::spawn_blocking(move || {
        let newest = ring
            .newest()
            .ok_or_else(|| "no key to seal with".to_owned())?;
        let pk = newest.cert.public_key();
        let items =
            sealed_secrets_api::decrypt_items(&ss, &ring.ring, &opts).map_err(|e| e.to_string())?;
        let out = sealed_secrets_api::reseal(&ss, &items, &[pk]).map_err(|e| e.to_string())?;
        Ok::<_, String>(sealed_secrets_api::output::to_json(&out))
    })
    .await;
    snap.report_rsa(&state.metrics);
    match result {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "rotate failed");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Binding a listener failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}
