//! The HTTP endpoints (§5): `/healthz`, `/v1/cert.pem`, `/v1/verify` and `/v1/rotate` on
//! `--listen-addr`; `/metrics` on `--listen-metrics-addr`.
//!
//! Verify and rotate **never render templates** (§9.3: that made upstream a decryption
//! oracle): they use `sealed_secrets_api::verify`/`decrypt_items`/`reseal`, and rotate takes
//! the scope from the SealedSecret's top-level metadata only.
//!
//! Everything a client controls is bounded ([`serve`]): the time to send request headers
//! (which also closes idle keep-alive connections), the time a response write may stall, the
//! requests per connection, the number of open connections overall and per client, the body
//! size and the time to send it, the time a request may take, and the RSA work verify and
//! rotate may run at once. The probes keep slots of their own ([`listen::PROBE_SLOTS`]).
//! Both are rate-limited per client (upstream limits verify only), before the body is read;
//! the client is the peer address, or the `X-Forwarded-For` entry added by a configured
//! trusted proxy ([`crate::ratelimit::client_address`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest as _, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use sealed_secrets_api::{SealedSecret, UnsealOptions};
use tokio::sync::Semaphore;

use crate::keys::Keys;
use crate::metrics::SharedMetrics;
use crate::ratelimit::{Gcra, IpNet, client_address};

pub mod flags;
mod listen;

pub use flags::ServerArgs;

pub use listen::{
    BindError, ConnLimits, Listener, MAX_REQUESTS_PER_CONNECTION, PROBE_SLOTS,
    PROBE_SLOTS_PER_CLIENT, listen, serve,
};

/// Largest request body accepted by verify and rotate. A SealedSecret is stored in etcd,
/// whose object limit is 1.5 MiB; 2 MiB leaves room for YAML's extra bytes.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// State shared by the handlers.
#[derive(Debug)]
pub struct ServerState {
    pub keys: Arc<Keys>,
    pub metrics: SharedMetrics,
    /// One limiter for verify and rotate, keyed by path and client, so each endpoint has its
    /// own budget per client.
    pub limiter: Mutex<Gcra>,
    /// Rotate's limiter (`--rotate-rate-limit`): `kubeseal --re-encrypt` sends one request
    /// per document, so it is allowed more than verify.
    pub rotate_limiter: Mutex<Gcra>,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    pub trusted_proxies: Vec<IpNet>,
    /// Permits for RSA work (verify and rotate together); waiting for one counts against the
    /// request timeout.
    pub rsa_permits: Arc<Semaphore>,
    pub unseal: UnsealOptions,
    pub timeout: Duration,
    /// Time a verify or rotate client has to send its whole body (`--read-body-timeout`),
    /// counted once the request has passed the rate limit.
    pub body_read_timeout: Duration,
}

impl ServerState {
    /// RSA work at once: one task fewer than the CPUs, so that verify and rotate leave at
    /// least one core to the reconciler (the HTTP server's own runtime has as many worker
    /// threads, see `listen::serve`). With a single CPU there is one permit all the same
    /// (none would refuse every request), and that core is shared.
    pub fn default_rsa_permits() -> usize {
        rsa_permits_for(
            std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1),
        )
    }
}

/// RSA permits on `cpus` CPUs: all but one, at least one. Pure.
pub fn rsa_permits_for(cpus: usize) -> usize {
    cpus.saturating_sub(1).max(1)
}

const INSTRUMENTED: [&str; 3] = ["/v1/verify", "/v1/rotate", "/v1/cert.pem"];

/// The peer address of a connection, set by [`serve`] on every request.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The main router. Methods are not restricted, as upstream's ServeMux.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", any(healthz))
        .route("/v1/cert.pem", any(cert))
        .route("/v1/verify", any(verify))
        .route("/v1/rotate", any(rotate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), instrument))
        .with_state(state)
}

