//! The e2e harness: one [`Cluster`] per test (a fresh in-process stand-in; a private real
//! control plane when `SEALED_SECRETS_E2E_CLUSTER=real`, see [`crate::control_plane`]; or an
//! existing cluster when `SEALED_SECRETS_E2E_KUBECONFIG` names a kubeconfig), a random
//! [`TestNamespace`] that dumps its state if the test panics, kubectl, and the project's
//! binaries as [`Process`]es.
//!
//! The same test runs in every mode. [`Cluster::register_endpoint`] (service proxy to a local
//! process) works on the stand-in and the private control plane, not on an existing cluster
//! (tests that need it use [`Cluster::start_private`]); the stand-in's fault knobs
//! ([`Cluster::standin`]) are stand-in only, and tests that need them check
//! [`crate::control_plane::skip_unless_standin`] first.
//!
//! Binaries of other packages (`sealed-secrets-controller`, `kubeseal`) cannot be found with
//! `env!("CARGO_BIN_EXE_...")` from here; [`binary_path`] looks in the target directory of
//! the running test (then `CARGO_TARGET_DIR`, then `<workspace>/target`) and says how to build
//! a missing one.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use harness::cluster::{Cluster, binary_path};
//!
//! let cluster = Cluster::start()?;                 // stand-in, real control plane, or external
//! let ns = cluster.namespace("seal").await?;       // e.g. "seal-k3x9qz", dumped on panic
//! let client = cluster.client().await?;            // kube::Client for kube::Api
//! let port = harness::cluster::free_port()?;
//! let controller = cluster.spawn(
//!     &binary_path("sealed-secrets-controller")?,
//!     &["--listen-addr", &format!("127.0.0.1:{port}")],
//! )?;                                              // KUBECONFIG set; killed on drop, log kept
//! cluster.register_endpoint("kube-system", "sealed-secrets-controller", &format!("127.0.0.1:{port}"))?;
//! let out = cluster.kubectl_run(&["get", "secrets", "-n", ns.name(), "-o", "json"], None)?;
//! # let _ = (client, controller, out); Ok(()) }
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};

use crate::control_plane::{self, Backend, ControlPlane};
use crate::standin::{self, StandIn};
use crate::tools::run_command;
pub use crate::tools::{
    HELM_ENV, HarnessError, KUBECONFIG_ENV, KUBECTL_ENV, Process, binary_path, find_helm,
    find_kubectl, free_port, random_suffix, run_tool, wait_for_port, workspace_root,
};

/// A cluster for one test: a stand-in of its own (in-process or the `kube-standin` binary), a
/// private real control plane of its own, or the real cluster of
/// `SEALED_SECRETS_E2E_KUBECONFIG`.
#[derive(Debug)]
pub struct Cluster {
    standin: Option<StandIn>,
    /// The `kube-standin` process and its address, in binary mode.
    binary: Option<(Process, String, Option<String>)>,
    /// The private control plane, when `SEALED_SECRETS_E2E_CLUSTER=real`.
    control_plane: Option<ControlPlane>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

/// Where failure dumps come from.
#[derive(Debug, Clone)]
enum DumpSource {
    Handle(standin::Handle),
    Admin { addr: String, token: Option<String> },
    Kubectl,
}

/// A request to the stand-in's admin API (`/standin/v1/...`) with a plain blocking HTTP/1.1
/// exchange, so that the binary mode needs no async client.
fn admin_request(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<String, HarnessError> {
    use std::io::Read as _;
    let what = format!("{method} http://{addr}/standin/v1/{path}");
    let err = |source| HarnessError::Spawn {
        what: what.clone(),
        source,
    };
    let mut s = std::net::TcpStream::connect(addr).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} /standin/v1/{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(err)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(err)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp.as_str(), ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(HarnessError::Spawn {
            what,
            source: std::io::Error::other(format!(
                "{}: {body}",
                head.lines().next().unwrap_or_default()
            )),
        });
    }
    Ok(body.to_owned())
}

/// The audit policy of [`Cluster::start_counting_gets`]: every request on Secrets and
/// SealedSecrets, at the metadata level, once answered.
pub const OBJECT_AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets"]
  - group: "bitnami.com"
    resources: ["sealedsecrets"]
- level: None
"#;

impl Cluster {
    /// The cluster of this process's backend ([`control_plane::backend`]): the real cluster of
    /// `SEALED_SECRETS_E2E_KUBECONFIG` if set, a private control plane of its own if
    /// `SEALED_SECRETS_E2E_CLUSTER=real`, else a fresh stand-in.
    pub fn start() -> Result<Self, HarnessError> {
        match control_plane::backend()? {
            Backend::External(path) => Self::real(path),
            Backend::ControlPlane => Self::control_plane(),
            Backend::StandIn => Self::standin(standin::Config::default()),
        }
    }

