//! The world of one upstream-peer test ([`Env`]: a control plane with `deploy/base` and
//! upstream's own RBAC, either controller run in-cluster style, either kubeseal) and the checks
//! every test shares.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use harness::cluster::{Cluster, binary_path, random_suffix, workspace_root};
use harness::upstream::{
    InCluster, UPSTREAM_SA, deploy_base_args_env, service_account_dir, upstream_binary,
    upstream_rbac_manifest,
};
use serde_json::{Value, json};

pub const CTRL_NS: &str = "kube-system";
pub const CTRL_SA: &str = "sealed-secrets-controller";
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
pub use harness::wait::{eventually_blocking as eventually, metric_sum};

pub const TIMEOUT: Duration = Duration::from_secs(90);

pub fn b64(s: &str) -> String {
    B64.encode(s)
}

/// Plaintext values by key.
pub type Values = BTreeMap<String, String>;

pub fn values(pairs: &[(&str, &str)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A SealedSecret (or Secret) the test expects to become a Secret `name` with `values`.
#[derive(Debug, Clone)]
pub struct Expect {
    pub name: String,
    pub values: Values,
}

pub fn expect(name: &str, pairs: &[(&str, &str)]) -> Expect {
    Expect {
        name: name.to_owned(),
        values: values(pairs),
    }
}

/// One test's world: a private control plane (the harness's real backend) with `deploy/base`
/// and upstream's own RBAC applied, each controller's ServiceAccount volume, a work directory.
pub struct Env {
    /// Ours: `deploy/base`'s ServiceAccount, bound by `deploy/base`'s RBAC.
    pub sa: PathBuf,
    /// Upstream's: [`UPSTREAM_SA`], bound by the RBAC of upstream's own chart.
    pub upstream_sa: PathBuf,
    pub work: tempfile::TempDir,
    // Last: stopped after everything that talks to it.
    pub cluster: Cluster,
}

impl Env {
    pub fn new() -> Self {
        // Fail, not skip, when the real backend is selected but a binary is missing.
        for name in ["controller", "kubeseal"] {
            upstream_binary(name).unwrap_or_else(|e| panic!("{e}"));
        }
        for name in ["sealed-secrets-controller", "kubeseal"] {
            binary_path(name).unwrap_or_else(|e| panic!("{e}"));
        }
        let cluster = Cluster::control_plane().unwrap_or_else(|e| panic!("{e}"));
        let base = workspace_root().join("deploy/base");
        cluster
            .kubectl_run(&["apply", "-k", &base.to_string_lossy()], None)
            .unwrap();
        cluster
            .kubectl_run(
                &[
                    "wait",
                    "--for=condition=Established",
                    "crd/sealedsecrets.bitnami.com",
                    "--timeout=60s",
                ],
                None,
            )
            .unwrap();
        let rbac = upstream_rbac_manifest(CTRL_NS).unwrap_or_else(|e| panic!("{e}"));
        cluster
            .kubectl_run(&["apply", "-f", "-"], Some(&rbac))
            .unwrap();
        // Each controller has its own project's rights: upstream's patches repeated Events,
        // deploy/base (least privilege) lets ours only create them.
        let can = |sa: &str, verb: &str| {
            let user = format!("--as=system:serviceaccount:{CTRL_NS}:{sa}");
            cluster
                .kubectl_run(
                    &["auth", "can-i", verb, "events", "-n", "default", &user],
                    None,
                )
                .is_ok()
        };
        assert!(
            can(UPSTREAM_SA, "patch"),
            "upstream's RBAC lets it patch Events"
        );
        assert!(
            can(CTRL_SA, "create") && !can(CTRL_SA, "patch"),
            "deploy/base: create only"
        );
        let sa = service_account_dir(&cluster, CTRL_NS, CTRL_SA).unwrap();
        let upstream_sa = service_account_dir(&cluster, CTRL_NS, UPSTREAM_SA).unwrap();
        let work = tempfile::tempdir().unwrap();
        Self {
            sa,
            upstream_sa,
            work,
            cluster,
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.cluster
            .kubectl_run(args, None)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    pub fn kubectl_in(&self, args: &[&str], stdin: &str) -> String {
        self.cluster
            .kubectl_run(args, Some(stdin))
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    /// Waits for SealedSecret `namespace/name`'s `Synced` condition to be `False` (a
    /// controller's refusal) and returns that condition.
    pub fn await_synced_false(&self, namespace: &str, name: &str, what: &str) -> Value {
        eventually(what, TIMEOUT, || {
            let ss = self.get_json(&["sealedsecret", name, "-n", namespace])?;
            let cond = ss["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Synced")?
                .clone();
            (cond["status"] == "False").then_some(cond)
        })
    }

    pub fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let out = self.cluster.kubectl_run(&full, None).ok()?;
        serde_json::from_str(&out).ok()
    }

    pub fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", random_suffix(5));
        self.kubectl(&["create", "namespace", &name]);
        name
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Upstream's controller, default flags (as upstream's controller.yaml runs it), as its own
    /// ServiceAccount under upstream's RBAC.
    pub fn start_upstream(&self) -> InCluster {
        let mut c = InCluster::start(
            &self.cluster,
            &self.upstream_sa,
            &upstream_binary("controller").unwrap(),
            &[],
            &[],
        )
        .unwrap();
        c.wait_cert(TIMEOUT).unwrap();
        c
    }

    /// Ours, with the args and environment of `deploy/base`'s Deployment as applied (the
    /// Downward API values filled in as the kubelet would), listeners moved to loopback.
    pub fn start_ours(&self) -> InCluster {
        let deploy = self
            .get_json(&["deployment", "sealed-secrets-controller", "-n", CTRL_NS])
            .unwrap();
        let (args, env) = deploy_base_args_env(&deploy, CTRL_NS).unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        let mut c = InCluster::start(
            &self.cluster,
            &self.sa,
            &binary_path("sealed-secrets-controller").unwrap(),
            &args,
            &env,
        )
        .unwrap();
        c.wait_cert(TIMEOUT).unwrap();
        c
    }

    /// Runs a kubeseal (either) against this control plane as admin; the raw output.
    pub fn kubeseal_output(&self, kubeseal: &Path, args: &[&str], stdin: &str) -> Output {
        kubeseal_with(
            kubeseal,
            self.cluster.kubeconfig(),
            self.work.path(),
            args,
            stdin,
        )
    }

    /// Runs a kubeseal and returns its stdout; panics with its stderr on failure.
    pub fn kubeseal(&self, kubeseal: &Path, args: &[&str], stdin: &str) -> String {
        let out = self.kubeseal_output(kubeseal, args, stdin);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            kubeseal.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The key Secrets (label active) in the controller namespace, by name.
    pub fn key_secrets(&self) -> BTreeMap<String, Value> {
        let list = self
            .get_json(&[
                "secrets",
                "-n",
                CTRL_NS,
                "-l",
                &format!("{KEY_LABEL}=active"),
            ])
            .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metadata"]["name"].as_str().unwrap().to_owned(),
                    s.clone(),
                )
            })
            .collect()
    }

    /// The key Secrets as a v1.List file, upstream's `--recovery-private-key` input.
    pub fn keys_file(&self) -> PathBuf {
        let list = self.kubectl(&[
            "get",
            "secrets",
            "-n",
            CTRL_NS,
            "-l",
            &format!("{KEY_LABEL}=active"),
            "-o",
            "json",
        ]);
        self.write(&format!("keys-{}.json", random_suffix(4)), &list)
    }

    /// Creates the SealedSecret manifests (a YAML or JSON stream) in the cluster.
    pub fn create(&self, manifests: &str) {
        self.kubectl_in(&["create", "-f", "-"], manifests);
    }

    /// The objects of `kind` in `ns`, by name (one list call).
    pub fn by_name(&self, kind: &str, ns: &str) -> BTreeMap<String, Value> {
        let list = self.get_json(&[kind, "-n", ns]).unwrap_or_default();
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                (
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    o.clone(),
                )
            })
            .collect()
    }

    /// What upstream's `Unseal` makes of a SealedSecret as stored in the cluster.
    pub fn upstream_unseal(&self, ss: &Value, keys: &Path) -> Value {
        let out = self.kubeseal(
            &upstream_binary("kubeseal").unwrap(),
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                &keys.to_string_lossy(),
                "-o",
                "json",
            ],
            &ss.to_string(),
        );
        serde_json::from_str(&out).unwrap()
    }
}

