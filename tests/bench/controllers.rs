//! Side-by-side benchmark of our controller and upstream's, on a
//! fresh real control plane per run. Driven by `tests/bench/controllers.sh`, which builds
//! everything in release mode, runs [`controller_run`] once per (N, controller, data set) and
//! prints the markdown table of [`table`]; see that script for the one documented command.
//!
//! One run ([`controller_run`], configured by environment variables, see [`RunConfig`]):
//!
//! 1. 13 RSA-4096 keys (generated once into `BENCH_KEYS_DIR` and reused, so every run seals
//!    with the same keys), their certificates' NotBefore one hour apart, the newest an hour
//!    old: both controllers load all 13 and generate none.
//! 2. A private control plane (`tests/cluster/up.sh`) whose API server audits, at Metadata
//!    level, exactly the requests of the two controllers' ServiceAccounts; `deploy/base` and
//!    upstream's own chart RBAC applied; the 13 key Secrets created in `kube-system` as
//!    upstream writes them (type `kubernetes.io/tls`, label
//!    `sealedsecrets.bitnami.com/sealed-secrets-key=active`).
//! 3. N SealedSecrets x 3 values created before the controller starts, sealed by our sealing
//!    library (`sealed_secrets_api::seal_manifests`). For the unhinted data sets our
//!    `sealing-key` annotation is removed: the rest is byte-format identical to what upstream's
//!    kubeseal writes (the `upstream_peers` suite has upstream's controller and upstream's
//!    `--recovery-unseal` open our output). Data sets: `rr` (object i sealed with key i mod 13),
//!    `newest` (85% of the objects on the newest two keys) and `hinted-rr` (round-robin, with
//!    our hint: what our kubeseal writes).
//! 4. Cold start: the controller (ours with `deploy/base`'s args and environment, upstream's
//!    with its defaults, each in-cluster style under its own project's RBAC) starts; a
//!    metadata watch records when each Secret appears. Figures: time until every Secret
//!    exists, controller CPU (utime+stime of `/proc/PID/stat`) until it is idle again, peak
//!    RSS (`VmHWM`), RSA operations (our `sealed_secrets_controller_rsa_decryptions_total`;
//!    upstream has no such metric), API requests per SealedSecret (the audit log). A sample of
//!    the Secrets is checked against the sealed values.
//! 5. Warm restart: the controller is stopped (SIGTERM) and started again with every Secret
//!    present; time until it has handled N SealedSecrets (both controllers count them in
//!    `sealed_secrets_controller_unseal_requests_total`) and gone idle, its CPU, RSA
//!    operations and API requests.
//! 6. Load, with the controller running ([`capacity_phase`], [`latency_phase`],
//!    [`fairness_phase`]; docs/benchmarks.md, "Capacity, latency under load and fairness"):
//!    the capacity C from a burst of creates; SealedSecrets sealed with the newest key created
//!    at each rate of `BENCH_LATENCY` (default `0.5C,C,1.5C`) for `BENCH_LATENCY_SECS`:
//!    create-to-Secret p50/p99/max, each object against its backlog drained at C plus 1 s,
//!    and the queue-wait / reconcile split of the controller's histograms; a quiet namespace's
//!    latency alone and during a burst in another namespace (`BENCH_FAIRNESS_BURST`).
//!    With `BENCH_SHARDS` > 1 instead: the replicas as shard members, every Secret checked,
//!    each replica's figures (no load phases).
//! 7. The ideal: values x one RSA-4096 decrypt (measured in this run with our crypto crate,
//!    median of 21, just before the controller starts) / cores.
//!
//! 8. Where ours keeps its private keys (`BENCH_KEY_BACKEND`, [`KeyBackend`]): `memory` (the
//!    plain key Secrets, read into memory, as upstream), `aws-kms` (docs/security.md "Tier 2":
//!    the 13 key Secrets converted by `kubeseal keys wrap` to envelopes wrapped by local-kms)
//!    or `pkcs11-wrap` (the same, wrapped by an AES key in the kryoptic token), or `pkcs11`
//!    (docs/security.md "Tier 1": the 13 private keys imported into the kryoptic token with
//!    OpenSC's `pkcs11-tool`, adopted by ours with `--key-pkcs11-adopt`, the plain key
//!    Secrets deleted first; every unseal decrypts in the token). Figure: calls to the backend
//!    per value (`key_wrap_calls_total`; for `pkcs11` the token's decryptions,
//!    `key_backend_calls_total{operation="decrypt"}`, with its other calls apart), and the
//!    cold CPU against the `memory` run of the same data and N.
//!
//! Each run appends one JSON line to `BENCH_RESULTS`; [`table`] formats them. Benchmarks print
//! figures; nothing here asserts a timing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: a panic is a failure

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use harness::cluster::{Cluster, binary_path, random_suffix, workspace_root};
use harness::kms::{LocalKms, pkcs11_token, pkcs11_wrapping_token};
use harness::upstream::{
    InCluster, UPSTREAM_SA, service_account_dir, upstream_binary, upstream_rbac_manifest,
};
use harness::wait::{eventually_blocking, metric_sum};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_api::token_key::TOKEN_KEY_SECRET_TYPE;
use sealed_secrets_api::{Recipients, SealOptions, SealedSecret, seal_manifests};
use sealed_secrets_crypto::{CertParams, KeyRing, PqIdentity, PrivateKey, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod load;
use load::{BacklogReport, Histogram, RateSpec};

const CTRL_NS: &str = "kube-system";
const OURS_SA: &str = "sealed-secrets-controller";
const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
const SEALING_KEY: &str = "sealed-secrets-rs.dev/sealing-key";
const KEYS: usize = 13;
const VALUES_PER_OBJECT: usize = 3;
const BENCH_NS: &str = "bench";
/// What shard members need beyond `deploy/base`'s RBAC (their own Leases, `patch` on
/// SealedSecrets): the sharded component's own file, so that a sharded run also checks that
/// what `deploy/` grants is enough. Applied by a sharded run (`BENCH_SHARDS`).
const SHARD_RBAC: &str = include_str!("../../deploy/components/sharded/rbac-sharding.yaml");

/// The fairness phase's namespaces: a burst in one, a steady trickle in the other.
const NOISY_NS: &str = "bench-noisy";
const QUIET_NS: &str = "bench-quiet";

/// What one run measures, from the environment the script sets.
#[derive(Debug, Clone)]
struct RunConfig {
    /// `BENCH_CONTROLLER`: `ours` or `upstream`.
    controller: String,
    /// `BENCH_N`: SealedSecrets at the cold start.
    n: usize,
    /// `BENCH_UPSTREAM_ARGS`: extra flags for upstream's controller (e.g.
    /// `--kubeclient-qps=-1`: its API client is limited to 5 requests a second by default).
    upstream_args: Vec<String>,
    /// `BENCH_DATA`: `rr`, `newest`, `hinted-rr` or `pq` (ours only: round-robin, every value
    /// post-quantum, crates/crypto/FORMAT.md §3).
    data: String,
    /// `BENCH_KEYS_DIR`: where the 13 keys are kept between runs.
    keys_dir: PathBuf,
    /// `BENCH_RESULTS`: JSON lines file the result is appended to.
    results: PathBuf,
    /// `BENCH_LATENCY`: create rates of the latency phases, per second or as multiples of the
    /// capacity C measured in the run (`0.5C,C,1.5C`); empty skips them.
    latency_rates: Vec<RateSpec>,
    /// `BENCH_LATENCY_SECS`: how long each rate is kept up.
    latency_secs: u32,
    /// `BENCH_TIMEOUT_SECS`: give up on a phase after this long.
    timeout: Duration,
    /// `BENCH_KEY_BACKEND`: where ours keeps its private keys, one of [`KEY_BACKENDS`].
    key_backend: String,
    /// `BENCH_CAPACITY_N`: objects of the capacity burst (default: about 15 s at the cold
    /// start's drain rate, [`load::capacity_burst_size`]); 0 skips it.
    capacity_n: Option<usize>,
    /// `BENCH_FAIRNESS_BURST`: creates of the noisy namespace's burst; 0 skips the phase.
    fairness_burst: usize,
    /// `BENCH_FAIRNESS_RATE`: creates a second of the quiet namespace.
    fairness_rate: f64,
    /// `BENCH_FAIRNESS_ALONE_SECS`: how long the quiet namespace creates alone (its baseline).
    fairness_alone_secs: u32,
    /// `BENCH_FAIRNESS_IN_FLIGHT`: the burst's creates in flight at once (32, as every other
    /// burst of the benchmark; 1 sends them one after another, as `kubectl apply` does).
    fairness_in_flight: usize,
    /// `BENCH_SHARDS`: replicas of ours, each a shard member (`--sharding`); 1: the default
    /// single replica.
    shards: usize,
}

/// The values of `BENCH_KEY_BACKEND`. A backend is one entry here and one arm of
/// [`KeyBackend::setup`] (its set-up, its flags and its calls metric).
const KEY_BACKENDS: [&str; 4] = ["memory", "aws-kms", "pkcs11-wrap", "pkcs11"];

/// The metric of calls to a wrapping key backend (summed over operations).
const KEY_CALLS_METRIC: &str = "sealed_secrets_controller_key_wrap_calls_total";
/// Tier 1: the token's RSA-OAEP decryptions (one per session key unwrapped)...
const TOKEN_DECRYPT_METRIC: &str =
    "sealed_secrets_controller_key_backend_calls_total{backend=\"pkcs11\",operation=\"decrypt\"}";
/// ... and its other calls (key lookups, label probes, signatures).
const TOKEN_OTHER_METRIC: &str =
    "sealed_secrets_controller_key_backend_calls_total{backend=\"pkcs11\",operation=\"other\"}";
/// Label of the token holding the keys of the `pkcs11` and `pkcs11-wrap` backends.
const TOKEN: &str = "bench";

/// A key backend set up for one run: what ours gets (flags, environment) and what keeps the
/// backend alive until the run ends.
struct KeyBackend {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The calls metric per value, and the other calls (tier 1) reported beside it.
    calls_metric: &'static str,
    other_calls_metric: Option<&'static str>,
    /// The token's variables (tests/hsm/token.sh) when the keys go into the token.
    token: Option<HashMap<String, String>>,
    _kms: Option<LocalKms>,
    _token_dir: Option<tempfile::TempDir>,
}

impl KeyBackend {
    fn setup(name: &str) -> KeyBackend {
        let mut b = KeyBackend {
            name: name.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            calls_metric: KEY_CALLS_METRIC,
            other_calls_metric: None,
            token: None,
            _kms: None,
            _token_dir: None,
        };
        let wrap = |backend: &str, key: &str| {
            vec![
                format!("--key-wrap-backend={backend}"),
                format!("--key-wrap-key={key}"),
                "--key-wrap-cluster=bench".to_owned(),
            ]
        };
        match name {
            "memory" => {}
            "aws-kms" => {
                let kms = LocalKms::start("bench").expect("local-kms (needs Go)");
                b.args = wrap("aws-kms", &kms.alias);
                b.env = kms.env().map(|(k, v)| (k.to_owned(), v)).to_vec();
                b._kms = Some(kms);
            }
            "pkcs11-wrap" => {
                let dir = tempfile::tempdir().unwrap();
                let vars = pkcs11_wrapping_token(dir.path(), TOKEN, "bench-wrap")
                    .expect("the kryoptic token (tests/hsm/token.sh)");
                b.args = wrap("pkcs11", "bench-wrap");
                b.args.extend([
                    format!(
                        "--key-wrap-pkcs11-module={}",
                        vars["SEALED_SECRETS_PKCS11_MODULE"]
                    ),
                    format!("--key-wrap-pkcs11-token={TOKEN}"),
                    format!(
                        "--key-wrap-pkcs11-pin-file={}",
                        vars["SEALED_SECRETS_PKCS11_PIN_FILE"]
                    ),
                ]);
                b.env = vec![("KRYOPTIC_CONF".to_owned(), vars["KRYOPTIC_CONF"].clone())];
                b._token_dir = Some(dir);
            }
            "pkcs11" => {
                let dir = tempfile::tempdir().unwrap();
                let vars = pkcs11_token(dir.path(), TOKEN)
                    .expect("the kryoptic token (tests/hsm/token.sh)");
                b.args = vec![
                    "--key-backend=pkcs11".to_owned(),
                    format!(
                        "--key-pkcs11-module={}",
                        vars["SEALED_SECRETS_PKCS11_MODULE"]
                    ),
                    format!("--key-pkcs11-token={TOKEN}"),
                    format!(
                        "--key-pkcs11-pin-file={}",
                        vars["SEALED_SECRETS_PKCS11_PIN_FILE"]
                    ),
                ];
                b.env = vec![("KRYOPTIC_CONF".to_owned(), vars["KRYOPTIC_CONF"].clone())];
                b.calls_metric = TOKEN_DECRYPT_METRIC;
                b.other_calls_metric = Some(TOKEN_OTHER_METRIC);
                b.token = Some(vars);
                b._token_dir = Some(dir);
            }
            other => panic!("BENCH_KEY_BACKEND=`{other}`: expected one of {KEY_BACKENDS:?}"),
        }
        b
    }

    /// Converts the key Secrets of `cluster` for this backend, as an operator would (`kubeseal
    /// keys wrap`; for the token, [`KeyBackend::adopt_keys`]); nothing for `memory`.
    fn convert_keys(&mut self, cluster: &Cluster, keys_dir: &Path) {
        if self.args.is_empty() {
            return;
        }
        if self.token.is_some() {
            self.adopt_keys(cluster, keys_dir);
            return;
        }
        let out = std::process::Command::new(binary_path("kubeseal").unwrap())
            .env("KUBECONFIG", cluster.kubeconfig())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["keys", "wrap"])
            .args(&self.args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubeseal keys wrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Tier 1 with the bench's own keys (the data is sealed to them): each private key is
    /// imported into the token with OpenSC's `pkcs11-tool` (so it is sensitive but, unlike a
    /// key the controller generates, not "never extractable": a benchmark shortcut), the
    /// plain key Secrets are deleted (a key already in a key Secret is not adopted), and ours
    /// starts once with `--key-pkcs11-adopt` for every label and writes the 13 token key
    /// Secrets (certificate and object URI, no private key), as docs/operations.md, "Keys
    /// held in a PKCS#11 token", has an operator do.
    fn adopt_keys(&mut self, cluster: &Cluster, keys_dir: &Path) {
        let vars = self.token.clone().unwrap();
        let pin = std::fs::read_to_string(&vars["SEALED_SECRETS_PKCS11_PIN_FILE"]).unwrap();
        let labels: Vec<String> = (0..KEYS).map(|i| format!("bench-key{i:02}")).collect();
        for (i, label) in labels.iter().enumerate() {
            let out = std::process::Command::new("pkcs11-tool")
                .arg("--module")
                .arg(&vars["SEALED_SECRETS_PKCS11_MODULE"])
                .args(["--token-label", TOKEN, "--login", "--pin", pin.trim()])
                .arg("--write-object")
                .arg(keys_dir.join(format!("key{i:02}.pem")))
                .args(["--type", "privkey", "--label", label])
                .args(["--usage-decrypt", "--usage-sign"])
                .env("KRYOPTIC_CONF", &vars["KRYOPTIC_CONF"])
                .output()
                .unwrap_or_else(|e| panic!("pkcs11-tool: {e}"));
            assert!(
                out.status.success(),
                "pkcs11-tool --write-object: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let plain: Vec<String> = (0..KEYS)
            .map(|i| format!("sealed-secrets-key{i:02}"))
            .collect();
        let mut delete = vec!["delete", "secret", "-n", CTRL_NS];
        delete.extend(plain.iter().map(String::as_str));
        kubectl(cluster, &delete, None);
        let n = self.args.len();
        self.args
            .extend(labels.iter().map(|l| format!("--key-pkcs11-adopt={l}")));
        let mut c = start_controller(cluster, "ours", &[], self);
        let adopted = eventually_blocking(
            "ours to write a token key Secret for each adopted key",
            Duration::from_secs(120),
            || {
                let list: Value = serde_json::from_str(&kubectl(
                    cluster,
                    &[
                        "get", "secrets", "-n", CTRL_NS, "-l", KEY_LABEL, "-o", "json",
                    ],
                    None,
                ))
                .ok()?;
                let items = list["items"].as_array()?.clone();
                (items.len() >= KEYS).then_some(items)
            },
        );
        stop(&mut c);
        self.args.truncate(n);
        // Exactly the 13 keys, each held in the token: no key generated beside them, no
        // private key left in a Secret.
        assert_eq!(adopted.len(), KEYS, "key Secrets after adoption");
        for s in &adopted {
            assert_eq!(s["type"], TOKEN_KEY_SECRET_TYPE, "{s}");
            assert!(s["data"].get("tls.key").is_none(), "a private key in {s}");
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn parse_env<T: std::str::FromStr>(name: &str, default: &str) -> T {
    let v = env_or(name, default);
    v.parse()
        .unwrap_or_else(|_| panic!("{name}=`{v}` is not a valid value"))
}

impl RunConfig {
    fn from_env() -> Self {
        let controller = env_or("BENCH_CONTROLLER", "ours");
        assert!(
            controller == "ours" || controller == "upstream",
            "BENCH_CONTROLLER=`{controller}`: expected `ours` or `upstream`"
        );
        let key_backend = env_or("BENCH_KEY_BACKEND", "memory");
        assert!(
            KEY_BACKENDS.contains(&key_backend.as_str())
                && (controller == "ours" || key_backend == "memory"),
            "BENCH_KEY_BACKEND=`{key_backend}`: expected one of {KEY_BACKENDS:?} (ours only)"
        );
        let data = env_or("BENCH_DATA", "rr");
        assert!(
            ["rr", "newest", "hinted-rr", "pq"].contains(&data.as_str()),
            "BENCH_DATA=`{data}`: expected `rr`, `newest`, `hinted-rr` or `pq`"
        );
        let latency_rates = load::parse_rates(&env_or("BENCH_LATENCY", ""))
            .unwrap_or_else(|e| panic!("BENCH_LATENCY: {e}"));
        let fairness_controllers = env_or("BENCH_FAIRNESS_CONTROLLERS", "ours");
        let fairness_burst = if fairness_controllers
            .split_whitespace()
            .any(|c| c == controller)
        {
            parse_env("BENCH_FAIRNESS_BURST", "10000")
        } else {
            0
        };
        let shards: usize = parse_env("BENCH_SHARDS", "1");
        assert!(
            shards >= 1 && (shards == 1 || controller == "ours"),
            "BENCH_SHARDS={shards}: at least 1, and sharding is ours only"
        );
        Self {
            controller,
            n: parse_env("BENCH_N", "1000"),
            upstream_args: env_or("BENCH_UPSTREAM_ARGS", "")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            data,
            keys_dir: PathBuf::from(env_or(
                "BENCH_KEYS_DIR",
                &workspace_root().join("target/bench/keys").to_string_lossy(),
            )),
            results: PathBuf::from(env_or(
                "BENCH_RESULTS",
                &workspace_root()
                    .join("target/bench/results.jsonl")
                    .to_string_lossy(),
            )),
            latency_rates,
            latency_secs: parse_env("BENCH_LATENCY_SECS", "10"),
            timeout: Duration::from_secs(parse_env("BENCH_TIMEOUT_SECS", "3600")),
            key_backend,
            capacity_n: std::env::var("BENCH_CAPACITY_N")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|_| parse_env("BENCH_CAPACITY_N", "0")),
            fairness_burst,
            fairness_rate: parse_env("BENCH_FAIRNESS_RATE", "2"),
            fairness_alone_secs: parse_env("BENCH_FAIRNESS_ALONE_SECS", "20"),
            fairness_in_flight: parse_env::<usize>(
                "BENCH_FAIRNESS_IN_FLIGHT",
                &IN_FLIGHT.to_string(),
            )
            .max(1),
            shards,
        }
    }
}

/// Latency of one create rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Latency {
    /// Creates a second (whole numbers in older results).
    rate: f64,
    created: usize,
    /// Secrets that did not appear within the wait.
    missing: usize,
    p50_ms: f64,
    p99_ms: f64,
    /// The multiple of the capacity C this rate was derived from (`None`: a fixed rate).
    #[serde(default)]
    of_capacity: Option<f64>,
    /// Seconds the rate was kept up.
    #[serde(default)]
    secs: Option<u32>,
    #[serde(default)]
    max_ms: Option<f64>,
    #[serde(default)]
    mean_ms: Option<f64>,
    /// The backlog bound: the objects ahead of each when it was created drained at C, plus
    /// one second ([`load::backlog_report`]); the largest such bound, the largest backlog,
    /// and the objects served later than their own bound.
    #[serde(default)]
    bound_ms: Option<f64>,
    #[serde(default)]
    max_backlog: Option<usize>,
    #[serde(default)]
    over_bound: Option<usize>,
    /// Where the time went, from the controller's histograms over the phase.
    #[serde(default)]
    queue: Option<QueueShare>,
}

/// The controller's reconcile histograms over one phase (`None` in a run whose controller
/// has no such metrics: upstream's, or ours before it had them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct QueueShare {
    reconciles: f64,
    /// `sealed_secrets_controller_reconcile_queue_wait_seconds`: queued to started.
    wait_mean_ms: f64,
    wait_p99_ms: f64,
    /// `sealed_secrets_controller_reconcile_duration_seconds`: one reconcile.
    work_mean_ms: f64,
    work_p99_ms: f64,
}

const QUEUE_WAIT_METRIC: &str = "sealed_secrets_controller_reconcile_queue_wait_seconds";
const RECONCILE_METRIC: &str = "sealed_secrets_controller_reconcile_duration_seconds";

/// The capacity C: a burst of objects created as fast as the API server takes them while
/// the controller runs, served from the first create to the last Secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Capacity {
    objects: usize,
    /// First create sent to last Secret present (s).
    span_s: f64,
    per_s: f64,
    /// Creates a second of the burst: when not well above `per_s`, C is a floor (the
    /// creates, not the controller, set the pace).
    creates_per_s: f64,
    /// After the burst: Secrets a second served while creates paced at `sustained_rate`
    /// (1.5 x the burst's C) kept arriving faster than that. The latency phases pace their
    /// creates too, so this, not the burst's rate, is the C they are measured against.
    #[serde(default)]
    sustained_per_s: Option<f64>,
    #[serde(default)]
    sustained_rate: Option<f64>,
    /// Objects created and not yet served when the paced creates ended.
    #[serde(default)]
    sustained_backlog: Option<usize>,
}

impl Capacity {
    /// C: the sustained rate when measured (and not set by the creates' pace), else the
    /// burst's.
    fn c(&self) -> f64 {
        self.sustained_per_s.unwrap_or(self.per_s)
    }
}

/// A quiet namespace's creates alone, then while another namespace's burst drains.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Fairness {
    burst: usize,
    quiet_rate: f64,
    alone: Latency,
    during: Latency,
    /// First burst create to the burst's last Secret (s).
    burst_drain_s: f64,
    /// `alone` and `during` counted from the API server's answer to each create instead of
    /// its sending: the part that is the controller's (and the watches'), without the wait
    /// of the create itself behind the burst's creates at the API server.
    #[serde(default)]
    alone_answered: Option<Latency>,
    #[serde(default)]
    during_answered: Option<Latency>,
    /// `during`, of the quiet creates sent after the burst's last create was answered: the
    /// drain alone, without the burst's create storm at the API server.
    #[serde(default)]
    after_creates: Option<Latency>,
    /// First burst create to its last create answered (s).
    #[serde(default)]
    burst_creates_s: Option<f64>,
    /// The quiet creates' own round trips (sent to answered) during the burst, of the same
    /// creates as `during`: no controller has acted yet, so `during`'s p99 is at least this
    /// one's, and this p99 ÷ `alone`'s is the lowest ratio any controller could reach here.
    #[serde(default)]
    during_create: Option<Latency>,
    /// The burst's creates in flight at once (`None`: 32, in results from before the setting).
    #[serde(default)]
    burst_in_flight: Option<usize>,
}

/// One replica of a sharded run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Replica {
    name: String,
    /// Whether it was the elected leader (`sealed_secrets_controller_leader`) at the end of the
    /// cold start: the one that also assigns the objects and manages the keys.
    #[serde(default)]
    leader: bool,
    cold_cpu_s: f64,
    cold_rss_mib: f64,
    cold_rsa: Option<f64>,
    warm_cpu_s: f64,
    warm_rss_mib: f64,
}

/// Several replicas of ours as shard members on the same data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct Sharded {
    replicas: Vec<Replica>,
    /// Secrets whose every value matched what was sealed, of `n`.
    secrets_correct: usize,
}