    /// A cluster of its own: like [`Cluster::start`], except that with an external cluster
    /// (`SEALED_SECRETS_E2E_KUBECONFIG`) it is a stand-in. For tests that write into
    /// `kube-system` or route the service proxy ([`Cluster::register_endpoint`]), which a
    /// shared cluster must not see.
    pub fn start_private() -> Result<Self, HarnessError> {
        match control_plane::backend()? {
            Backend::ControlPlane => Self::control_plane(),
            Backend::External(_) | Backend::StandIn => Self::standin(standin::Config::default()),
        }
    }

    /// A private real control plane (etcd, kube-apiserver, kube-controller-manager) of its
    /// own, started by `tests/cluster/up.sh` and stopped when the cluster is dropped.
    pub fn control_plane() -> Result<Self, HarnessError> {
        Self::control_plane_audited(None)
    }

    /// A private real control plane whose API server writes an audit log
    /// ([`ControlPlane::audit_log`]) by `audit_policy` (the policy's YAML), if given.
    pub fn control_plane_audited(audit_policy: Option<&str>) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(HarnessError::TempDir)?;
        let policy = match audit_policy {
            Some(text) => {
                let p = dir.path().join("audit-policy.yaml");
                std::fs::write(&p, text).map_err(HarnessError::TempDir)?;
                Some(p)
            }
            None => None,
        };
        let cp = ControlPlane::start(&dir.path().join("control-plane"), policy.as_deref())?;
        Ok(Self {
            standin: None,
            binary: None,
            kubeconfig: cp.kubeconfig(),
            control_plane: Some(cp),
            dir,
        })
    }

    /// The private control plane (its directory holds logs, PKI, `ca.crt`, `env`), if this is
    /// one.
    pub fn control_plane_handle(&self) -> Option<&ControlPlane> {
        self.control_plane.as_ref()
    }

