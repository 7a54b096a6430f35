//! Upstream Sealed Secrets' own binaries as peers of ours, on a real control plane.
//!
//! - [`upstream_binary`]: upstream's `kubeseal` and `controller`, built from their pinned Go
//!   module by `tests/upstream/build.sh` into `target/upstream-bin/`.
//! - [`ControlPlane`]: a real etcd + kube-apiserver + kube-controller-manager on loopback,
//!   started by `tests/cluster/up.sh DIR` and stopped by `tests/cluster/down.sh DIR` on drop.
//! - [`InCluster`]: a controller run as if in a pod (upstream's reads only in-cluster
//!   configuration) through `tests/upstream/run-controller.sh`, authenticated by a TokenRequest
//!   token of a ServiceAccount.
//!
//! These tests need the real backend: [`skip_unless_real`] says so and lets a test return early
//! when `SEALED_SECRETS_E2E_CLUSTER` is not `real`; in that mode every missing binary or script
//! is an error, never a skip.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Cluster, HarnessError, Process, free_port, wait_for_port, workspace_root};

/// Backend switch of the e2e suite; the tests of this module run only when it is `real`.
pub const BACKEND_ENV: &str = "SEALED_SECRETS_E2E_CLUSTER";
/// Directory holding `up.sh` and `down.sh` (default `<workspace>/tests/cluster`); for running
/// these tests against scripts of another checkout.
pub const CLUSTER_SCRIPTS_ENV: &str = "SEALED_SECRETS_E2E_CLUSTER_SCRIPTS";

/// What went wrong setting up upstream's binaries or the control plane.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("upstream binary `{}` not found; build it first: bash tests/upstream/build.sh", path.display())]
    UpstreamMissing { path: PathBuf },
    #[error("script `{}` not found (set {CLUSTER_SCRIPTS_ENV} to the directory holding up.sh and down.sh)", path.display())]
    ScriptMissing { path: PathBuf },
    #[error("`{what}` failed with {status}:\n{output}")]
    Script {
        what: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("failed to run `{what}`")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}; its log:\n{log}")]
    NotReady { what: String, log: String },
    #[error("`{}` does not set {key}", path.display())]
    EnvFile { path: PathBuf, key: &'static str },
    #[error(transparent)]
    Harness(#[from] HarnessError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PeerError {
    let what = what.into();
    move |source| PeerError::Io { what, source }
}

/// Whether the real control plane is the selected backend.
pub fn real_backend_selected() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|v| v == "real")
}

/// True when `test` must be skipped, after printing why (the stand-in cannot host upstream's
/// controller: it reads only in-cluster configuration, over TLS).
pub fn skip_unless_real(test: &str) -> bool {
    if real_backend_selected() {
        return false;
    }
    eprintln!(
        "SKIPPED {test}: upstream-peer tests need the real control plane; \
         run with {BACKEND_ENV}=real after bash tests/cluster/build.sh and bash tests/upstream/build.sh"
    );
    true
}

/// The target directory: `CARGO_TARGET_DIR`, else `<workspace>/target` (as the build scripts).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Path of upstream's `kubeseal` or `controller`, built by `tests/upstream/build.sh`.
pub fn upstream_binary(name: &str) -> Result<PathBuf, PeerError> {
    let path = target_dir().join("upstream-bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(PeerError::UpstreamMissing { path })
    }
}

