//! A fault-injecting HTTP proxy in front of any Kubernetes API server: the stand-in (plain
//! HTTP) or a real kube-apiserver (TLS, client certificate or token).
//!
//! The stand-in injects faults itself (`kube_standin::Faults`); a real API server has no such
//! knob, so the chaos suite puts a [`FaultProxy`] between the controller and the server. The
//! proxy authenticates upstream with the upstream kubeconfig's own credentials (TLS verified
//! against its CA) and serves plain HTTP on `127.0.0.1`, so its kubeconfig needs none.
//!
//! Faults follow the stand-in's rules (`tests/standin/src/faults.rs`, `server.rs`), so
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng as _;
use rand::rngs::StdRng;

use crate::cluster::HarnessError;

mod rules;
mod serve;
mod spec;

pub use spec::{FaultSpec, FaultStats, JOURNAL_LIMIT, Origin, RequestRecord};

use serve::{Control, Counters, Dice, Inner, accept_loop, handle, lock, upstream_client};

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
        let listener = crate::tools::bind_unclaimed_loopback()
            .map_err(spawn_err("bind the fault proxy to 127.0.0.1"))?;
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
