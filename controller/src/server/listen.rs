//! Accepting connections: binding both listeners at start-up and the accept loop that bounds
//! what a client controls before a request reaches a handler (header and idle time, write
//! progress, requests per connection, connections overall and per client), keeps slots for
//! the probes, then drains open connections at shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use tokio::sync::Semaphore;

use super::conn::{PerClient, WriteStallLimit};
use super::state::PeerAddr;
use crate::ratelimit::IpNet;

/// Connections accepted beyond `max_connections` for the probes only. While every regular
/// slot is taken (by clients that never read, say), the kubelet's `/healthz` probe still gets
/// an answer on the main port, which upstream's chart and manifests probe; any other path on
/// such a connection gets 503 at once.
pub const PROBE_SLOTS: usize = 32;
/// Probe slots one client address may hold at once: the kubelet runs its liveness,
/// readiness and startup probes from the node's address, so one client cannot take them all.
pub const PROBE_SLOTS_PER_CLIENT: usize = 4;
/// Header-read timeout of a probe slot (or `--read-header-timeout` if shorter): a probe sends
/// its request as soon as it connects, so a connection that does not is no probe.
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests served on one connection before it is closed (`Connection: close` on the last
/// answer). Bounds what one connection can queue by pipelining: a client that sends
/// thousands of requests in one write gets this many answers, then the connection ends.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 100;

/// Limits of [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time a client has to send a request's headers, counted from the moment the connection
    /// waits for a request: a new connection that sends nothing and a kept-alive one that
    /// sends no next request are both closed after it (upstream's `ReadHeaderTimeout`, which
    /// Go also uses as idle timeout when `IdleTimeout` is unset; hyper arms this one timer
    /// for both waits, so it is the idle timeout too). A new connection first waits up to
    /// [`PROBE_HEADER_TIMEOUT`] for its first bytes (to tell a probe apart) before this timer
    /// starts, so a client that sends nothing at all is closed that much later.
    pub header_read_timeout: Duration,
    /// Regular connections served at once. Beyond them only [`PROBE_SLOTS`] probe-only
    /// connections are accepted; any further connection is closed at once, so that the
    /// probes never wait in the kernel's backlog behind clients that hold every slot.
    pub max_connections: usize,
    /// Connections (regular and probe) one client address may hold at once; further ones are
    /// closed at once. `--trusted-proxies` are exempt: every user of the API server's service
    /// proxy arrives from the API server's address.
    pub max_connections_per_client: usize,
    /// Time a response write may make no progress (the client does not read what it asked
    /// for) before the connection is closed.
    pub write_stall_timeout: Duration,
}

/// Which slot a connection holds, and so how it is served.
#[derive(Clone, Copy)]
enum Slot {
    Regular,
    Probe,
}

/// What the accept loop and the connections share.
struct Shared {
    router: Router,
    probe: Router,
    limits: ConnLimits,
    trusted: Vec<IpNet>,
    permits: Arc<Semaphore>,
    probe_permits: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    probe_per_client: Arc<PerClient>,
    /// The runtime regular connections are served on ([`HttpRuntime`]).
    main: tokio::runtime::Handle,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then lets the
/// open connections finish their current request. Connections that arrive while every
/// regular slot is taken are served by `probe` on a probe slot ([`PROBE_SLOTS`]): one
/// request, then closed. Peers in `trusted` (`--trusted-proxies`) are not held to the
/// per-client cap.
///
/// Accepting and answering the probes run on a thread of their own (one small runtime): a
/// flood of requests on the regular connections keeps their runtime busy, and the kubelet's
/// `/healthz` must not queue behind it. A new connection whose first bytes are a
/// `GET /healthz` request line is answered there; any other goes to the regular connections'
/// runtime, which has one worker thread fewer than the CPUs (at least one) and is not the
/// caller's: however many requests clients send, they leave a core to the reconciler.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    probe: Router,
    limits: ConnLimits,
    trusted: Vec<IpNet>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let regular = limits.max_connections.clamp(1, u32::MAX as usize);
    let runtime = match HttpRuntime::start() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP server's runtime");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(regular));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        router,
        probe,
        limits,
        trusted,
        permits: permits.clone(),
        probe_permits: Arc::new(Semaphore::new(PROBE_SLOTS)),
        per_client: Arc::new(PerClient::default()),
        probe_per_client: Arc::new(PerClient::default()),
        main: runtime.handle(),
        stop: stop_rx,
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let accept = match listener.into_std() {
        Ok(std_listener) => {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(accept_loop(std_listener, shared)),
                        Err(e) => tracing::error!(error = %e, "cannot start the accept runtime"),
                    }
                    let _ = done_tx.send(());
                })
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = accept {
        tracing::error!(error = %e, "cannot start the HTTP accept thread");
        return;
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    // The accept thread ends once its own connections have; those on this runtime hand
    // their permits back when they end.
    let _ = done_rx.await;
    let _ = permits
        .acquire_many(u32::try_from(regular).unwrap_or(u32::MAX))
        .await;
    drop(runtime);
}

/// The runtime of the regular connections: [`super::state::rsa_permits_for`] the CPUs worker
/// threads, so that the HTTP server, however busy, leaves a core to the reconciler on the
/// caller's runtime. Shut down without waiting when dropped (it may be dropped on an async
/// task, where a blocking shutdown would panic); by then its connections have ended.
struct HttpRuntime(Option<tokio::runtime::Runtime>);

