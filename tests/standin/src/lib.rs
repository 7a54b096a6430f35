//! The loopback Kubernetes API stand-in.
//!
//! [`StandIn::start`] runs it on its own thread and tokio runtime (so that tests may block,
//! e.g. on `std::process::Command` running kubectl, without starving it); [`run`] serves it on
//! the caller's runtime (the `kube-standin` binary). [`Handle`] changes a running stand-in:
//! service-proxy endpoints, faults, history compaction, state dumps.
//!
//! Where it knowingly differs from kube-apiserver is written down in `store.rs` (storage and
//! write semantics), `gc.rs` (garbage collection), `fields.rs` (managed fields and
//! server-side apply), `server.rs` (protocol), `protobuf.rs` (protobuf request bodies),
//! `discovery.rs` (version, discovery, OpenAPI), `proxy.rs` (service proxy), `strategy.rs`
//! (per-kind normalisation), `select.rs` and `patch.rs`.

mod discovery;
mod error;
mod faults;
mod fields;
mod gc;
pub mod kubeconfig;
mod list;
mod patch;
mod protobuf;
mod proxy;
mod resources;
mod select;
mod server;
mod shared;
mod store;
mod strategy;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use discovery::GIT_VERSION;
pub use error::ApiError;
pub use faults::Faults;
pub use shared::ENDPOINT_ANNOTATION;

use shared::{Shared, lock};

/// Changes kept for watch resumption by default (a 10,000-object cold start writes about
/// three changes per object; a watcher resuming within this many changes needs no relist).
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// How a stand-in behaves for one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Require `Authorization: Bearer <token>` on every request (401 otherwise).
    pub token: Option<String>,
    /// Faults injected from the start.
    pub faults: Faults,
    /// Seed for the fault dice, for reproducible runs.
    pub fault_seed: Option<u64>,
    /// Service proxy targets: `(namespace, service name, "HOST:PORT")`.
    pub endpoints: Vec<(String, String, String)>,
    /// Watch history kept for resumption; older versions answer 410 Gone. The default,
    /// [`DEFAULT_HISTORY_LIMIT`], is above the number of changes a watcher may fall behind
    /// before it is cut, so that a cut watcher can always resume without a relist.
    pub history_limit: usize,
    /// How often watches that allow bookmarks receive one.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            token: None,
            faults: Faults::default(),
            fault_seed: None,
            endpoints: Vec::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// Failures starting or stopping a stand-in.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("failed to bind the stand-in to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start the stand-in's runtime thread")]
    Runtime(#[source] std::io::Error),
    #[error("the stand-in stopped before it was ready")]
    NotReady,
    #[error("the stand-in's server failed")]
    Serve(#[source] std::io::Error),
    #[error("failed to write the kubeconfig")]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
}

/// A cheap handle on a running stand-in's state.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Handle {
    /// The address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the kubeconfig `server:`.
    pub fn url(&self) -> String {
        server::url_of(self.addr)
    }

    /// Sends the service proxy's requests for Service `namespace/name` (any port) to `address`
    /// (`HOST:PORT`). The Service object need not exist.
    pub fn register_endpoint(&self, namespace: &str, name: &str, address: &str) {
        lock(&self.shared.endpoints)
            .insert((namespace.to_owned(), name.to_owned()), address.to_owned());
    }

    /// Replaces the injected faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).faults = faults;
    }

    /// The faults currently injected.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults.clone()
    }

    /// Forgets the watch history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).current_rv()
    }

    /// How many watch streams have been started so far.
    pub fn watches_started(&self) -> u64 {
        self.shared
            .watches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many GETs of single `resource` objects (plural, e.g. `secrets`) in `namespace`
    /// were served so far.
    pub fn object_gets(&self, resource: &str, namespace: &str) -> u64 {
        lock(&self.shared.object_gets)
            .get(&(resource.to_owned(), namespace.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Every stored object, grouped by resource, as JSON (for failure dumps).
    pub fn dump(&self) -> serde_json::Value {
        lock(&self.shared.store).dump()
    }

    /// Kubeconfig YAML pointing at this stand-in.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url(), self.shared.token.as_deref(), "default")
    }

    /// Writes [`Self::kubeconfig`] to `path` atomically.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), StandInError> {
        Ok(kubeconfig::write_atomic(path, &self.kubeconfig())?)
    }

    /// Stops serving: watches end, the listener closes.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }
}

fn shared(config: &Config) -> Arc<Shared> {
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let endpoints = config
        .endpoints
        .iter()
        .map(|(ns, n, a)| ((ns.clone(), n.clone()), a.clone()))
        .collect();
    Arc::new(Shared {
        store: Mutex::new(store::Store::new(config.history_limit)),
        faults: Mutex::new(faults::FaultState::new(
            config.faults.clone(),
            config.fault_seed,
        )),
        endpoints: Mutex::new(endpoints),
        token: config.token.clone(),
        gc: tokio::sync::Notify::new(),
        bookmark_interval: config.bookmark_interval,
        shutdown,
        watches: std::sync::atomic::AtomicU64::new(0),
        object_gets: Mutex::new(std::collections::HashMap::new()),
    })
}

/// Serves on an already bound listener until [`Handle::shutdown`]; `ready` runs once the
/// server answers (the binary writes the kubeconfig there).
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    ready: impl FnOnce(&Handle),
) -> Result<(), StandInError> {
    let addr = listener.local_addr().map_err(StandInError::Serve)?;
    let handle = Handle {
        shared: shared(&config),
        addr,
    };
    serve(handle, listener, ready).await
}

async fn serve(
    handle: Handle,
    listener: tokio::net::TcpListener,
    ready: impl FnOnce(&Handle),
) -> Result<(), StandInError> {
    let app = axum::Router::new()
        .fallback(server::handle)
        .with_state(handle.shared.clone());
    tokio::spawn(server::gc_loop(handle.shared.clone()));
    let mut shutdown = handle.shared.shutdown.subscribe();
    ready(&handle);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(StandInError::Serve)
}

/// A stand-in running on its own thread; stops when dropped.
#[derive(Debug)]
pub struct StandIn {
    handle: Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    /// Starts a stand-in on `127.0.0.1` and a free port, on its own thread.
    pub fn start(config: Config) -> Result<Self, StandInError> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts a stand-in on `addr` (port 0 picks a free port), on its own thread.
    pub fn start_on(config: Config, addr: SocketAddr) -> Result<Self, StandInError> {
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|source| StandInError::Bind { addr, source })?;
        std_listener
            .set_nonblocking(true)
            .map_err(StandInError::Runtime)?;
        let local = std_listener.local_addr().map_err(StandInError::Runtime)?;
        let handle = Handle {
            shared: shared(&config),
            addr: local,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_handle = handle.clone();
        let thread = std::thread::Builder::new()
            .name("kube-standin".into())
            .spawn(move || {
                // The thread names let benchmarks tell the stand-in's CPU time from the
                // test's (tests/bench/standin_scale.rs).
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("kube-standin-rt")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let _ = serve(thread_handle, listener, |_| {
                        let _ = ready_tx.send(());
                    })
                    .await;
                });
            })
            .map_err(StandInError::Runtime)?;
        ready_rx.recv().map_err(|_| StandInError::NotReady)?;
        Ok(Self {
            handle,
            thread: Some(thread),
        })
    }

    /// The handle on its state.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl std::ops::Deref for StandIn {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            // Open keep-alive connections may hold graceful shutdown; do not wait forever.
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