    /// Always a stand-in, configured by `config` (for tests of stand-in features).
    pub fn standin(config: standin::Config) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(HarnessError::TempDir)?;
        let standin = StandIn::start(config)?;
        let kubeconfig = dir.path().join("kubeconfig");
        standin.write_kubeconfig(&kubeconfig)?;
        Ok(Self {
            standin: Some(standin),
            binary: None,
            control_plane: None,
            kubeconfig,
            dir,
        })
    }

    /// A stand-in run as the `kube-standin` binary (from the target directory) with
    /// `extra_args` (e.g. `--fault-500 0.1`, `--token T`, `--endpoint NS/NAME=HOST:PORT`).
    /// Waits until it has written its kubeconfig; the process is stopped with the cluster.
    pub fn standin_binary(extra_args: &[&str]) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(HarnessError::TempDir)?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut cmd = Command::new(binary_path("kube-standin")?);
        cmd.args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .args(extra_args);
        let mut process = Process::spawn(cmd, dir.path())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.is_file() {
            if Instant::now() > deadline || !process.is_running() {
                return Err(HarnessError::Timeout(
                    Duration::from_secs(30),
                    format!("kube-standin's kubeconfig; its log:\n{}", process.log()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&kubeconfig).map_err(|source| HarnessError::Spawn {
            what: "read kubeconfig".into(),
            source,
        })?;
        let addr = text
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let token = extra_args
            .iter()
            .position(|a| *a == "--token")
            .and_then(|i| extra_args.get(i + 1))
            .map(|t| (*t).to_owned())
            .or_else(|| std::env::var("KUBE_STANDIN_TOKEN").ok());
        Ok(Self {
            standin: None,
            binary: Some((process, addr, token)),
            control_plane: None,
            kubeconfig,
            dir,
        })
    }

    fn dump_source(&self) -> DumpSource {
        match (&self.standin, &self.binary) {
            (Some(s), _) => DumpSource::Handle(s.handle().clone()),
            (None, Some((_, addr, token))) => DumpSource::Admin {
                addr: addr.clone(),
                token: token.clone(),
            },
            (None, None) => DumpSource::Kubectl,
        }
    }

    /// The real cluster the kubeconfig at `path` points at.
    pub fn real(path: PathBuf) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(HarnessError::TempDir)?;
        Ok(Self {
            standin: None,
            binary: None,
            control_plane: None,
            kubeconfig: path,
            dir,
        })
    }

    /// Like [`Cluster::start`], but reads of single objects can be counted
    /// ([`Cluster::object_gets`]): a stand-in counts them itself, a private control plane is
    /// started with an audit log of every request on Secrets and SealedSecrets
    /// ([`OBJECT_AUDIT_POLICY`]). On an external cluster they cannot be counted.
    pub fn start_counting_gets() -> Result<Self, HarnessError> {
        match control_plane::backend()? {
            Backend::External(path) => Self::real(path),
            Backend::ControlPlane => Self::control_plane_audited(Some(OBJECT_AUDIT_POLICY)),
            Backend::StandIn => Self::standin(standin::Config::default()),
        }
    }

    /// How many GETs of single `resource` objects (plural: `secrets`, `sealedsecrets`) in
    /// `namespace` the API server answered so far; `None` when this cluster does not count
    /// them (see [`Cluster::start_counting_gets`]). Subresources are not counted.
    pub fn object_gets(&self, resource: &str, namespace: &str) -> Option<u64> {
        if let Some(h) = self.standin_handle() {
            return Some(h.object_gets(resource, namespace));
        }
        let log = self.control_plane.as_ref()?.audit_log();
        // The API server creates the file at start when it has a policy.
        let text = std::fs::read_to_string(log).ok()?;
        let n = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                let o = &e["objectRef"];
                e["stage"] == "ResponseComplete"
                    && e["verb"] == "get"
                    && o["resource"] == resource
                    && o["namespace"] == namespace
                    && o["subresource"].is_null()
            })
            .count();
        Some(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// Whether this is a stand-in (service proxy registration, faults, dumps available).
    pub fn is_standin(&self) -> bool {
        self.standin.is_some() || self.binary.is_some()
    }

    /// The in-process stand-in's handle (faults, compaction, endpoints), if this is one.
    pub fn standin_handle(&self) -> Option<&standin::Handle> {
        self.standin.as_ref().map(StandIn::handle)
    }

    /// The kubeconfig file for processes (`KUBECONFIG`, `--kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A scratch directory removed with the cluster.
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kube-rs client for this cluster.
    pub async fn client(&self) -> Result<kube::Client, HarnessError> {
        let err = |source: Box<dyn std::error::Error + Send + Sync>| HarnessError::Kubeconfig {
            path: self.kubeconfig.clone(),
            source,
        };
        let kc =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| err(Box::new(e)))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| err(Box::new(e)))?;
        kube::Client::try_from(config).map_err(|e| err(Box::new(e)))
    }

    /// Routes the service proxy for `namespace/name` to `address` (`HOST:PORT`), as a
    /// Service's endpoints would. On a private control plane the Service must exist (without
    /// a selector) and the backend is reached through a network namespace
    /// ([`ControlPlane::register_endpoint`]); an external cluster routes to its own pods.
    pub fn register_endpoint(
        &self,
        namespace: &str,
        name: &str,
        address: &str,
    ) -> Result<(), HarnessError> {
        match (&self.standin, &self.binary) {
            (Some(s), _) => {
                s.register_endpoint(namespace, name, address);
                Ok(())
            }
            (None, Some((_, addr, token))) => {
                let body =
                    serde_json::json!({"namespace": namespace, "name": name, "address": address});
                admin_request(
                    addr,
                    token.as_deref(),
                    "POST",
                    "endpoints",
                    &body.to_string(),
                )
                .map(|_| ())
            }
            (None, None) => match &self.control_plane {
                Some(cp) => cp.register_endpoint(
                    &|args, stdin| self.kubectl_run(args, stdin),
                    namespace,
                    name,
                    address,
                ),
                None => Err(HarnessError::RealCluster),
            },
        }
    }

    /// Restarts the API server mid-run, keeping every object: down for `down_for`, then back
    /// on the same address with the same certificates; returns once it is ready. Only on a
    /// private real control plane ([`ControlPlane::restart_apiserver`]); on the stand-in and
    /// on an external cluster it is an error.
    pub fn restart_api_server(&self, down_for: Duration) -> Result<(), HarnessError> {
        match &self.control_plane {
            Some(cp) => cp.restart_apiserver(down_for),
            None if self.is_standin() => Err(HarnessError::ControlPlane(
                "restarting the API server needs the real control plane \
                 (SEALED_SECRETS_E2E_CLUSTER=real); this cluster is a stand-in (a \
                 FaultProxy outage makes any backend unreachable instead)"
                    .into(),
            )),
            None => Err(HarnessError::ControlPlane(
                "restarting the API server needs the private real control plane \
                 (SEALED_SECRETS_E2E_CLUSTER=real); this cluster is an external one"
                    .into(),
            )),
        }
    }

    /// Creates a namespace `<prefix>-<random>`; its contents are dumped to stderr if the test
    /// panics while it is alive, and it is deleted when dropped.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace, HarnessError> {
        let mut prefix: String = prefix.chars().take(50).collect();
        if prefix.is_empty() {
            prefix = "e2e".into();
        }
        let name = format!("{prefix}-{}", random_suffix(6));
        let client = self.client().await?;
        let api: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(|source| HarnessError::Namespace {
                name: name.clone(),
                source,
            })?;
        crate::failure::remember_panics();
        Ok(TestNamespace {
            name,
            source: self.dump_source(),
            kubeconfig: self.kubeconfig.clone(),
            cache_dir: self.dir.path().join("kube-cache"),
            client,
        })
    }

    /// A kubectl command with `--kubeconfig` and a per-cluster `--cache-dir` already set.
    pub fn kubectl(&self) -> Result<Command, HarnessError> {
        let mut cmd = Command::new(find_kubectl()?);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"));
        Ok(cmd)
    }

    /// Runs kubectl with `args` (and `stdin` if given); returns stdout, or an error with stderr.
    pub fn kubectl_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, HarnessError> {
        let mut cmd = self.kubectl()?;
        cmd.args(args);
        run_command(cmd, &format!("kubectl {}", args.join(" ")), stdin)
    }

    /// Everything in the cluster (stand-in: every object as JSON; real cluster: the
    /// interesting kinds via kubectl), for failure reports.
    pub fn dump(&self, namespace: Option<&str>) -> String {
        dump_state(
            &self.dump_source(),
            &self.kubeconfig,
            &self.dir.path().join("kube-cache"),
            namespace,
        )
    }

    /// Spawns `program` with `args`, `KUBECONFIG` pointing at this cluster, output captured
    /// in a log file; the process is stopped when the [`Process`] is dropped.
    pub fn spawn(&self, program: &Path, args: &[&str]) -> Result<Process, HarnessError> {
        let mut cmd = Command::new(program);
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig);
        Process::spawn(cmd, self.dir.path())
    }
}