/// The figures of one run (one JSON line of `BENCH_RESULTS`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
struct RunResult {
    controller: String,
    data: String,
    n: usize,
    values: usize,
    cores: usize,
    /// One RSA-4096 decrypt (our crypto crate, aws-lc-rs), median, in this run.
    decrypt_ms: f64,
    loadavg_start: String,
    loadavg_end: String,
    /// Controller start to its certificate served (startup: keys loaded, lease taken).
    #[serde(default)]
    cold_ready_s: f64,
    /// Controller start to every Secret present.
    cold_wall_s: f64,
    /// Controller CPU from start until idle after the cold start.
    cold_cpu_s: f64,
    /// CPU of kube-apiserver and etcd over the same span (the control plane's side of it).
    #[serde(default)]
    cold_apiserver_cpu_s: Option<f64>,
    #[serde(default)]
    cold_etcd_cpu_s: Option<f64>,
    /// RSA operations of the cold start (ours only).
    cold_rsa: Option<f64>,
    /// Peak RSS (VmHWM) after the cold start.
    cold_rss_mib: f64,
    /// RSS (VmRSS) of the controller started with no SealedSecret and idle: the baseline
    /// the per-SealedSecret figures are taken above.
    #[serde(default)]
    idle_rss_mib: Option<f64>,
    /// RSS (VmRSS) once idle after the cold start (steady state).
    #[serde(default)]
    cold_rss_now_mib: Option<f64>,
    /// Controller requests the API server audited from start to stop, by verb.
    cold_api: BTreeMap<String, u64>,
    /// Restart to N SealedSecrets handled and idle.
    warm_s: f64,
    warm_cpu_s: f64,
    warm_rsa: Option<f64>,
    warm_rss_mib: f64,
    /// RSS (VmRSS) once idle after the warm restart.
    #[serde(default)]
    warm_rss_now_mib: Option<f64>,
    warm_api: BTreeMap<String, u64>,
    latency: Vec<Latency>,
    /// Where ours kept its private keys (`BENCH_KEY_BACKEND`; empty in older results: memory).
    #[serde(default)]
    key_backend: String,
    /// Calls to the key backend during the cold start and the warm restart.
    #[serde(default)]
    cold_key_calls: Option<f64>,
    #[serde(default)]
    warm_key_calls: Option<f64>,
    /// Tier 1: the token's calls other than decryptions (lookups, label probes, signatures),
    /// reported beside the decryptions above.
    #[serde(default)]
    cold_key_other_calls: Option<f64>,
    #[serde(default)]
    warm_key_other_calls: Option<f64>,
    /// Objects a second of the cold start, first Secret to last (the list and the keys
    /// loaded before it excluded).
    #[serde(default)]
    cold_drain_per_s: Option<f64>,
    #[serde(default)]
    capacity: Option<Capacity>,
    #[serde(default)]
    fairness: Option<Fairness>,
    /// A sharded run (`BENCH_SHARDS`): its replicas; the fields above are their sums
    /// (CPU, RSA operations) and maxima (peak RSS).
    #[serde(default)]
    sharded: Option<Sharded>,
}

// ---------------------------------------------------------------------------------------------
// Pure logic: distributions, idleness, percentiles, the table.
// ---------------------------------------------------------------------------------------------

/// The key (0 oldest .. 12 newest) object `i` is sealed with. `rr`: round-robin over the 13
/// keys. `newest`: of every 20 objects, 9 on the newest key, 8 on the second newest, 3
/// spread over the other 11 (85% on the newest two).
fn key_for(data: &str, i: usize) -> usize {
    match data {
        "newest" => match i % 20 {
            0..9 => KEYS - 1,
            9..17 => KEYS - 2,
            _ => (i / 20 * 3 + i % 20 - 17) % (KEYS - 2),
        },
        _ => i % KEYS,
    }
}

/// When the process went idle: the end of the last sampling interval in which it used more
/// than `min_cpu` seconds of CPU (the first sample's time if none). `samples` are (elapsed
/// seconds, cumulative CPU seconds), in order.
fn busy_until(samples: &[(f64, f64)], min_cpu: f64) -> f64 {
    let first = samples.first().map_or(0.0, |s| s.0);
    samples
        .windows(2)
        .rev()
        .find(|w| w[1].1 - w[0].1 > min_cpu)
        .map_or(first, |w| w[1].0)
}

/// The `p` quantile (0..=1) of `values` by the nearest-rank method.
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn total(api: &BTreeMap<String, u64>) -> u64 {
    api.values().sum()
}

/// `during ÷ alone (during / alone)` of one latency figure, in milliseconds.
fn ratio_of(during: &Latency, alone: &Latency, x: fn(&Latency) -> f64) -> String {
    format!(
        "{} ({} / {})",
        f(x(during) / x(alone), 2),
        f(x(during), 0),
        f(x(alone), 0)
    )
}

fn fmt_n(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn f(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.digits$}")
    }
}

impl RunResult {
    fn ideal_s(&self) -> f64 {
        self.values as f64 * self.decrypt_ms / 1000.0 / self.cores.max(1) as f64
    }
    fn label(&self) -> String {
        let mut l = match self.key_backend.as_str() {
            "" | "memory" => format!("{} {} {}", self.controller, self.data, fmt_n(self.n)),
            b => format!("{} {} {} [{b}]", self.controller, self.data, fmt_n(self.n)),
        };
        if let Some(s) = &self.sharded {
            l.push_str(&format!(" x{} shards", s.replicas.len()));
        }
        l
    }
    fn latency_of(&self, m: f64) -> Option<&Latency> {
        self.latency.iter().find(|l| l.of_capacity == Some(m))
    }
    fn key_calls_per_value(&self) -> String {
        self.cold_key_calls
            .map_or("n/a".into(), |c| f(c / self.values.max(1) as f64, 4))
    }
    /// Calls to the key backend, `per_value` in parentheses when given, and the token's
    /// other calls (lookups, label probes, signatures) beside its decryptions:
    /// `3,000 (1.0000) + 39 other`.
    fn key_calls(calls: Option<f64>, per_value: Option<String>, other: Option<f64>) -> String {
        let Some(c) = calls else {
            return "n/a".into();
        };
        let mut out = fmt_n(c.round() as usize);
        if let Some(p) = per_value {
            out.push_str(&format!(" ({p})"));
        }
        if let Some(o) = other {
            out.push_str(&format!(" + {} other", fmt_n(o.round() as usize)));
        }
        out
    }
    fn cpu_per_value_ratio(&self) -> f64 {
        self.cold_cpu_s / self.values as f64 / (self.decrypt_ms / 1000.0)
    }
    /// KiB per SealedSecret of `rss_mib` above the idle baseline (NaN without a baseline).
    fn kib_per_object(&self, rss_mib: Option<f64>) -> f64 {
        match (rss_mib, self.idle_rss_mib) {
            (Some(rss), Some(idle)) if self.n > 0 => (rss - idle) * 1024.0 / self.n as f64,
            _ => f64::NAN,
        }
    }
    fn rsa_per_value(&self) -> f64 {
        self.cold_rsa.map_or(f64::NAN, |r| r / self.values as f64)
    }
    fn latency_at(&self, rate: f64) -> String {
        match self
            .latency
            .iter()
            .find(|l| l.of_capacity.is_none() && l.rate == rate)
        {
            None => "-".into(),
            Some(l) if l.missing > 0 => format!(
                "{} / {} ({} of {} missing)",
                f(l.p50_ms, 0),
                f(l.p99_ms, 0),
                l.missing,
                l.created
            ),
            Some(l) => format!("{} / {}", f(l.p50_ms, 0), f(l.p99_ms, 0)),
        }
    }
    fn api_breakdown(api: &BTreeMap<String, u64>, n: usize) -> String {
        let per = |c: u64| c as f64 / n as f64;
        let parts: Vec<String> = api
            .iter()
            .filter(|(_, c)| per(**c) >= 0.05)
            .map(|(v, c)| format!("{v} {}", f(per(*c), 2)))
            .collect();
        format!("{} ({})", f(per(total(api)), 2), parts.join(", "))
    }
}

