//! What the handlers share: the [`ServerState`], the peer address [`crate::server::serve`]
//! attaches to every request, and the RSA permits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sealed_secrets_api::UnsealOptions;
use tokio::sync::Semaphore;

use crate::keys::Keys;
use crate::metrics::SharedMetrics;
use crate::ratelimit::{Gcra, IpNet};

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

/// The peer address of a connection, set by [`serve`] on every request.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// A plain-text answer.
pub fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
