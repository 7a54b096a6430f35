//! Binding both servers of every replica, before anything is served.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use sealed_secrets_api::UnsealOptions;
use tokio::sync::Semaphore;

use super::flags::ServerArgs;
use super::listen::{ConnLimits, serve};
use super::routes::{metrics_router, probe_router, router};
use super::state::ServerState;
use crate::keys::Keys;
use crate::metrics::SharedMetrics;
use crate::ratelimit::{Gcra, IpNet};

/// A bound listener with its routes, ready to [`serve`].
#[derive(Debug)]
pub struct Listener {
    pub listener: tokio::net::TcpListener,
    pub router: Router,
    /// What a probe slot serves ([`PROBE_SLOTS`]).
    pub probe: Router,
    pub limits: ConnLimits,
    /// `--trusted-proxies`, exempt from the per-client connection cap.
    pub trusted: Vec<IpNet>,
}

impl Listener {
    /// Serves until `shutdown` resolves, then drains open connections (see [`serve`]).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let addr = self.listener.local_addr().map(|a| a.to_string());
        tracing::info!(
            addr = addr.as_deref().unwrap_or("?"),
            "HTTP server listening"
        );
        serve(
            self.listener,
            self.router,
            self.probe,
            self.limits,
            self.trusted,
            shutdown,
        )
        .await;
    }
}

/// Binds both servers of every replica: the API on `--listen-addr`, `/metrics` on
/// `--listen-metrics-addr`; `unseal` is what verify and rotate accept. Binding happens before
/// anything is served, so a taken port is a start-up error.
pub async fn listen(
    http: &ServerArgs,
    unseal: UnsealOptions,
    keys: Arc<Keys>,
    metrics: SharedMetrics,
) -> Result<[Listener; 2], BindError> {
    let state = Arc::new(ServerState {
        keys,
        metrics,
        limiter: Mutex::new(Gcra::new(http.rate_limit, http.rate_limit_burst)),
        rotate_limiter: Mutex::new(Gcra::new(
            http.rotate_rate_limit,
            http.rotate_rate_limit_burst,
        )),
        trusted_proxies: http.trusted_proxies.0.clone(),
        rsa_permits: Arc::new(Semaphore::new(ServerState::default_rsa_permits())),
        unseal,
        timeout: http.timeout(),
        body_read_timeout: http.body_read_timeout,
    });
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })
    };
    Ok([
        Listener {
            listener: bind(http.listen_addr).await?,
            router: router(state.clone()),
            probe: probe_router(state.clone()),
            limits: http.limits(),
            trusted: http.trusted_proxies.0.clone(),
        },
        Listener {
            listener: bind(http.listen_metrics_addr).await?,
            // Scrapes are cheap: a probe slot serves them as a regular one would.
            probe: metrics_router(state.clone()),
            router: metrics_router(state),
            limits: http.limits(),
            trusted: http.trusted_proxies.0.clone(),
        },
    ])
}

/// Binding a listener failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}