/// What a probe slot serves on the main port ([`listen::PROBE_SLOTS`]): `/healthz`, and 503
/// for anything else, since every regular slot is taken.
pub fn probe_router() -> Router {
    Router::new()
        .route("/healthz", any(healthz))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "server busy: every connection slot is taken\n",
            )
        })
}

/// Router of the metrics server.
pub fn metrics_router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The metric label of a method: the standard ones in lower case (as promhttp), anything
/// else one `unknown` label so that a client cannot create a series per made-up method.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::DELETE => "delete",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        Method::PATCH => "patch",
        Method::CONNECT => "connect",
        Method::TRACE => "trace",
        _ => "unknown",
    }
}

async fn instrument(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = match tokio::time::timeout(state.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    };
    if INSTRUMENTED.contains(&path.as_str()) {
        state.metrics.observe_http(
            &path,
            method,
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
            "cannot get certificate\n".to_owned(),
        ),
    }
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Why a request body is not one SealedSecret: answered 400 (upstream says 500 for a decode
/// error; a client mistake is not a server error).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    #[error("empty request body: expected one SealedSecret (JSON or YAML)")]
    Empty,
    #[error("request body is not a SealedSecret: {0}")]
    Parse(String),
    #[error("request body holds no SealedSecret")]
    None,
    #[error("request body holds {0} documents: expected exactly one SealedSecret")]
    Several(usize),
}

/// Exactly one SealedSecret document (JSON or YAML with apiVersion/kind), as upstream's
/// universal decoder requires. Pure.
pub fn parse_one(body: &[u8]) -> Result<SealedSecret, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let mut docs = sealed_secrets_api::parse_sealed_secrets(body)
        .map_err(|e| BodyError::Parse(e.to_string()))?;
    match docs.len() {
        1 => docs.pop().ok_or(BodyError::None),
        0 => Err(BodyError::None),
        n => Err(BodyError::Several(n)),
    }
}

/// Verify and rotate refuse the deprecated whole-Secret `spec.data` unless
/// `--http-accept-deprecated-v1-data`: rotate would hand back the decrypted
/// Secret's metadata, and verify would answer by whether a plaintext parses as JSON. Pure.
pub fn refuse_legacy(ss: &SealedSecret, opts: &UnsealOptions) -> Option<String> {
    let has_legacy = ss
        .spec
        .data
        .as_deref()
        .is_some_and(|d| !d.trim().is_empty());
    (has_legacy && !opts.accept_deprecated_v1_data).then(|| {
        "spec.data (the deprecated whole-Secret v1 format) is not accepted by /v1/verify and \
         /v1/rotate on this controller (--http-accept-deprecated-v1-data=false); reseal the \
         Secret with kubeseal into spec.encryptedData\n"
            .to_owned()
    })
}

fn bad_request(e: &BodyError) -> Response {
    text(StatusCode::BAD_REQUEST, format!("{e}\n"))
}

/// Runs `handle` on the request's body if `limiter` allows this client another request (else
/// 429 `limit exceeded`), and adds upstream's rate-limit headers to the answer either way.
/// The body is read only after the check, within `--read-body-timeout`: a refused client
/// costs no buffering, and a slow body cannot hold the connection for the request timeout.
async fn rate_limited<F, Fut>(
    limiter: &Mutex<Gcra>,
    state: &ServerState,
    path: &str,
    req: Request,
    handle: F,
) -> Response
where
    F: FnOnce(Bytes) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let client = request_client(state, req.extensions(), req.headers());
    let decision = {
        let mut limiter = match limiter.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        limiter.check(&format!("{path}{client}"), Instant::now())
    };
    let mut resp = if decision.allowed {
        match read_body(state, req).await {
            Ok(body) => handle(body).await,
            Err(refusal) => refusal,
        }
    } else {
        text(StatusCode::TOO_MANY_REQUESTS, "limit exceeded\n".to_owned())
    };
    add_headers(&mut resp, decision.headers());
    resp
}