fn dump_state(
    source: &DumpSource,
    kubeconfig: &Path,
    cache: &Path,
    namespace: Option<&str>,
) -> String {
    let dump = match source {
        DumpSource::Handle(h) => Some(h.dump()),
        DumpSource::Admin { addr, token } => Some(
            admin_request(addr, token.as_deref(), "GET", "dump", "")
                .ok()
                .and_then(|b| serde_json::from_str(&b).ok())
                .unwrap_or_default(),
        ),
        DumpSource::Kubectl => None,
    };
    if let Some(mut dump) = dump {
        if let (Some(ns), Some(objects)) = (namespace, dump["objects"].as_object_mut()) {
            for items in objects.values_mut() {
                if let Some(a) = items.as_array_mut() {
                    a.retain(|o| o["metadata"]["namespace"].as_str().is_none_or(|n| n == ns));
                }
            }
        }
        // Field ownership is rarely what a failure is about and doubles the dump's length.
        if let Some(objects) = dump["objects"].as_object_mut() {
            for o in objects
                .values_mut()
                .filter_map(|v| v.as_array_mut())
                .flatten()
            {
                if let Some(meta) = o["metadata"].as_object_mut() {
                    meta.remove("managedFields");
                }
            }
        }
        return serde_json::to_string_pretty(&dump).unwrap_or_default();
    }
    let Ok(kubectl) = find_kubectl() else {
        return "(no kubectl to dump a real cluster)".into();
    };
    let mut cmd = Command::new(kubectl);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache);
    cmd.args([
        "get",
        "secrets,configmaps,services,events,leases,sealedsecrets",
        "-o",
        "yaml",
    ]);
    match namespace {
        Some(ns) => cmd.args(["-n", ns]),
        None => cmd.arg("-A"),
    };
    run_command(cmd, "kubectl get (dump)", None).unwrap_or_else(|e| format!("dump failed: {e}"))
}

