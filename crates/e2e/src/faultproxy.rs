//! A fault-injecting HTTP proxy in front of any Kubernetes API server: the stand-in (plain
//! HTTP) or a real kube-apiserver (TLS, client certificate or token).
//!
//! The stand-in injects faults itself (`kube_standin::Faults`); a real API server has no such
//! knob, so the chaos suite puts a [`FaultProxy`] between the controller and the server. The
//! proxy authenticates upstream with the upstream kubeconfig's own credentials (TLS verified
//! against its CA) and serves plain HTTP on `127.0.0.1`, so its kubeconfig needs none.
//!
//! Faults follow the stand-in's rules (`crates/kube-standin/src/faults.rs`, `server.rs`), so
//! that a scenario means the same on both backends:
//! - only resource requests (`/api/v1/...`, `/apis/<group>/<version>/...`) are faulted;
//!   discovery (`/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`), `/version`,
//!   `/openapi/...`, health checks and the service proxy pass untouched;
//! - per request, in this order: 500 with probability `error500`, else 429 (with
//!   `Retry-After: 1`) with probability `error429`, else, for updates (PUT and PATCH), 409
//!   Conflict with probability `conflict409_on_update`; every answer is a `metav1.Status`;
//! - watch streams (`watch=true`/`watch=1`, or the legacy `/watch/` paths) are streamed
//!   through unbuffered and end cleanly `watch_cut` after they start, as the stand-in ends
//!   them.
//!
//! Beyond the stand-in's faults: [`FaultProxy::disconnect`] / [`FaultProxy::reconnect`] /
//! [`FaultProxy::outage`] make the API server unreachable for the proxy's clients on either
//! backend (port closed, open connections and watches dropped), and [`FaultProxy::journal`]
//! records every request (times, method, path, User-Agent, status, who answered), so that
//! with one proxy per client every write can be attributed.
//!
//! A request the proxy cannot deliver (the API server is down, e.g. while
//! [`crate::control_plane::ControlPlane::restart_apiserver`] restarts it) is answered
//! `503 ServiceUnavailable` and counted in [`FaultStats::upstream_errors`]; a watch whose
//! upstream breaks is aborted, as a direct connection would be.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use crate::harness::HarnessError;

/// Largest request body forwarded (kube-apiserver's own limit is 3 MiB per object; lists of
/// objects are never sent).
const MAX_REQUEST_BODY: usize = 64 << 20;

/// Which faults to inject. Fractions are probabilities in `[0, 1]`, drawn per resource
/// request from a generator seeded with `seed`.
#[derive(Clone, Debug, Default)]
pub struct FaultSpec {
    /// Fraction of resource requests answered `500 InternalError`.
    pub error500: f64,
    /// Fraction of resource requests answered `429 TooManyRequests` with `Retry-After: 1`.
    pub error429: f64,
    /// Fraction of updates (PUT, PATCH) answered `409 Conflict`.
    pub conflict409_on_update: f64,
    /// End every watch stream this long after it starts (`None`: never).
    pub watch_cut: Option<Duration>,
    /// Seed of the fault dice; the same seed and the same request sequence give the same
    /// faults.
    pub seed: u64,
}

/// What a proxy has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received (all paths).
    pub requests: u64,
    /// Of those, resource requests (the ones faults apply to).
    pub resource_requests: u64,
    /// Injected `500 InternalError` answers.
    pub error500: u64,
    /// Injected `429 TooManyRequests` answers.
    pub error429: u64,
    /// Injected `409 Conflict` answers.
    pub conflict409: u64,
    /// Watch streams passed through.
    pub watches: u64,
    /// Watch streams the proxy ended because `watch_cut` elapsed.
    pub watch_cuts: u64,
    /// Requests the upstream API server did not answer (answered 503 by the proxy).
    pub upstream_errors: u64,
}

/// Requests kept in the journal ([`FaultProxy::journal`]); older ones are dropped first.
pub const JOURNAL_LIMIT: usize = 200_000;

/// Who answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The upstream API server (whatever its status).
    Upstream,
    /// The proxy, with an injected fault.
    Injected,
    /// The proxy, because the upstream API server could not be reached (503).
    Unreachable,
    /// The proxy, because the request itself was unusable (400).
    Proxy,
}

