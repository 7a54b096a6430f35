//! Upstream Sealed Secrets' own `kubeseal` and `controller` (built from the pinned Go module by
//! `tests/upstream/build.sh`) as peers of ours, on a real control plane (issue 10 §3):
//!
//! - upstream kubeseal seals, our controller produces the Secrets, and the reverse;
//! - migration upstream → ours → upstream on the same key Secrets, nothing rewritten;
//! - `--fetch-cert`, `--validate` and `--re-encrypt` of each CLI against the other controller;
//! - `kubeseal keys backup` of upstream's keys, restored into a fresh control plane.
//!
//! "Exactly those Secrets" is judged by upstream itself: every produced Secret is compared
//! with what upstream's `kubeseal --recovery-unseal` (the same `Unseal` code upstream's
//! controller runs) makes of the SealedSecret as stored in the cluster, field by field, and its
//! values with the plaintext the test sealed.
//!
//! Each test starts a control plane of its own (tests/cluster/up.sh) and applies `deploy/base`;
//! both controllers run with in-cluster configuration only, as the ServiceAccount
//! `kube-system/sealed-secrets-controller` bound by `deploy/base`'s RBAC (a TokenRequest
//! token), through tests/upstream/run-controller.sh.
//!
//! The API server refuses to proxy to loopback endpoints, so `kubeseal --validate` and
//! `--re-encrypt` (which only reach a controller through the service proxy) go through the
//! stand-in's service proxy to the controller running on the real control plane; certificates
//! are also fetched by `--cert` URL from the loopback listener and from our cert ConfigMap.
//!
//! Skipped (with the reason printed) unless `SEALED_SECRETS_E2E_CLUSTER=real`; in that mode a
//! missing binary or script fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sealed_secrets_e2e::harness::{Cluster, binary_path, random_suffix, workspace_root};
use sealed_secrets_e2e::standin;
use sealed_secrets_e2e::upstream::{
    ControlPlane, InCluster, service_account_dir, skip_unless_real, upstream_binary,
};
use serde_json::{Value, json};

const CTRL_NS: &str = "kube-system";
const CTRL_SA: &str = "sealed-secrets-controller";
const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// Our controller's record of what a Secret was produced from (docs/design.md); the one
/// annotation ours adds to a produced Secret, absent from upstream's.
const SOURCE_DIGEST: &str = "sealed-secrets-rs.dev/source-digest";
const TIMEOUT: Duration = Duration::from_secs(90);

/// Polls `f` every 200ms until it returns `Some`, or panics after `timeout` naming `what`.
fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

/// Plaintext values by key.
type Values = BTreeMap<String, String>;