/// Runs `kubeseal` with `KUBECONFIG` and a `HOME` of its own (no user kubeconfig leaks in).
/// A `--cert http://...` URL here is always a controller's loopback listener, so our kubeseal
/// is told to accept plain HTTP for it (by its environment variable: upstream's kubeseal
/// knows no such flag, and ignores the variable).
pub fn kubeseal_with(
    kubeseal: &Path,
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut cmd = Command::new(kubeseal);
    if args.iter().any(|a| a.starts_with("http://127.0.0.1:")) {
        cmd.env("SEALED_SECRETS_ALLOW_INSECURE_CERT_URL", "true");
    } else {
        cmd.env_remove("SEALED_SECRETS_ALLOW_INSECURE_CERT_URL");
    }
    let mut child = cmd
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("SEALED_SECRETS_CERT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// A Secret's values, decoded.
pub fn decoded(secret: &Value) -> Values {
    secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = B64.decode(v.as_str().unwrap()).unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

/// The fields a controller decides on a Secret it produces (§2.4, §4.6), normalised as the
/// API server stores them. Nothing of ours is set aside: a produced Secret's labels,
/// annotations and ownerReferences are exactly what upstream writes.
pub fn comparable(secret: &Value) -> Value {
    let m = &secret["metadata"];
    let nonempty = |v: &Value| match v {
        Value::Object(o) if o.is_empty() => Value::Null,
        Value::Array(a) if a.is_empty() => Value::Null,
        other => other.clone(),
    };
    let annotations = nonempty(&m["annotations"]);
    json!({
        "name": m["name"],
        "namespace": m["namespace"],
        "labels": nonempty(&m["labels"]),
        "annotations": nonempty(&annotations),
        "ownerReferences": nonempty(&m["ownerReferences"]),
        "type": secret["type"].as_str().filter(|t| !t.is_empty()).unwrap_or("Opaque"),
        "immutable": secret["immutable"].as_bool().unwrap_or(false),
        "data": nonempty(&secret["data"]),
    })
}

/// A Secret manifest.
pub fn secret_yaml(ns: Option<&str>, name: &str, extra_meta: &str, body: &str) -> String {
    let ns = ns
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{ns}{extra_meta}{body}")
}

/// Waits until every expected Secret exists in `ns`, then asserts that the controller produced
/// exactly those Secrets: the values the test sealed, and every field as upstream's own Unseal
/// makes it of the SealedSecret as stored.
pub fn assert_all_produced(env: &Env, ns: &str, expects: &[Expect]) {
    let keys = env.keys_file();
    let secrets = eventually(
        &format!("{} Secrets in {ns}", expects.len()),
        TIMEOUT,
        || {
            let secrets = env.by_name("secrets", ns);
            expects
                .iter()
                .all(|e| secrets.contains_key(&e.name))
                .then_some(secrets)
        },
    );
    let sealed = env.by_name("sealedsecrets", ns);
    for e in expects {
        let secret = &secrets[&e.name];
        assert_eq!(
            decoded(secret),
            e.values,
            "values of Secret {ns}/{}",
            e.name
        );
        let expected = env.upstream_unseal(&sealed[&e.name], &keys);
        assert_eq!(
            comparable(secret),
            comparable(&expected),
            "Secret {ns}/{} differs from upstream's Unseal of its SealedSecret",
            e.name
        );
    }
}

/// Asserts that a controller met no RBAC refusal (each runs under exactly its own project's
/// RBAC: ours `deploy/base`'s, upstream's its chart's) and did not panic.
pub fn assert_clean_log(c: &InCluster) {
    let log = c.process.log().to_lowercase();
    for bad in ["forbidden", "panic"] {
        assert!(
            !log.contains(bad),
            "`{bad}` in the controller's log:\n{log}"
        );
    }
}

/// A certificate of another key (a second cluster's, for the multi-recipient case).
pub fn other_cert(env: &Env) -> PathBuf {
    let cert = env.path("other-cert.pem");
    let key = env.path("other-key.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=other-cluster", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req failed");
    cert
}

/// resourceVersion of every Secret in `ns`.
pub fn secret_versions(env: &Env, ns: &str) -> BTreeMap<String, String> {
    let list = env.get_json(&["secrets", "-n", ns]).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_owned(),
                s["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

/// Waits until the controller has reconciled at least `n` SealedSecrets and then stays quiet
/// (its request counter unchanged) for two seconds.
pub fn wait_settled(c: &InCluster, n: f64) {
    let count = || {
        c.metrics_text()
            .ok()
            .map(|t| metric_sum(&t, "sealed_secrets_controller_unseal_requests_total"))
            .unwrap_or(0.0)
    };
    eventually(&format!("{n} reconciles"), TIMEOUT, || {
        (count() >= n).then_some(())
    });
    let mut last = count();
    let mut quiet_since = Instant::now();
    eventually("the controller to settle", TIMEOUT, || {
        let now = count();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
        (quiet_since.elapsed() >= Duration::from_secs(2)).then_some(())
    });
}

/// Routes the real API server's service proxy for `kube-system/sealed-secrets-controller`
/// (deploy/base's Service, port `http`) to `controller`'s loopback listener, through a network
/// namespace and relays ([`Cluster::register_endpoint`]): the path `kubeseal --fetch-cert`,
/// `--validate` and `--re-encrypt` take to a controller in a real cluster. Needs root.
pub fn route_service_to(env: &Env, controller: &InCluster) {
    env.cluster
        .register_endpoint(CTRL_NS, "sealed-secrets-controller", &controller.http)
        .unwrap_or_else(|e| panic!("routing the service proxy to {}: {e}", controller.http));
}
