//! The real-cluster backend of the e2e harness: a private Kubernetes control plane (etcd,
//! kube-apiserver, kube-controller-manager built from `tests/cluster/go.mod`) started with
//! `tests/cluster/up.sh` and stopped with `tests/cluster/down.sh`, and service-proxy backends
//! reachable by it.
//!
//! A real API server refuses to proxy to loopback addresses and only proxies to endpoint
//! addresses that belong to a Pod. [`ControlPlane::register_endpoint`] therefore gives a
//! loopback backend a real address: a network namespace of its own with a veth pair
//! (`10.250.x.y/30`, host end `.1`, namespace end `.2`), an `e2e-relay` inside listening on the
//! namespace end and passing each connection through a Unix socket to a second `e2e-relay` in
//! the host namespace that connects to the backend. A Pod object (never scheduled: there is no
//! kubelet) carries that address in its status, and the Service's Endpoints point at it, as
//! the endpoints controller would for a running Pod.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use crate::tools::CLUSTER_ENV;
use crate::tools::{HarnessError, Process, binary_path, random_suffix, wait_for_port};

/// Where the control plane's binaries are (default `<workspace>/target/cluster-bin`).
pub const CLUSTER_BIN_ENV: &str = "CLUSTER_BIN";

/// The backend the e2e harness uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The in-process stand-in (the default).
    StandIn,
    /// A private control plane per cluster, started by `tests/cluster/up.sh`.
    ControlPlane,
    /// An existing cluster, named by a kubeconfig.
    External(PathBuf),
}

/// Picks the backend from `SEALED_SECRETS_E2E_KUBECONFIG` (`kubeconfig`) and
/// `SEALED_SECRETS_E2E_CLUSTER` (`cluster`): a kubeconfig wins; `real` starts a private control
/// plane; `standin` or nothing is the stand-in; anything else is an error naming the variable.
pub fn choose_backend(
    kubeconfig: Option<&str>,
    cluster: Option<&str>,
) -> Result<Backend, HarnessError> {
    if let Some(k) = kubeconfig.filter(|k| !k.is_empty()) {
        return Ok(Backend::External(PathBuf::from(k)));
    }
    match cluster.map(str::trim).unwrap_or("") {
        "" | "standin" | "stand-in" => Ok(Backend::StandIn),
        "real" => Ok(Backend::ControlPlane),
        other => Err(HarnessError::BadBackend(other.to_owned())),
    }
}

/// The backend chosen by this process's environment.
pub fn backend() -> Result<Backend, HarnessError> {
    let kubeconfig = std::env::var(crate::tools::KUBECONFIG_ENV).ok();
    let cluster = std::env::var(CLUSTER_ENV).ok();
    choose_backend(kubeconfig.as_deref(), cluster.as_deref())
}

/// Whether the tests of this process run on the stand-in. Tests that need stand-in features
/// (fault injection, the admin API) call [`skip_unless_standin`] instead.
pub fn backend_is_standin() -> bool {
    matches!(backend(), Ok(Backend::StandIn))
}

/// For tests that need a stand-in feature: on another backend, prints why the test is
/// skipped (to stderr, shown by `cargo test -- --nocapture` and in failure output) and returns
/// true.
pub fn skip_unless_standin(test: &str, needs: &str) -> bool {
    if backend_is_standin() {
        return false;
    }
    eprintln!("SKIPPED on a real cluster: {test} needs the stand-in's {needs}");
    true
}

/// For tests that need the private real control plane (e.g. to restart its API server): on
/// another backend, prints why the test is skipped and returns true.
pub fn skip_unless_control_plane(test: &str, needs: &str) -> bool {
    if matches!(backend(), Ok(Backend::ControlPlane)) {
        return false;
    }
    eprintln!("SKIPPED unless {CLUSTER_ENV}=real: {test} needs the real control plane's {needs}");
    true
}

fn cluster_script(name: &str) -> PathBuf {
    crate::tools::workspace_root()
        .join("tests/cluster")
        .join(name)
}

/// Runs `tests/cluster/build.sh` once per process (it returns at once when the binaries are up
/// to date), so that a test run never uses binaries older than `tests/cluster/go.mod`.
fn ensure_built() -> Result<(), HarnessError> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut cmd = Command::new("bash");
            cmd.arg(cluster_script("build.sh"));
            if let Some(bin) = std::env::var_os(CLUSTER_BIN_ENV) {
                cmd.arg(bin);
            }
            match cmd.output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(format!(
                    "tests/cluster/build.sh failed with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )),
                Err(e) => Err(format!("cannot run tests/cluster/build.sh: {e}")),
            }
        })
        .clone()
        .map_err(HarnessError::ControlPlane)
}