fn values(pairs: &[(&str, &str)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A SealedSecret (or Secret) the test expects to become a Secret `name` with `values`.
#[derive(Debug, Clone)]
struct Expect {
    name: String,
    values: Values,
}

fn expect(name: &str, pairs: &[(&str, &str)]) -> Expect {
    Expect {
        name: name.to_owned(),
        values: values(pairs),
    }
}

/// One test's world: a control plane with `deploy/base` applied, the controller
/// ServiceAccount's volume, a work directory.
struct Env {
    cluster: Cluster,
    sa: PathBuf,
    work: tempfile::TempDir,
    // Last: stopped after everything that talks to it.
    cp: ControlPlane,
}

impl Env {
    fn new() -> Self {
        // Fail, not skip, when the real backend is selected but a binary is missing.
        for name in ["controller", "kubeseal"] {
            upstream_binary(name).unwrap_or_else(|e| panic!("{e}"));
        }
        for name in ["sealed-secrets-controller", "kubeseal"] {
            binary_path(name).unwrap_or_else(|e| panic!("{e}"));
        }
        let cp = ControlPlane::start().unwrap_or_else(|e| panic!("{e}"));
        let cluster = cp.cluster().unwrap();
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
        let sa = service_account_dir(&cp, &cluster, CTRL_NS, CTRL_SA).unwrap();
        let work = tempfile::tempdir().unwrap();
        Self {
            cluster,
            sa,
            work,
            cp,
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.cluster
            .kubectl_run(args, None)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    fn kubectl_in(&self, args: &[&str], stdin: &str) -> String {
        self.cluster
            .kubectl_run(args, Some(stdin))
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let out = self.cluster.kubectl_run(&full, None).ok()?;
        serde_json::from_str(&out).ok()
    }

    fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", random_suffix(5));
        self.kubectl(&["create", "namespace", &name]);
        name
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Upstream's controller, default flags (as upstream's controller.yaml runs it).
    fn start_upstream(&self) -> InCluster {
        let mut c = InCluster::start(
            &self.cp,
            &self.sa,
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
    fn start_ours(&self) -> InCluster {
        let deploy = self
            .get_json(&["deployment", "sealed-secrets-controller", "-n", CTRL_NS])
            .unwrap();
        let container = &deploy["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|a| !a.starts_with("--listen-addr") && !a.starts_with("--listen-metrics-addr"))
            .map(str::to_owned)
            .collect();
        let mut env: Vec<(String, String)> = Vec::new();
        for e in container["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => CTRL_NS.to_owned(),
                Some("metadata.name") => format!("sealed-secrets-controller-{}", random_suffix(5)),
                Some(other) => panic!("unexpected fieldRef {other} in deploy/base"),
                None => e["value"].as_str().unwrap_or_default().to_owned(),
            };
            env.push((name, value));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        let mut c = InCluster::start(
            &self.cp,
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
    fn kubeseal_output(&self, kubeseal: &Path, args: &[&str], stdin: &str) -> Output {
        kubeseal_with(
            kubeseal,
            &self.cp.kubeconfig(),
            self.work.path(),
            args,
            stdin,
        )
    }

    /// Runs a kubeseal and returns its stdout; panics with its stderr on failure.
    fn kubeseal(&self, kubeseal: &Path, args: &[&str], stdin: &str) -> String {
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
    fn key_secrets(&self) -> BTreeMap<String, Value> {
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
    fn keys_file(&self) -> PathBuf {
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
    fn create(&self, manifests: &str) {
        self.kubectl_in(&["create", "-f", "-"], manifests);
    }

    /// The objects of `kind` in `ns`, by name (one list call).
    fn by_name(&self, kind: &str, ns: &str) -> BTreeMap<String, Value> {
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
    fn upstream_unseal(&self, ss: &Value, keys: &Path) -> Value {
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
fn kubeseal_with(
    kubeseal: &Path,
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut child = Command::new(kubeseal)
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
fn decoded(secret: &Value) -> Values {
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
/// API server stores them; our source-digest annotation aside (documented, ours only).
fn comparable(secret: &Value) -> Value {
    let m = &secret["metadata"];
    let nonempty = |v: &Value| match v {
        Value::Object(o) if o.is_empty() => Value::Null,
        Value::Array(a) if a.is_empty() => Value::Null,
        other => other.clone(),
    };
    let mut annotations = nonempty(&m["annotations"]);
    if let Value::Object(a) = &mut annotations {
        a.remove(SOURCE_DIGEST);
    }
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
fn secret_yaml(ns: Option<&str>, name: &str, extra_meta: &str, body: &str) -> String {
    let ns = ns
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{ns}{extra_meta}{body}")
}

/// Seals, with `kubeseal` (upstream's or ours) and the certificate `cert` (file or URL), one
/// SealedSecret of every kind the issue lists into `ns`, creates them, and returns what each
/// must become: strict, namespace-wide (renamed), cluster-wide (renamed, moved), a template
/// (type, immutable, labels, Go-template data), a multi-document stream, `--raw` (strict and
/// cluster-wide), and `--merge-into` (also into a file `other`, the other project's kubeseal,
/// sealed).
fn seal_every_kind(env: &Env, kubeseal: &Path, other: &Path, cert: &str, ns: &str) -> Vec<Expect> {
    let seal = |args: &[&str], stdin: &str| {
        let mut full = vec!["--cert", cert];
        full.extend_from_slice(args);
        env.kubeseal(kubeseal, &full, stdin)
    };
    let mut expects = Vec::new();

    // Strict: data and stringData, labels and annotations.
    let strict = seal(
        &["-o", "yaml"],
        &secret_yaml(
            Some(ns),
            "strict",
            "  labels:\n    app: peers\n  annotations:\n    team: blue\n",
            &format!(
                "type: Opaque\ndata:\n  user: {}\nstringData:\n  password: \"s3cr3t\\nline2\"\n",
                b64("admin")
            ),
        ),
    );
    env.create(&strict);
    expects.push(expect(
        "strict",
        &[("user", "admin"), ("password", "s3cr3t\nline2")],
    ));

    // Namespace-wide, then renamed: the name is not part of the label.
    let nw = seal(
        &["--scope", "namespace-wide"],
        &secret_yaml(
            Some(ns),
            "nw-orig",
            "",
            "stringData:\n  k: namespace-wide\n",
        ),
    );
    let mut nw: Value = serde_json::from_str(&nw).unwrap();
    nw["metadata"]["name"] = json!("nw-renamed");
    env.create(&nw.to_string());
    expects.push(expect("nw-renamed", &[("k", "namespace-wide")]));

    // Cluster-wide, sealed without a namespace, created renamed in `ns`.
    let cw = seal(
        &["--scope", "cluster-wide"],
        &secret_yaml(None, "cw-orig", "", "stringData:\n  k: cluster-wide\n"),
    );
    let mut cw: Value = serde_json::from_str(&cw).unwrap();
    cw["metadata"]["name"] = json!("cw-renamed");
    cw["metadata"]["namespace"] = json!(ns);
    env.create(&cw.to_string());
    expects.push(expect("cw-renamed", &[("k", "cluster-wide")]));

    // Template: type, immutable, labels and annotations carried by spec.template, plus a
    // Go-template value rendered from the decrypted ones.
    let tpl = seal(
        &[],
        &secret_yaml(
            Some(ns),
            "tpl",
            "  labels:\n    tier: db\n  annotations:\n    owner: dba\n",
            "type: kubernetes.io/basic-auth\nimmutable: true\nstringData:\n  username: app\n  password: pw\n",
        ),
    );
    let mut tpl: Value = serde_json::from_str(&tpl).unwrap();
    tpl["spec"]["template"]["data"] =
        json!({"url": "postgres://{{ index . \"username\" }}:{{ index . \"password\" }}@db"});
    env.create(&tpl.to_string());
    expects.push(expect(
        "tpl",
        &[
            ("username", "app"),
            ("password", "pw"),
            ("url", "postgres://app:pw@db"),
        ],
    ));

    // Multi-document stream, YAML out.
    let docs: Vec<String> = (1..=3)
        .map(|i| {
            secret_yaml(
                Some(ns),
                &format!("md-{i}"),
                "",
                &format!("stringData:\n  num: \"{i}\"\n"),
            )
        })
        .collect();
    let md = seal(&["-o", "yaml"], &docs.join("---\n"));
    assert_eq!(md.matches("kind: SealedSecret").count(), 3, "{md}");
    env.create(&md);
    for i in 1..=3 {
        expects.push(expect(&format!("md-{i}"), &[("num", &i.to_string())]));
    }

    // --raw: strict (value from --from-file) and cluster-wide (value on stdin), assembled by
    // hand as the user would.
    let value_file = env.write(&format!("raw-{}", random_suffix(4)), "raw strict value");
    let raw_strict = seal(
        &[
            "--raw",
            "--scope",
            "strict",
            "--namespace",
            ns,
            "--name",
            "raw-strict",
            "--from-file",
            &value_file.to_string_lossy(),
        ],
        "",
    );
    let raw_cw = seal(
        &["--raw", "--scope", "cluster-wide"],
        "raw cluster-wide value",
    );
    for (name, ciphertext, annotations) in [
        ("raw-strict", &raw_strict, json!({})),
        (
            "raw-cw",
            &raw_cw,
            json!({"sealedsecrets.bitnami.com/cluster-wide": "true"}),
        ),
    ] {
        assert!(
            !ciphertext.contains('\n') && B64.decode(ciphertext.as_bytes()).is_ok(),
            "--raw prints bare base64: {ciphertext:?}"
        );
        let ss = json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {
                "encryptedData": {"token": ciphertext},
                "template": {"metadata": {"name": name, "namespace": ns, "annotations": annotations}},
            },
        });
        env.create(&ss.to_string());
    }
    expects.push(expect("raw-strict", &[("token", "raw strict value")]));
    expects.push(expect("raw-cw", &[("token", "raw cluster-wide value")]));

    // --merge-into: a sealed file, then items added and one replaced in place; once into a
    // file this kubeseal sealed, once into a file the other project's kubeseal sealed.
    for (first, name) in [(kubeseal, "merged"), (other, "merged-cross")] {
        let merged_file = env.path(&format!("{name}-{}.json", random_suffix(4)));
        env.kubeseal(
            first,
            &["--cert", cert, "-w", &merged_file.to_string_lossy()],
            &secret_yaml(Some(ns), name, "", "stringData:\n  a: one\n  b: two\n"),
        );
        let out = seal(
            &["--merge-into", &merged_file.to_string_lossy()],
            &secret_yaml(Some(ns), name, "", "stringData:\n  b: twenty\n  c: three\n"),
        );
        assert!(
            out.trim().is_empty(),
            "--merge-into writes the file only: {out}"
        );
        let merged = std::fs::read_to_string(&merged_file).unwrap();
        let merged_json: Value = serde_json::from_str(&merged).unwrap();
        let items: Vec<&String> = merged_json["spec"]["encryptedData"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(items, ["a", "b", "c"], "{merged}");
        env.create(&merged);
        expects.push(expect(
            name,
            &[("a", "one"), ("b", "twenty"), ("c", "three")],
        ));
    }

    expects
}

/// Waits until every expected Secret exists in `ns`, then asserts that the controller produced
/// exactly those Secrets: the values the test sealed, and every field as upstream's own Unseal
/// makes it of the SealedSecret as stored.
fn assert_all_produced(env: &Env, ns: &str, expects: &[Expect]) {
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

#[test]
fn upstream_kubeseal_seals_for_our_controller() {
    if skip_unless_real("upstream_kubeseal_seals_for_our_controller") {
        return;
    }
    let env = Env::new();
    let ours = env.start_ours();
    let ns = env.namespace("up2ours");

    // Upstream kubeseal takes our certificate from our loopback listener by URL, and the same
    // certificate is in our cert ConfigMap.
    let url = format!("http://{}/v1/cert.pem", ours.http);
    let upstream = upstream_binary("kubeseal").unwrap();
    let fetched = env.kubeseal(&upstream, &["--fetch-cert", "--cert", &url], "");
    assert_eq!(fetched, ours.cert().unwrap());
    let cm = env
        .get_json(&["configmap", "sealed-secrets-cert", "-n", CTRL_NS])
        .unwrap();
    assert_eq!(cm["data"]["cert.pem"].as_str(), Some(fetched.as_str()));

    let expects = seal_every_kind(
        &env,
        &upstream,
        &binary_path("kubeseal").unwrap(),
        &url,
        &ns,
    );
    assert_all_produced(&env, &ns, &expects);
    assert_clean_log(&ours);
}

#[test]
fn our_kubeseal_seals_for_upstream_controller() {
    if skip_unless_real("our_kubeseal_seals_for_upstream_controller") {
        return;
    }
    let env = Env::new();
    let mut theirs = env.start_upstream();
    let ns = env.namespace("ours2up");
    let url = format!("http://{}/v1/cert.pem", theirs.http);
    let ours = binary_path("kubeseal").unwrap();
    let fetched = env.kubeseal(&ours, &["--fetch-cert", "--cert", &url], "");
    assert_eq!(fetched, theirs.cert().unwrap());
    let cert = env.write("upstream-cert.pem", &fetched);

    let expects = seal_every_kind(
        &env,
        &ours,
        &upstream_binary("kubeseal").unwrap(),
        &cert.to_string_lossy(),
        &ns,
    );
    assert_all_produced(&env, &ns, &expects);

    // Our multi-recipient output (--cert twice) is ours only: upstream's controller refuses
    // it cleanly (status False with a reason, a Warning event, no Secret) and keeps working.
    let other = other_cert(&env);
    let multi = env.kubeseal(
        &ours,
        &[
            "--cert",
            &cert.to_string_lossy(),
            "--cert",
            &other.to_string_lossy(),
        ],
        &secret_yaml(Some(&ns), "multi", "", "stringData:\n  k: two-recipients\n"),
    );
    env.create(&multi);
    let status = eventually(
        "upstream's verdict on the multi-recipient SealedSecret",
        TIMEOUT,
        || {
            let ss = env.get_json(&["sealedsecret", "multi", "-n", &ns])?;
            let cond = ss["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Synced")?
                .clone();
            (cond["status"] == "False").then_some(cond)
        },
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no key could decrypt secret"),
        "upstream's reason: {status}"
    );
    // Events are recorded asynchronously (client-go's broadcaster): poll.
    eventually("upstream's ErrUnsealFailed event", TIMEOUT, || {
        let events = env.get_json(&[
            "events",
            "-n",
            &ns,
            "--field-selector",
            "involvedObject.name=multi",
        ])?;
        events["items"]
            .as_array()?
            .iter()
            .any(|e| e["reason"] == "ErrUnsealFailed" && e["type"] == "Warning")
            .then_some(())
    });
    assert!(env.get_json(&["secret", "multi", "-n", &ns]).is_none());
    assert!(theirs.process.is_running(), "upstream's controller died");
    let after = env.kubeseal(
        &ours,
        &["--cert", &cert.to_string_lossy()],
        &secret_yaml(
            Some(&ns),
            "after-multi",
            "",
            "stringData:\n  k: still-works\n",
        ),
    );
    env.create(&after);
    assert_all_produced(&env, &ns, &[expect("after-multi", &[("k", "still-works")])]);
    assert_clean_log(&theirs);
}

/// Asserts that a controller met no RBAC refusal (both run under exactly `deploy/base`'s
/// RBAC, which is meant to be upstream-equivalent) and did not panic.
fn assert_clean_log(c: &InCluster) {
    let log = c.process.log().to_lowercase();
    for bad in ["forbidden", "panic"] {
        assert!(
            !log.contains(bad),
            "`{bad}` in the controller's log:\n{log}"
        );
    }
}

/// A certificate of another key (a second cluster's, for the multi-recipient case).
fn other_cert(env: &Env) -> PathBuf {
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
fn secret_versions(env: &Env, ns: &str) -> BTreeMap<String, String> {
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
fn wait_settled(c: &InCluster, n: f64) {
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

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `count` strict Secrets `m-0..` in `ns`, sealed in one multi-document call.
fn seal_many(
    env: &Env,
    kubeseal: &Path,
    cert: &str,
    ns: &str,
    prefix: &str,
    count: usize,
) -> Vec<Expect> {
    let docs: Vec<String> = (0..count)
        .map(|i| {
            secret_yaml(
                Some(ns),
                &format!("{prefix}-{i}"),
                "  labels:\n    batch: migration\n",
                &format!("stringData:\n  i: \"{i}\"\n  name: {prefix}-{i}\n"),
            )
        })
        .collect();
    let sealed = env.kubeseal(
        kubeseal,
        &["--cert", cert, "-o", "yaml"],
        &docs.join("---\n"),
    );
    env.create(&sealed);
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i}");
            expect(&name, &[("i", &i.to_string()), ("name", &name)])
        })
        .collect()
}

#[test]
fn migration_upstream_to_ours_and_back() {
    if skip_unless_real("migration_upstream_to_ours_and_back") {
        return;
    }
    let env = Env::new();
    let ns = env.namespace("migrate");
    let upstream_kubeseal = upstream_binary("kubeseal").unwrap();

    let t = Instant::now();
    let phase = |what: &str| eprintln!("migration: {what} at {:.1}s", t.elapsed().as_secs_f64());

    // Upstream generates its key and unseals 50 SealedSecrets.
    let mut theirs = env.start_upstream();
    let cert = theirs.cert().unwrap();
    let cert_file = env.write("cert.pem", &cert);
    let keys_before = env.key_secrets();
    assert_eq!(keys_before.len(), 1, "upstream generated one key");
    let expects = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "m",
        50,
    );
    assert_all_produced(&env, &ns, &expects);
    wait_settled(&theirs, 50.0);
    phase("upstream unsealed 50");
    let versions = secret_versions(&env, &ns);
    assert_eq!(versions.len(), 50);
    theirs.process.stop();
    assert_clean_log(&theirs);

    // Ours with deploy/base's settings: same key, same certificate, nothing rewritten.
    let ours = env.start_ours();
    assert_eq!(
        ours.cert().unwrap(),
        cert,
        "ours serves upstream's certificate"
    );
    wait_settled(&ours, 50.0);
    phase("ours took over");
    assert_eq!(
        env.key_secrets().keys().collect::<Vec<_>>(),
        keys_before.keys().collect::<Vec<_>>(),
        "no new key"
    );
    assert_eq!(
        secret_versions(&env, &ns),
        versions,
        "ours rewrote Secrets upstream made"
    );
    assert_all_produced(&env, &ns, &expects);
    // And it is live: a new SealedSecret (upstream kubeseal, upstream's cert) is unsealed.
    let new = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "during-ours",
        1,
    );
    assert_all_produced(&env, &ns, &new);
    assert_clean_log(&ours);
    drop(ours);

    // Back to upstream: same key, still correct, its own Secrets not rewritten.
    let versions = secret_versions(&env, &ns);
    let theirs = env.start_upstream();
    assert_eq!(theirs.cert().unwrap(), cert);
    wait_settled(&theirs, 51.0);
    phase("upstream took back");
    assert_eq!(
        env.key_secrets().keys().collect::<Vec<_>>(),
        keys_before.keys().collect::<Vec<_>>(),
        "no new key"
    );
    let after = secret_versions(&env, &ns);
    for e in &expects {
        assert_eq!(
            after[&e.name], versions[&e.name],
            "upstream rewrote {}",
            e.name
        );
    }
    assert_all_produced(&env, &ns, &expects);
    assert_all_produced(&env, &ns, &new);
    let last = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "after",
        1,
    );
    assert_all_produced(&env, &ns, &last);
    assert_clean_log(&theirs);
}

/// A stand-in whose service proxy routes `kube-system/sealed-secrets-controller` (deploy/base's
/// Service, port `http`) to `controller`'s loopback listener: kubeseal's path to a controller
/// when the real API server cannot proxy to it (it refuses loopback endpoints).
fn proxy_to(controller: &InCluster) -> Cluster {
    let proxy = Cluster::standin(standin::Config::default()).unwrap();
    let service = workspace_root().join("deploy/base/service.yaml");
    proxy
        .kubectl_run(&["apply", "-f", &service.to_string_lossy()], None)
        .unwrap();
    proxy
        .register_endpoint(CTRL_NS, "sealed-secrets-controller", &controller.http)
        .unwrap();
    proxy
}

/// `kubeseal` (upstream's or ours) `--fetch-cert`, `--validate` and `--re-encrypt` against
/// `controller` (the other project's) through the service proxy, and the re-encrypted
/// SealedSecret unsealed by that controller.
fn cli_against_controller(env: &Env, kubeseal: &Path, controller: &InCluster) {
    let proxy = proxy_to(controller);
    let run = |args: &[&str], stdin: &str| {
        kubeseal_with(kubeseal, proxy.kubeconfig(), env.work.path(), args, stdin)
    };
    let ok = |args: &[&str], stdin: &str| {
        let out = run(args, stdin);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            kubeseal.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let cert = ok(&["--fetch-cert"], "");
    assert_eq!(
        cert,
        controller.cert().unwrap(),
        "--fetch-cert through the proxy"
    );
    let cert_file = env.write(&format!("cert-{}.pem", random_suffix(4)), &cert);
    let cert_arg = cert_file.to_string_lossy().into_owned();

    let ns = env.namespace("cli");
    let sealed = env.kubeseal(
        kubeseal,
        &["--cert", &cert_arg],
        &secret_yaml(
            Some(&ns),
            "checked",
            "  labels:\n    app: cli\n",
            "stringData:\n  user: alice\n  pass: wonderland\n",
        ),
    );
    let sealed_file = env.write(&format!("sealed-{}.json", random_suffix(4)), &sealed);

    // --validate: accepted as sealed; refused when renamed (the strict label no longer fits).
    ok(&["--validate", "-f", &sealed_file.to_string_lossy()], "");
    let mut renamed: Value = serde_json::from_str(&sealed).unwrap();
    renamed["metadata"]["name"] = json!("renamed");
    let out = run(&["--validate"], &renamed.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unable to decrypt sealed secret"),
        "--validate of a renamed strict SealedSecret: {stderr}"
    );

    // --re-encrypt: a new ciphertext for every item, same metadata; the controller opens it.
    // With only -f, the result replaces the input file (upstream #405, kept by ours).
    let out = ok(&["--re-encrypt", "-f", &sealed_file.to_string_lossy()], "");
    assert_eq!(out, "", "--re-encrypt -f writes the file, not stdout");
    let rotated = std::fs::read_to_string(&sealed_file).unwrap();
    // And from stdin to stdout.
    let piped: Value = serde_json::from_str(&ok(&["--re-encrypt"], &sealed)).unwrap();
    assert_eq!(piped["kind"], "SealedSecret");
    let rotated_json: Value = serde_json::from_str(&rotated).unwrap();
    let before: Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(rotated_json["kind"], "SealedSecret", "{rotated}");
    assert_eq!(rotated_json["metadata"]["name"], "checked");
    let items = |v: &Value| v["spec"]["encryptedData"].as_object().unwrap().clone();
    assert_eq!(
        items(&rotated_json).keys().collect::<Vec<_>>(),
        items(&before).keys().collect::<Vec<_>>()
    );
    for (k, v) in items(&rotated_json) {
        assert_ne!(v, items(&before)[&k], "item {k} was re-encrypted");
    }
    assert!(rotated_json["metadata"]["creationTimestamp"].is_null());
    env.create(&rotated);
    assert_all_produced(
        env,
        &ns,
        &[expect(
            "checked",
            &[("user", "alice"), ("pass", "wonderland")],
        )],
    );
}

#[test]
fn upstream_kubeseal_fetch_validate_reencrypt_against_ours() {
    if skip_unless_real("upstream_kubeseal_fetch_validate_reencrypt_against_ours") {
        return;
    }
    let env = Env::new();
    let ours = env.start_ours();
    cli_against_controller(&env, &upstream_binary("kubeseal").unwrap(), &ours);
    // Our CLI reads the same certificate from our ConfigMap on the real API server.
    let from_cm = env.kubeseal(
        &binary_path("kubeseal").unwrap(),
        &["--fetch-cert", "--cert-from-configmap"],
        "",
    );
    assert_eq!(from_cm, ours.cert().unwrap());
    assert_clean_log(&ours);

    // The key Secret ours generated is an ordinary upstream key: upstream's controller loads
    // it instead of generating one, and serves the same certificate.
    let cert = ours.cert().unwrap();
    drop(ours);
    let theirs = env.start_upstream();
    assert_eq!(
        theirs.cert().unwrap(),
        cert,
        "upstream loads the key ours made"
    );
    assert_eq!(env.key_secrets().len(), 1, "no new key");
    assert_clean_log(&theirs);
}

#[test]
fn our_kubeseal_fetch_validate_reencrypt_against_upstream() {
    if skip_unless_real("our_kubeseal_fetch_validate_reencrypt_against_upstream") {
        return;
    }
    let env = Env::new();
    let theirs = env.start_upstream();
    cli_against_controller(&env, &binary_path("kubeseal").unwrap(), &theirs);
    assert_clean_log(&theirs);
}

#[test]
fn backup_of_upstream_keys_restored_into_a_fresh_control_plane() {
    if skip_unless_real("backup_of_upstream_keys_restored_into_a_fresh_control_plane") {
        return;
    }
    let a = Env::new();
    let ns = a.namespace("backup");
    let upstream_kubeseal = upstream_binary("kubeseal").unwrap();
    let ours_kubeseal = binary_path("kubeseal").unwrap();

    // Upstream's controller makes a key, then a second one (SIGUSR1, upstream's manual
    // renewal); SealedSecrets sealed with each.
    let theirs = a.start_upstream();
    let first = theirs.cert().unwrap();
    let first_file = a.write("first.pem", &first);
    let mut expects = seal_many(
        &a,
        &upstream_kubeseal,
        &first_file.to_string_lossy(),
        &ns,
        "k1",
        3,
    );
    let pid = theirs.process.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    let second = eventually("upstream's second key", TIMEOUT, || {
        theirs.cert().filter(|c| *c != first)
    });
    let second_file = a.write("second.pem", &second);
    expects.extend(seal_many(
        &a,
        &upstream_kubeseal,
        &second_file.to_string_lossy(),
        &ns,
        "k2",
        3,
    ));
    assert_all_produced(&a, &ns, &expects);
    let keys = a.key_secrets();
    assert_eq!(keys.len(), 2);

    // Our backup of upstream's key Secrets, passphrase-protected; the SealedSecrets as a
    // user keeps them (no server-set fields).
    let keep = tempfile::tempdir().unwrap();
    let passphrase = keep.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let backup = keep.path().join("keys.backup");
    a.kubeseal(
        &ours_kubeseal,
        &[
            "keys",
            "backup",
            "-o",
            &backup.to_string_lossy(),
            "--passphrase-file",
            &passphrase.to_string_lossy(),
        ],
        "",
    );
    // Our unencrypted backup is a v1.List of the key Secrets, which upstream's kubeseal takes
    // as --recovery-private-key: it opens SealedSecrets of both keys.
    let plain = keep.path().join("keys-plain.json");
    a.kubeseal(
        &ours_kubeseal,
        &[
            "keys",
            "backup",
            "--insecure-plaintext",
            "-o",
            &plain.to_string_lossy(),
        ],
        "",
    );
    let sealed = a.by_name("sealedsecrets", &ns);
    for name in ["k1-0", "k2-0"] {
        let opened = a.upstream_unseal(&sealed[name], &plain);
        assert_eq!(
            decoded(&opened)["name"],
            name,
            "upstream recovery with our backup"
        );
    }
    let listed = a.get_json(&["sealedsecrets", "-n", &ns]).unwrap();
    let manifests: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ss| {
            json!({
                "apiVersion": ss["apiVersion"],
                "kind": "SealedSecret",
                "metadata": {"name": ss["metadata"]["name"], "namespace": ns},
                "spec": ss["spec"],
            })
            .to_string()
        })
        .collect();
    assert_eq!(manifests.len(), 6);
    assert_clean_log(&theirs);
    drop(theirs);
    drop(a);

    // A fresh control plane: restore, then our controller opens everything upstream sealed,
    // with upstream's keys only.
    let b = Env::new();
    b.kubectl(&["create", "namespace", &ns]);
    b.kubeseal(
        &ours_kubeseal,
        &[
            "keys",
            "restore",
            &backup.to_string_lossy(),
            "--passphrase-file",
            &passphrase.to_string_lossy(),
        ],
        "",
    );
    let restored = b.key_secrets();
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        keys.keys().collect::<Vec<_>>()
    );
    for (name, key) in &keys {
        assert_eq!(
            restored[name]["data"], key["data"],
            "key Secret {name} restored as it was"
        );
    }
    for m in &manifests {
        b.create(m);
    }
    let ours = b.start_ours();
    assert_eq!(
        ours.cert().unwrap(),
        second,
        "the newest restored key is the sealing key"
    );
    assert_all_produced(&b, &ns, &expects);
    assert_eq!(b.key_secrets().len(), 2, "no new key");
    assert_clean_log(&ours);
}
