//! The chaos suite: the controller under API faults, SIGKILL, SIGSTOP and
//! an API server restart, on the stand-in and on the real control plane
//! (`SEALED_SECRETS_E2E_CLUSTER=real`). One test per scenario; every scenario ends with the
//! shared checker of [`check`]. `SEALED_SECRETS_CHAOS_N` sets the number of SealedSecrets
//! (3 values each; default 100); `SEALED_SECRETS_CHAOS_KILL_EVERY` the seconds between two
//! SIGKILLs of the shard scenario's periodic kills (default 30; CI sets a few). `tests/chaos.sh
//! [N]` runs it in release on both backends and prints the table each test contributes a row
//! to ([`Row`]).
//!
//! Scenarios:
//! - `faults`: 5% 500s, 1% 429s, 10% 409s on updates, watches cut every 5 s, injected by
//!   the fault proxy in front of either backend, during a cold start;
//! - `kill_mid_cold_start`: the controller SIGKILLed once a third of the Secrets exist, then
//!   started again;
//! - `leader_kill_and_stop`: two replicas with leader election; the leader SIGKILLed, later
//!   the next leader SIGSTOPped past its lease and SIGCONTed once another replica leads;
//! - `api_server_restart`: the API server gone for 3 s mid cold start: kube-apiserver
//!   restarted on the real backend, the fault proxy's port closed on the stand-in;
//! - `shards_kill_stop_add_remove`: three `--sharding` members; one SIGKILLed every
//!   `SEALED_SECRETS_CHAOS_KILL_EVERY` seconds (in turn, the leader among them, each started
//!   again at once) during a cold start and during steady creates, one SIGSTOPped past its
//!   Lease, one added and one removed.

