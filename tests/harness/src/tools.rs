//! The harness's building blocks that know nothing about clusters: its error type, the
//! project's binaries and the kubectl/helm tools, ports, and [`Process`] (a child process
//! killed on drop, its log kept). [`crate::cluster`] re-exports all of it; the cluster
//! backends ([`crate::control_plane`], the stand-in) build on it without importing the
//! harness, so the modules import without a loop.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng as _;

use crate::standin;

/// Environment variable selecting the backend (`standin`, the default, or `real`).
pub const CLUSTER_ENV: &str = "SEALED_SECRETS_E2E_CLUSTER";

/// Opt-in: run against the real cluster this kubeconfig points at instead of a stand-in.
pub const KUBECONFIG_ENV: &str = "SEALED_SECRETS_E2E_KUBECONFIG";
/// Path of the kubectl binary to use (default: `target/kube-tools/bin/kubectl`, then `PATH`).
pub const KUBECTL_ENV: &str = "KUBECTL";
/// Path of the helm binary to use (default: `target/kube-tools/bin/helm`, then `PATH`).
pub const HELM_ENV: &str = "HELM";

/// What went wrong setting up or driving an e2e test.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("failed to start the kube stand-in")]
    StandIn(#[from] standin::StandInError),
    #[error("failed to create a temporary directory")]
    TempDir(#[source] std::io::Error),
    #[error("failed to load the kubeconfig `{path}`")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to create namespace `{name}`")]
    Namespace {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "binary `{name}` not found (looked in {searched}); build it first: cargo build -p {package}"
    )]
    BinaryMissing {
        name: String,
        package: String,
        searched: String,
    },
    #[error(
        "kubectl not found (set {KUBECTL_ENV}, or run .ci/install-kube-tools.sh which installs it in {default})"
    )]
    KubectlMissing { default: String },
    #[error(
        "helm not found (set {HELM_ENV}, or run .ci/install-kube-tools.sh which installs it in {default})"
    )]
    HelmMissing { default: String },
    #[error("failed to run `{what}`")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{what}` failed with {status}: {stderr}")]
    CommandFailed {
        what: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error(
        "registering service proxy endpoints needs the stand-in; a real cluster routes to its own pods"
    )]
    RealCluster,
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error(
        "{env}=`{0}` is not a known backend (expected `real` or `standin`)",
        env = CLUSTER_ENV
    )]
    BadBackend(String),
    #[error("real control plane: {0}")]
    ControlPlane(String),
}

/// The workspace root (parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    // This crate lives at `tests/harness`.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// Where the running test's profile directory is (`target/debug` when run by cargo test).
fn target_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test-binary>
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            dirs.push(profile_dir.to_path_buf());
        }
    }
    let profile = std::env::var("SEALED_SECRETS_E2E_PROFILE").unwrap_or_else(|_| "debug".into());
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(t).join(&profile));
    }
    dirs.push(workspace_root().join("target").join(&profile));
    dirs.dedup();
    dirs
}

/// The package that builds each project binary, for the "build it first" hint.
fn package_of(binary: &str) -> &str {
    match binary {
        "sealed-secrets-controller" => "sealed-secrets-controller",
        "kubeseal" => "kubeseal",
        "kube-standin" => "kube-standin",
        "e2e-relay" => "sealed-secrets-harness",
        other => other,
    }
}