/// The markdown table: one column per run, the goals beside the figures, then
/// upstream ÷ ours for every N and unhinted data set both ran.
fn table(results: &[RunResult]) -> String {
    type Row = (&'static str, &'static str, fn(&RunResult) -> String);
    let rows: &[Row] = &[
        ("SealedSecrets x values", "", |r| {
            format!("{} x {}", fmt_n(r.n), r.values / r.n.max(1))
        }),
        ("one RSA-4096 decrypt (ms), cores", "", |r| {
            format!("{}, {}", f(r.decrypt_ms, 2), r.cores)
        }),
        ("ideal: values x decrypt / cores (s)", "", |r| {
            f(r.ideal_s(), 1)
        }),
        (
            "cold start: controller serving its certificate (s)",
            "",
            |r| f(r.cold_ready_s, 1),
        ),
        ("cold start: every Secret present (s)", "", |r| {
            f(r.cold_wall_s, 1)
        }),
        ("cold wall ÷ ideal", "<= 1.5", |r| {
            f(r.cold_wall_s / r.ideal_s(), 2)
        }),
        ("controller CPU, cold start to idle (s)", "", |r| {
            f(r.cold_cpu_s, 1)
        }),
        ("kube-apiserver + etcd CPU, same span (s)", "", |r| {
            format!(
                "{} + {}",
                r.cold_apiserver_cpu_s.map_or("n/a".into(), |x| f(x, 1)),
                r.cold_etcd_cpu_s.map_or("n/a".into(), |x| f(x, 1))
            )
        }),
        (
            "CPU per value ÷ one decrypt",
            "<= 1.2 (hinted)",
            RunResult::cpu_per_value_ratio_s,
        ),
        (
            "RSA operations per value",
            "<= 3.2 rr, <= 1.5 newest",
            |r| f(r.rsa_per_value(), 2),
        ),
        ("idle RSS, no SealedSecret (MiB)", "", |r| {
            r.idle_rss_mib.map_or("n/a".into(), |x| f(x, 1))
        }),
        (
            "peak RSS after cold start (MiB)",
            "< 200 at 50,000; < upstream",
            |r| f(r.cold_rss_mib, 0),
        ),
        (
            "peak RSS above idle per SealedSecret, cold (KiB)",
            "<= 3",
            |r| f(r.kib_per_object(Some(r.cold_rss_mib)), 2),
        ),
        (
            "steady RSS above idle per SealedSecret, cold (KiB)",
            "<= 3",
            |r| f(r.kib_per_object(r.cold_rss_now_mib), 2),
        ),
        ("API requests per SealedSecret, cold", "", |r| {
            RunResult::api_breakdown(&r.cold_api, r.n)
        }),
        (
            "warm restart: handled all and idle (s)",
            "<= 10 at 50,000",
            |r| f(r.warm_s, 1),
        ),
        ("warm restart: RSA operations", "0", |r| {
            r.warm_rsa.map_or("n/a".into(), |x| f(x, 0))
        }),
        ("warm restart: controller CPU (s)", "", |r| {
            f(r.warm_cpu_s, 1)
        }),
        (
            "warm restart: API requests per SealedSecret",
            "no get (list pages only)",
            |r| RunResult::api_breakdown(&r.warm_api, r.n),
        ),
        ("peak RSS after warm restart (MiB)", "", |r| {
            f(r.warm_rss_mib, 0)
        }),
        (
            "peak RSS above idle per SealedSecret, warm (KiB)",
            "<= 3",
            |r| f(r.kib_per_object(Some(r.warm_rss_mib)), 2),
        ),
        (
            "steady RSS above idle per SealedSecret, warm (KiB)",
            "<= 3",
            |r| f(r.kib_per_object(r.warm_rss_now_mib), 2),
        ),
        (
            "key backend calls per value, cold (KMS / token decryptions)",
            "wrapped: 13 ÷ values; in the token: 1 (hinted)",
            RunResult::key_calls_per_value,
        ),
        (
            "key backend calls, warm restart",
            "wrapped: 13; in the token: 0 decryptions",
            |r| RunResult::key_calls(r.warm_key_calls, None, r.warm_key_other_calls),
        ),
    ];
    let mut rows: Vec<DynRow> = rows
        .iter()
        .map(|&(name, goal, cell)| (name.to_owned(), goal.to_owned(), Box::new(cell) as Cell))
        .collect();
    rows.extend(load_rows(results));
    rows.push((
        "load average (1, 5, 15 min) start -> end".into(),
        String::new(),
        Box::new(|r: &RunResult| format!("{} -> {}", r.loadavg_start, r.loadavg_end)),
    ));
    let mut out = String::new();
    out.push_str("| figure |");
    for r in results {
        out.push_str(&format!(" {} |", r.label()));
    }
    out.push_str(" goal |\n|---|");
    for _ in results {
        out.push_str("---:|");
    }
    out.push_str("---|\n");
    for (name, goal, cell) in &rows {
        out.push_str(&format!("| {name} |"));
        for r in results {
            out.push_str(&format!(" {} |", cell(r)));
        }
        out.push_str(&format!(" {goal} |\n"));
    }

    // upstream ÷ ours, same N and same sealed data (ours unhinted, and ours hinted on the
    // same round-robin keys).
    let mut pairs = Vec::new();
    for up in results
        .iter()
        .filter(|r| r.controller.starts_with("upstream"))
    {
        for ours in results.iter().filter(|r| {
            r.controller == "ours"
                && r.sharded.is_none()
                && matches!(r.key_backend.as_str(), "" | "memory")
                && r.n == up.n
                && (r.data == up.data || (up.data == "rr" && r.data == "hinted-rr"))
        }) {
            pairs.push((up, ours));
        }
    }
    // Each key backend against keys in memory, same data and N.
    let mut backends = Vec::new();
    for b in results
        .iter()
        .filter(|r| !matches!(r.key_backend.as_str(), "" | "memory") && r.sharded.is_none())
    {
        for m in results.iter().filter(|m| {
            matches!(m.key_backend.as_str(), "" | "memory")
                && m.sharded.is_none()
                && m.controller == b.controller
                && m.data == b.data
                && m.n == b.n
        }) {
            backends.push((b, m));
        }
    }
    if !backends.is_empty() {
        out.push('\n');
        out.push_str(&key_backend_table(&backends));
    }
    let sharded = sharded_table(results);
    if !sharded.is_empty() {
        out.push('\n');
        out.push_str(&sharded);
    }
    let phases = latency_table(results);
    if !phases.is_empty() {
        out.push('\n');
        out.push_str(&phases);
    }
    if !pairs.is_empty() {
        out.push_str("\n| upstream ÷ ours | cold wall | cold CPU | peak RSS | warm restart | warm CPU | API requests cold | API requests warm |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        let ratio = |a: f64, b: f64| if b > 0.0 { f(a / b, 1) } else { "n/a".into() };
        for (up, ours) in pairs {
            out.push_str(&format!(
                "| {} vs {} | {} | {} | {} | {} | {} | {} | {} |\n",
                up.label(),
                ours.label(),
                ratio(up.cold_wall_s, ours.cold_wall_s),
                ratio(up.cold_cpu_s, ours.cold_cpu_s),
                ratio(up.cold_rss_mib, ours.cold_rss_mib),
                ratio(up.warm_s, ours.warm_s),
                ratio(up.warm_cpu_s, ours.warm_cpu_s),
                ratio(total(&up.cold_api) as f64, total(&ours.cold_api) as f64),
                ratio(total(&up.warm_api) as f64, total(&ours.warm_api) as f64),
            ));
        }
    }
    out
}

type Cell = Box<dyn Fn(&RunResult) -> String>;
type DynRow = (String, String, Cell);

/// A multiple of C as the table names it: `0.5C`, `C`, `1.5C`.
fn of_c(m: f64) -> String {
    if m == 1.0 {
        "C".into()
    } else {
        format!("{m}C")
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("n/a".into(), |x| f(x, digits))
}

/// The rows of the capacity, latency, fairness and 50,000 figures: each only when some run
/// has it, so that older results print as they did.
fn load_rows(results: &[RunResult]) -> Vec<DynRow> {
    let mut rows: Vec<DynRow> = Vec::new();
    let mut row = |name: String, goal: &str, cell: Cell| rows.push((name, goal.to_owned(), cell));
    if results.iter().any(|r| r.cold_drain_per_s.is_some()) {
        row(
            "cold start: Secrets a second, first to last".into(),
            "",
            Box::new(|r| opt(r.cold_drain_per_s, 1)),
        );
    }
    if results.iter().any(|r| r.capacity.is_some()) {
        row(
            "capacity C: objects a second (burst: objects in s; its creates a second)".into(),
            "measured",
            Box::new(|r| match &r.capacity {
                None => "-".into(),
                Some(c) if c.sustained_per_s.is_some() => format!(
                    "{} (served while creates came at {}/s, {} left at their end); the burst's: {} ({} in {} s; creates {}/s)",
                    f(c.c(), 1),
                    f(c.sustained_rate.unwrap_or(f64::NAN), 0),
                    fmt_n(c.sustained_backlog.unwrap_or(0)),
                    f(c.per_s, 1),
                    fmt_n(c.objects),
                    f(c.span_s, 1),
                    f(c.creates_per_s, 0),
                ),
                Some(c) => format!(
                    "{} ({} in {} s; creates {}/s{}){}",
                    f(c.per_s, 1),
                    fmt_n(c.objects),
                    f(c.span_s, 1),
                    f(c.creates_per_s, 0),
                    if c.creates_per_s < 1.2 * c.per_s {
                        ": a floor, the creates set the pace"
                    } else {
                        ""
                    },
                    match c.sustained_rate {
                        Some(rate) => format!(
                            "; creates paced at {}/s were served as they came",
                            f(rate, 0)
                        ),
                        None => String::new(),
                    }
                ),
            }),
        );
    }
    let mut multiples: Vec<f64> = results
        .iter()
        .flat_map(|r| r.latency.iter().filter_map(|l| l.of_capacity))
        .collect();
    multiples.sort_by(f64::total_cmp);
    multiples.dedup();
    for m in multiples {
        let goal = if m < 1.0 { "p99 <= 1,000" } else { "" };
        row(
            format!("latency at {}: rate/s, p50 / p99 / max (ms)", of_c(m)),
            goal,
            Box::new(move |r| match r.latency_of(m) {
                None => "-".into(),
                Some(l) => format!(
                    "{}: {} / {} / {}{}",
                    f(l.rate, 1),
                    f(l.p50_ms, 0),
                    f(l.p99_ms, 0),
                    opt(l.max_ms, 0),
                    missing(l)
                ),
            }),
        );
        if m >= 1.0 {
            let goal = if m == 1.0 {
                "every object within its backlog ÷ C + 1 s (0 over)"
            } else {
                "grows with the backlog only (0 over backlog ÷ C + 1 s)"
            };
            row(
                format!(
                    "latency at {}: max / largest bound (ms), largest backlog, over their bound",
                    of_c(m)
                ),
                goal,
                Box::new(move |r| match r.latency_of(m) {
                    None => "-".into(),
                    Some(l) => format!(
                        "{} / {}, {}, {} of {} over",
                        opt(l.max_ms, 0),
                        opt(l.bound_ms, 0),
                        l.max_backlog.map_or("n/a".into(), fmt_n),
                        l.over_bound.map_or("n/a".into(), fmt_n),
                        fmt_n(l.created)
                    ),
                }),
            );
        }
        if results
            .iter()
            .any(|r| r.latency_of(m).is_some_and(|l| l.queue.is_some()))
        {
            row(
                format!(
                    "latency at {}: mean (ms): queue wait, reconcile (% of the mean); their p99",
                    of_c(m)
                ),
                "",
                Box::new(move |r| r.latency_of(m).map_or("-".into(), queue_cell)),
            );
        }
    }
    let mut fixed: Vec<f64> = results
        .iter()
        .flat_map(|r| {
            r.latency
                .iter()
                .filter(|l| l.of_capacity.is_none())
                .map(|l| l.rate)
        })
        .collect();
    fixed.sort_by(f64::total_cmp);
    fixed.dedup();
    for rate in fixed {
        row(
            format!("latency p50 / p99 at {rate}/s (ms)"),
            "",
            Box::new(move |r| r.latency_at(rate)),
        );
    }
    if results.iter().any(|r| r.fairness.is_some()) {
        row(
            "fairness: quiet namespace's p99 during a burst ÷ alone (ms; burst, drained in)".into(),
            "<= 2",
            Box::new(|r| match &r.fairness {
                None => "-".into(),
                Some(fa) => format!(
                    "{} ({} / {}; {} at {}/s; {} in {} s{})",
                    f(fa.during.p99_ms / fa.alone.p99_ms, 2),
                    f(fa.during.p99_ms, 0),
                    f(fa.alone.p99_ms, 0),
                    fmt_n(fa.during.created),
                    fa.quiet_rate,
                    fmt_n(fa.burst),
                    f(fa.burst_drain_s, 1),
                    fa.burst_in_flight
                        .map_or(String::new(), |k| format!(", creates in flight: {k}"))
                ),
            }),
        );
        row(
            "fairness: the same, p50 during ÷ alone (ms)".into(),
            "<= 2",
            Box::new(|r| match &r.fairness {
                None => "-".into(),
                Some(fa) => ratio_of(&fa.during, &fa.alone, |l| l.p50_ms),
            }),
        );
        row(
            "fairness from the create's answer (without its wait at the API server behind the burst's creates): p50, p99 during ÷ alone (ms)".into(),
            "<= 2",
            Box::new(|r| match r.fairness.as_ref().and_then(|fa| Some((fa.during_answered.as_ref()?, fa.alone_answered.as_ref()?))) {
                None => "-".into(),
                Some((during, alone)) => format!(
                    "{}, {}",
                    ratio_of(during, alone, |l| l.p50_ms),
                    ratio_of(during, alone, |l| l.p99_ms)
                ),
            }),
        );
        row(
            "fairness after the burst's last create was answered (its drain, without the create storm at the API server): p50, p99 ÷ alone (ms; quiet creates; storm lasted)".into(),
            "<= 2",
            Box::new(|r| match r.fairness.as_ref().and_then(|fa| Some((fa.after_creates.as_ref()?, fa, fa.burst_creates_s?))) {
                None => "-".into(),
                Some((after, fa, storm)) => format!(
                    "{}, {} ({}; {} s)",
                    ratio_of(after, &fa.alone, |l| l.p50_ms),
                    ratio_of(after, &fa.alone, |l| l.p99_ms),
                    fmt_n(after.created),
                    f(storm, 1)
                ),
            }),
        );
        row(
            "fairness floor: the quiet creates' own answers during the burst (sent to answered, before any controller acts), p50, p99 ÷ alone's whole path (ms)".into(),
            "above 2: out of any controller's reach here",
            Box::new(|r| match r.fairness.as_ref().and_then(|fa| Some((fa.during_create.as_ref()?, fa))) {
                None => "-".into(),
                Some((create, fa)) => format!(
                    "{}, {}",
                    ratio_of(create, &fa.alone, |l| l.p50_ms),
                    ratio_of(create, &fa.alone, |l| l.p99_ms)
                ),
            }),
        );
    }
    if results.iter().any(|r| r.n == 50_000) {
        let at_50k = |x: fn(&RunResult) -> f64| -> Cell {
            Box::new(move |r| {
                if r.n == 50_000 {
                    f(x(r), 1)
                } else {
                    "-".into()
                }
            })
        };
        row(
            "50,000 SealedSecrets: peak RSS (MiB)".into(),
            "< 200",
            at_50k(|r| r.cold_rss_mib.max(r.warm_rss_mib)),
        );
        row(
            "50,000 SealedSecrets: warm restart (s)".into(),
            "<= 10, no decryption",
            at_50k(|r| r.warm_s),
        );
    }
    rows
}

fn missing(l: &Latency) -> String {
    if l.missing > 0 {
        format!(" ({} of {} missing)", l.missing, l.created)
    } else {
        String::new()
    }
}

/// `120: queue 80 (67%), reconcile 30 (25%); p99 400, 90`: the mean create-to-Secret latency,
/// the mean queue wait and reconcile of the controller's histograms over the phase with their
/// shares of that mean, and the histograms' p99. The shares need not add up to 100%: the rest
/// is the create request and the two watches, and a reconcile goes on after its Secret
/// appears (the status write, the Event), so its share can pass 100% when nothing queues.
fn queue_cell(l: &Latency) -> String {
    let (Some(q), Some(mean)) = (&l.queue, l.mean_ms) else {
        return "n/a (no queue histograms)".into();
    };
    let share = |x: f64| {
        if mean > 0.0 {
            format!("{}%", f(100.0 * x / mean, 0))
        } else {
            "n/a".into()
        }
    };
    format!(
        "{}: queue {} ({}), reconcile {} ({}); p99 {}, {}",
        f(mean, 0),
        f(q.wait_mean_ms, 0),
        share(q.wait_mean_ms),
        f(q.work_mean_ms, 0),
        share(q.work_mean_ms),
        f(q.wait_p99_ms, 0),
        f(q.work_p99_ms, 0)
    )
}

/// Each sharded run beside the single replica on the same data (ours, same data set, N and
/// key backend): every replica's peak RSS and CPU as a share of the single one's.
fn sharded_table(results: &[RunResult]) -> String {
    let mut out = String::new();
    for s in results {
        let Some(sh) = &s.sharded else { continue };
        let single = results.iter().find(|r| {
            r.sharded.is_none()
                && r.controller == s.controller
                && r.data == s.data
                && r.n == s.n
                && r.key_backend == s.key_backend
        });
        if out.is_empty() {
            out.push_str("| sharded run: replica | Secrets correct | peak RSS (MiB, % of single) | CPU, cold start to idle (s, % of single) | RSA operations per value | warm restart: peak RSS (MiB), CPU (s) |\n|---|---:|---:|---:|---:|---:|\n");
        }
        let pct = |x: f64, of: Option<f64>| match of.filter(|o| *o > 0.0) {
            Some(o) => format!("{} ({}%)", f(x, 1), f(100.0 * x / o, 0)),
            None => f(x, 1),
        };
        let per_value = |rsa: Option<f64>| opt(rsa.map(|x| x / s.values.max(1) as f64), 2);
        if let Some(one) = single {
            out.push_str(&format!(
                "| {} (single replica) | - | {} | {} | {} | {}, {} |\n",
                one.label(),
                f(one.cold_rss_mib, 1),
                f(one.cold_cpu_s, 1),
                per_value(one.cold_rsa),
                f(one.warm_rss_mib, 1),
                f(one.warm_cpu_s, 1)
            ));
        }
        for r in &sh.replicas {
            out.push_str(&format!(
                "| {}: {}{} | {} of {} | {} | {} | {} | {}, {} |\n",
                s.label(),
                r.name,
                if r.leader { " (leader)" } else { "" },
                fmt_n(sh.secrets_correct),
                fmt_n(s.n),
                pct(r.cold_rss_mib, single.map(|o| o.cold_rss_mib)),
                pct(r.cold_cpu_s, single.map(|o| o.cold_cpu_s)),
                per_value(r.cold_rsa),
                f(r.warm_rss_mib, 1),
                f(r.warm_cpu_s, 1)
            ));
        }
        // The floor: a member holding a third of the objects at no cost of its own for
        // sharding still carries a whole process's idle baseline.
        if let Some((one, idle)) = single.and_then(|o| Some((o, o.idle_rss_mib?))) {
            let least = idle + (one.cold_rss_mib - idle) / 3.0;
            out.push_str(&format!(
                "| {}: floor, a member with a third of the single replica's peak above its idle {} MiB | | {} | | | |\n",
                s.label(),
                f(idle, 1),
                pct(least, Some(one.cold_rss_mib)),
            ));
        }
        out.push_str(&format!(
            "| {}: all, every Secret present after {} s (single: {}) | | | {} | {} | warm restart {} s |\n",
            s.label(),
            f(s.cold_wall_s, 1),
            single.map_or("n/a".into(), |o| f(o.cold_wall_s, 1)),
            f(s.cold_cpu_s, 1),
            per_value(s.cold_rsa),
            f(s.warm_s, 1)
        ));
    }
    if !out.is_empty() {
        out.push_str(
            "| goal | every one | <= 45% each | <= 40% each | no value opened twice | |\n",
        );
    }
    out
}

/// One line per latency phase of every run: rate, counts, percentiles, the backlog bound
/// and where the time went (the controller's histograms).
fn latency_table(results: &[RunResult]) -> String {
    let mut out = String::new();
    for r in results {
        // Phases of older results have none of these figures: their rows say it all.
        for l in r.latency.iter().filter(|l| l.secs.is_some()) {
            if out.is_empty() {
                out.push_str("| latency phase | rate/s x s | p50 / p99 / max (ms) | largest backlog, bound (ms), over | mean (ms): queue wait, reconcile (% of the mean); their p99 |\n|---|---:|---:|---:|---|\n");
            }
            out.push_str(&format!(
                "| {} at {} | {} x {}{} | {} / {} / {} | {}, {}, {} |{}|\n",
                r.label(),
                l.of_capacity.map_or(format!("{}/s", l.rate), of_c),
                f(l.rate, 1),
                l.secs.map_or("?".into(), |s| s.to_string()),
                missing(l),
                f(l.p50_ms, 0),
                f(l.p99_ms, 0),
                opt(l.max_ms, 0),
                l.max_backlog.map_or("n/a".into(), fmt_n),
                opt(l.bound_ms, 0),
                l.over_bound.map_or("n/a".into(), fmt_n),
                if l.queue.is_some() {
                    format!(" {} ", queue_cell(l))
                } else if l.mean_ms.is_some() {
                    " n/a (no queue histograms) ".into()
                } else {
                    " ".into()
                }
            ));
        }
    }
    out
}

/// Each key backend beside keys in memory (same controller, data and N): the figures, the
/// ratio to the in-memory run in parentheses, and the calls to the backend (docs/benchmarks.md,
/// "Where the private keys are").
fn key_backend_table(backends: &[(&RunResult, &RunResult)]) -> String {
    let mut out = String::from(
        "| key backend | cold start, every Secret (s) | controller CPU, cold (s) | warm restart (s) | backend calls, cold (per value) | backend calls, warm restart |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let with_ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{} ({})", f(a, 1), f(a / b, 2))
        } else {
            f(a, 1)
        }
    };
    let mut memory_rows: Vec<&RunResult> = Vec::new();
    for (b, m) in backends {
        if !memory_rows.contains(m) {
            memory_rows.push(m);
            out.push_str(&format!(
                "| {} | {} | {} | {} | - | - |\n",
                m.label(),
                f(m.cold_wall_s, 1),
                f(m.cold_cpu_s, 1),
                f(m.warm_s, 1),
            ));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            b.label(),
            with_ratio(b.cold_wall_s, m.cold_wall_s),
            with_ratio(b.cold_cpu_s, m.cold_cpu_s),
            with_ratio(b.warm_s, m.warm_s),
            RunResult::key_calls(
                b.cold_key_calls,
                Some(b.key_calls_per_value()),
                b.cold_key_other_calls
            ),
            RunResult::key_calls(b.warm_key_calls, None, b.warm_key_other_calls),
        ));
    }
    out
}

