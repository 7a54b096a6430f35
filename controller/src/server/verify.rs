//! `/v1/verify` and `/v1/rotate` (§5): rate-limited per client before the body is read,
//! one SealedSecret per request, RSA work under the permits, and never a template rendered
//! (§9.3).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sealed_secrets_api::{SealedSecret, UnsealOptions};

use super::state::{PeerAddr, ServerState, text};
use crate::ratelimit::{Gcra, client_address};

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
pub(super) async fn rsa_work<T: Send + 'static>(
    state: &ServerState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _permit = state.rsa_permits.clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

pub async fn verify(State(state): State<Arc<ServerState>>, req: Request) -> Response {
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

pub async fn rotate(State(state): State<Arc<ServerState>>, req: Request) -> Response {
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
                    .map_err(|e| e.to_string())
                    .and_then(|mut out| {
                        super::rotate_pq::keep_post_quantum(
                            &ss,
                            &items,
                            newest.pq_recipient.as_ref(),
                            &mut out,
                        )
                        .map_err(|e| format!("failed to re-encrypt a post-quantum value: {e}"))?;
                        Ok(sealed_secrets_api::output::to_json(&out))
                    });
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