/// One request through the proxy. With one proxy per client (e.g. per controller replica),
/// the journal says who wrote what when, without the client's cooperation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the request arrived.
    pub received: std::time::SystemTime,
    /// When its answer's status and headers were ready (a watch's stream goes on after).
    pub answered: std::time::SystemTime,
    pub method: Method,
    /// Path and query, as the client sent them.
    pub path: String,
    /// The client's `User-Agent` header.
    pub user_agent: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    pub origin: Origin,
}

/// What the dice say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    None,
    Error500,
    Error429,
    Conflict,
}

/// Rolls the dice for one resource request, in the stand-in's order: 500, then 429, then
/// (updates only) 409.
fn roll(spec: &FaultSpec, rng: &mut StdRng, is_update: bool) -> Injected {
    let mut hit = |p: f64| p > 0.0 && rng.random_bool(p.clamp(0.0, 1.0));
    if hit(spec.error500) {
        Injected::Error500
    } else if hit(spec.error429) {
        Injected::Error429
    } else if is_update && hit(spec.conflict409_on_update) {
        Injected::Conflict
    } else {
        Injected::None
    }
}

/// A resource request, as far as faults need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResourceRequest {
    group: String,
    /// The resource (plural), for messages.
    plural: String,
    /// The object's name, if the request names one.
    name: Option<String>,
    is_update: bool,
    is_watch: bool,
}

/// Whether `query` has `key=true` or `key=1` (the values kube-apiserver takes as true).
fn query_flag(query: Option<&str>, key: &str) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == key && (v == "true" || v == "1"))
}

/// Classifies a request: `Some` for resource requests (the ones faulted), `None` for
/// discovery, version, OpenAPI, health, the service proxy and anything else.
fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<ResourceRequest> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return None,
    };
    // The stand-in serves the service proxy outside its resource handling: no faults there.
    if let ["namespaces", _, "services", _, "proxy", ..] = rest {
        return None;
    }
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    // `namespaces/{ns}/{plural}/{name}` vs. the Namespace object `namespaces/{name}[/{sub}]`.
    let (plural, name) = match rest {
        ["namespaces", _, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (*plural, tail.first())
        }
        [plural, tail @ ..] => (*plural, tail.first()),
        [] => return None,
    };
    Some(ResourceRequest {
        group: group.to_owned(),
        plural: plural.to_owned(),
        name: name.map(|n| (*n).to_owned()),
        is_update: matches!(*method, Method::PUT | Method::PATCH),
        is_watch: legacy_watch || (*method == Method::GET && query_flag(query, "watch")),
    })
}

/// A `metav1.Status` failure, worded like kube-apiserver's (and the stand-in's).
fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

/// The Status answered for an injected fault (`None` for no fault).
fn injected_status(injected: Injected, req: &ResourceRequest) -> Option<Value> {
    match injected {
        Injected::None => None,
        Injected::Error500 => Some(status(
            500,
            "InternalError",
            "Internal error occurred: injected by the e2e fault proxy",
            None,
        )),
        Injected::Error429 => Some(status(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later \
             (injected by the e2e fault proxy)",
            Some(json!({"retryAfterSeconds": 1})),
        )),
        Injected::Conflict => {
            let name = req.name.as_deref().unwrap_or_default();
            let qualified = if req.group.is_empty() {
                req.plural.clone()
            } else {
                format!("{}.{}", req.plural, req.group)
            };
            Some(status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
                     modified; please apply your changes to the latest version and try again \
                     (injected by the e2e fault proxy)"
                ),
                Some(json!({"name": name, "group": req.group, "kind": req.plural})),
            ))
        }
    }
}