/// Runs kubectl as the cluster admin with arguments and stdin; returns stdout.
pub type Kubectl<'a> = dyn Fn(&[&str], Option<&str>) -> Result<String, HarnessError> + 'a;

/// A control plane started by `up.sh` in `dir`; dropping it stops it with `down.sh` (and a
/// watchdog started by `up.sh` stops it if this process dies first).
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    relays: Mutex<Vec<Relay>>,
}

impl ControlPlane {
    /// Starts a control plane in `dir` (created if needed) and waits until it is ready. With
    /// `audit_policy` (a file), the API server writes its audit log to [`Self::audit_log`].
    pub fn start(dir: &Path, audit_policy: Option<&Path>) -> Result<Self, HarnessError> {
        ensure_built()?;
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        if let Some(p) = audit_policy {
            cmd.env("CLUSTER_AUDIT_POLICY", p);
        }
        let out = cmd
            .arg(cluster_script("up.sh"))
            .arg(dir)
            .env("CLUSTER_NO_BUILD", "1")
            .env("CLUSTER_OWNER_PID", std::process::id().to_string())
            .output()
            .map_err(|e| HarnessError::ControlPlane(format!("cannot run up.sh: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::ControlPlane(format!(
                "tests/cluster/up.sh {} failed with {}: {}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        tracing::info!(elapsed = ?started.elapsed(), dir = %dir.display(), "control plane up");
        Ok(Self {
            dir: dir.to_owned(),
            relays: Mutex::new(Vec::new()),
        })
    }

    /// The directory with its kubeconfig, `ca.crt`, `env`, logs and PKI.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster-admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The API server's audit log (JSON lines), when started with an audit policy.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The API server's URL (`https://127.0.0.1:PORT`), from `DIR/env`.
    pub fn server(&self) -> Result<String, HarnessError> {
        let env = std::fs::read_to_string(self.dir.join("env"))
            .map_err(|e| HarnessError::ControlPlane(format!("{}/env: {e}", self.dir.display())))?;
        env.lines()
            .find_map(|l| l.strip_prefix("KUBE_APISERVER_URL="))
            .map(str::to_owned)
            .ok_or_else(|| HarnessError::ControlPlane("no KUBE_APISERVER_URL in env".into()))
    }

    /// A kubeconfig for the plain user `name` in `groups` (a client certificate of the
    /// cluster's CA, made by `tests/cluster/user.sh`): it holds only what RBAC grants it.
    pub fn user_kubeconfig(&self, name: &str, groups: &[&str]) -> Result<PathBuf, HarnessError> {
        let out = Command::new("bash")
            .arg(cluster_script("user.sh"))
            .arg(&self.dir)
            .arg(name)
            .args(groups)
            .output()
            .map_err(|e| HarnessError::ControlPlane(format!("cannot run user.sh: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::ControlPlane(format!(
                "tests/cluster/user.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    }

    /// A kubeconfig authenticating with a bearer `token` (e.g. a ServiceAccount's, from
    /// `kubectl create token`), written to `DIR/users/<name>.kubeconfig`.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> Result<PathBuf, HarnessError> {
        let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let server = self.server()?;
        let path = self.dir.join("users").join(format!("{name}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: {n}\n  user:\n    token: {}\ncontexts:\n- name: e2e\n  \
             context:\n    cluster: e2e\n    user: {n}\ncurrent-context: e2e\n",
            q(&server),
            q(&self.dir.join("ca.crt").display().to_string()),
            q(token),
            n = q(name),
        );
        let err =
            |e: std::io::Error| HarnessError::ControlPlane(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(self.dir.join("users")).map_err(err)?;
        kube_standin::kubeconfig::write_atomic(&path, &text)
            .map_err(|e| HarnessError::ControlPlane(e.to_string()))?;
        Ok(path)
    }

    /// Stops the API server (SIGTERM, SIGKILL after 30 s) and returns once it is gone; etcd,
    /// the controller manager and every object stay. Clients see connections refused until
    /// [`Self::start_apiserver`].
    pub fn stop_apiserver(&self) -> Result<(), HarnessError> {
        self.apiserver_script(&["stop"])
    }

    /// Starts the API server stopped by [`Self::stop_apiserver`] again with the same flags,
    /// port and certificates; returns once its `/readyz` answers (at most 60 s).
    pub fn start_apiserver(&self) -> Result<(), HarnessError> {
        self.apiserver_script(&["start"])
    }

    /// Restarts the API server mid-run: stops it as [`Self::stop_apiserver`] does, leaves it
    /// down for `down_for`, starts it again as [`Self::start_apiserver`] does and returns once
    /// it is ready. Objects (etcd) survive; watches and connections of clients are cut.
    pub fn restart_apiserver(&self, down_for: Duration) -> Result<(), HarnessError> {
        let secs = format!("{:.3}", down_for.as_secs_f64());
        self.apiserver_script(&["restart", &secs])
    }

    /// Runs `tests/cluster/apiserver.sh DIR ARGS`.
    fn apiserver_script(&self, args: &[&str]) -> Result<(), HarnessError> {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(cluster_script("apiserver.sh"))
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| HarnessError::ControlPlane(format!("cannot run apiserver.sh: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::ControlPlane(format!(
                "tests/cluster/apiserver.sh {} {} failed with {}: {}",
                self.dir.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        tracing::info!(elapsed = ?started.elapsed(), action = %args.join(" "), "API server");
        Ok(())
    }

    /// Routes the service proxy of Service `namespace/name` (which must exist, without a
    /// selector) to the loopback backend `address` (`127.0.0.1:PORT`): a network namespace with
    /// a veth pair and relays, a Pod carrying the namespace's address, and Endpoints naming
    /// that Pod for every port of the Service. Needs root (network namespaces).
    pub fn register_endpoint(
        &self,
        kubectl: &Kubectl<'_>,
        namespace: &str,
        name: &str,
        address: &str,
    ) -> Result<(), HarnessError> {
        let port: u16 = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| {
                HarnessError::ControlPlane(format!("endpoint address `{address}` is not HOST:PORT"))
            })?;
        let relay = Relay::start(&self.dir, address, port)?;
        let svc: serde_json::Value = serde_json::from_str(&kubectl(
            &["get", "service", "-n", namespace, name, "-o", "json"],
            None,
        )?)
        .map_err(|e| HarnessError::ControlPlane(format!("service {namespace}/{name}: {e}")))?;
        let ports: Vec<serde_json::Value> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let mut e = serde_json::json!({"port": port, "protocol": "TCP"});
                if let Some(n) = p["name"].as_str() {
                    e["name"] = n.into();
                }
                e
            })
            .collect();
        let pod_name = format!("{name}-e2e-{}", random_suffix(5));
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace,
                         "labels": {"e2e.sealed-secrets-rs/backend-of": name}},
            "spec": {"containers": [{"name": "backend", "image": "e2e.invalid/loopback-relay"}],
                     "automountServiceAccountToken": false},
        });
        // The ServiceAccount admission plugin refuses Pods until the namespace's `default`
        // ServiceAccount exists; the controller manager creates it shortly after the namespace.
        retry(Duration::from_secs(30), || {
            kubectl(&["create", "-f", "-"], Some(&pod.to_string()))
        })?;
        let status = serde_json::json!({"status": {
            "podIP": relay.ns_ip, "podIPs": [{"ip": relay.ns_ip}]}});
        kubectl(
            &[
                "patch",
                "pod",
                "-n",
                namespace,
                &pod_name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        )?;
        let endpoints = serde_json::json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace},
            "subsets": [{
                "addresses": [{"ip": relay.ns_ip,
                               "targetRef": {"kind": "Pod", "name": pod_name, "namespace": namespace}}],
                "ports": ports,
            }],
        });
        kubectl(&["apply", "-f", "-"], Some(&endpoints.to_string()))?;
        self.relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(relay);
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.relays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let _ = Command::new("bash")
            .arg(cluster_script("down.sh"))
            .arg(&self.dir)
            .output();
    }
}

fn retry<T>(
    timeout: Duration,
    mut f: impl FnMut() -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| HarnessError::ControlPlane(format!("cannot run `ip`: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::ControlPlane(format!(
            "`ip {}` failed (network namespaces need root): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The two addresses of veth block `block` (0..16384) of 10.250.0.0/16: host end, namespace
/// end.
pub fn veth_addresses(block: u16) -> (String, String) {
    let b = block % 16384;
    let third = b / 64;
    let fourth = (b % 64) * 4;
    (
        format!("10.250.{third}.{}", fourth + 1),
        format!("10.250.{third}.{}", fourth + 2),
    )
}

/// A network namespace with a veth pair and the two relays that carry connections from the
/// namespace's address to a loopback backend. Dropping it stops the relays and deletes the
/// namespace (which deletes the veth pair).
#[derive(Debug)]
struct Relay {
    netns: String,
    record: PathBuf,
    ns_ip: String,
    inner: Option<Process>,
    outer: Option<Process>,
}

impl Relay {
    fn start(dir: &Path, backend: &str, port: u16) -> Result<Self, HarnessError> {
        use rand::Rng as _;
        let relay_bin = binary_path("e2e-relay")?;
        let id = random_suffix(6);
        let netns = format!("ssrs-{id}");
        let (host_ip, ns_ip) = loop {
            let (h, n) = veth_addresses(rand::rng().random_range(0..16384));
            let used = Command::new("ip")
                .args(["-o", "addr"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if !used.contains(&format!(" {h}/")) {
                break (h, n);
            }
        };
        // Recorded first, so that down.sh deletes the namespace even if this process dies.
        let records = dir.join("netns");
        std::fs::create_dir_all(&records)
            .map_err(|e| HarnessError::ControlPlane(format!("{}: {e}", records.display())))?;
        let record = records.join(&netns);
        std::fs::write(&record, "")
            .map_err(|e| HarnessError::ControlPlane(format!("{}: {e}", record.display())))?;
        let mut relay = Self {
            netns: netns.clone(),
            record,
            ns_ip: ns_ip.clone(),
            inner: None,
            outer: None,
        };
        let (host_if, ns_if) = (format!("ssrs{id}h"), format!("ssrs{id}n"));
        ip(&["netns", "add", &netns])?;
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &netns,
        ])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ])?;
        ip(&["-n", &netns, "link", "set", &ns_if, "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;

        let sock = dir.join(format!("relay-{id}.sock"));
        let sock_s = sock.display().to_string();
        let mut outer = Command::new(&relay_bin);
        outer.args(["unix-to-tcp", &sock_s, backend]);
        let mut outer = Process::spawn(outer, dir)?;
        record_pid(dir, &format!("relay-{id}-outer"), &outer)?;
        outer.wait_for_log("listening", Duration::from_secs(10))?;
        relay.outer = Some(outer);
        let mut inner = Command::new("ip");
        inner.args(["netns", "exec", &netns]).arg(&relay_bin).args([
            "tcp-to-unix",
            &format!("{ns_ip}:{port}"),
            &sock_s,
        ]);
        // `ip netns exec` executes the relay in place: this pid is the relay's.
        let mut inner = Process::spawn(inner, dir)?;
        record_pid(dir, &format!("relay-{id}-inner"), &inner)?;
        inner.wait_for_log("listening", Duration::from_secs(10))?;
        relay.inner = Some(inner);
        wait_for_port(&format!("{ns_ip}:{port}"), Duration::from_secs(10))?;
        Ok(relay)
    }
}

/// Writes `DIR/<name>.pid`, so that `down.sh` stops the process if this one dies first.
fn record_pid(dir: &Path, name: &str, p: &Process) -> Result<(), HarnessError> {
    let path = dir.join(format!("{name}.pid"));
    let pid = p.id().map(|i| i.to_string()).unwrap_or_default();
    std::fs::write(&path, pid)
        .map_err(|e| HarnessError::ControlPlane(format!("{}: {e}", path.display())))
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.inner.take();
        self.outer.take();
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = std::fs::remove_file(&self.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_wins_over_the_cluster_choice() {
        assert_eq!(
            choose_backend(Some("/k"), Some("real")).unwrap(),
            Backend::External("/k".into())
        );
    }

    #[test]
    fn cluster_values() {
        assert_eq!(choose_backend(None, None).unwrap(), Backend::StandIn);
        assert_eq!(
            choose_backend(Some(""), Some("")).unwrap(),
            Backend::StandIn
        );
        assert_eq!(
            choose_backend(None, Some("standin")).unwrap(),
            Backend::StandIn
        );
        assert_eq!(
            choose_backend(None, Some("real")).unwrap(),
            Backend::ControlPlane
        );
        let e = choose_backend(None, Some("kind")).unwrap_err().to_string();
        assert!(e.contains(CLUSTER_ENV) && e.contains("kind"), "{e}");
    }

    #[test]
    fn veth_blocks_are_disjoint_slash_30s() {
        assert_eq!(
            veth_addresses(0),
            ("10.250.0.1".into(), "10.250.0.2".into())
        );
        assert_eq!(
            veth_addresses(1),
            ("10.250.0.5".into(), "10.250.0.6".into())
        );
        assert_eq!(
            veth_addresses(16383),
            ("10.250.255.253".into(), "10.250.255.254".into())
        );
    }
}