/// Path of a project binary in the target directory, or an error saying how to build it.
pub fn binary_path(name: &str) -> Result<PathBuf, HarnessError> {
    let dirs = target_dirs();
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(HarnessError::BinaryMissing {
        name: name.to_owned(),
        package: package_of(name).to_owned(),
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The kubectl to use: `$KUBECTL`, else the one `.ci/install-kube-tools.sh` installs, else
/// `kubectl` on `PATH`.
pub fn find_kubectl() -> Result<PathBuf, HarnessError> {
    find_tool("kubectl", KUBECTL_ENV).map_err(|default| HarnessError::KubectlMissing {
        default: default.display().to_string(),
    })
}

/// The helm to use: `$HELM`, else the one `.ci/install-kube-tools.sh` installs, else `helm`
/// on `PATH`.
pub fn find_helm() -> Result<PathBuf, HarnessError> {
    find_tool("helm", HELM_ENV).map_err(|default| HarnessError::HelmMissing {
        default: default.display().to_string(),
    })
}

/// `$env`, else `target/kube-tools/bin/<name>`, else `<name>` on `PATH`; the error is the
/// default location, for the hint.
fn find_tool(name: &str, env: &str) -> Result<PathBuf, PathBuf> {
    if let Some(k) = std::env::var_os(env).filter(|k| !k.is_empty()) {
        return Ok(PathBuf::from(k));
    }
    let default = workspace_root().join("target/kube-tools/bin").join(name);
    if default.is_file() {
        return Ok(default);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(default)
}

/// Runs `program` with `args` (no stdin) and returns its stdout, or an error with its stderr.
/// For tools other than kubectl against a cluster, e.g. `helm template` or
/// `kubectl kustomize`.
pub fn run_tool(program: &Path, args: &[&str]) -> Result<String, HarnessError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_command(cmd, &format!("{name} {}", args.join(" ")), None)
}

/// A free TCP port on 127.0.0.1 (bound and released), for a child process to listen on.
/// Chosen at random in [`LOOPBACK_PORTS`], below Linux's ephemeral range (32768-60999): a port
/// the kernel picks for `:0` can meanwhile be handed out again as the source port of some
/// outgoing connection (a real control plane makes many), and `tests/cluster/up.sh` uses
/// 20000-32767.
///
/// No port is handed out twice in one process: between this release and the child's bind, a
/// parallel test picking the same port would find it free too (one controller's HTTP and
/// metrics ports collided with each other's or a neighbour's this way in CI). Other processes
/// can still race; 10,000 ports make that unlikely.
pub fn free_port() -> Result<u16, HarnessError> {
    bind_unclaimed_loopback()
        .and_then(|l| l.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| HarnessError::Spawn {
            what: "bind a free port in 127.0.0.1:10000-19999".into(),
            source,
        })
}

/// The ports [`free_port`] and the fault proxy choose from.
pub const LOOPBACK_PORTS: std::ops::Range<u16> = 10000..20000;

/// Binds 127.0.0.1 on a random port of [`LOOPBACK_PORTS`] that this process has not bound or
/// handed out before, and records it. The fault proxy binds its own port again after a
/// [`crate::faultproxy::FaultProxy::disconnect`], so its port must stay out of [`free_port`]'s
/// reach too.
pub(crate) fn bind_unclaimed_loopback() -> std::io::Result<std::net::TcpListener> {
    static CLAIMED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::rng();
    let mut last = None;
    for _ in 0..200 {
        let port = rng.random_range(LOOPBACK_PORTS);
        if claimed.contains(&port) {
            continue;
        }
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => {
                claimed.insert(port);
                return Ok(l);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("every port tried was already handed out")))
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: &str, timeout: Duration) -> Result<(), HarnessError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(HarnessError::Timeout(
        timeout,
        format!("a listener on {addr}"),
    ))
}

/// A random lowercase suffix for names.
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

pub(crate) fn run_command(
    mut cmd: Command,
    what: &str,
    stdin: Option<&str>,
) -> Result<String, HarnessError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let spawn_err = |source| HarnessError::Spawn {
        what: what.to_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(HarnessError::CommandFailed {
            what: what.to_owned(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child process with its output in a log file. Dropping it stops it (SIGTERM, then
/// SIGKILL after 5 seconds) and, during a panic, prints its log to stderr.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr appended to a log file in `log_dir`.
    pub fn spawn(mut cmd: Command, log_dir: &Path) -> Result<Self, HarnessError> {
        let name = Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "process".into());
        let log = log_dir.join(format!("{name}-{}.log", random_suffix(4)));
        let err = |source| HarnessError::Spawn {
            what: name.clone(),
            source,
        };
        let file = std::fs::File::create(&log).map_err(err)?;
        let file2 = file.try_clone().map_err(err)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2)
            .spawn()
            .map_err(err)?;
        Ok(Self {
            child: Some(child),
            name,
            log,
        })
    }

    /// The OS process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return Ok(());
            }
            if !self.is_running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HarnessError::Timeout(
            timeout,
            format!("{needle:?} in the log of {}:\n{}", self.name, self.log()),
        ))
    }

    /// Stops the process: SIGTERM, then SIGKILL if it is still running after 5 seconds.
    /// Returns its exit status if it was collected.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "==== log of {} ====\n{}\n==== end of log ====",
                self.name,
                self.log()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drawn at random from 10,000 ports, 400 picks would repeat one with probability
    /// 1 - e^(-400²/20,000) ≈ 99.97% if nothing remembered them; a repeat handed to two
    /// parallel tests is a listener that fails with "Address already in use".
    #[test]
    fn a_port_is_handed_out_once_per_process() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let port = free_port().unwrap();
            assert!(LOOPBACK_PORTS.contains(&port), "{port}");
            assert!(seen.insert(port), "port {port} handed out twice");
        }
        let proxy = bind_unclaimed_loopback().unwrap();
        let port = proxy.local_addr().unwrap().port();
        assert!(!seen.contains(&port), "the proxy got port {port} again");
    }
}