impl RunResult {
    fn cpu_per_value_ratio_s(&self) -> String {
        f(self.cpu_per_value_ratio(), 2)
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring a process.
// ---------------------------------------------------------------------------------------------

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime+stime of `pid` in seconds (all its threads).
fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// Peak resident set size (VmHWM) of `pid` in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM:").map(|kb| kb / 1024.0)
}

/// A `kB` field (`field` with its colon) of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resident set size now (VmRSS) of `pid` in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS:").map(|kb| kb / 1024.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Samples the controller's CPU every 250 ms until `done` holds and no 250 ms interval of the
/// last 3 seconds used more than 25 ms of CPU (10% of a core; a clock tick is 10 ms). Returns (seconds from `start` until it went idle, CPU used since
/// `cpu0`).
fn wait_idle(
    c: &InCluster,
    start: Instant,
    cpu0: f64,
    ticks: f64,
    timeout: Duration,
    what: &str,
    done: impl FnMut() -> bool,
) -> (f64, f64) {
    let (idle_at, cpu) = wait_idle_all(&[c], start, ticks, timeout, what, done);
    (idle_at, cpu[0] - cpu0)
}

/// [`wait_idle`] for several processes (the replicas of a sharded run): idle when every one
/// is. Returns the time the last went idle and each one's CPU at that moment (since it
/// started).
fn wait_idle_all(
    cs: &[&InCluster],
    start: Instant,
    ticks: f64,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> (f64, Vec<f64>) {
    let pids: Vec<u32> = cs.iter().map(|c| c.process.id().unwrap()).collect();
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); cs.len()];
    let mut is_done = false;
    loop {
        let t = start.elapsed().as_secs_f64();
        for (i, (c, pid)) in cs.iter().zip(&pids).enumerate() {
            let cpu = cpu_seconds(*pid, ticks)
                .unwrap_or_else(|| panic!("{what}: the controller exited:\n{}", c.process.log()));
            samples[i].push((t, cpu));
        }
        is_done = is_done || done();
        if is_done {
            let idle_at = samples
                .iter()
                .map(|s| busy_until(s, 0.025))
                .fold(0.0, f64::max);
            if t - idle_at >= 3.0 {
                // CPU at the moment the last went idle.
                let cpu = samples
                    .iter()
                    .map(|s| {
                        s.iter()
                            .find(|s| s.0 >= idle_at)
                            .map_or(s[s.len() - 1].1, |s| s.1)
                    })
                    .collect();
                return (idle_at, cpu);
            }
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not done and idle within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------------
// The data.
// ---------------------------------------------------------------------------------------------

/// The 13 keys, oldest first, with PEM of key and certificate: read from `dir`, or generated
/// (RSA-4096, NotBefore 13..1 hours ago) and stored there.
fn keys(dir: &Path) -> Vec<(PrivateKey, String)> {
    std::fs::create_dir_all(dir).unwrap();
    (0..KEYS)
        .map(|i| {
            let kp = dir.join(format!("key{i:02}.pem"));
            let cp = dir.join(format!("cert{i:02}.pem"));
            if let (Ok(k), Ok(c)) = (std::fs::read(&kp), std::fs::read_to_string(&cp)) {
                return (PrivateKey::from_pem(&k).unwrap(), c);
            }
            let key = PrivateKey::generate(4096).unwrap();
            let cert = key
                .self_signed_certificate(&CertParams {
                    not_before: SystemTime::now() - Duration::from_secs(3600 * (KEYS - i) as u64),
                    ..Default::default()
                })
                .unwrap();
            std::fs::write(&kp, key.to_pkcs1_pem().as_bytes()).unwrap();
            std::fs::write(&cp, cert.pem()).unwrap();
            (key, cert.pem().to_owned())
        })
        .collect()
}

/// The post-quantum identity beside each of the 13 keys (as our controller generates one per
/// key, in the key Secret's `age.key`): read from `dir`, or generated and stored there.
fn pq_identities(dir: &Path) -> Vec<PqIdentity> {
    (0..KEYS)
        .map(|i| {
            let p = dir.join(format!("age{i:02}.txt"));
            if let Ok(text) = std::fs::read_to_string(&p) {
                return text.trim().parse().unwrap();
            }
            let id = PqIdentity::generate().unwrap();
            std::fs::write(&p, format!("{}\n", id.to_age_string().as_str())).unwrap();
            id
        })
        .collect()
}

/// One RSA-4096 decrypt (one value opened by a ring of one key), median of 21, in ms.
fn one_decrypt_ms(key: &PrivateKey) -> f64 {
    let label = Scope::Strict.label("ns", "name");
    let ct =
        sealed_secrets_crypto::seal(key.public_key(), &label, b"a value of some bytes").unwrap();
    let mut ring = KeyRing::new();
    ring.insert(key.clone());
    let times: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            ring.open(&label, &ct, &[]).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    percentile(&times, 0.5)
}

fn value_of(name: &str, k: usize) -> String {
    format!("{name}-value-{k}-{}", "x".repeat(24))
}

/// SealedSecrets `names[i]` sealed with key `key_of(i)`, as JSON, with or without our hint;
/// with `pq`, to that key's post-quantum recipient instead (the format carries its own hint).
fn seal_objects(
    ns: &str,
    keys: &[(PrivateKey, String)],
    pq: Option<&[PqIdentity]>,
    names: &[String],
    key_of: impl Fn(usize) -> usize,
    hinted: bool,
) -> Vec<Value> {
    let mut out: Vec<Option<Value>> = vec![None; names.len()];
    for (k, (key, _)) in keys.iter().enumerate() {
        let idx: Vec<usize> = (0..names.len()).filter(|&i| key_of(i) == k).collect();
        if idx.is_empty() {
            continue;
        }
        let items: Vec<Value> = idx
            .iter()
            .map(|&i| {
                let data: serde_json::Map<String, Value> = (0..VALUES_PER_OBJECT)
                    .map(|v| (format!("k{v}"), Value::from(value_of(&names[i], v))))
                    .collect();
                json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": names[i], "namespace": ns}, "stringData": data})
            })
            .collect();
        let input = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        let rsa = [key.public_key()];
        let pq_recipient = pq.map(|ids| [ids[k].recipient()]);
        let recipients = match &pq_recipient {
            Some(r) => Recipients::PostQuantum(r),
            None => Recipients::Rsa(&rsa),
        };
        let sealed = seal_manifests(input.as_bytes(), recipients, &SealOptions::default()).unwrap();
        assert_eq!(sealed.len(), idx.len());
        for (&i, ss) in idx.iter().zip(sealed) {
            let mut v = serde_json::to_value(&ss).unwrap();
            let annotations = &mut v["metadata"]["annotations"];
            if pq.is_some() {
                // The recipients stanza is the hint; no annotation to add or remove.
            } else if !hinted {
                if let Some(a) = annotations.as_object_mut() {
                    a.remove(SEALING_KEY);
                }
            } else {
                assert!(annotations.get(SEALING_KEY).is_some(), "no hint: {v}");
            }
            out[i] = Some(v);
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// The creates in flight at once of the benchmark's bursts.
const IN_FLIGHT: usize = 32;

/// Creates `objects` in `ns` as fast as the API server takes them, `in_flight` at a time.
async fn create_all(client: &kube::Client, ns: &str, objects: Vec<Value>, in_flight: usize) {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(objects)
        .map(|v| {
            let api = api.clone();
            async move {
                let ss: SealedSecret = serde_json::from_value(v).unwrap();
                api.create(&PostParams::default(), &ss).await.unwrap();
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
}

// ---------------------------------------------------------------------------------------------
// The cluster.
// ---------------------------------------------------------------------------------------------

fn audit_policy() -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\n\
         rules:\n- level: Metadata\n  users:\n  - system:serviceaccount:{CTRL_NS}:{OURS_SA}\n  \
         - system:serviceaccount:{CTRL_NS}:{UPSTREAM_SA}\n- level: None\n"
    )
}

/// The audit log's files in order: the API server rotates `audit.log` at 100 MB (its default
/// `--audit-log-maxsize`) into `audit-<timestamp>.log` backups, which sort by name and all
/// come before the current file. Offsets into their concatenation stay valid across rotations.
fn audit_files(log: &Path) -> Vec<PathBuf> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".log"))
        })
        .collect();
    backups.sort();
    backups.push(log.to_owned());
    backups
}

/// Requests in the audit log from byte `from` (of all its files, [`audit_files`]) to the
/// end, by verb and resource; and the end's offset.
fn audit_counts(log: &Path, from: u64) -> (BTreeMap<String, u64>, u64) {
    let mut text = Vec::new();
    for f in audit_files(log) {
        text.extend(std::fs::read(f).unwrap_or_default());
    }
    let from = (from as usize).min(text.len());
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&text[from..]).lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        *counts.entry(audit_key(&e)).or_insert(0) += 1;
    }
    (counts, text.len() as u64)
}