fn json_response(status_value: &Value) -> Response {
    let code = status_value["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(axum::body::Body::from(status_value.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if code == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Headers that belong to one connection, not to the request or response (RFC 9110 7.6.1),
/// plus what the proxy sets itself: `host` (the upstream's), `authorization` (the upstream
/// kubeconfig's credentials replace whatever the client sent).
fn strip_headers(headers: &mut HeaderMap, request: bool) {
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
#[derive(Debug)]
struct Dice {
    spec: FaultSpec,
    rng: StdRng,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    resource_requests: AtomicU64,
    error500: AtomicU64,
    error429: AtomicU64,
    conflict409: AtomicU64,
    watches: AtomicU64,
    watch_cuts: AtomicU64,
    upstream_errors: AtomicU64,
}

struct Inner {
    client: kube::Client,
    dice: Mutex<Dice>,
    counters: Counters,
    journal: Mutex<std::collections::VecDeque<RequestRecord>>,
    upstream: String,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves one request and adds it to the journal.
async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
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
async fn answer(inner: &Arc<Inner>, req: Request) -> (Response, Origin) {
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

/// A running fault proxy: its own thread and tokio runtime (so that tests may block), plain
/// HTTP on `127.0.0.1` and a free port. Stops when dropped (open connections, including
/// watches, are closed).
#[derive(Debug)]
pub struct FaultProxy {
    inner: Arc<Inner>,
    kubeconfig: PathBuf,
    addr: std::net::SocketAddr,
    /// Orders to the accept loop; dropped to stop it.
    control: Option<tokio::sync::mpsc::UnboundedSender<Control>>,
    /// Between [`Self::disconnect`] and [`Self::reconnect`].
    disconnected: Mutex<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Orders to the accept loop.
#[derive(Debug)]
enum Control {
    /// Close the listener and drop every open connection; acknowledge when done.
    Disconnect(std::sync::mpsc::Sender<()>),
    /// Serve again on this (re-bound) listener.
    Listen(std::net::TcpListener),
}

/// Binds `127.0.0.1` on a random port in 10000-19999: below Linux's ephemeral range, so that
/// the port is not handed out as some connection's source port while the proxy is
/// disconnected ([`FaultProxy::disconnect`]) and can be bound again.
fn bind_loopback() -> std::io::Result<std::net::TcpListener> {
    let mut last = None;
    for _ in 0..200 {
        let port = rand::rng().random_range(10000..20000);
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port tried")))
}

/// Accepts connections and serves each with `app` until the control channel closes. On
/// [`Control::Disconnect`] the listener is closed (connections are refused) and every open
/// connection is dropped mid-flight, watches included, as when an API server dies.
async fn accept_loop(
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
async fn upstream_client(path: &Path) -> Result<(kube::Client, String, String), HarnessError> {
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

impl FaultProxy {
    /// Proxies to the API server of `upstream_kubeconfig` with ITS credentials (token or
    /// client certificate, TLS verified against its CA), serving plain HTTP on
    /// `127.0.0.1:<free port>`. Writes a kubeconfig for the proxy,
    /// `dir/faultproxy-<port>.kubeconfig`, without credentials.
    pub fn start(
        upstream_kubeconfig: &Path,
        spec: FaultSpec,
        dir: &Path,
    ) -> Result<Self, HarnessError> {
        let spawn_err = |what: &str| {
            let what = what.to_owned();
            move |source| HarnessError::Spawn { what, source }
        };
        let listener = bind_loopback().map_err(spawn_err("bind the fault proxy to 127.0.0.1"))?;
        listener
            .set_nonblocking(true)
            .map_err(spawn_err("bind the fault proxy to 127.0.0.1"))?;
        let addr = listener
            .local_addr()
            .map_err(spawn_err("bind the fault proxy to 127.0.0.1"))?;
        // Everything async happens on the proxy's own thread, so that `start` may be called
        // from inside another runtime (a `#[tokio::test]`) as well as from plain threads.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let upstream_kubeconfig = upstream_kubeconfig.to_owned();
        let thread = std::thread::Builder::new()
            .name("e2e-faultproxy".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("e2e-faultproxy-rt")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(HarnessError::Spawn {
                            what: "start the fault proxy's runtime".into(),
                            source: e,
                        }));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (client, upstream, namespace) =
                        match upstream_client(&upstream_kubeconfig).await {
                            Ok(c) => c,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(HarnessError::Spawn {
                                what: "listen on the fault proxy's port".into(),
                                source: e,
                            }));
                            return;
                        }
                    };
                    let inner = Arc::new(Inner {
                        client,
                        dice: Mutex::new(Dice {
                            rng: StdRng::seed_from_u64(spec.seed),
                            spec,
                        }),
                        counters: Counters::default(),
                        journal: Mutex::default(),
                        upstream,
                    });
                    let app = axum::Router::new()
                        .fallback(handle)
                        .with_state(inner.clone());
                    let _ = ready_tx.send(Ok((inner, namespace)));
                    // Returns when the proxy is dropped. No graceful shutdown: watches would
                    // hold it open; dropping the runtime below cancels every connection.
                    accept_loop(listener, app, control_rx).await;
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(spawn_err("start the fault proxy's thread"))?;
        let (inner, namespace) = match ready_rx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(HarnessError::Spawn {
                    what: "start the fault proxy".into(),
                    source: std::io::Error::other("its thread ended before it was ready"),
                });
            }
        };
        let mut proxy = Self {
            inner,
            kubeconfig: dir.join(format!("faultproxy-{}.kubeconfig", addr.port())),
            addr,
            control: Some(control),
            disconnected: Mutex::new(false),
            thread: Some(thread),
        };
        let text = kube_standin::kubeconfig::render(&proxy.url(), None, &namespace);
        kube_standin::kubeconfig::write_atomic(&proxy.kubeconfig, &text).map_err(|e| {
            HarnessError::Kubeconfig {
                path: std::mem::take(&mut proxy.kubeconfig),
                source: Box::new(e),
            }
        })?;
        Ok(proxy)
    }

    /// A kubeconfig (written under `dir`) pointing at the proxy, no credentials needed.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the faults from the next request on, and reseeds the dice with `spec.seed`.
    /// Watches already open keep the cut they started with.
    pub fn set_spec(&self, spec: FaultSpec) {
        let mut dice = lock(&self.inner.dice);
        dice.rng = StdRng::seed_from_u64(spec.seed);
        dice.spec = spec;
    }

    /// The faults currently injected.
    pub fn spec(&self) -> FaultSpec {
        lock(&self.inner.dice).spec.clone()
    }

    /// Counts since the start: requests, injected 500s, 429s and 409s, watches and cuts.
    pub fn stats(&self) -> FaultStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            requests: get(&c.requests),
            resource_requests: get(&c.resource_requests),
            error500: get(&c.error500),
            error429: get(&c.error429),
            conflict409: get(&c.conflict409),
            watches: get(&c.watches),
            watch_cuts: get(&c.watch_cuts),
            upstream_errors: get(&c.upstream_errors),
        }
    }
}

impl FaultProxy {
    /// Makes the proxy unreachable, as a dead API server is: closes its port (connections are
    /// refused) and drops every open connection mid-flight, watches included, until
    /// [`Self::reconnect`]. Works on both backends (the stand-in has no restart of its own).
    pub fn disconnect(&self) -> Result<(), HarnessError> {
        let mut disconnected = lock(&self.disconnected);
        let (ack, acked) = std::sync::mpsc::channel();
        let stopped = || HarnessError::Spawn {
            what: "disconnect the fault proxy".into(),
            source: std::io::Error::other("its accept loop has stopped"),
        };
        self.control
            .as_ref()
            .ok_or_else(stopped)?
            .send(Control::Disconnect(ack))
            .map_err(|_| stopped())?;
        acked.recv().map_err(|_| stopped())?;
        *disconnected = true;
        Ok(())
    }

    /// Serves again on the same address after [`Self::disconnect`] (a no-op if connected).
    pub fn reconnect(&self) -> Result<(), HarnessError> {
        let err = |source| HarnessError::Spawn {
            what: format!("bind the fault proxy to {} again", self.addr),
            source,
        };
        let mut disconnected = lock(&self.disconnected);
        if !*disconnected {
            return Ok(());
        }
        let listener = std::net::TcpListener::bind(self.addr).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        self.control
            .as_ref()
            .and_then(|c| c.send(Control::Listen(listener)).ok())
            .ok_or_else(|| err(std::io::Error::other("the proxy's accept loop has stopped")))?;
        *disconnected = false;
        Ok(())
    }

    /// An API server outage on either backend: [`Self::disconnect`], `down_for`, then
    /// [`Self::reconnect`]. Blocks the calling thread for `down_for`.
    pub fn outage(&self, down_for: Duration) -> Result<(), HarnessError> {
        self.disconnect()?;
        std::thread::sleep(down_for);
        self.reconnect()
    }

    /// Every request so far, oldest first (at most the last [`JOURNAL_LIMIT`]).
    pub fn journal(&self) -> Vec<RequestRecord> {
        lock(&self.inner.journal).iter().cloned().collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.control.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resource_requests_are_faulted_discovery_is_not() {
        let get = Method::GET;
        for path in [
            "/",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/bitnami.com",
            "/apis/bitnami.com/v1alpha1",
            "/version",
            "/openapi/v2",
            "/openapi/v3/apis/apps/v1",
            "/healthz",
            "/readyz",
            "/standin/v1/faults",
            "/api/v1/namespaces/kube-system/services/sealed-secrets-controller/proxy/v1/cert.pem",
        ] {
            assert_eq!(classify(&get, path, None), None, "{path}");
        }
        let r = classify(&get, "/api/v1/namespaces/ns/secrets/s", None).unwrap();
        assert_eq!(
            (r.group.as_str(), r.plural.as_str(), r.name.as_deref()),
            ("", "secrets", Some("s"))
        );
        assert!(!r.is_update && !r.is_watch);
        let r = classify(
            &Method::PUT,
            "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/x/status",
            None,
        )
        .unwrap();
        assert_eq!(
            (r.group.as_str(), r.plural.as_str(), r.name.as_deref()),
            ("bitnami.com", "sealedsecrets", Some("x"))
        );
        assert!(r.is_update);
        let r = classify(&Method::PUT, "/api/v1/namespaces/ns/finalize", None).unwrap();
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        assert!(
            classify(&Method::PATCH, "/api/v1/nodes/n", None)
                .unwrap()
                .is_update
        );
        assert!(
            !classify(&Method::POST, "/api/v1/namespaces", None)
                .unwrap()
                .is_update
        );
        assert!(
            !classify(&Method::DELETE, "/api/v1/namespaces/x", None)
                .unwrap()
                .is_update
        );
    }

    #[test]
    fn watches_are_recognised_by_query_or_legacy_path() {
        let w = |q: &str| {
            classify(&Method::GET, "/api/v1/secrets", Some(q))
                .unwrap()
                .is_watch
        };
        assert!(w("watch=true"));
        assert!(w("labelSelector=a%3Db&watch=1&resourceVersion=5"));
        assert!(!w("watch=false"));
        assert!(!w("watch=0"));
        assert!(!w("watchy=true"));
        assert!(!w("limit=500"));
        let legacy = classify(&Method::GET, "/api/v1/watch/namespaces/ns/secrets", None).unwrap();
        assert!(legacy.is_watch);
        assert_eq!(legacy.plural, "secrets");
    }

    #[test]
    fn dice_honour_the_rates_and_the_seed() {
        let spec = FaultSpec {
            error500: 0.05,
            error429: 0.01,
            conflict409_on_update: 0.2,
            watch_cut: None,
            seed: 7,
        };
        let count = |seed: u64, is_update: bool| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut n = [0u32; 4];
            let mut seq = Vec::new();
            for _ in 0..100_000 {
                let i = roll(&spec, &mut rng, is_update);
                seq.push(i);
                n[match i {
                    Injected::None => 0,
                    Injected::Error500 => 1,
                    Injected::Error429 => 2,
                    Injected::Conflict => 3,
                }] += 1;
            }
            (n, seq)
        };
        let (n, seq) = count(7, true);
        // 500: 5%; 429: 1% of the other 95%; 409: 20% of the remaining 94.05%.
        assert!((4_700..5_300).contains(&n[1]), "{n:?}");
        assert!((800..1_100).contains(&n[2]), "{n:?}");
        assert!((18_200..19_400).contains(&n[3]), "{n:?}");
        assert_eq!(count(7, true).1, seq, "same seed, same faults");
        assert_ne!(count(8, true).1, seq, "another seed, other faults");
        let (n, _) = count(7, false);
        assert_eq!(n[3], 0, "no 409 on reads and creates");
        let mut rng = StdRng::seed_from_u64(1);
        let none = FaultSpec::default();
        assert!((0..1000).all(|_| roll(&none, &mut rng, true) == Injected::None));
    }

    #[test]
    fn injected_answers_are_statuses_like_the_apiservers() {
        let r = classify(
            &Method::PUT,
            "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/x",
            None,
        )
        .unwrap();
        assert_eq!(injected_status(Injected::None, &r), None);
        let s = injected_status(Injected::Conflict, &r).unwrap();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "Conflict");
        assert_eq!(s["details"]["name"], "x");
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .starts_with("Operation cannot be fulfilled on sealedsecrets.bitnami.com \"x\"")
        );
        let s = injected_status(Injected::Error429, &r).unwrap();
        assert_eq!(
            (s["code"].as_u64(), s["reason"].as_str()),
            (Some(429), Some("TooManyRequests"))
        );
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
        let resp = json_response(&s);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let s = injected_status(Injected::Error500, &r).unwrap();
        assert_eq!(
            json_response(&s).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(s["reason"], "InternalError");
    }
}
