//! The routers: the main one (`/healthz`, `/v1/cert.pem`, `/v1/age-recipient.txt`,
//! `/v1/verify`, `/v1/rotate`), the probe slots' one, and the metrics server's; request metrics and the request timeout.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use sealed_secrets_api::seal::AGE_RECIPIENT_PATH;

use super::state::{MAX_BODY_BYTES, ServerState, text};
use super::verify::{rotate, verify};

const INSTRUMENTED: [&str; 4] = [
    "/v1/verify",
    "/v1/rotate",
    "/v1/cert.pem",
    AGE_RECIPIENT_PATH,
];

/// The main router. Methods are not restricted, as upstream's ServeMux.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", any(healthz))
        .route("/readyz", any(readyz))
        .route("/v1/cert.pem", any(cert))
        .route(AGE_RECIPIENT_PATH, any(age_recipient))
        .route("/v1/verify", any(verify))
        .route("/v1/rotate", any(rotate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), instrument))
        .with_state(state)
}

/// What a probe slot serves on the main port ([`listen::PROBE_SLOTS`]): the liveness and
/// readiness probes (`/healthz`, `/readyz`: both cheap, so that a loaded server neither
/// restarts nor leaves its Service), and 503 for anything else, since every regular slot is
/// taken.
pub fn probe_router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", any(healthz))
        .route("/readyz", any(readyz))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "server busy: every connection slot is taken\n",
            )
        })
        .with_state(state)
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

/// Readiness: 503 while no key is usable; the body names every key Secret whose wrapped key
/// does not open (crate::keywrap::readiness) or whose token key cannot be used, and a token
/// that does not open (crate::tokenkeys::readiness_lines).
async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    let usable = state.keys.snapshot().keys.len();
    let (ready, mut body) = crate::keywrap::readiness(usable, &state.keys.key_wrap().unusable());
    body.push_str(&state.keys.token_keys().readiness_lines());
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(code, body)
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

/// The newest key's post-quantum recipient (`age1pq1…`, one line), what `kubeseal` and
/// `age -r` seal post-quantum values to (`FORMAT.md` §3). Served like `/v1/cert.pem`: no
/// secret, no rate limit. A newest key without an identity (made by upstream or an older
/// version) gets a 404 that says how to get one, never an older key's recipient: values
/// would then be sealed to a key other than the one `/v1/cert.pem` names; nor does a key held
/// in a PKCS#11 token (docs/security.md, "Tier 1"), whose 404 says so.
async fn age_recipient(State(state): State<Arc<ServerState>>) -> Response {
    let snap = state.keys.snapshot();
    match snap.newest() {
        Some(k) => match &k.pq_recipient {
            Some(r) => text(StatusCode::OK, format!("{r}\n")),
            // A PKCS#11 token cannot do ML-KEM: rotating would give another token key.
            None if k.in_token => text(
                StatusCode::NOT_FOUND,
                format!(
                    "the newest key (Secret `{}`) is held in a PKCS#11 token, which has no post-quantum identity: seal with RSA (kubeseal without --post-quantum)\n",
                    k.secret_name
                ),
            ),
            None => text(
                StatusCode::NOT_FOUND,
                format!(
                    "the newest key (Secret `{}`) has no post-quantum identity: rotate to get one (kubeseal keys rotate)\n",
                    k.secret_name
                ),
            ),
        },
        None => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot get recipient\n".to_owned(),
        ),
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