/// What [`audit_counts`] counts an audit event as: verb and resource, and for a read of one
/// object with a `resourceVersion`, "(watch cache)": the API server answers it from its
/// cache, without the quorum read from etcd a read without one costs.
fn audit_key(e: &Value) -> String {
    let verb = e["verb"].as_str().unwrap_or("?");
    let resource = e["objectRef"]["resource"].as_str().unwrap_or("-");
    let sub = e["objectRef"]["subresource"]
        .as_str()
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    let query = e["requestURI"]
        .as_str()
        .and_then(|u| u.split_once('?'))
        .map_or("", |(_, q)| q);
    let cached = verb == "get"
        && query.split('&').any(|p| {
            p.strip_prefix("resourceVersion=")
                .is_some_and(|v| !v.is_empty())
        });
    let from = if cached { " (watch cache)" } else { "" };
    format!("{verb} {resource}{sub}{from}")
}

fn kubectl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> String {
    cluster
        .kubectl_run(args, stdin)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

/// `deploy/base`, upstream's chart RBAC, the key Secrets and the bench namespace.
fn prepare(cluster: &Cluster, keys: &[(PrivateKey, String)], pq: &[PqIdentity]) {
    let base = workspace_root().join("deploy/base");
    kubectl(cluster, &["apply", "-k", &base.to_string_lossy()], None);
    kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=60s",
        ],
        None,
    );
    let rbac = upstream_rbac_manifest(CTRL_NS).unwrap_or_else(|e| panic!("{e}"));
    kubectl(cluster, &["apply", "-f", "-"], Some(&rbac));
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let items: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, (key, cert))| {
            // `age.key` as our controller writes it; upstream's ignores the extra field.
            let age = format!("{}\n", pq[i].to_age_string().as_str());
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": format!("sealed-secrets-key{i:02}"), "namespace": CTRL_NS,
                             "labels": {KEY_LABEL: "active"}},
                "data": {"tls.key": b64(&key.to_pkcs1_pem()), "tls.crt": b64(cert),
                         AGE_KEY_FIELD: b64(&age)}})
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    kubectl(cluster, &["create", "-f", "-"], Some(&list.to_string()));
    for ns in [BENCH_NS, NOISY_NS, QUIET_NS] {
        kubectl(cluster, &["create", "namespace", ns], None);
    }
}

/// Ours with `deploy/base`'s args and environment (Downward API values filled in as the
/// kubelet would), listeners on loopback; upstream's with its defaults.
fn start_controller(
    cluster: &Cluster,
    which: &str,
    upstream_args: &[String],
    keys: &KeyBackend,
) -> InCluster {
    let mut c = spawn_controller(cluster, which, upstream_args, keys, None, &[]);
    c.wait_cert(Duration::from_secs(120)).unwrap();
    c
}

/// `replicas` of ours, each a shard member: `deploy/base`'s args plus `--sharding` (leader
/// election stays on, as sharding requires), each with its own `POD_NAME` (its member
/// identity), started together; returns once one serves its certificate.
fn start_shards(cluster: &Cluster, keys: &KeyBackend, replicas: usize) -> Vec<InCluster> {
    let mut cs: Vec<InCluster> = (0..replicas)
        .map(|i| {
            spawn_controller(
                cluster,
                "ours",
                &[],
                keys,
                Some(format!("{OURS_SA}-shard-{i}")),
                &["--sharding".to_owned()],
            )
        })
        .collect();
    let first = eventually_blocking(
        "a shard member to serve its certificate",
        Duration::from_secs(120),
        || cs.iter().position(|c| c.cert().is_some()),
    );
    cs[first].wait_cert(Duration::from_secs(1)).unwrap();
    cs
}

/// Starts a controller without waiting for its certificate; `pod_name` replaces the
/// Downward API's pod name (ours), `extra` is added to its args.
fn spawn_controller(
    cluster: &Cluster,
    which: &str,
    upstream_args: &[String],
    keys: &KeyBackend,
    pod_name: Option<String>,
    extra: &[String],
) -> InCluster {
    if which == "upstream" {
        let sa = service_account_dir(cluster, CTRL_NS, UPSTREAM_SA).unwrap();
        InCluster::start(
            cluster,
            &sa,
            &upstream_binary("controller").unwrap(),
            upstream_args,
            &[],
        )
        .unwrap()
    } else {
        let sa = service_account_dir(cluster, CTRL_NS, OURS_SA).unwrap();
        let deploy: Value = serde_json::from_str(&kubectl(
            cluster,
            &["get", "deployment", OURS_SA, "-n", CTRL_NS, "-o", "json"],
            None,
        ))
        .unwrap();
        let container = &deploy["spec"]["template"]["spec"]["containers"][0];
        let mut args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|a| !a.starts_with("--listen-addr") && !a.starts_with("--listen-metrics-addr"))
            .map(str::to_owned)
            .collect();
        args.extend(keys.args.iter().cloned());
        args.extend(extra.iter().cloned());
        let mut env: Vec<(String, String)> = Vec::new();
        for e in container["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => CTRL_NS.to_owned(),
                Some("metadata.name") => pod_name
                    .clone()
                    .unwrap_or_else(|| format!("{OURS_SA}-{}", random_suffix(5))),
                Some(other) => panic!("unexpected fieldRef {other} in deploy/base"),
                None => e["value"].as_str().unwrap_or_default().to_owned(),
            };
            env.push((name, value));
        }
        env.extend(keys.env.iter().cloned());
        // `BENCH_OURS_LOG`: our controller's RUST_LOG (say, the reconcile phases of each
        // object: `info,sealed_secrets_controller::reconcile::apply=debug`).
        if let Some(filter) = std::env::var("BENCH_OURS_LOG")
            .ok()
            .filter(|f| !f.is_empty())
        {
            env.push(("RUST_LOG".to_owned(), filter));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        // `BENCH_OURS_BINARY`: another build of ours (say, a copy of the previous commit's),
        // to compare two builds on the same data.
        let binary = std::env::var_os("BENCH_OURS_BINARY")
            .filter(|b| !b.is_empty())
            .map_or_else(
                || binary_path("sealed-secrets-controller").unwrap(),
                PathBuf::from,
            );
        // `BENCH_HEAPTRACK_WRAPPER` (tests/bench/controllers.sh with BENCH_HEAPTRACK=1): a
        // script that runs the binary given as its first argument under heaptrack's preload
        // library, keeping the controller's pid (so stopping it stops the profiled process).
        match std::env::var_os("BENCH_HEAPTRACK_WRAPPER").filter(|w| !w.is_empty()) {
            Some(wrapper) => {
                let mut wrapped = vec![binary.to_string_lossy().into_owned()];
                wrapped.extend(args);
                InCluster::start(cluster, &sa, Path::new(&wrapper), &wrapped, &env).unwrap()
            }
            None => InCluster::start(cluster, &sa, &binary, &args, &env).unwrap(),
        }
    }
}

/// Stops the controller; under heaptrack with SIGKILL, so that the profile's "leaked"
/// allocations are what the controller held at that moment (a clean exit frees them).
fn stop(c: &mut InCluster) {
    if std::env::var_os("BENCH_HEAPTRACK_WRAPPER").is_some_and(|w| !w.is_empty())
        && let Some(pid) = c.process.id()
    {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    c.process.stop();
}

/// `name` summed over several controllers (the replicas of a sharded run); `None` when none
/// has it.
fn sum_metric(cs: &[InCluster], name: &str) -> Option<f64> {
    cs.iter()
        .filter_map(|c| metric(c, name))
        .reduce(|a, b| a + b)
}

fn metric(c: &InCluster, name: &str) -> Option<f64> {
    c.metrics_text()
        .ok()
        .filter(|t| t.contains(name))
        .map(|t| metric_sum(&t, name))
}

/// First time each Secret of the bench namespace was seen, by name.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn watch_secrets(client: &kube::Client, ns: &str) -> Seen {
    let seen: Seen = Arc::default();
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), ns);
    let record = seen.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Ok(Some(ev)) = stream.try_next().await {
            if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = ev {
                let name = o.metadata.name.unwrap_or_default();
                record
                    .lock()
                    .unwrap()
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
    });
    seen
}

fn count_seen(seen: &Seen, prefix: &str) -> usize {
    seen.lock()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with(prefix))
        .count()
}

/// Checks a sample of the produced Secrets against the values sealed.
async fn check_sample(client: &kube::Client, names: &[String]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), BENCH_NS);
    let step = (names.len() / 25).max(1);
    for name in names.iter().step_by(step) {
        let s = api.get(name).await.unwrap();
        let data = s.data.unwrap_or_default();
        for k in 0..VALUES_PER_OBJECT {
            let got = data
                .get(&format!("k{k}"))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned());
            assert_eq!(
                got.as_deref(),
                Some(value_of(name, k).as_str()),
                "Secret {BENCH_NS}/{name} key k{k}"
            );
        }
    }
}

/// Counts the Secrets of `names` whose every value is the one sealed (all of them, read in
/// list pages): a sharded run's proof that every object was served, and served right.
async fn count_correct(client: &kube::Client, names: &[String]) -> usize {
    let api: Api<Secret> = Api::namespaced(client.clone(), BENCH_NS);
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut correct = 0;
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.unwrap();
        for s in &page.items {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            if !wanted.contains(name) {
                continue;
            }
            let data = s.data.clone().unwrap_or_default();
            if (0..VALUES_PER_OBJECT).all(|k| {
                data.get(&format!("k{k}"))
                    .is_some_and(|b| b.0 == value_of(name, k).as_bytes())
            }) {
                correct += 1;
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => return correct,
        }
    }
}

/// Creates `objects` (named `names`) in `ns`, one every `1 / rate` seconds from the call,
/// until `stop` holds; returns when each create was sent and answered, by name.
async fn paced_creates(
    client: &kube::Client,
    ns: &str,
    names: &[String],
    objects: Vec<Value>,
    rate: f64,
    stop: impl Fn() -> bool,
) -> Sent {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, (name, v)) in names.iter().zip(objects).enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        if stop() {
            break;
        }
        let (api, sent, name) = (api.clone(), sent.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            let ss: SealedSecret = serde_json::from_value(v).unwrap();
            sent.lock()
                .unwrap()
                .sent
                .insert(name.clone(), Instant::now());
            api.create(&PostParams::default(), &ss).await.unwrap();
            sent.lock().unwrap().answered.insert(name, Instant::now());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(sent).unwrap().into_inner().unwrap()
}

/// When each create of [`paced_creates`] was sent, and when the API server answered it.
#[derive(Debug, Default)]
struct Sent {
    sent: HashMap<String, Instant>,
    answered: HashMap<String, Instant>,
}

