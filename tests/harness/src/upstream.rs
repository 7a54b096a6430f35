//! Upstream Sealed Secrets' own binaries as peers of ours, on a real control plane.
//!
//! - [`upstream_binary`]: upstream's `kubeseal` and `controller`, built from their pinned Go
//!   module by `tests/upstream/build.sh` into `target/upstream-bin/`.
//! - [`upstream_rbac_manifest`]: upstream's own ServiceAccount and RBAC, rendered from its Helm
//!   chart in the same Go module, for upstream's controller to run under.
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

use crate::cluster::{
    Cluster, HarnessError, Process, find_helm, free_port, random_suffix, wait_for_port,
    workspace_root,
};
use crate::control_plane::ControlPlane;

/// Backend switch of the e2e suite; the tests of this module run only when it is `real`.
pub const BACKEND_ENV: &str = "SEALED_SECRETS_E2E_CLUSTER";
/// The ServiceAccount (and fullname of upstream's chart) upstream's controller runs as, bound
/// by upstream's own RBAC ([`upstream_rbac_manifest`]).
pub const UPSTREAM_SA: &str = "upstream-sealed-secrets";

/// What went wrong setting up upstream's binaries or the control plane.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("upstream binary `{}` not found; build it first: bash tests/upstream/build.sh", path.display())]
    UpstreamMissing { path: PathBuf },
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
    #[error("the cluster is not a private control plane (Cluster::control_plane)")]
    NotControlPlane,
    #[error("deploy/base's Deployment as applied: {0}")]
    Deployment(String),
    #[error(transparent)]
    Harness(#[from] HarnessError),
}

/// Our controller's args and environment from `deploy/base`'s Deployment as the API server
/// returns it (`kubectl get deployment -o json`), as the kubelet would give them to the
/// container: the Downward API values filled in (`metadata.namespace` is `namespace`,
/// `metadata.name` a fresh Pod name), the listener flags dropped so that a test can move the
/// listeners to loopback.
#[allow(clippy::type_complexity)]
pub fn deploy_base_args_env(
    deployment: &serde_json::Value,
    namespace: &str,
) -> Result<(Vec<String>, Vec<(String, String)>), PeerError> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"]
        .as_array()
        .ok_or_else(|| PeerError::Deployment("its container has no args".into()))?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .filter(|a| !a.starts_with("--listen-addr") && !a.starts_with("--listen-metrics-addr"))
        .map(str::to_owned)
        .collect();
    let mut env = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"]
            .as_str()
            .ok_or_else(|| PeerError::Deployment("an env entry has no name".into()))?;
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.namespace") => namespace.to_owned(),
            Some("metadata.name") => format!("sealed-secrets-controller-{}", random_suffix(5)),
            Some(other) => {
                return Err(PeerError::Deployment(format!(
                    "unexpected fieldRef {other}"
                )));
            }
            None => e["value"].as_str().unwrap_or_default().to_owned(),
        };
        env.push((name.to_owned(), value));
    }
    Ok((args, env))
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

/// The private control plane of `cluster` ([`Cluster::control_plane`]).
fn control_plane(cluster: &Cluster) -> Result<&ControlPlane, PeerError> {
    cluster
        .control_plane_handle()
        .ok_or(PeerError::NotControlPlane)
}

/// The API server's address as a pod sees it (`KUBERNETES_SERVICE_HOST` and `_PORT`), from
/// the `DIR/env` file `tests/cluster/up.sh` writes.
fn api_host_port(cp: &ControlPlane) -> Result<(String, String), PeerError> {
    let env_path = cp.dir().join("env");
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
    Ok((value("KUBE_APISERVER_HOST")?, value("KUBE_APISERVER_PORT")?))
}

/// Upstream's own RBAC, as its Helm chart creates it: the chart of the pinned Go module
/// (`tests/upstream/chart-dir.sh`), its ServiceAccount and RBAC templates only, rendered by
/// `helm template` for namespace `namespace` with fullname [`UPSTREAM_SA`] (which names the
/// ServiceAccount, Roles and bindings) and ClusterRole `upstream-secrets-unsealer`, so that
/// none of its objects replaces one of `deploy/base`'s (upstream's defaults, `secrets-unsealer`
/// and `sealed-secrets-controller`, are the names `deploy/base` uses too). Each controller then
/// runs under exactly its own project's RBAC: upstream's patches repeated Events, which
/// `deploy/base`'s least-privilege ClusterRole does not allow ours.
pub fn upstream_rbac_manifest(namespace: &str) -> Result<String, PeerError> {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("tests/upstream/chart-dir.sh"));
    let chart = run_script(cmd, "tests/upstream/chart-dir.sh")?;
    let mut cmd = Command::new(find_helm()?);
    cmd.args([
        "template",
        "upstream",
        chart.trim(),
        "--namespace",
        namespace,
    ])
    .args(["--set-string", &format!("fullnameOverride={UPSTREAM_SA}")])
    .args([
        "--set-string",
        "rbac.clusterRoleName=upstream-secrets-unsealer",
    ]);
    for t in [
        "service-account",
        "role",
        "role-binding",
        "cluster-role",
        "cluster-role-binding",
    ] {
        cmd.args(["--show-only", &format!("templates/{t}.yaml")]);
    }
    run_script(cmd, "helm template of upstream's chart (RBAC templates)")
}

/// A pod's service-account volume for `namespace/name`: a TokenRequest token (1 hour), the
/// API server's CA and the namespace, in a directory of `cp`'s.
pub fn service_account_dir(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<PathBuf, PeerError> {
    let cp = control_plane(cluster)?;
    let token = cluster.kubectl_run(
        &["create", "token", name, "-n", namespace, "--duration=1h"],
        None,
    )?;
    let dir = cp.dir().join(format!("sa-{namespace}-{name}"));
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let write = |file: &str, contents: &[u8]| {
        std::fs::write(dir.join(file), contents).map_err(io_err(format!("write {file}")))
    };
    write("token", token.trim().as_bytes())?;
    write(
        "ca.crt",
        &std::fs::read(cp.dir().join("ca.crt"))
            .map_err(io_err("read the control plane's ca.crt"))?,
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
        cluster: &Cluster,
        sa_dir: &Path,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Self, PeerError> {
        let cp = control_plane(cluster)?;
        let (host, port) = api_host_port(cp)?;
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
            .env("HOME", cp.dir())
            .env("KUBERNETES_SERVICE_HOST", &host)
            .env("KUBERNETES_SERVICE_PORT", &port)
            .envs(env.iter().copied());
        let mut process = Process::spawn(cmd, cp.dir())?;
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