impl HttpRuntime {
    fn start() -> io::Result<Self> {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(super::state::rsa_permits_for(cpus))
            .thread_name("http")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for HttpRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(std_listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the HTTP listener");
            return;
        }
    };
    let mut stop = shared.stop.clone();
    let mut local = tokio::task::JoinSet::new();
    loop {
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
            _ = stop.wait_for(|v| *v) => break,
        };
        while local.try_join_next().is_some() {}
        let ip = peer.ip().to_canonical();
        let limits = shared.limits;
        let cap = if shared.trusted.iter().any(|n| n.contains(ip)) {
            usize::MAX
        } else {
            limits.max_connections_per_client.max(1)
        };
        // Dropping `stream` closes the connection: a client over its cap, or every slot taken.
        let Some(client) = shared.per_client.take(ip, cap) else {
            tracing::debug!(%peer, "connection refused: client holds --max-connections-per-client");
            continue;
        };
        let (slot, permit, probe_client) = match shared.permits.clone().try_acquire_owned() {
            Ok(p) => (Slot::Regular, p, None),
            Err(_) => {
                let Some(probe_client) = shared.probe_per_client.take(ip, PROBE_SLOTS_PER_CLIENT)
                else {
                    tracing::debug!(%peer, "connection refused: the client holds its probe slots");
                    continue;
                };
                let Ok(p) = shared.probe_permits.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "connection refused: every slot is taken");
                    continue;
                };
                (Slot::Probe, p, Some(probe_client))
            }
        };
        let shared = shared.clone();
        local.spawn(async move {
            let held = (permit, client, probe_client);
            let limit = limits.header_read_timeout.min(PROBE_HEADER_TIMEOUT);
            let is_probe = asks_for_probe(&stream, limit).await;
            let mut stop = shared.stop.clone();
            match (slot, is_probe) {
                (_, Some(true)) | (Slot::Probe, Some(false)) => {
                    let _held = held;
                    let router = shared.probe.clone();
                    serve_connection(stream, peer, router, Slot::Probe, limits, &mut stop).await;
                }
                // A probe slot whose client sent nothing in time: no probe.
                (Slot::Probe, None) => {}
                (Slot::Regular, _) => match stream.into_std() {
                    Ok(std_stream) => {
                        let router = shared.router.clone();
                        shared.main.spawn(async move {
                            let _held = held;
                            match tokio::net::TcpStream::from_std(std_stream) {
                                Ok(stream) => {
                                    serve_connection(
                                        stream,
                                        peer,
                                        router,
                                        Slot::Regular,
                                        limits,
                                        &mut stop,
                                    )
                                    .await;
                                }
                                Err(e) => tracing::debug!(%peer, error = %e, "connection lost"),
                            }
                        });
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "connection lost"),
                },
            }
        });
    }
    while local.join_next().await.is_some() {}
}

/// Whether the first bytes a new connection sends within `limit` are the request line of a
/// probe (`GET /healthz` or `HEAD /healthz`); `None` if nothing came. Peeks, so the request is
/// still there for whoever serves it. A probe writes its request at once; a client that sends
/// it a byte at a time is simply served as any other.
async fn asks_for_probe(stream: &tokio::net::TcpStream, limit: Duration) -> Option<bool> {
    tokio::time::timeout(limit, stream.readable())
        .await
        .ok()?
        .ok()?;
    let mut buf = [0u8; 16];
    let n = stream.peek(&mut buf).await.ok()?;
    Some(is_probe_request(buf.get(..n).unwrap_or_default()))
}

/// Whether `start` begins with the request line of a probe. Pure.
fn is_probe_request(start: &[u8]) -> bool {
    [
        &b"GET /healthz"[..],
        &b"HEAD /healthz"[..],
        &b"GET /readyz"[..],
        &b"HEAD /readyz"[..],
    ]
    .iter()
    .any(|p| {
        start
            .strip_prefix(*p)
            .and_then(|rest| rest.first())
            .is_some_and(|c| matches!(c, b' ' | b'?'))
    })
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    slot: Slot,
    limits: ConnLimits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let served = Arc::new(AtomicUsize::new(0));
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(PeerAddr(peer));
        let last = served.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_REQUESTS_PER_CONNECTION;
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let mut resp = answer.await?;
            if last {
                // hyper closes the connection after an answer that says so.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    match slot {
        Slot::Regular => builder.header_read_timeout(limits.header_read_timeout),
        Slot::Probe => builder
            .header_read_timeout(limits.header_read_timeout.min(PROBE_HEADER_TIMEOUT))
            .keep_alive(false),
    };
    let io = TokioIo::new(WriteStallLimit::new(stream, limits.write_stall_timeout));
    let conn = builder.serve_connection(io, service);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_request_lines() {
        for yes in [
            &b"GET /healthz HTTP/1.1\r\n"[..],
            b"HEAD /healthz HTTP/1.1",
            b"GET /healthz?x=1 HTTP/1.1",
            // The readiness probe: a loaded server must not drop out of its Service.
            b"GET /readyz HTTP/1.1",
        ] {
            assert!(is_probe_request(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"GET /healthzz HTTP/1.1"[..],
            b"GET /healthz",
            b"POST /healthz HTTP/1.1",
            b"GET /readyzz HTTP/1.1",
            b"GET /v1/cert.pem HTTP/1.1",
            b"G",
            b"",
        ] {
            assert!(!is_probe_request(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