/// A namespace created for one test. Dropped during a panic, it prints the namespace's
/// objects to stderr; dropped, it is deleted (in the background on a real cluster).
pub struct TestNamespace {
    name: String,
    source: DumpSource,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    client: kube::Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's objects, as [`Cluster::dump`] formats them.
    pub fn dump(&self) -> String {
        dump_state(
            &self.source,
            &self.kubeconfig,
            &self.cache_dir,
            Some(&self.name),
        )
    }

    /// Deletes the namespace now and waits for the API to accept the deletion.
    pub async fn delete(self) -> Result<(), kube::Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::default())
            .await
            .map(|_| ())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== state of namespace {} at failure ====\n{}\n==== end of state ====",
                self.name,
                self.dump()
            );
            if let Some(failure) = crate::failure::last_on_this_thread() {
                eprintln!("==== the failure (repeated after the dump) ====\n{failure}");
            }
        }
        // On a stand-in the whole server goes away with the test; on a real cluster ask
        // kubectl to delete without waiting (no async in Drop).
        if matches!(self.source, DumpSource::Kubectl)
            && let Ok(kubectl) = find_kubectl()
        {
            let _ = Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args([
                    "delete",
                    "namespace",
                    &self.name,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A ConfigMap `name` holding `k: value`: the plain object the harness's own tests write
/// through the fault proxy and across an API server restart.
pub fn config_map(name: &str, value: &str) -> k8s_openapi::api::core::v1::ConfigMap {
    k8s_openapi::api::core::v1::ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some([("k".to_owned(), value.to_owned())].into()),
        ..Default::default()
    }
}
