//! The proxy's server: accepting on loopback, forwarding to the upstream API server through
//! a kube client (its TLS and credentials), injecting faults, cutting watches, journaling.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt as _;
use http::{HeaderMap, header};
use http_body_util::BodyExt as _;
use rand::rngs::StdRng;

use crate::cluster::HarnessError;

use super::rules::{Injected, classify, injected_status, json_response, roll, status};
use super::spec::{FaultSpec, JOURNAL_LIMIT, MAX_REQUEST_BODY, Origin, RequestRecord};

/// Headers that belong to one connection, not to the request or response (RFC 9110 7.6.1),
/// plus what the proxy sets itself: `host` (the upstream's), `authorization` (the upstream
/// kubeconfig's credentials replace whatever the client sent).
pub(super) fn strip_headers(headers: &mut HeaderMap, request: bool) {
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(h);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if request {
        headers.remove(header::HOST);
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::CONTENT_LENGTH);
    }
}

/// The dice and the spec they roll for.
/// Orders to the accept loop.
#[derive(Debug)]
pub(super) enum Control {
    /// Close the listener and drop every open connection; acknowledge when done.
    Disconnect(std::sync::mpsc::Sender<()>),
    /// Serve again on this (re-bound) listener.
    Listen(std::net::TcpListener),
}

#[derive(Debug)]
pub(super) struct Dice {
    pub(super) spec: FaultSpec,
    pub(super) rng: StdRng,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) resource_requests: AtomicU64,
    pub(super) error500: AtomicU64,
    pub(super) error429: AtomicU64,
    pub(super) conflict409: AtomicU64,
    pub(super) watches: AtomicU64,
    pub(super) watch_cuts: AtomicU64,
    pub(super) upstream_errors: AtomicU64,
}

pub(super) struct Inner {
    pub(super) client: kube::Client,
    pub(super) dice: Mutex<Dice>,
    pub(super) counters: Counters,
    pub(super) journal: Mutex<std::collections::VecDeque<RequestRecord>>,
    pub(super) upstream: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("upstream", &self.upstream)
            .field("dice", &self.dice)
            .field("counters", &self.counters)
            .field("journal_len", &lock(&self.journal).len())
            .finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves one request and adds it to the journal.
pub(super) async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    bump(&inner.counters.requests);
    let received = std::time::SystemTime::now();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (resp, origin) = answer(&inner, req).await;
    let record = RequestRecord {
        received,
        answered: std::time::SystemTime::now(),
        method,
        path,
        user_agent,
        status: resp.status().as_u16(),
        origin,
    };
    let mut journal = lock(&inner.journal);
    if journal.len() == JOURNAL_LIMIT {
        journal.pop_front();
    }
    journal.push_back(record);
    resp
}

/// The answer to one request, and who gave it.
pub(super) async fn answer(inner: &Arc<Inner>, req: Request) -> (Response, Origin) {
    let (mut parts, body) = req.into_parts();
    let resource = classify(&parts.method, parts.uri.path(), parts.uri.query());
    let mut cut = None;
    if let Some(r) = &resource {
        bump(&inner.counters.resource_requests);
        let (injected, watch_cut) = {
            let mut dice = lock(&inner.dice);
            let Dice { spec, rng } = &mut *dice;
            (roll(spec, rng, r.is_update), spec.watch_cut)
        };
        match injected {
            Injected::None => {}
            Injected::Error500 => bump(&inner.counters.error500),
            Injected::Error429 => bump(&inner.counters.error429),
            Injected::Conflict => bump(&inner.counters.conflict409),
        }
        if let Some(s) = injected_status(injected, r) {
            return (json_response(&s), Origin::Injected);
        }
        if r.is_watch {
            cut = Some(watch_cut);
        }
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let s = status(
                400,
                "BadRequest",
                &format!("the e2e fault proxy could not read the request body: {e}"),
                None,
            );
            return (json_response(&s), Origin::Proxy);
        }
    };
    strip_headers(&mut parts.headers, true);
    // The client's base-URI layer puts the upstream's scheme and authority in front.
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let mut upstream_req = http::Request::new(kube::client::Body::from(body.to_vec()));
    *upstream_req.method_mut() = parts.method.clone();
    *upstream_req.headers_mut() = parts.headers;
    match http::Uri::try_from(path_and_query) {
        Ok(uri) => *upstream_req.uri_mut() = uri,
        Err(e) => {
            let s = status(
                400,
                "BadRequest",
                &format!("the e2e fault proxy could not parse the request path: {e}"),
                None,
            );
            return (json_response(&s), Origin::Proxy);
        }
    }
    let resp = match inner.client.send(upstream_req).await {
        Ok(r) => r,
        Err(e) => {
            bump(&inner.counters.upstream_errors);
            tracing::debug!(error = %e, upstream = %inner.upstream, "fault proxy: upstream unreachable");
            let s = status(
                503,
                "ServiceUnavailable",
                &format!(
                    "the e2e fault proxy could not reach the API server at {}: {e}",
                    inner.upstream
                ),
                None,
            );
            return (json_response(&s), Origin::Unreachable);
        }
    };
    let (mut resp_parts, upstream_body) = resp.into_parts();
    strip_headers(&mut resp_parts.headers, false);
    let body = match cut {
        None => axum::body::Body::new(upstream_body),
        Some(watch_cut) => {
            bump(&inner.counters.watches);
            // Streamed frame by frame (no buffering), so events arrive as the server sends
            // them; the length is unknown to the client.
            resp_parts.headers.remove(header::CONTENT_LENGTH);
            let stream = upstream_body.into_data_stream();
            match watch_cut {
                None => axum::body::Body::from_stream(stream),
                Some(after) => {
                    let inner = inner.clone();
                    let timer = async move {
                        tokio::time::sleep(after).await;
                        bump(&inner.counters.watch_cuts);
                    };
                    axum::body::Body::from_stream(stream.take_until(Box::pin(timer)))
                }
            }
        }
    };
    (Response::from_parts(resp_parts, body), Origin::Upstream)
}

/// Accepts connections and serves each with `app` until the control channel closes. On
/// [`Control::Disconnect`] the listener is closed (connections are refused) and every open
/// connection is dropped mid-flight, watches included, as when an API server dies.
pub(super) async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut control: tokio::sync::mpsc::UnboundedReceiver<Control>,
) {
    let (epoch, _) = tokio::sync::watch::channel(0u64);
    let mut listener = Some(listener);
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            order = control.recv() => match order {
                None => return,
                Some(Control::Disconnect(ack)) => {
                    listener = None;
                    epoch.send_modify(|e| *e += 1);
                    let _ = ack.send(());
                }
                Some(Control::Listen(std_listener)) => {
                    listener = tokio::net::TcpListener::from_std(std_listener).ok();
                }
            },
            accepted = accept => {
                let Ok((stream, _)) = accepted else { continue };
                // Watch events are small writes; send each at once.
                let _ = stream.set_nodelay(true);
                let mut cut = epoch.subscribe();
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        }
    }
}

/// The upstream client, built from the kubeconfig's current context. No client-side retries
/// (the proxy must pass the server's own 429s and 503s through) and no read timeout (watches
/// may be quiet for minutes).
pub(super) async fn upstream_client(
    path: &Path,
) -> Result<(kube::Client, String, String), HarnessError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| HarnessError::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(Box::new(e)))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(Box::new(e)))?;
    config.default_retry = false;
    config.read_timeout = None;
    let upstream = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| err(Box::new(e)))?;
    Ok((client, upstream, namespace))
}
