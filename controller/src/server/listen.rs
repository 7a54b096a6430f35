//! Accepting connections: binding both listeners at start-up and the accept loop that bounds
//! what a client controls before a request reaches a handler (header time, idle time,
//! connections), then drains open connections at shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use tokio::sync::Semaphore;

use super::{PeerAddr, ServerState, metrics_router, router};
use crate::keys::Keys;
use crate::metrics::SharedMetrics;
use crate::ratelimit::Gcra;

/// Limits of [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time a client has to send a request's headers, counted from the moment the connection
    /// waits for a request: a new connection that sends nothing and a kept-alive one that
    /// sends no next request are both closed after it (upstream's `ReadHeaderTimeout`, which
    /// upstream also uses as idle timeout when `IdleTimeout` is unset).
    pub header_read_timeout: Duration,
    /// Connections served at once. At the cap no connection is accepted until one closes
    /// (Go's `netutil.LimitListener`): further clients wait in the kernel's backlog.
    pub max_connections: usize,
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then lets the
/// open connections finish their current request.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                    return;
                }
                _ = stop.wait_for(|v| *v) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// A bound listener with its routes, ready to [`serve`].
#[derive(Debug)]
pub struct Listener {
    pub listener: tokio::net::TcpListener,
    pub router: Router,
    pub limits: ConnLimits,
}

impl Listener {
    /// Serves until `shutdown` resolves, then drains open connections (see [`serve`]).
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let addr = self.listener.local_addr().map(|a| a.to_string());
        tracing::info!(
            addr = addr.as_deref().unwrap_or("?"),
            "HTTP server listening"
        );
        serve(self.listener, self.router, self.limits, shutdown).await;
    }
}

/// Binds both servers of every replica: the API on `--listen-addr`, `/metrics` on
/// `--listen-metrics-addr`. Binding happens before anything is served, so a taken port is a
/// start-up error.
pub async fn listen(
    http: &crate::settings::HttpSettings,
    keys: Arc<Keys>,
    metrics: SharedMetrics,
) -> Result<[Listener; 2], BindError> {
    let state = Arc::new(ServerState {
        keys,
        metrics,
        limiter: Mutex::new(Gcra::new(http.rate_limit.0, http.rate_limit.1)),
        rotate_limiter: Mutex::new(Gcra::new(
            http.rotate_rate_limit.0,
            http.rotate_rate_limit.1,
        )),
        trusted_proxies: http.trusted_proxies.0.clone(),
        rsa_permits: Arc::new(Semaphore::new(ServerState::default_rsa_permits())),
        unseal: http.unseal.clone(),
        timeout: http.timeout,
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
            limits: http.limits,
        },
        Listener {
            listener: bind(http.metrics_addr).await?,
            router: metrics_router(state),
            limits: http.limits,
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