/// The whole body of `req` (at most [`MAX_BODY_BYTES`], else 413), or 408 and the end of the
/// connection if it does not arrive within `--read-body-timeout`.
async fn read_body(state: &ServerState, req: Request) -> Result<Bytes, Response> {
    match tokio::time::timeout(state.body_read_timeout, Bytes::from_request(req, &())).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(rejection)) => Err(rejection.into_response()),
        Err(_) => {
            let mut resp = text(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within --read-body-timeout\n".to_owned(),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(resp)
        }
    }
}

/// The address a request is accounted to for rate limiting.
fn request_client(state: &ServerState, extensions: &Extensions, headers: &HeaderMap) -> IpAddr {
    let peer = extensions
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let xff: Vec<&str> = headers
        .get_all("X-Forwarded-For")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_address(peer, &xff, &state.trusted_proxies)
}

fn add_headers(resp: &mut Response, headers: Vec<(&'static str, String)>) {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
}

/// Runs `f` on the blocking pool once an RSA permit is free.
async fn rsa_work<T: Send + 'static>(
    state: &ServerState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _permit = state.rsa_permits.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

async fn verify(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    rate_limited(&state.limiter, &state, "/v1/verify", req, |body| {
        verify_body(&state, body)
    })
    .await
}

/// The one SealedSecret a verify or rotate request carries, or the 400 that refuses it: a body
/// that does not decode, or the legacy `spec.data` format unless enabled for HTTP.
fn decode_request(
    state: &ServerState,
    body: &[u8],
    what: &str,
) -> Result<SealedSecret, Box<Response>> {
    let ss = parse_one(body).map_err(|e| {
        tracing::info!(error = %e, "{what}: cannot decode request");
        Box::new(bad_request(&e))
    })?;
    match refuse_legacy(&ss, &state.unseal) {
        Some(msg) => Err(Box::new(text(StatusCode::BAD_REQUEST, msg))),
        None => Ok(ss),
    }
}

async fn verify_body(state: &Arc<ServerState>, body: Bytes) -> Response {
    let ss = match decode_request(state, &body, "verify") {
        Ok(ss) => ss,
        Err(refusal) => return *refusal,
    };
    let snap = state.keys.snapshot();
    let opts = state.unseal.clone();
    let result = rsa_work(state, move || {
        sealed_secrets_api::decrypt_items(&ss, &snap.ring, &opts)
    })
    .await
    .inspect(|r| {
        let rsa = r
            .as_ref()
            .map_or_else(|e| e.rsa_operations(), |d| d.rsa_operations());
        state.metrics.rsa_decryptions.inc_by(rsa);
    });
    match result {
        Some(Ok(_)) => StatusCode::OK.into_response(),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "verify: does not decrypt");
            StatusCode::CONFLICT.into_response()
        }
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn rotate(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    rate_limited(&state.rotate_limiter, &state, "/v1/rotate", req, |body| {
        rotate_body(&state, body)
    })
    .await
}

async fn rotate_body(state: &Arc<ServerState>, body: Bytes) -> Response {
    let ss = match decode_request(state, &body, "rotate") {
        Ok(ss) => ss,
        Err(refusal) => return *refusal,
    };
    let snap = state.keys.snapshot();
    let opts = state.unseal.clone();
    // The RSA operations are counted whatever the outcome: a value no key opens costs too.
    let result = rsa_work(state, move || {
        let Some(newest) = snap.newest() else {
            return (Err("no key to seal with".to_owned()), 0);
        };
        match sealed_secrets_api::decrypt_items(&ss, &snap.ring, &opts) {
            Err(e) => (Err(e.to_string()), e.rsa_operations()),
            Ok(items) => {
                let resealed = sealed_secrets_api::reseal(&ss, &items, &[newest.cert.public_key()])
                    .map(|out| sealed_secrets_api::output::to_json(&out))
                    .map_err(|e| e.to_string());
                (resealed, items.rsa_operations())
            }
        }
    })
    .await
    .map(|(result, rsa)| {
        state.metrics.rsa_decryptions.inc_by(rsa);
        result
    });
    match result {
        Some(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Some(Err(e)) => {
            tracing::info!(error = %e, "rotate failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