// A test binary: a failed setup step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_faults;
mod check;
mod hostile_http;
mod hostile_templates;
mod scenarios;
mod shards;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt as _;
use harness::cluster::{Cluster, Process, TestNamespace, binary_path, free_port, random_suffix};
pub use harness::wait::eventually;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use sealed_secrets_api::{SealOptions, SealedSecret};
use sealed_secrets_crypto::{CertParams, Certificate, PrivateKey, PublicKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use check::Expected;

/// Number of SealedSecrets per scenario.
pub const N_ENV: &str = "SEALED_SECRETS_CHAOS_N";
/// Seconds between two SIGKILLs of the shard scenario's periodic kills.
pub const KILL_EVERY_ENV: &str = "SEALED_SECRETS_CHAOS_KILL_EVERY";
/// File the summary rows are appended to (tab-separated), for `tests/chaos.sh`.
pub const REPORT_ENV: &str = "SEALED_SECRETS_CHAOS_REPORT";
/// Values per SealedSecret.
pub const VALUES: usize = 3;
/// The controller's `--concurrency` (its default): reconciles in flight at most.
pub const CONCURRENCY: usize = 8;
/// Lease duration of the leader-election scenarios (short, so takeovers are quick).
pub const LEASE_SECONDS: u64 = 4;

pub fn n_objects() -> usize {
    std::env::var(N_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100)
}

/// The period of the shard scenario's kills: [`KILL_EVERY_ENV`] seconds, default 30.
pub fn kill_every() -> Duration {
    let secs = std::env::var(KILL_EVERY_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs)
}

/// How long convergence may take: generous, scaled with N (a cold start on 2 busy cores).
pub fn converge_timeout(n: usize) -> Duration {
    Duration::from_secs(90) + Duration::from_millis(300 * n as u64)
}

/// One row of the summary table, written when the test ends (pass or FAIL).
#[derive(Debug)]
pub struct Row {
    pub scenario: &'static str,
    pub backend: &'static str,
    pub n: usize,
    pub start: Instant,
    pub faults: String,
    pub restarts: String,
}

impl Row {
    pub fn new(scenario: &'static str, cluster: &Cluster, n: usize) -> Self {
        Self {
            scenario,
            backend: if cluster.is_standin() {
                "stand-in"
            } else {
                "real"
            },
            n,
            start: Instant::now(),
            faults: "-".into(),
            restarts: "-".into(),
        }
    }
}

impl Drop for Row {
    fn drop(&mut self) {
        let result = if std::thread::panicking() {
            "FAIL"
        } else {
            "pass"
        };
        let line = format!(
            "{}\t{}\t{}\t{:.1}s\t{}\t{}\t{result}",
            self.scenario,
            self.backend,
            self.n,
            self.start.elapsed().as_secs_f64(),
            self.faults,
            self.restarts
        );
        println!("CHAOS\t{line}");
        if let Some(path) = std::env::var_os(REPORT_ENV)
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A controller process.
#[derive(Debug)]
pub struct Replica {
    pub label: String,
    pub process: Process,
    pub http: String,
    pub metrics: String,
}

impl Replica {
    pub fn signal(&self, sig: &str) {
        let pid = self.process.id().expect("a running replica");
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} {pid} failed");
    }

    /// Sum of every sample of the metric `name`, or `None` if the replica does not answer
    /// within a second (starting, killed, stopped).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = http_get(&self.metrics, "/metrics").await?;
        Some(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    pub async fn is_leader(&self) -> bool {
        self.metric("sealed_secrets_controller_leader").await == Some(1.0)
    }
}

/// A plain HTTP/1.1 GET with a one-second limit; the body, if the answer was 200.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(1), fetch)
        .await
        .ok()
        .flatten()
}

/// Cluster, client, the workload namespace and the controller's namespace. Fields drop in
/// order: the namespaces (dumped on a failure) before the cluster.
pub struct Env {
    pub ns: TestNamespace,
    pub ctrl_ns: TestNamespace,
    pub client: kube::Client,
    pub cluster: Cluster,
    replicas: usize,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("ns", &self.ns)
            .field("ctrl_ns", &self.ctrl_ns)
            .finish_non_exhaustive()
    }
}

/// What a scenario seals and expects.
#[derive(Debug)]
pub struct Workload {
    pub expected: Expected,
    pub sealed: Vec<SealedSecret>,
}

impl Workload {
    /// Secrets the controller must create for `sealed` (foreign ones excluded).
    pub fn owned_in(&self, sealed: &[SealedSecret]) -> usize {
        sealed
            .iter()
            .filter(|s| {
                !self
                    .expected
                    .foreign
                    .contains_key(s.metadata.name.as_deref().unwrap_or_default())
            })
            .count()
    }
}

impl Env {
    pub async fn new() -> Self {
        let cluster = Cluster::start_private().expect("cluster");
        let client = cluster.client().await.expect("client");
        let crds: Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = Api::all(client.clone());
        if crds
            .get_opt(sealed_secrets_api::CRD_NAME)
            .await
            .expect("get CRD")
            .is_none()
        {
            crds.create(&PostParams::default(), &sealed_secrets_api::crd())
                .await
                .expect("create CRD");
        }
        // The CRD must be served before SealedSecrets can be created (a real API server
        // takes a moment to establish it).
        let probe: Api<SealedSecret> = Api::all(client.clone());
        eventually(
            "the SealedSecret CRD to be served",
            Duration::from_secs(30),
            || {
                let probe = probe.clone();
                async move { probe.list(&ListParams::default().limit(1)).await.ok() }
            },
        )
        .await;
        let ns = cluster.namespace("chaos").await.expect("namespace");
        let ctrl_ns = cluster.namespace("chaos-ctrl").await.expect("namespace");
        Self {
            ns,
            ctrl_ns,
            client,
            cluster,
            replicas: 0,
        }
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    pub fn ctrl(&self) -> &str {
        self.ctrl_ns.name()
    }

    /// Starts a controller replica talking to the API through `kubeconfig` (the cluster's,
    /// or a fault proxy's), JSON logs at debug level (the leadership proof reads them),
    /// 2048-bit keys, plus `extra` flags.
    pub fn spawn_controller(&mut self, kubeconfig: &Path, extra: &[&str]) -> Replica {
        self.spawn_controller_env(kubeconfig, extra, &[])
    }

    /// [`Self::spawn_controller`] with extra environment variables (`POD_NAME`).
    pub fn spawn_controller_env(
        &mut self,
        kubeconfig: &Path,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Replica {
        let http = format!("127.0.0.1:{}", free_port().expect("port"));
        let metrics = format!("127.0.0.1:{}", free_port().expect("port"));
        let binary = binary_path("sealed-secrets-controller").unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(binary);
        cmd.env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", self.ctrl())
            .env("RUST_LOG", "warn,sealed_secrets_controller=debug")
            .args(["--listen-addr", &http, "--listen-metrics-addr", &metrics])
            .args(["--key-size", "2048", "--log-format=json"])
            .args(["--log-info-stdout=false"])
            .arg(format!("--concurrency={CONCURRENCY}"))
            .args(extra)
            .envs(vars.iter().copied());
        let process = Process::spawn(cmd, self.cluster.temp_dir()).expect("spawn controller");
        self.replicas += 1;
        Replica {
            label: format!("replica{}", self.replicas),
            process,
            http,
            metrics,
        }
    }

    /// A replica with leader election (lease [`LEASE_SECONDS`]).
    pub fn spawn_elected(&mut self) -> Replica {
        let kubeconfig = self.cluster.kubeconfig().to_path_buf();
        let lease = format!("--leader-election-lease-duration={LEASE_SECONDS}s");
        self.spawn_controller(&kubeconfig, &["--leader-election=true", &lease])
    }

    /// A single replica without leader election.
    pub fn spawn_single(&mut self, kubeconfig: &Path) -> Replica {
        self.spawn_controller(kubeconfig, &["--leader-election=false"])
    }

    /// Writes a fresh key Secret into the controller namespace, as a restored backup would;
    /// returns its public key for sealing.
    pub async fn put_key(&self) -> PublicKey {
        let (key, cert) = tokio::task::spawn_blocking(|| {
            let k = PrivateKey::generate(2048).expect("key");
            let c = k
                .self_signed_certificate(&CertParams {
                    not_before: SystemTime::now() - Duration::from_secs(3600),
                    ..Default::default()
                })
                .expect("certificate");
            (k, c)
        })
        .await
        .expect("keygen task");
        let s = Secret {
            metadata: ObjectMeta {
                name: Some(format!("sealed-secrets-key{}", random_suffix(5))),
                namespace: Some(self.ctrl().into()),
                labels: Some(
                    [(
                        sealed_secrets_api::annotations::SEALING_KEY_LABEL.to_owned(),
                        "active".to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                (
                    "tls.key".to_owned(),
                    ByteString(key.to_pkcs1_pem().as_bytes().to_vec()),
                ),
                (
                    "tls.crt".to_owned(),
                    ByteString(cert.pem().as_bytes().to_vec()),
                ),
            ])),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), self.ctrl())
            .create(&PostParams::default(), &s)
            .await
            .expect("create key Secret");
        cert.public_key().clone()
    }

    /// The public key of the only key Secret, once there is one.
    pub async fn wait_generated_key(&self) -> PublicKey {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.ctrl());
        let lp = ListParams::default().labels(sealed_secrets_api::annotations::SEALING_KEY_LABEL);
        let s = eventually("a generated key Secret", Duration::from_secs(60), || {
            let (api, lp) = (api.clone(), lp.clone());
            async move { api.list(&lp).await.ok()?.items.into_iter().next() }
        })
        .await;
        let crt = &s.data.as_ref().expect("key data")["tls.crt"].0;
        Certificate::from_pem(crt)
            .expect("key certificate")
            .public_key()
            .clone()
    }

    /// Seals `n` Secrets of [`VALUES`] random values each for the workload namespace with
    /// `key` (in-process, the API crate kubeseal uses), and creates the foreign Secrets:
    /// one in twenty names (at least two) already holds a Secret nobody owns.
    pub async fn workload(&self, n: usize, key: &PublicKey) -> Workload {
        let ns = self.ns().to_owned();
        let mut values: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut manifests = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("s{i:05}");
            let data: BTreeMap<String, String> = (0..VALUES)
                .map(|k| {
                    (
                        format!("value{k}"),
                        format!("{name}-{k}-{}", random_suffix(24)),
                    )
                })
                .collect();
            manifests.push(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
                "stringData": data,
            }));
            values.insert(name, data);
        }
        let input = serde_json::to_vec(
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": manifests}),
        )
        .expect("json");
        let key = key.clone();
        let sealed = tokio::task::spawn_blocking(move || {
            sealed_secrets_api::seal_manifests(
                &input,
                &[&key],
                &SealOptions {
                    default_namespace: "default".into(),
                    ..Default::default()
                },
            )
        })
        .await
        .expect("seal task")
        .expect("seal");
        assert_eq!(sealed.len(), n);

        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut foreign = BTreeMap::new();
        let mut picks: Vec<usize> = (0..n).filter(|i| i % 20 == 10).collect();
        if picks.len() < 2 {
            picks = (0..n.min(2)).collect();
        }
        for i in picks {
            let name = format!("s{i:05}");
            let s = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "foreign".to_owned(),
                    ByteString(format!("not-ours-{}", random_suffix(16)).into_bytes()),
                )])),
                ..Default::default()
            };
            let created = secrets
                .create(&PostParams::default(), &s)
                .await
                .expect("create foreign Secret");
            foreign.insert(
                name,
                (
                    check::secret_data(&created),
                    created.metadata.resource_version.unwrap_or_default(),
                ),
            );
        }
        Workload {
            expected: Expected { values, foreign },
            sealed,
        }
    }

    /// Creates SealedSecrets, 16 at a time.
    pub async fn create_all(&self, sealed: &[SealedSecret]) {
        let api: Api<SealedSecret> = Api::namespaced(self.client.clone(), self.ns());
        let results: Vec<_> = futures::stream::iter(sealed.iter().cloned())
            .map(|ss| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &ss).await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r.expect("create SealedSecret");
        }
    }

    /// Secrets in the workload namespace that have an owner (the controller's).
    pub async fn owned_secrets(&self) -> Option<usize> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.ns());
        let list = api.list(&ListParams::default()).await.ok()?;
        Some(
            list.items
                .iter()
                .filter(|s| s.metadata.owner_references.is_some())
                .count(),
        )
    }

    /// Waits until at least `target` owned Secrets exist; returns how many there were.
    pub async fn wait_owned(&self, target: usize, timeout: Duration) -> usize {
        eventually(&format!("{target} Secrets"), timeout, || async {
            self.owned_secrets().await.filter(|n| *n >= target)
        })
        .await
    }

    /// The shared checker: convergence with every value, foreign Secrets, statuses, and the
    /// key set. Panics with what is wrong.
    pub async fn check(
        &self,
        w: &Workload,
        keys_before: &check::KeySet,
        new_keys: usize,
    ) -> Duration {
        let took = check::converge(
            &self.client,
            self.ns(),
            &w.expected,
            converge_timeout(w.sealed.len()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let after = check::key_set(&self.client, self.ctrl())
            .await
            .expect("list key Secrets");
        check::keys_kept(keys_before, &after, new_keys).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "checked: {} SealedSecrets x {VALUES} values converged, {} foreign Secrets untouched, {} key Secrets ({} new)",
            w.sealed.len(),
            w.expected.foreign.len(),
            after.len(),
            new_keys
        );
        took
    }
}