/// Waits until `count` Secrets named `prefix…` were seen; fails the `phase` when that takes
/// `timeout` since `t0`.
async fn await_prefix(
    seen: &Seen,
    prefix: &str,
    count: usize,
    (t0, timeout): (Instant, Duration),
    phase: &str,
) {
    while count_seen(seen, prefix) < count {
        assert!(
            t0.elapsed() < timeout,
            "{phase}: {} of {count} Secrets after {timeout:?}",
            count_seen(seen, prefix)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every one of `sent` has its Secret in `seen`, at most `wait`.
async fn await_seen(seen: &Seen, sent: &HashMap<String, Instant>, wait: Duration) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let all = {
            let seen = seen.lock().unwrap();
            sent.keys().all(|n| seen.contains_key(n))
        };
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (seconds from `t0` the create was sent, create-to-Secret latency in seconds) of each
/// object in `sent`; `None` for a Secret never seen.
fn samples(sent: &HashMap<String, Instant>, seen: &Seen, t0: Instant) -> Vec<(f64, Option<f64>)> {
    round_trips(sent, &seen.lock().unwrap(), t0)
}

/// The latency figures of one phase from its [`samples`]; with `capacity`, each object is
/// held to its backlog bound ([`load::backlog_report`]).
fn summarize(
    rate: f64,
    of_capacity: Option<f64>,
    secs: u32,
    samples: &[(f64, Option<f64>)],
    capacity: Option<f64>,
) -> Latency {
    let lat: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.1)
        .map(|l| l * 1000.0)
        .collect();
    let backlog: Option<BacklogReport> = capacity
        .filter(|c| *c > 0.0)
        .map(|c| load::backlog_report(samples, c));
    Latency {
        rate,
        created: samples.len(),
        missing: samples.len() - lat.len(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        of_capacity,
        secs: Some(secs),
        max_ms: Some(lat.iter().copied().fold(f64::NAN, f64::max)),
        mean_ms: Some(if lat.is_empty() {
            f64::NAN
        } else {
            lat.iter().sum::<f64>() / lat.len() as f64
        }),
        bound_ms: backlog.as_ref().map(|b| b.max_bound_s * 1000.0),
        max_backlog: backlog.as_ref().map(|b| b.max_backlog),
        over_bound: backlog.as_ref().map(|b| b.over_bound),
        queue: None,
    }
}

/// The reconcile histograms between two reads of the controller's /metrics.
fn queue_share(before: &str, after: &str) -> Option<QueueShare> {
    let read = |name: &str| {
        let a = Histogram::parse(after, name)?;
        Some(Histogram::parse(before, name).map_or(a.clone(), |b| a.since(&b)))
    };
    let (wait, work) = (read(QUEUE_WAIT_METRIC)?, read(RECONCILE_METRIC)?);
    Some(QueueShare {
        reconciles: work.count,
        wait_mean_ms: wait.mean() * 1000.0,
        wait_p99_ms: wait.quantile(0.99) * 1000.0,
        work_mean_ms: work.mean() * 1000.0,
        work_p99_ms: work.quantile(0.99) * 1000.0,
    })
}

fn metrics_now(c: &InCluster) -> String {
    tokio::task::block_in_place(|| c.metrics_text().unwrap_or_default())
}

/// Capacity C: `count` SealedSecrets (newest key, hinted as the data set) created as fast
/// as the API server takes them while the controller runs; objects a second from the first
/// create to the last Secret.
async fn capacity_phase(
    client: &kube::Client,
    keys: &[(PrivateKey, String)],
    seen: &Seen,
    hinted: bool,
    count: usize,
    timeout: Duration,
) -> Capacity {
    let names: Vec<String> = (0..count).map(|i| format!("cap-{i:05}")).collect();
    let objects = tokio::task::block_in_place(|| {
        seal_objects(BENCH_NS, keys, None, &names, |_| KEYS - 1, hinted)
    });
    let t0 = Instant::now();
    create_all(client, BENCH_NS, objects, IN_FLIGHT).await;
    let created_s = t0.elapsed().as_secs_f64();
    await_prefix(seen, "cap-", count, (t0, timeout), "capacity").await;
    let last = {
        let seen = seen.lock().unwrap();
        names
            .iter()
            .filter_map(|n| seen.get(n))
            .max()
            .copied()
            .unwrap()
    };
    let span_s = last.duration_since(t0).as_secs_f64();
    Capacity {
        objects: count,
        span_s,
        per_s: load::per_second(count, 0.0, span_s),
        creates_per_s: load::per_second(count, 0.0, created_s),
        ..Capacity::default()
    }
}

/// How long the sustained measure paces its creates, and how much of the start it leaves out
/// (the backlog builds up and the controller's slots fill).
const SUSTAINED_SECS: f64 = 12.0;
const SUSTAINED_SKIP_SECS: f64 = 3.0;

/// The burst's creates come at several hundred a second and end in a few seconds, so the
/// controller drains most of it with no create at the API server beside it; the latency phases
/// pace theirs. This paces creates at 1.5 x the burst's C and counts the Secrets served
/// between [`SUSTAINED_SKIP_SECS`] and the last create: when objects were still waiting at
/// the end (more than a second's worth), that rate is what the controller sustains while
/// creates keep coming, and it becomes C. Then it waits for all of them.
async fn sustained_phase(
    client: &kube::Client,
    keys: &[(PrivateKey, String)],
    seen: &Seen,
    hinted: bool,
    cap: &mut Capacity,
    timeout: Duration,
) {
    let rate = 1.5 * cap.per_s;
    let count = (rate * SUSTAINED_SECS).round().max(1.0) as usize;
    let names: Vec<String> = (0..count).map(|i| format!("sus-{i:05}")).collect();
    let objects = tokio::task::block_in_place(|| {
        seal_objects(BENCH_NS, keys, None, &names, |_| KEYS - 1, hinted)
    });
    let t0 = Instant::now();
    let sent = paced_creates(client, BENCH_NS, &names, objects, rate, || false).await;
    let last_sent = sent.sent.values().max().copied().unwrap_or(t0);
    let from = t0 + Duration::from_secs_f64(SUSTAINED_SKIP_SECS);
    let (served, left) = {
        let seen = seen.lock().unwrap();
        let at: Vec<Instant> = names.iter().filter_map(|n| seen.get(n)).copied().collect();
        let served = at
            .iter()
            .filter(|t| **t >= from && **t <= last_sent)
            .count();
        let by_end = at.iter().filter(|t| **t <= last_sent).count();
        (served, count - by_end)
    };
    let span = last_sent.saturating_duration_since(from).as_secs_f64();
    let per_s = load::per_second(served, 0.0, span);
    cap.sustained_rate = Some(rate);
    cap.sustained_backlog = Some(left);
    // A backlog under a second's worth at the end: the creates set the pace, not the
    // controller; the burst's C stays.
    if per_s.is_finite() && (left as f64) > per_s {
        cap.sustained_per_s = Some(per_s);
    }
    await_prefix(seen, "sus-", count, (t0, timeout), "sustained capacity").await;
}

/// Creates at `rate` a second for `secs` (SealedSecrets sealed with the newest key), then
/// waits for their Secrets; the controller's histograms over the phase when it has them.
#[allow(clippy::too_many_arguments)] // one phase's settings, named at the one call site
async fn latency_phase(
    client: &kube::Client,
    c: &InCluster,
    keys: &[(PrivateKey, String)],
    seen: &Seen,
    hinted: bool,
    (index, rate, of_capacity): (usize, f64, Option<f64>),
    secs: u32,
    capacity: Option<f64>,
) -> Latency {
    let count = (rate * f64::from(secs)).round().max(1.0) as usize;
    let prefix = format!("lat{index}-");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:05}")).collect();
    let objects = tokio::task::block_in_place(|| {
        seal_objects(BENCH_NS, keys, None, &names, |_| KEYS - 1, hinted)
    });
    let before = metrics_now(c);
    let t0 = Instant::now();
    let sent = paced_creates(client, BENCH_NS, &names, objects, rate, || false)
        .await
        .sent;
    // The backlog drained at C, and a minute more.
    let drain = capacity.map_or(0.0, |c| count as f64 / c);
    await_seen(seen, &sent, Duration::from_secs_f64(60.0 + 2.0 * drain)).await;
    let mut l = summarize(rate, of_capacity, secs, &samples(&sent, seen, t0), capacity);
    l.queue = queue_share(&before, &metrics_now(c));
    l
}

/// Fairness: the quiet namespace creates at `rate` alone for `alone_secs` (its baseline),
/// then again while `burst` creates in the noisy namespace drain; its latency over the
/// creates sent before the burst's last Secret appeared.
async fn fairness_phase(
    client: &kube::Client,
    keys: &[(PrivateKey, String)],
    hinted: bool,
    (burst, rate, alone_secs, in_flight): (usize, f64, u32, usize),
    capacity: Option<f64>,
    timeout: Duration,
) -> Fairness {
    let quiet_seen = watch_secrets(client, QUIET_NS);
    let noisy_seen = watch_secrets(client, NOISY_NS);
    // Their initial lists done before the first create, so that no Secret's first sighting
    // is the list's (later) instead of its own event's.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seal = |ns: &str, prefix: &str, count: usize| {
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:06}")).collect();
        let objects = tokio::task::block_in_place(|| {
            seal_objects(ns, keys, None, &names, |_| KEYS - 1, hinted)
        });
        (names, objects)
    };
    let alone_n = (rate * f64::from(alone_secs)).round().max(1.0) as usize;
    // Enough quiet objects for the burst to drain at a third of C, or the whole timeout.
    let during_s = capacity.map_or(timeout.as_secs_f64(), |c| {
        (3.0 * burst as f64 / c + 30.0).min(timeout.as_secs_f64())
    });
    // One create first, not counted: the first object of a namespace costs the API server
    // and the controller more (it took 45 ms to read where the next took 2), and that one
    // sample is the p99 of the baseline's 40.
    let (warmup_names, warmup_objects) = seal(QUIET_NS, "warmup-", 1);
    let (alone_names, alone_objects) = seal(QUIET_NS, "alone-", alone_n);
    let (during_names, during_objects) =
        seal(QUIET_NS, "during-", (rate * during_s).ceil() as usize);
    let (_, noisy_objects) = seal(NOISY_NS, "noisy-", burst);

    let warmup = paced_creates(
        client,
        QUIET_NS,
        &warmup_names,
        warmup_objects,
        rate,
        || false,
    )
    .await;
    await_seen(&quiet_seen, &warmup.sent, Duration::from_secs(60)).await;
    let t0 = Instant::now();
    let sent = paced_creates(client, QUIET_NS, &alone_names, alone_objects, rate, || {
        false
    })
    .await;
    await_seen(&quiet_seen, &sent.sent, Duration::from_secs(60)).await;
    let quiet = |from: &HashMap<String, Instant>, secs| {
        summarize(rate, None, secs, &samples(from, &quiet_seen, t0), None)
    };
    let (alone, alone_answered) = (
        quiet(&sent.sent, alone_secs),
        quiet(&sent.answered, alone_secs),
    );
    eprintln!("[bench] fairness: the quiet namespace alone: {alone:?}");

    let t0 = Instant::now();
    let noisy = {
        let client = client.clone();
        tokio::spawn(async move {
            create_all(&client, NOISY_NS, noisy_objects, in_flight).await;
            Instant::now()
        })
    };
    let drained = || count_seen(&noisy_seen, "noisy-") >= burst;
    let sent = paced_creates(
        client,
        QUIET_NS,
        &during_names,
        during_objects,
        rate,
        || drained() || t0.elapsed() > timeout,
    )
    .await;
    let creates_done = noisy.await.unwrap();
    while !drained() {
        assert!(
            t0.elapsed() < timeout,
            "fairness: {} of {burst} burst Secrets after {timeout:?}",
            count_seen(&noisy_seen, "noisy-")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_noisy = *noisy_seen.lock().unwrap().values().max().unwrap();
    await_seen(&quiet_seen, &sent.sent, Duration::from_secs(60)).await;
    // The creates sent before the burst's last Secret; from sending and from the answer.
    let during: HashMap<String, Instant> = sent
        .sent
        .iter()
        .filter(|(_, at)| **at < last_noisy)
        .map(|(n, at)| (n.clone(), *at))
        .collect();
    let during_answered: HashMap<String, Instant> = sent
        .answered
        .into_iter()
        .filter(|(n, _)| during.contains_key(n))
        .collect();
    let after_creates: HashMap<String, Instant> = during
        .iter()
        .filter(|(_, at)| **at > creates_done)
        .map(|(n, at)| (n.clone(), *at))
        .collect();
    let secs = last_noisy.duration_since(t0).as_secs() as u32;
    let drain_secs = last_noisy.saturating_duration_since(creates_done).as_secs() as u32;
    Fairness {
        burst,
        quiet_rate: rate,
        alone,
        during: quiet(&during, secs),
        burst_drain_s: last_noisy.duration_since(t0).as_secs_f64(),
        alone_answered: Some(alone_answered),
        during_answered: Some(quiet(&during_answered, secs)),
        after_creates: (!after_creates.is_empty()).then(|| quiet(&after_creates, drain_secs)),
        burst_creates_s: Some(creates_done.duration_since(t0).as_secs_f64()),
        during_create: Some(summarize(
            rate,
            None,
            secs,
            &round_trips(&during, &during_answered, t0),
            None,
        )),
        burst_in_flight: Some(in_flight),
    }
}

/// (seconds from `t0` each of `sent` was sent, seconds from its sending to its time in
/// `ended`) of every object in `sent`; `None` for one not in `ended`. [`samples`] with the
/// Secrets seen; the creates' own round trips with their answers.
fn round_trips(
    sent: &HashMap<String, Instant>,
    ended: &HashMap<String, Instant>,
    t0: Instant,
) -> Vec<(f64, Option<f64>)> {
    sent.iter()
        .map(|(n, s)| {
            (
                s.saturating_duration_since(t0).as_secs_f64(),
                ended
                    .get(n)
                    .map(|at| at.saturating_duration_since(*s).as_secs_f64()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run tests/bench/controllers.sh"]
async fn controller_run() {
    let cfg = RunConfig::from_env();
    assert!(
        std::env::var("SEALED_SECRETS_E2E_CLUSTER").is_ok_and(|v| v == "real"),
        "the benchmark runs on the real control plane: set SEALED_SECRETS_E2E_CLUSTER=real \
         (tests/bench/controllers.sh does)"
    );
    let ticks = clock_ticks();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let loadavg_start = loadavg();
    let t = Instant::now();
    let keys = tokio::task::block_in_place(|| keys(&cfg.keys_dir));
    let pq = pq_identities(&cfg.keys_dir);
    eprintln!("[bench] {KEYS} keys ready in {:?}", t.elapsed());

    let names: Vec<String> = (0..cfg.n).map(|i| format!("ss-{i:06}")).collect();
    let data = cfg.data.clone();
    let dist = if data == "newest" { "newest" } else { "rr" };
    let hinted = data == "hinted-rr";
    let t = Instant::now();
    let pq_data = (data == "pq").then_some(pq.as_slice());
    let objects = tokio::task::block_in_place(|| {
        seal_objects(
            BENCH_NS,
            &keys,
            pq_data,
            &names,
            |i| key_for(dist, i),
            hinted,
        )
    });
    eprintln!(
        "[bench] sealed {} SealedSecrets in {:?}",
        cfg.n,
        t.elapsed()
    );

    let cluster = tokio::task::block_in_place(|| {
        Cluster::control_plane_audited(Some(&audit_policy())).unwrap_or_else(|e| panic!("{e}"))
    });
    let audit_log = cluster.control_plane_handle().unwrap().audit_log();
    tokio::task::block_in_place(|| prepare(&cluster, &keys, &pq));
    if cfg.shards > 1 {
        tokio::task::block_in_place(|| kubectl(&cluster, &["apply", "-f", "-"], Some(SHARD_RBAC)));
    }
    let backend = tokio::task::block_in_place(|| {
        let mut b = KeyBackend::setup(&cfg.key_backend);
        b.convert_keys(&cluster, &cfg.keys_dir);
        b
    });
    let client = cluster.client().await.unwrap();

    let single = cfg.shards == 1;
    // The idle baseline: the controller with its keys and no SealedSecret, once idle.
    let idle_rss_mib = if single {
        tokio::task::block_in_place(|| {
            let mut c = start_controller(&cluster, &cfg.controller, &cfg.upstream_args, &backend);
            let start = Instant::now();
            wait_idle(&c, start, 0.0, ticks, cfg.timeout, "idle baseline", || true);
            let rss = rss_mib(c.process.id().unwrap());
            stop(&mut c);
            rss
        })
    } else {
        None
    };
    eprintln!("[bench] idle RSS: {idle_rss_mib:?} MiB");

    let t = Instant::now();
    create_all(&client, BENCH_NS, objects, IN_FLIGHT).await;
    eprintln!(
        "[bench] created {} SealedSecrets in {:?}",
        cfg.n,
        t.elapsed()
    );
    let seen = watch_secrets(&client, BENCH_NS);

    let decrypt_ms = one_decrypt_ms(&keys[KEYS - 1].0);
    let cp_dir = cluster.control_plane_handle().unwrap().dir().to_owned();
    let cp_cpu = |name: &str| {
        std::fs::read_to_string(cp_dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .and_then(|pid| cpu_seconds(pid, ticks))
            .unwrap_or(f64::NAN)
    };
    let (api0, etcd0) = (cp_cpu("kube-apiserver"), cp_cpu("etcd"));
    let (_, audit_at) = audit_counts(&audit_log, u64::MAX);
    // One controller, or the shard members of a sharded run.
    let start_all = || {
        tokio::task::block_in_place(|| {
            if single {
                vec![start_controller(
                    &cluster,
                    &cfg.controller,
                    &cfg.upstream_args,
                    &backend,
                )]
            } else {
                start_shards(&cluster, &backend, cfg.shards)
            }
        })
    };
    let n = cfg.n as f64;
    let handled = |cs: &[InCluster]| {
        sum_metric(cs, "sealed_secrets_controller_unseal_requests_total").is_some_and(|v| v >= n)
    };

    // Cold start.
    let start = Instant::now();
    let cs = start_all();
    let cold_ready_s = start.elapsed().as_secs_f64();
    while count_seen(&seen, "ss-") < cfg.n {
        assert!(
            start.elapsed() < cfg.timeout,
            "cold start: {} of {} Secrets after {:?}; controller log:\n{}",
            count_seen(&seen, "ss-"),
            cfg.n,
            cfg.timeout,
            cs[0].process.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (cold_first, cold_last) = {
        let seen = seen.lock().unwrap();
        let at: Vec<f64> = names
            .iter()
            .filter_map(|n| seen.get(n))
            .map(|t| t.duration_since(start).as_secs_f64())
            .collect();
        (
            at.iter().copied().fold(f64::INFINITY, f64::min),
            at.iter().copied().fold(0.0, f64::max),
        )
    };
    let cold_wall_s = cold_last;
    let cold_drain_per_s = Some(load::per_second(
        cfg.n.saturating_sub(1),
        cold_first,
        cold_last,
    ))
    .filter(|x| x.is_finite());
    eprintln!("[bench] cold start: every Secret after {cold_wall_s:.1}s");
    let (_, cold_cpus) = tokio::task::block_in_place(|| {
        let refs: Vec<&InCluster> = cs.iter().collect();
        wait_idle_all(&refs, start, ticks, cfg.timeout, "cold start", || {
            handled(&cs)
        })
    });
    let cold_apiserver_cpu_s = Some(cp_cpu("kube-apiserver") - api0).filter(|x| x.is_finite());
    let cold_etcd_cpu_s = Some(cp_cpu("etcd") - etcd0).filter(|x| x.is_finite());
    let cold_rsa = sum_metric(&cs, "sealed_secrets_controller_rsa_decryptions_total");
    let cold_key_calls = sum_metric(&cs, backend.calls_metric);
    let cold_key_other_calls = backend.other_calls_metric.and_then(|m| sum_metric(&cs, m));
    let cold_rss: Vec<f64> = cs
        .iter()
        .map(|c| peak_rss_mib(c.process.id().unwrap()).unwrap_or(f64::NAN))
        .collect();
    let cold_rss_now_mib = cs
        .iter()
        .filter_map(|c| rss_mib(c.process.id().unwrap()))
        .reduce(f64::max);
    let mut replicas: Vec<Replica> = cs
        .iter()
        .enumerate()
        .map(|(i, c)| Replica {
            name: format!("{OURS_SA}-shard-{i}"),
            cold_cpu_s: cold_cpus[i],
            cold_rss_mib: cold_rss[i],
            cold_rsa: metric(c, "sealed_secrets_controller_rsa_decryptions_total"),
            leader: metric(c, "sealed_secrets_controller_leader").is_some_and(|l| l > 0.0),
            ..Default::default()
        })
        .collect();
    let secrets_correct = if single {
        check_sample(&client, &names).await;
        None
    } else {
        Some(count_correct(&client, &names).await)
    };
    let mut cs = cs;
    tokio::task::block_in_place(|| cs.iter_mut().for_each(stop));
    let (cold_api, audit_at) = audit_counts(&audit_log, audit_at);

    // Warm restart.
    let start = Instant::now();
    let cs = start_all();
    let (warm_s, warm_cpus) = tokio::task::block_in_place(|| {
        let refs: Vec<&InCluster> = cs.iter().collect();
        wait_idle_all(&refs, start, ticks, cfg.timeout, "warm restart", || {
            handled(&cs)
        })
    });
    let warm_rsa = sum_metric(&cs, "sealed_secrets_controller_rsa_decryptions_total");
    let warm_key_calls = sum_metric(&cs, backend.calls_metric);
    let warm_key_other_calls = backend.other_calls_metric.and_then(|m| sum_metric(&cs, m));
    let warm_rss: Vec<f64> = cs
        .iter()
        .map(|c| peak_rss_mib(c.process.id().unwrap()).unwrap_or(f64::NAN))
        .collect();
    let warm_rss_now_mib = cs
        .iter()
        .filter_map(|c| rss_mib(c.process.id().unwrap()))
        .reduce(f64::max);
    for (r, (cpu, rss)) in replicas.iter_mut().zip(warm_cpus.iter().zip(&warm_rss)) {
        (r.warm_cpu_s, r.warm_rss_mib) = (*cpu, *rss);
    }
    let (warm_api, _) = audit_counts(&audit_log, audit_at);
    eprintln!("[bench] warm restart: idle after {warm_s:.1}s");

    // The load phases, on the single replica (docs/benchmarks.md, "Capacity, latency under
    // load and fairness").
    let mut capacity = None;
    let mut latency = Vec::new();
    let mut fairness = None;
    if single {
        let c = &cs[0];
        let cap_n = cfg
            .capacity_n
            .unwrap_or_else(|| load::capacity_burst_size(cold_drain_per_s.unwrap_or(f64::NAN)));
        if cap_n > 0 {
            let mut cap = capacity_phase(&client, &keys, &seen, hinted, cap_n, cfg.timeout).await;
            if cap.per_s.is_finite() {
                sustained_phase(&client, &keys, &seen, hinted, &mut cap, cfg.timeout).await;
            }
            eprintln!("[bench] capacity: {cap:?}");
            capacity = Some(cap);
        }
        let c_per_s = capacity.as_ref().map(Capacity::c).filter(|c| c.is_finite());
        for (i, spec) in cfg.latency_rates.iter().enumerate() {
            let Some(rate) = spec.resolve(c_per_s) else {
                eprintln!("[bench] latency at {spec:?}: skipped, no capacity measured");
                continue;
            };
            let l = latency_phase(
                &client,
                c,
                &keys,
                &seen,
                hinted,
                (i, rate, spec.of_capacity()),
                cfg.latency_secs,
                c_per_s,
            )
            .await;
            eprintln!("[bench] latency at {rate:.1}/s: {l:?}");
            latency.push(l);
        }
        if cfg.fairness_burst > 0 {
            let f = fairness_phase(
                &client,
                &keys,
                hinted,
                (
                    cfg.fairness_burst,
                    cfg.fairness_rate,
                    cfg.fairness_alone_secs,
                    cfg.fairness_in_flight,
                ),
                c_per_s,
                cfg.timeout,
            )
            .await;
            eprintln!("[bench] fairness: {f:?}");
            fairness = Some(f);
        }
    }
    let mut cs = cs;
    tokio::task::block_in_place(|| cs.iter_mut().for_each(stop));

    let result = RunResult {
        controller: if cfg.controller == "upstream" && !cfg.upstream_args.is_empty() {
            format!("upstream {}", cfg.upstream_args.join(" "))
        } else {
            cfg.controller.clone()
        },
        data: cfg.data.clone(),
        n: cfg.n,
        values: cfg.n * VALUES_PER_OBJECT,
        cores,
        decrypt_ms,
        loadavg_start,
        loadavg_end: loadavg(),
        cold_ready_s,
        cold_wall_s,
        cold_cpu_s: cold_cpus.iter().sum(),
        cold_apiserver_cpu_s,
        cold_etcd_cpu_s,
        cold_rsa,
        cold_rss_mib: cold_rss.iter().copied().fold(f64::NAN, f64::max),
        idle_rss_mib,
        cold_rss_now_mib,
        cold_api,
        warm_s,
        warm_cpu_s: warm_cpus.iter().sum(),
        warm_rsa,
        warm_rss_mib: warm_rss.iter().copied().fold(f64::NAN, f64::max),
        warm_rss_now_mib,
        warm_api,
        latency,
        key_backend: backend.name.clone(),
        cold_key_calls,
        warm_key_calls,
        cold_key_other_calls,
        warm_key_other_calls,
        cold_drain_per_s,
        capacity,
        fairness,
        sharded: secrets_correct.map(|secrets_correct| Sharded {
            replicas,
            secrets_correct,
        }),
    };
    let line = serde_json::to_string(&result).unwrap();
    println!("{line}");
    if let Some(dir) = cfg.results.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.results)
        .unwrap();
    writeln!(file, "{line}").unwrap();
    println!("{}", table(&[result]));
    drop(client);
    tokio::task::block_in_place(|| drop(cluster));
}

/// Prints the markdown table of every run in `BENCH_RESULTS`.
#[test]
#[ignore = "benchmark: run tests/bench/controllers.sh"]
fn results_table() {
    let cfg = RunConfig::from_env();
    let text = std::fs::read_to_string(&cfg.results)
        .unwrap_or_else(|e| panic!("{}: {e}", cfg.results.display()));
    let results: Vec<RunResult> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", cfg.results.display(), i + 1))
        })
        .collect();
    println!("{}", table(&results));
}

#[cfg(test)]
mod logic {
    use super::*;

    #[test]
    fn reads_at_a_resource_version_are_counted_as_from_the_watch_cache() {
        let event = |verb: &str, uri: &str| {
            json!({"verb": verb, "requestURI": uri,
                   "objectRef": {"resource": "sealedsecrets", "subresource": null}})
        };
        let path = "/apis/bitnami.com/v1alpha1/namespaces/b/sealedsecrets/x";
        assert_eq!(audit_key(&event("get", path)), "get sealedsecrets");
        assert_eq!(
            audit_key(&event("get", &format!("{path}?&resourceVersion=218"))),
            "get sealedsecrets (watch cache)"
        );
        assert_eq!(
            audit_key(&event("get", &format!("{path}?resourceVersion="))),
            "get sealedsecrets"
        );
        // Lists and watches carry one too: they are not reads of one object.
        assert_eq!(
            audit_key(&event(
                "watch",
                "/apis/bitnami.com/v1alpha1/sealedsecrets?watch=1&resourceVersion=5"
            )),
            "watch sealedsecrets"
        );
        let status = json!({"verb": "update", "requestURI": format!("{path}/status?"),
                            "objectRef": {"resource": "sealedsecrets", "subresource": "status"}});
        assert_eq!(audit_key(&status), "update sealedsecrets/status");
    }

    #[test]
    fn the_pq_data_set_is_post_quantum_to_each_objects_key_and_opens_with_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ids = pq_identities(dir.path());
        // Stored and read back: the same identities on the second call.
        let again = pq_identities(dir.path());
        assert_eq!(ids[3].recipient(), again[3].recipient());
        let names: Vec<String> = (0..3).map(|i| format!("ss-{i:06}")).collect();
        // One RSA key (unused by the pq data set but the loop over keys needs it).
        let rsa = vec![(PrivateKey::generate(2048).unwrap(), String::new())];
        let objects = seal_objects(BENCH_NS, &rsa, Some(&ids), &names, |_| 0, false);
        let mut ring = KeyRing::new();
        ring.insert_pq(ids[0].clone());
        let mut wrong = KeyRing::new();
        wrong.insert_pq(ids[1].clone());
        for (name, o) in names.iter().zip(&objects) {
            let label = Scope::Strict.label(BENCH_NS, name);
            let data = o["spec"]["encryptedData"].as_object().unwrap();
            assert_eq!(data.len(), VALUES_PER_OBJECT);
            for (k, v) in data {
                let ct = sealed_secrets_crypto::decode_base64(v.as_str().unwrap()).unwrap();
                assert!(
                    sealed_secrets_crypto::is_pq(&ct),
                    "{name}/{k} is not post-quantum"
                );
                let opened = ring.open(&label, &ct, &[]).unwrap();
                assert_eq!(opened.rsa_operations, 0);
                let i: usize = k.trim_start_matches('k').parse().unwrap();
                assert_eq!(opened.plaintext.as_bytes(), value_of(name, i).as_bytes());
                assert!(wrong.open(&label, &ct, &[]).is_err());
            }
        }
    }

    #[test]
    fn round_robin_uses_every_key_equally() {
        let mut counts = [0; KEYS];
        for i in 0..KEYS * 10 {
            counts[key_for("rr", i)] += 1;
        }
        assert!(counts.iter().all(|&c| c == 10), "{counts:?}");
    }

    #[test]
    fn mostly_newest_puts_85_percent_on_the_newest_two_and_touches_every_key() {
        let n = 2000;
        let mut counts = [0; KEYS];
        for i in 0..n {
            counts[key_for("newest", i)] += 1;
        }
        let newest_two = counts[KEYS - 1] + counts[KEYS - 2];
        assert_eq!(newest_two * 100 / n, 85, "{counts:?}");
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }

    #[test]
    fn idle_is_the_end_of_the_last_busy_second() {
        // Busy (0.5 CPU-s per 0.25 s) until t=2, then quiet.
        let mut samples = Vec::new();
        for i in 0..=24 {
            let t = f64::from(i) * 0.25;
            let cpu = if t <= 2.0 {
                t * 2.0
            } else {
                4.0 + (t - 2.0) * 0.01
            };
            samples.push((t, cpu));
        }
        assert_eq!(busy_until(&samples, 0.025), 2.0);
        // Never busy: idle from the first sample.
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i) * 0.25, 1.0)).collect();
        assert_eq!(busy_until(&flat, 0.025), 0.0);
        // Busy to the end.
        let busy: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i) * 0.25, f64::from(i)))
            .collect();
        assert_eq!(busy_until(&busy, 0.025), 2.25);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn round_trips_are_answer_minus_sending_and_none_when_unanswered() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sent = HashMap::from([("a".to_owned(), at(1000)), ("b".to_owned(), at(2000))]);
        let answered = HashMap::from([("a".to_owned(), at(1250))]);
        let mut got = round_trips(&sent, &answered, t0);
        got.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(got, vec![(1.0, Some(0.25)), (2.0, None)]);
    }

    #[test]
    fn counts_are_grouped_with_commas() {
        assert_eq!(fmt_n(1000), "1,000");
        assert_eq!(fmt_n(50000), "50,000");
        assert_eq!(fmt_n(999), "999");
    }

    #[test]
    fn key_backends_are_compared_with_keys_in_memory() {
        let memory = RunResult {
            controller: "ours".into(),
            data: "hinted-rr".into(),
            n: 1000,
            values: 3000,
            cold_wall_s: 10.0,
            cold_cpu_s: 8.0,
            warm_s: 2.0,
            warm_cpu_s: 1.0,
            ..Default::default()
        };
        let kms = RunResult {
            key_backend: "aws-kms".into(),
            cold_cpu_s: 8.8,
            cold_key_calls: Some(13.0),
            warm_key_calls: Some(13.0),
            ..memory.clone()
        };
        // Tier 1: one token decryption per value, none at the warm restart; lookups and
        // label probes apart.
        let token = RunResult {
            key_backend: "pkcs11".into(),
            cold_wall_s: 12.0,
            cold_cpu_s: 6.0,
            warm_s: 3.0,
            cold_key_calls: Some(3000.0),
            cold_key_other_calls: Some(39.0),
            warm_key_calls: Some(0.0),
            warm_key_other_calls: Some(39.0),
            ..memory.clone()
        };
        let t = table(&[memory, kms, token]);
        assert!(
            t.contains("| ours hinted-rr 1,000 | 10.0 | 8.0 | 2.0 | - | - |\n| ours hinted-rr 1,000 [aws-kms] | 10.0 (1.00) | 8.8 (1.10) | 2.0 (1.00) | 13 (0.0043) | 13 |\n| ours hinted-rr 1,000 [pkcs11] | 12.0 (1.20) | 6.0 (0.75) | 3.0 (1.50) | 3,000 (1.0000) + 39 other | 0 + 39 other |\n"),
            "{t}"
        );
        assert!(
            t.contains("| key backend calls, warm restart | n/a | 13 | 0 + 39 other |"),
            "{t}"
        );
        assert!(
            t.contains("| key backend calls per value, cold (KMS / token decryptions) | n/a | 0.0043 | 1.0000 |"),
            "{t}"
        );
    }

    /// A run of ours with the figures of the load phases (capacity, three latency phases
    /// with the histograms, fairness).
    fn mk_loaded() -> RunResult {
        let phase = |m: f64, rate: f64, p99: f64, over: usize| Latency {
            rate,
            created: (rate * 10.0) as usize,
            p50_ms: 40.0,
            p99_ms: p99,
            of_capacity: Some(m),
            secs: Some(10),
            max_ms: Some(p99 + 100.0),
            mean_ms: Some(100.0),
            bound_ms: Some(2500.0),
            max_backlog: Some(30),
            over_bound: Some(over),
            queue: Some(QueueShare {
                reconciles: 200.0,
                wait_mean_ms: 60.0,
                wait_p99_ms: 400.0,
                work_mean_ms: 30.0,
                work_p99_ms: 90.0,
            }),
            ..Default::default()
        };
        RunResult {
            controller: "ours".into(),
            data: "hinted-rr".into(),
            n: 10_000,
            values: 30_000,
            cold_drain_per_s: Some(25.04),
            capacity: Some(Capacity {
                objects: 375,
                span_s: 15.0,
                per_s: 25.0,
                creates_per_s: 200.0,
                ..Capacity::default()
            }),
            latency: vec![
                phase(0.5, 12.5, 300.0, 0),
                phase(1.0, 25.0, 1800.0, 0),
                phase(1.5, 37.5, 6000.0, 3),
            ],
            fairness: Some(Fairness {
                burst: 10_000,
                quiet_rate: 2.0,
                alone: Latency {
                    p50_ms: 30.0,
                    p99_ms: 40.0,
                    created: 40,
                    ..Default::default()
                },
                during: Latency {
                    p50_ms: 45.0,
                    p99_ms: 70.0,
                    created: 800,
                    ..Default::default()
                },
                burst_drain_s: 400.0,
                alone_answered: Some(Latency {
                    p50_ms: 10.0,
                    p99_ms: 20.0,
                    ..Default::default()
                }),
                during_answered: Some(Latency {
                    p50_ms: 15.0,
                    p99_ms: 50.0,
                    ..Default::default()
                }),
                after_creates: Some(Latency {
                    p50_ms: 36.0,
                    p99_ms: 60.0,
                    created: 700,
                    ..Default::default()
                }),
                burst_creates_s: Some(12.5),
                during_create: Some(Latency {
                    p50_ms: 6.0,
                    p99_ms: 100.0,
                    ..Default::default()
                }),
                burst_in_flight: Some(32),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_load_phases_print_beside_their_goals() {
        let t = table(&[mk_loaded()]);
        assert!(
            t.contains("| capacity C: objects a second (burst: objects in s; its creates a second) | 25.0 (375 in 15.0 s; creates 200/s) | measured |"),
            "{t}"
        );
        assert!(
            t.contains("| cold start: Secrets a second, first to last | 25.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| latency at 0.5C: rate/s, p50 / p99 / max (ms) | 12.5: 40 / 300 / 400 | p99 <= 1,000 |"),
            "{t}"
        );
        assert!(
            t.contains("| latency at C: max / largest bound (ms), largest backlog, over their bound | 1900 / 2500, 30, 0 of 250 over | every object within its backlog ÷ C + 1 s (0 over) |"),
            "{t}"
        );
        assert!(
            t.contains("| latency at 1.5C: max / largest bound (ms), largest backlog, over their bound | 6100 / 2500, 30, 3 of 375 over | grows with the backlog only"),
            "{t}"
        );
        // Mean 100: 60 queued, 30 reconciling (10 in the create request and the watches).
        assert!(
            t.contains("| latency at C: mean (ms): queue wait, reconcile (% of the mean); their p99 | 100: queue 60 (60%), reconcile 30 (30%); p99 400, 90 |"),
            "{t}"
        );
        assert!(
            t.contains("| fairness: quiet namespace's p99 during a burst ÷ alone (ms; burst, drained in) | 1.75 (70 / 40; 800 at 2/s; 10,000 in 400.0 s, creates in flight: 32) | <= 2 |"),
            "{t}"
        );
        assert!(
            t.contains("| fairness: the same, p50 during ÷ alone (ms) | 1.50 (45 / 30) | <= 2 |"),
            "{t}"
        );
        assert!(
            t.contains("| fairness after the burst's last create was answered (its drain, without the create storm at the API server): p50, p99 ÷ alone (ms; quiet creates; storm lasted) | 1.20 (36 / 30), 1.50 (60 / 40) (700; 12.5 s) | <= 2 |"),
            "{t}"
        );
        assert!(
            t.contains("(without its wait at the API server behind the burst's creates): p50, p99 during ÷ alone (ms) | 1.50 (15 / 10), 2.50 (50 / 20) | <= 2 |"),
            "{t}"
        );
        assert!(
            t.contains("before any controller acts), p50, p99 ÷ alone's whole path (ms) | 0.20 (6 / 30), 2.50 (100 / 40) | above 2: out of any controller's reach here |"),
            "{t}"
        );
        // The per-phase sub-table, one line per phase.
        assert!(
            t.contains("| ours hinted-rr 10,000 at 1.5C | 37.5 x 10 | 40 / 6000 / 6100 | 30, 2500, 3 | 100: queue 60 (60%)"),
            "{t}"
        );
        // No 50,000 run: no 50,000 rows.
        assert!(!t.contains("50,000 SealedSecrets:"), "{t}");
    }

    #[test]
    fn older_results_lines_print_without_the_new_rows() {
        // A results line written before capacity, fairness and shards existed, with the
        // fixed latency rates it had.
        let old = r#"{"controller":"ours","data":"rr","n":1000,"values":3000,"cores":2,"decrypt_ms":4.0,"loadavg_start":"1 1 1","loadavg_end":"2 2 2","cold_wall_s":10.0,"cold_cpu_s":8.0,"cold_rsa":3000.0,"cold_rss_mib":30.0,"cold_api":{},"warm_s":1.0,"warm_cpu_s":0.5,"warm_rsa":0.0,"warm_rss_mib":30.0,"warm_api":{},"latency":[{"rate":10,"created":100,"missing":0,"p50_ms":16.0,"p99_ms":42.0},{"rate":100,"created":1000,"missing":3,"p50_ms":110.0,"p99_ms":6633.0}]}"#;
        let r: RunResult = serde_json::from_str(old).unwrap();
        let t = table(&[r]);
        assert!(
            t.contains("| latency p50 / p99 at 10/s (ms) | 16 / 42 |"),
            "{t}"
        );
        assert!(
            t.contains("| latency p50 / p99 at 100/s (ms) | 110 / 6633 (3 of 1000 missing) |"),
            "{t}"
        );
        for new in [
            "capacity C",
            "latency at 0.5C",
            "fairness",
            "sharded run",
            "latency phase",
        ] {
            assert!(!t.contains(new), "{new} in {t}");
        }
        // And a new line round-trips through its JSON.
        let loaded = mk_loaded();
        let back: RunResult =
            serde_json::from_str(&serde_json::to_string(&loaded).unwrap()).unwrap();
        assert_eq!(back, loaded);
    }

    #[test]
    fn a_sustained_capacity_is_c_and_the_burst_is_shown_beside_it() {
        let mut r = mk_loaded();
        let cap = r.capacity.as_mut().unwrap();
        cap.sustained_per_s = Some(20.0);
        cap.sustained_rate = Some(37.5);
        cap.sustained_backlog = Some(150);
        assert_eq!(cap.c(), 20.0);
        let t = table(&[r]);
        assert!(
            t.contains("| capacity C: objects a second (burst: objects in s; its creates a second) | 20.0 (served while creates came at 38/s, 150 left at their end); the burst's: 25.0 (375 in 15.0 s; creates 200/s) | measured |"),
            "{t}"
        );
        // Not measured (the creates set the pace, or an older line): the burst's rate is C.
        assert_eq!(mk_loaded().capacity.unwrap().c(), 25.0);
    }

    #[test]
    fn sharded_replicas_are_shares_of_the_single_replica_on_the_same_data() {
        let single = RunResult {
            controller: "ours".into(),
            data: "hinted-rr".into(),
            n: 10_000,
            values: 30_000,
            cold_wall_s: 80.0,
            cold_cpu_s: 50.0,
            cold_rss_mib: 100.0,
            cold_rsa: Some(30_000.0),
            warm_s: 6.0,
            idle_rss_mib: Some(40.0),
            ..Default::default()
        };
        let replica = |i: usize, rss: f64, cpu: f64| Replica {
            name: format!("sealed-secrets-controller-shard-{i}"),
            leader: i == 0,
            cold_cpu_s: cpu,
            cold_rss_mib: rss,
            cold_rsa: Some(10_000.0),
            warm_cpu_s: 1.0,
            warm_rss_mib: rss,
        };
        let sharded = RunResult {
            cold_wall_s: 40.0,
            cold_cpu_s: 54.0,
            cold_rss_mib: 50.0,
            cold_rsa: Some(30_000.0),
            warm_s: 3.0,
            sharded: Some(Sharded {
                replicas: vec![
                    replica(0, 40.0, 18.0),
                    replica(1, 50.0, 20.0),
                    replica(2, 38.0, 16.0),
                ],
                secrets_correct: 10_000,
            }),
            ..single.clone()
        };
        let up = RunResult {
            controller: "upstream --kubeclient-qps=-1".into(),
            data: "rr".into(),
            cold_wall_s: 1800.0,
            ..single.clone()
        };
        let t = table(&[single, sharded, up]);
        assert!(
            t.contains("| ours hinted-rr 10,000 | ours hinted-rr 10,000 x3 shards | upstream --kubeclient-qps=-1 rr 10,000 | goal |"),
            "{t}"
        );
        assert!(
            t.contains("| ours hinted-rr 10,000 x3 shards: sealed-secrets-controller-shard-1 | 10,000 of 10,000 | 50.0 (50%) | 20.0 (40%) | 0.33 | 50.0, 1.0 |"),
            "{t}"
        );
        assert!(
            t.contains("| ours hinted-rr 10,000 (single replica) | - | 100.0 | 50.0 | 1.00 |"),
            "{t}"
        );
        assert!(
            t.contains("| goal | every one | <= 45% each | <= 40% each |"),
            "{t}"
        );
        // Idle 40 MiB and 60 above it: a third of the 60 on top of the 40.
        assert!(
            t.contains("| ours hinted-rr 10,000 x3 shards: floor, a member with a third of the single replica's peak above its idle 40.0 MiB | | 60.0 (60%) | | | |"),
            "{t}"
        );
        assert!(
            t.contains("x3 shards: sealed-secrets-controller-shard-0 (leader) | 10,000 of 10,000 | 40.0 (40%) |"),
            "{t}"
        );
        // Upstream at 10,000 against the single replica only, not the sharded run.
        assert!(
            t.contains(
                "| upstream --kubeclient-qps=-1 rr 10,000 vs ours hinted-rr 10,000 | 22.5 |"
            ),
            "{t}"
        );
        assert!(!t.contains("vs ours hinted-rr 10,000 x3"), "{t}");
    }

    #[test]
    fn fifty_thousand_rows_appear_with_a_run_at_50000() {
        let big = RunResult {
            controller: "ours".into(),
            data: "hinted-rr".into(),
            n: 50_000,
            values: 150_000,
            cold_rss_mib: 120.0,
            warm_rss_mib: 130.0,
            warm_s: 12.5,
            ..Default::default()
        };
        let small = RunResult {
            n: 1000,
            ..big.clone()
        };
        let t = table(&[small, big]);
        assert!(
            t.contains("| 50,000 SealedSecrets: peak RSS (MiB) | - | 130.0 | < 200 |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| 50,000 SealedSecrets: warm restart (s) | - | 12.5 | <= 10, no decryption |"
            ),
            "{t}"
        );
    }

    #[test]
    fn a_phase_summary_holds_each_object_to_its_backlog_and_reads_the_histograms() {
        // C = 10/s; three objects sent at once, the third served 1.5 s later: bound 2/10 + 1.
        let samples = [
            (0.0, Some(0.1)),
            (0.0, Some(0.2)),
            (0.0, Some(1.5)),
            (1.0, None),
        ];
        let l = summarize(10.0, Some(1.0), 10, &samples, Some(10.0));
        assert_eq!((l.created, l.missing), (4, 1));
        assert_eq!(l.max_ms, Some(1500.0));
        assert!((l.bound_ms.unwrap() - 1200.0).abs() < 1e-6, "{l:?}");
        assert_eq!((l.max_backlog, l.over_bound), (Some(2), Some(2)));
        assert!((l.mean_ms.unwrap() - 600.0).abs() < 1e-9);
        // Without C (fixed rate, capacity skipped): no bound.
        let l = summarize(10.0, None, 10, &samples, None);
        assert_eq!((l.bound_ms, l.over_bound), (None, None));

        let h = |wait_sum: f64, wait_n: f64, work_sum: f64| {
            format!(
                "{QUEUE_WAIT_METRIC}_bucket{{le=\"0.1\"}} {wait_n}\n{QUEUE_WAIT_METRIC}_bucket{{le=\"+Inf\"}} {wait_n}\n\
                 {QUEUE_WAIT_METRIC}_sum {wait_sum}\n{QUEUE_WAIT_METRIC}_count {wait_n}\n\
                 {RECONCILE_METRIC}_bucket{{le=\"0.1\"}} {wait_n}\n{RECONCILE_METRIC}_bucket{{le=\"+Inf\"}} {wait_n}\n\
                 {RECONCILE_METRIC}_sum {work_sum}\n{RECONCILE_METRIC}_count {wait_n}\n"
            )
        };
        let q = queue_share(&h(1.0, 10.0, 0.5), &h(3.0, 30.0, 1.5)).unwrap();
        assert_eq!(q.reconciles, 20.0);
        assert!((q.wait_mean_ms - 100.0).abs() < 1e-9, "{q:?}");
        assert!((q.work_mean_ms - 50.0).abs() < 1e-9, "{q:?}");
        // A controller without the histograms (upstream's, an older build of ours).
        assert!(queue_share("", "sealed_secrets_controller_unseal_requests_total 3\n").is_none());
    }

    #[test]
    fn the_table_has_goals_ratios_and_every_run() {
        let ours = RunResult {
            controller: "ours".into(),
            data: "rr".into(),
            n: 1000,
            values: 3000,
            cores: 2,
            decrypt_ms: 5.0,
            cold_wall_s: 10.0,
            cold_cpu_s: 20.0,
            cold_rsa: Some(6000.0),
            cold_rss_mib: 30.0,
            idle_rss_mib: Some(10.0),
            cold_rss_now_mib: Some(12.5),
            cold_api: BTreeMap::from([("update secrets".into(), 1000), ("get x".into(), 3)]),
            warm_s: 1.0,
            warm_rsa: Some(0.0),
            ..Default::default()
        };
        let up = RunResult {
            controller: "upstream".into(),
            cold_wall_s: 40.0,
            cold_rsa: None,
            cold_rss_mib: 60.0,
            warm_s: 30.0,
            ..ours.clone()
        };
        let t = table(&[ours, up]);
        assert!(
            t.contains("| ours rr 1,000 | upstream rr 1,000 | goal |"),
            "{t}"
        );
        // ideal 3000 x 5 ms / 2 = 7.5 s; 10 / 7.5 = 1.33.
        assert!(
            t.contains("| cold wall ÷ ideal | 1.33 | 5.33 | <= 1.5 |"),
            "{t}"
        );
        assert!(
            t.contains("| RSA operations per value | 2.00 | n/a |"),
            "{t}"
        );
        assert!(t.contains("| CPU per value ÷ one decrypt | 1.33 |"), "{t}");
        assert!(t.contains("1.00 (update secrets 1.00)"), "{t}");
        // (30 - 10) MiB and (60 - 10) MiB over 1,000 objects; steady (12.5 - 10) MiB; no figure: n/a.
        assert!(
            t.contains(
                "| peak RSS above idle per SealedSecret, cold (KiB) | 20.48 | 51.20 | <= 3 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| steady RSS above idle per SealedSecret, cold (KiB) | 2.56 | 2.56 |"),
            "{t}"
        );
        assert!(
            t.contains("| steady RSS above idle per SealedSecret, warm (KiB) | n/a | n/a |"),
            "{t}"
        );
        assert!(
            t.contains("| upstream rr 1,000 vs ours rr 1,000 | 4.0 | 1.0 | 2.0 | 30.0 |"),
            "{t}"
        );
    }
}