/// Runs `cmd`, returning its stdout, or an error carrying its stdout and stderr.
fn run_script(mut cmd: Command, what: &str) -> Result<String, PeerError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(what.to_owned()))?;
    if !out.status.success() {
        return Err(PeerError::Script {
            what: what.to_owned(),
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A real control plane of its own: etcd, kube-apiserver and kube-controller-manager on free
/// loopback ports, state in a temporary directory; stopped (down.sh) and removed on drop.
#[derive(Debug)]
pub struct ControlPlane {
    dir: tempfile::TempDir,
    scripts: PathBuf,
    host: String,
    port: String,
    up: bool,
}

impl ControlPlane {
    /// Starts one with `up.sh` and waits until it answers (up.sh writes the kubeconfig only
    /// then); prints the start-up time.
    pub fn start() -> Result<Self, PeerError> {
        let scripts = std::env::var_os(CLUSTER_SCRIPTS_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("tests/cluster"));
        for script in ["up.sh", "down.sh"] {
            let path = scripts.join(script);
            if !path.is_file() {
                return Err(PeerError::ScriptMissing { path });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ssrs-cp-")
            .tempdir()
            .map_err(io_err("create a temporary directory"))?;
        let mut cp = Self {
            dir,
            scripts,
            host: String::new(),
            port: String::new(),
            up: true,
        };
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg(cp.scripts.join("up.sh"))
            .arg(cp.dir.path())
            // up.sh's watchdog stops the control plane if this test process dies uncleanly.
            .env("CLUSTER_OWNER_PID", std::process::id().to_string());
        // On failure `cp` is dropped, which runs down.sh for whatever did start.
        run_script(cmd, "tests/cluster/up.sh")?;
        let env_path = cp.dir.path().join("env");
        let env = std::fs::read_to_string(&env_path)
            .map_err(io_err(format!("read {}", env_path.display())))?;
        let value = |key: &'static str| {
            env.lines()
                .filter_map(|l| l.trim().trim_start_matches("export ").split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim_matches(['"', '\'']).to_owned())
                .ok_or(PeerError::EnvFile {
                    path: env_path.clone(),
                    key,
                })
        };
        cp.host = value("KUBE_APISERVER_HOST")?;
        cp.port = value("KUBE_APISERVER_PORT")?;
        eprintln!(
            "real control plane up in {:.1}s at https://{}:{}",
            started.elapsed().as_secs_f64(),
            cp.host,
            cp.port
        );
        Ok(cp)
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The CA of the API server's serving certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A harness [`Cluster`] over this control plane (admin credentials).
    pub fn cluster(&self) -> Result<Cluster, HarnessError> {
        Cluster::real(self.kubeconfig())
    }

    /// Stops it now (also done on drop).
    pub fn stop(&mut self) -> Result<(), PeerError> {
        if !std::mem::replace(&mut self.up, false) {
            return Ok(());
        }
        let mut cmd = Command::new("bash");
        cmd.arg(self.scripts.join("down.sh")).arg(self.dir.path());
        run_script(cmd, "tests/cluster/down.sh").map(|_| ())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "failed to stop the control plane in {}: {e}",
                self.dir.path().display()
            );
        }
    }
}

/// A pod's service-account volume for `namespace/name`: a TokenRequest token (1 hour), the
/// API server's CA and the namespace, in a directory of `cp`'s.
pub fn service_account_dir(
    cp: &ControlPlane,
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<PathBuf, PeerError> {
    let token = cluster.kubectl_run(
        &["create", "token", name, "-n", namespace, "--duration=1h"],
        None,
    )?;
    let dir = cp.dir.path().join(format!("sa-{namespace}-{name}"));
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let write = |file: &str, contents: &[u8]| {
        std::fs::write(dir.join(file), contents).map_err(io_err(format!("write {file}")))
    };
    write("token", token.trim().as_bytes())?;
    write(
        "ca.crt",
        &std::fs::read(cp.ca_cert()).map_err(io_err("read the control plane's ca.crt"))?,
    )?;
    write("namespace", namespace.as_bytes())?;
    Ok(dir)
}

/// A controller (upstream's or ours) running with in-cluster configuration only.
#[derive(Debug)]
pub struct InCluster {
    pub process: Process,
    /// `127.0.0.1:PORT` of its main HTTP listener.
    pub http: String,
    /// `127.0.0.1:PORT` of its metrics listener.
    pub metrics: String,
}

impl InCluster {
    /// Starts `program` with `args` through `tests/upstream/run-controller.sh` (private mount
    /// namespace, `sa_dir` bound at the service-account path), both listeners on fresh
    /// loopback ports, `env` added; waits until the main listener accepts connections.
    pub fn start(
        cp: &ControlPlane,
        sa_dir: &Path,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Self, PeerError> {
        let http = format!("127.0.0.1:{}", free_port()?);
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = Command::new("bash");
        cmd.arg(workspace_root().join("tests/upstream/run-controller.sh"))
            .arg(sa_dir)
            .arg(program)
            .args(args)
            .arg(format!("--listen-addr={http}"))
            .arg(format!("--listen-metrics-addr={metrics}"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No kubeconfig to fall back to: in-cluster configuration only.
            .env("HOME", cp.dir.path())
            .env("KUBERNETES_SERVICE_HOST", &cp.host)
            .env("KUBERNETES_SERVICE_PORT", &cp.port)
            .envs(env.iter().copied());
        let mut process = Process::spawn(cmd, cp.dir.path())?;
        if let Err(e) = wait_for_port(&http, Duration::from_secs(60)) {
            let log = process.log();
            process.stop();
            return Err(PeerError::NotReady {
                what: format!("{} did not listen on {http}: {e}", program.display()),
                log,
            });
        }
        Ok(Self {
            process,
            http,
            metrics,
        })
    }

    /// `GET path` on the main listener.
    pub fn get(&self, path: &str) -> Result<HttpResponse, PeerError> {
        http_request(&self.http, "GET", path, b"")
    }

    /// The certificate it serves (`/v1/cert.pem`), once it serves one.
    pub fn cert(&self) -> Option<String> {
        self.get("/v1/cert.pem")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    }

    /// Waits up to `timeout` until it serves a certificate, and returns it.
    pub fn wait_cert(&mut self, timeout: Duration) -> Result<String, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(cert) = self.cert() {
                return Ok(cert);
            }
            if Instant::now() > deadline || !self.process.is_running() {
                return Err(PeerError::NotReady {
                    what: format!("no certificate on {} within {timeout:?}", self.http),
                    log: self.process.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET /metrics` on the metrics listener.
    pub fn metrics_text(&self) -> Result<String, PeerError> {
        http_request(&self.metrics, "GET", "/metrics", b"").map(|r| r.body)
    }
}

/// Status and body of a plain HTTP/1.1 exchange.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// One blocking HTTP/1.1 request to a loopback listener (no client library: the controllers
/// speak plain HTTP and answer with `Connection: close`).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<HttpResponse, PeerError> {
    let what = format!("{method} http://{addr}{path}");
    let mut s = std::net::TcpStream::connect(addr).map_err(io_err(what.clone()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io_err(what.clone()))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .and_then(|()| s.write_all(body))
    .map_err(io_err(what.clone()))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(io_err(what.clone()))?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(HttpResponse { status, body })
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        body.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    body
}
