//! Issue #10 on a real control plane only (`SEALED_SECRETS_E2E_CLUSTER=real`; on another
//! backend every test here says it is skipped and passes): what a stand-in cannot show.
//!
//! - RBAC for real: the controller authenticates as its ServiceAccount with a TokenRequest
//!   token, bound by exactly the RBAC objects of `deploy/base`; `kubeseal` runs as a plain user
//!   (a client certificate with no group) holding only what `deploy/` grants users. The API
//!   server's audit log then proves least privilege: nothing either of them did was forbidden,
//!   and every right `deploy/base` grants the controller was used.

// Helpers outside #[test] fns fail loudly on purpose (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::cluster::{
    Cluster, Process, binary_path, find_kubectl, free_port, random_suffix, run_tool, wait_for_port,
    workspace_root,
};
use harness::control_plane::{Backend, backend};
use harness::wait::eventually_blocking;
use serde_json::{Value, json};

const CONTROLLER_USER: &str = "system:serviceaccount:kube-system:sealed-secrets-controller";
const PLAIN_USER: &str = "e2e-user";
const TIMEOUT: Duration = Duration::from_secs(60);

/// Metadata-level audit events of the two identities under test, nothing else.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["system:serviceaccount:kube-system:sealed-secrets-controller", "e2e-user"]
  - level: None
"#;

fn skip_unless_real(test: &str) -> bool {
    if backend().unwrap() == Backend::ControlPlane {
        return false;
    }
    eprintln!(
        "SKIPPED: {test} runs only on a private real control plane (SEALED_SECRETS_E2E_CLUSTER=real)"
    );
    true
}

/// Runs `program args` with `KUBECONFIG=kubeconfig` and `stdin`: (success, stdout, stderr).
fn run(
    program: &Path,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One audit event, reduced to what authorisation looked at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    user: String,
    verb: String,
    group: String,
    /// `resource` or `resource/subresource`.
    resource: String,
    namespace: String,
    name: String,
    code: i64,
}

fn audit_requests(log: &Path) -> Vec<Request> {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete" || e["stage"] == "ResponseStarted")
        .filter_map(|e| {
            let o = e.get("objectRef")?;
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let mut resource = s(&o["resource"]);
            if let Some(sub) = o["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            Some(Request {
                user: s(&e["user"]["username"]),
                verb: s(&e["verb"]),
                group: s(&o["apiGroup"]),
                resource,
                namespace: s(&o["namespace"]),
                name: s(&o["name"]),
                code: e["responseStatus"]["code"].as_i64().unwrap_or(0),
            })
        })
        .collect()
}

/// One right a Role or ClusterRole of `deploy/base` grants the controller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Right {
    /// `None` for a ClusterRole (any namespace).
    namespace: Option<String>,
    group: String,
    resource: String,
    verb: String,
    /// Empty: any name.
    names: Vec<String>,
    role: String,
}

impl Right {
    fn used_by(&self, r: &Request) -> bool {
        // Authorised (a 404 or 409 answer is still a use of the right), not refused.
        r.user == CONTROLLER_USER
            && r.code != 401
            && r.code != 403
            && r.verb == self.verb
            && r.group == self.group
            && r.resource == self.resource
            && self.namespace.as_ref().is_none_or(|ns| *ns == r.namespace)
            && (self.names.is_empty() || self.names.contains(&r.name))
    }
}

/// Every (verb, resource, name) the render's RBAC grants the controller's ServiceAccount.
fn controller_rights(render: &str) -> Vec<Right> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(render).unwrap();
    let bound = |kind: &str| -> BTreeSet<(Option<String>, String)> {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .filter(|d| {
                d["subjects"].as_array().into_iter().flatten().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == "sealed-secrets-controller"
                        && s["namespace"] == "kube-system"
                })
            })
            .map(|d| {
                (
                    d["metadata"]["namespace"].as_str().map(str::to_owned),
                    d["roleRef"]["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let mut bindings = bound("RoleBinding");
    bindings.extend(bound("ClusterRoleBinding"));
    let mut rights = Vec::new();
    for (ns, role) in bindings {
        let kind = if ns.is_some() { "Role" } else { "ClusterRole" };
        let doc = docs
            .iter()
            .find(|d| {
                d["kind"] == kind
                    && d["metadata"]["name"] == role.as_str()
                    && d["metadata"]["namespace"].as_str() == ns.as_deref()
            })
            .unwrap_or_else(|| panic!("{kind} {role} bound but not in deploy/base"));
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        rights.push(Right {
                            namespace: ns.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: strings(&rule["resourceNames"]),
                            role: format!("{kind} {role}"),
                        });
                    }
                }
            }
        }
    }
    rights
}

struct Setup {
    cluster: Cluster,
    kubectl: PathBuf,
    kubeseal: PathBuf,
    controller_kubeconfig: PathBuf,
    user_kubeconfig: PathBuf,
}

impl Setup {
    fn admin(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.cluster
            .kubectl_run(args, stdin)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    fn user_kubeseal(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        run(&self.kubeseal, &self.user_kubeconfig, args, stdin)
    }

    /// The controller as deployed (deploy/base's arguments), with its ServiceAccount's token.
    fn controller(&self, extra: &[&str]) -> (Process, u16) {
        let port = free_port().unwrap();
        let metrics = free_port().unwrap();
        let mut cmd = Command::new(binary_path("sealed-secrets-controller").unwrap());
        cmd.env("KUBECONFIG", &self.controller_kubeconfig)
            .env("POD_NAMESPACE", "kube-system")
            .env(
                "POD_NAME",
                format!("sealed-secrets-controller-{}", random_suffix(5)),
            )
            .args([
                "--update-status",
                "--key-prefix=sealed-secrets-key",
                &format!("--listen-addr=127.0.0.1:{port}"),
                &format!("--listen-metrics-addr=127.0.0.1:{metrics}"),
                "--leader-election=true",
                "--leader-election-lease-name=sealed-secrets-controller",
                "--cert-configmap=sealed-secrets-cert",
                "--key-size=2048",
            ])
            .args(extra);
        let mut p = Process::spawn(cmd, self.cluster.temp_dir()).unwrap();
        if let Err(e) = wait_for_port(&format!("127.0.0.1:{port}"), TIMEOUT) {
            panic!("controller did not listen: {e}\n{}", p.log());
        }
        assert!(p.is_running(), "{}", p.log());
        (p, port)
    }

    fn secret_data(&self, ns: &str, name: &str) -> Option<Value> {
        let out = self
            .cluster
            .kubectl_run(&["get", "secret", "-n", ns, name, "-o", "json"], None)
            .ok()?;
        let v: Value = serde_json::from_str(&out).ok()?;
        Some(v)
    }
}

fn setup() -> Setup {
    let cluster = Cluster::control_plane_audited(Some(AUDIT_POLICY)).unwrap();
    let cp = cluster.control_plane_handle().unwrap();
    let kubectl = find_kubectl().unwrap();
    let base = workspace_root().join("deploy/base");
    cluster
        .kubectl_run(&["apply", "-k", base.to_str().unwrap()], None)
        .unwrap_or_else(|e| panic!("kubectl apply -k deploy/base: {e}"));
    cluster
        .kubectl_run(
            &[
                "wait",
                "--for=condition=Established",
                "crd/sealedsecrets.bitnami.com",
                "--timeout=30s",
            ],
            None,
        )
        .unwrap();
    // A TokenRequest token of the ServiceAccount deploy/base creates.
    let token = cluster
        .kubectl_run(
            &[
                "create",
                "token",
                "sealed-secrets-controller",
                "-n",
                "kube-system",
                "--duration=1h",
            ],
            None,
        )
        .unwrap();
    let controller_kubeconfig = cp
        .token_kubeconfig("sealed-secrets-controller", token.trim())
        .unwrap();
    let user_kubeconfig = cp.user_kubeconfig(PLAIN_USER, &[]).unwrap();
    Setup {
        cluster,
        kubectl,
        kubeseal: binary_path("kubeseal").unwrap(),
        controller_kubeconfig,
        user_kubeconfig,
    }
}

fn secret_manifest(ns: &str, name: &str, value: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"value": value},
    })
    .to_string()
}

fn decoded(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine as _;
    let b = secret["data"][key].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    String::from_utf8(raw).ok()
}

fn provoke_status_conflict(cluster: &Cluster, ns: &str, name: &str, audit: &Path) {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = cluster.client().await.unwrap();
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "bitnami.com",
            "v1alpha1",
            "SealedSecret",
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
        for i in 0..20 {
            let spec = json!({"spec": {"template": {"metadata": {"labels": {"e2e-round": i.to_string()}}}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&spec))
                .await
                .unwrap();
            let meta = json!({"metadata": {"annotations": {"e2e-poke": i.to_string()}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&meta))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let got = audit_requests(audit).iter().any(|r| {
                r.user == CONTROLLER_USER && r.resource == "sealedsecrets" && r.verb == "get"
            });
            if got {
                return;
            }
        }
        panic!("20 rounds of racing updates never made the controller's status write conflict");
    });
}

#[test]
fn deploy_base_rbac_is_enough_and_every_controller_right_is_used() {
    if skip_unless_real("deploy_base_rbac_is_enough_and_every_controller_right_is_used") {
        return;
    }
    let s = setup();
    let app = format!("app-{}", random_suffix(5));
    let extra = format!("extra-{}", random_suffix(5));
    for ns in [&app, &extra] {
        s.admin(&["create", "namespace", ns], None);
    }

    // Run 1: the controller as deployed, all namespaces.
    let (mut ctrl, port) = s.controller(&[]);
    s.cluster
        .register_endpoint(
            "kube-system",
            "sealed-secrets-controller",
            &format!("127.0.0.1:{port}"),
        )
        .unwrap();
    // The plain user fetches the certificate through the real service proxy.
    let cert = eventually_blocking("kubeseal --fetch-cert as the plain user", TIMEOUT, || {
        let (ok, out, _) = s.user_kubeseal(&["--fetch-cert"], None);
        (ok && out.contains("BEGIN CERTIFICATE")).then_some(out)
    });
    // ... and from the published ConfigMap.
    let (ok, _, err) = s.user_kubeseal(
        &["--cert-from-configmap", "-o", "json"],
        Some(&secret_manifest(&app, "probe", "x")),
    );
    assert!(ok, "--cert-from-configmap as the plain user: {err}");

    // Seal (certificate through the proxy), apply as the admin, unsealed by the controller.
    let (ok, sealed, err) =
        s.user_kubeseal(&["-o", "json"], Some(&secret_manifest(&app, "db", "one")));
    assert!(ok, "kubeseal as the plain user: {err}");
    s.admin(&["apply", "-f", "-"], Some(&sealed));
    eventually_blocking("Secret db unsealed", TIMEOUT, || {
        s.secret_data(&app, "db")
            .filter(|v| decoded(v, "value").as_deref() == Some("one"))
    });
    let (ok, _, err) = s.user_kubeseal(&["--validate"], Some(&sealed));
    assert!(ok, "--validate as the plain user: {err}\n{}", ctrl.log());
    let (ok, reencrypted, err) = s.user_kubeseal(&["--re-encrypt", "-o", "json"], Some(&sealed));
    assert!(ok, "--re-encrypt as the plain user: {err}\n{}", ctrl.log());
    assert!(reencrypted.contains("SealedSecret"), "{reencrypted}");

    // An update rewrites the Secret; a deleted Secret is recreated.
    let (ok, sealed2, err) =
        s.user_kubeseal(&["-o", "json"], Some(&secret_manifest(&app, "db", "two")));
    assert!(ok, "{err}");
    s.admin(&["apply", "-f", "-"], Some(&sealed2));
    eventually_blocking("Secret db updated", TIMEOUT, || {
        s.secret_data(&app, "db")
            .filter(|v| decoded(v, "value").as_deref() == Some("two"))
    });
    s.admin(&["delete", "secret", "-n", &app, "db"], None);
    eventually_blocking("Secret db recreated", TIMEOUT, || {
        s.secret_data(&app, "db")
            .filter(|v| decoded(v, "value").as_deref() == Some("two"))
    });
    // A new key on request (SIGUSR1): a new key Secret, the ConfigMap updated.
    let keys_before = s.admin(
        &[
            "get",
            "secrets",
            "-n",
            "kube-system",
            "-l",
            "sealedsecrets.bitnami.com/sealed-secrets-key",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        Command::new("kill")
            .args(["-USR1", &ctrl.id().unwrap().to_string()])
            .status()
            .unwrap()
            .success()
    );
    eventually_blocking("a second key Secret", TIMEOUT, || {
        let now = s.admin(
            &[
                "get",
                "secrets",
                "-n",
                "kube-system",
                "-l",
                "sealedsecrets.bitnami.com/sealed-secrets-key",
                "-o",
                "name",
            ],
            None,
        );
        (now.lines().count() > keys_before.lines().count()).then_some(())
    });
    // A status write that conflicts (409) makes the controller GET the SealedSecret afresh:
    // a spec change (new generation, hence a status write) immediately followed by a
    // metadata-only change (new resourceVersion) usually wins that race; tried until it does.
    let audit = s.cluster.control_plane_handle().unwrap().audit_log();
    provoke_status_conflict(&s.cluster, &app, "db", &audit);
    // The leader renews its Lease (an update) within the lease duration.
    eventually_blocking("a Lease renewal", TIMEOUT, || {
        audit_requests(&audit)
            .iter()
            .any(|r| r.user == CONTROLLER_USER && r.resource == "leases" && r.verb == "update")
            .then_some(())
    });
    ctrl.stop();
    assert!(
        ctrl.log().contains("released the leader lease"),
        "the Lease was not released on shutdown:\n{}",
        ctrl.log()
    );
    // A restart over the Secrets it produced: the start-up check lists the SealedSecrets
    // whole (the cluster-wide `list`; the watch streams its first list instead,
    // docs/design.md "Restarts").
    let (mut restarted, _) = s.controller(&[]);
    restarted
        .wait_for_log("start-up check: SealedSecrets already in sync", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", restarted.log()));
    restarted.stop();

    // Run 2: own namespace plus --additional-namespaces (read with a namespaces GET), and
    // --old-gc-behavior (deletes the Secret of a deleted SealedSecret).
    let (mut ctrl2, _) = s.controller(&[
        "--all-namespaces=false",
        &format!("--additional-namespaces={extra}"),
        "--old-gc-behavior",
    ]);
    let cert_file = s.cluster.temp_dir().join("cert.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    let (ok, sealed3, err) = s.user_kubeseal(
        &["-o", "json", "--cert", cert_file.to_str().unwrap()],
        Some(&secret_manifest(&extra, "gc", "three")),
    );
    assert!(ok, "{err}");
    s.admin(&["apply", "-f", "-"], Some(&sealed3));
    eventually_blocking(
        "Secret gc unsealed in the additional namespace",
        TIMEOUT,
        || {
            s.secret_data(&extra, "gc")
                .filter(|v| decoded(v, "value").as_deref() == Some("three"))
        },
    );
    s.admin(
        &[
            "delete",
            "sealedsecret",
            "-n",
            &extra,
            "gc",
            "--cascade=orphan",
        ],
        None,
    );
    eventually_blocking("Secret gc deleted by the controller", TIMEOUT, || {
        s.secret_data(&extra, "gc").is_none().then_some(())
    });
    ctrl2.stop();
    let logs = format!("{}\n{}\n{}", ctrl.log(), restarted.log(), ctrl2.log());

    // The audit log: nothing forbidden to either identity; every granted right used.
    let requests = audit_requests(&audit);
    let forbidden: Vec<&Request> = requests
        .iter()
        .filter(|r| r.code == 403 && (r.user == CONTROLLER_USER || r.user == PLAIN_USER))
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden requests: {forbidden:#?}\ncontroller logs:\n{logs}"
    );
    let render = run_tool(
        &s.kubectl,
        &[
            "kustomize",
            workspace_root().join("deploy/base").to_str().unwrap(),
        ],
    )
    .unwrap();
    let rights = controller_rights(&render);
    assert!(rights.len() > 10, "{rights:#?}");
    let unused: Vec<&Right> = rights
        .iter()
        .filter(|right| !requests.iter().any(|r| right.used_by(r)))
        .collect();
    let used: BTreeSet<(String, String, String, String)> = requests
        .iter()
        .filter(|r| r.user == CONTROLLER_USER)
        .map(|r| {
            (
                r.verb.clone(),
                r.group.clone(),
                r.resource.clone(),
                r.namespace.clone(),
            )
        })
        .collect();
    assert!(
        unused.is_empty(),
        "rights deploy/base grants the controller that it never used: {unused:#?}\n\
         what it did use (verb, group, resource, namespace): {used:#?}"
    );
    eprintln!(
        "least privilege: {} granted rights, each used; {} controller requests, none forbidden",
        rights.len(),
        requests
            .iter()
            .filter(|r| r.user == CONTROLLER_USER)
            .count()
    );
}

/// `kubectl` as the cluster admin; panics with stderr on failure.
fn admin(c: &Cluster, args: &[&str], stdin: Option<&str>) -> String {
    c.kubectl_run(args, stdin)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend(["-o", "json"]);
    serde_json::from_str(&admin(c, &a, None)).unwrap()
}

fn cluster_with_crd() -> Cluster {
    let c = Cluster::control_plane().unwrap();
    let crds = workspace_root().join("crds/sealedsecrets.bitnami.com.yaml");
    admin(&c, &["apply", "-f", crds.to_str().unwrap()], None);
    admin(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=30s",
        ],
        None,
    );
    c
}

#[test]
fn crd_round_trips_every_upstream_field_through_create_patch_and_status() {
    if skip_unless_real("crd_round_trips_every_upstream_field_through_create_patch_and_status") {
        return;
    }
    let c = cluster_with_crd();
    let ns = format!("crd-{}", random_suffix(5));
    admin(&c, &["create", "namespace", &ns], None);
    let value = "AgBy3i4OJSWK+PiTySYZZA==";
    // Every field upstream's CRD carries, including the legacy single-value `spec.data`, and
    // template metadata fields the schema does not list (kept: x-kubernetes-preserve-unknown-fields).
    let spec = json!({
        "encryptedData": {"password": value, "user": value},
        "data": "AAECAw==",
        "template": {
            "metadata": {
                "name": "full",
                "namespace": ns,
                "labels": {"app": "db", "tier": "backend"},
                "annotations": {"note": "kept", "sealedsecrets.bitnami.com/managed": "true"},
                "finalizers": ["example.com/keep"],
                "generateName": "full-",
            },
            "type": "kubernetes.io/basic-auth",
            "immutable": true,
            "data": {"config.yaml": "user: {{ index . \"user\" }}\npassword: {{ index . \"password\" }}\n"},
        },
    });
    let obj = json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "full", "namespace": ns,
                     "annotations": {"sealedsecrets.bitnami.com/namespace-wide": "true"},
                     "labels": {"team": "a"}},
        "spec": spec,
        // Ignored on create: status is a subresource.
        "status": {"observedGeneration": 7},
    });
    admin(&c, &["create", "-f", "-"], Some(&obj.to_string()));
    let got = get_json(&c, &["sealedsecret", "-n", &ns, "full"]);
    assert_eq!(got["spec"], spec, "spec changed on create (pruned?)");
    assert_eq!(got["metadata"]["labels"], obj["metadata"]["labels"]);
    assert_eq!(
        got["metadata"]["annotations"],
        obj["metadata"]["annotations"]
    );
    assert!(
        got.get("status").is_none(),
        "status set through the main resource: {got}"
    );
    assert_eq!(got["metadata"]["generation"], 1);

    // Patch the spec: merged, nothing else lost, a new generation.
    let patch = json!({"spec": {"template": {"metadata": {"labels": {"tier": "db"}},
                                             "data": {"extra": "{{ .user }}"}}}});
    admin(
        &c,
        &[
            "patch",
            "sealedsecret",
            "-n",
            &ns,
            "full",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
    let got = get_json(&c, &["sealedsecret", "-n", &ns, "full"]);
    let want = {
        let mut w = spec.clone();
        w["template"]["metadata"]["labels"]["tier"] = "db".into();
        w["template"]["data"]["extra"] = "{{ .user }}".into();
        w
    };
    assert_eq!(got["spec"], want, "spec after a merge patch");
    assert_eq!(got["metadata"]["generation"], 2);

    // Status through the status subresource: conditions and observedGeneration kept as sent;
    // a status in a main-resource write is ignored.
    let status = json!({
        "observedGeneration": 2,
        "conditions": [{
            "type": "Synced", "status": "False", "reason": "ErrUnsealFailed",
            "message": "no key could decrypt secret (password, user)",
            "lastUpdateTime": "2026-01-02T03:04:05Z",
            "lastTransitionTime": "2026-01-02T03:04:05Z",
        }],
    });
    admin(
        &c,
        &[
            "patch",
            "sealedsecret",
            "-n",
            &ns,
            "full",
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({"status": status}).to_string(),
        ],
        None,
    );
    let got = get_json(&c, &["sealedsecret", "-n", &ns, "full"]);
    assert_eq!(got["status"], status, "status after a status patch");
    assert_eq!(
        got["metadata"]["generation"], 2,
        "a status write is no new generation"
    );
    admin(
        &c,
        &[
            "patch",
            "sealedsecret",
            "-n",
            &ns,
            "full",
            "--type=merge",
            "-p",
            &json!({"status": {"observedGeneration": 99}}).to_string(),
        ],
        None,
    );
    let got = get_json(&c, &["sealedsecret", "-n", &ns, "full"]);
    assert_eq!(
        got["status"], status,
        "status must only change through /status"
    );
    assert_eq!(got["spec"], want);

    // The printer columns read the status.
    let table = admin(&c, &["get", "sealedsecret", "-n", &ns, "full"], None);
    assert!(
        table.contains("no key could decrypt") && table.contains("False"),
        "{table}"
    );

    // kubectl explain reads the published schema.
    let explain = admin(&c, &["explain", "sealedsecret.spec.template"], None);
    for field in ["data", "immutable", "metadata", "type"] {
        assert!(explain.contains(field), "explain lacks {field}:\n{explain}");
    }

    // Values that are not strings are refused by the schema, naming the field.
    let bad = json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {"encryptedData": {"x": value}, "template": {"immutable": "yes"}},
    });
    let err = c
        .kubectl_run(&["create", "-f", "-"], Some(&bad.to_string()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.template.immutable"), "{err}");
}

#[test]
fn upstream_kubeseal_output_is_accepted_unchanged_and_server_side_apply_works() {
    if skip_unless_real(
        "upstream_kubeseal_output_is_accepted_unchanged_and_server_side_apply_works",
    ) {
        return;
    }
    let c = cluster_with_crd();
    // Output of upstream's kubeseal (strict, namespace-wide, cluster-wide), byte for byte.
    let fixture = workspace_root().join("tests/fixtures/upstream-vectors/upstream-sealed.json");
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    assert!(cases.len() >= 3, "{}", fixture.display());
    let mut namespaces = BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let mut sealed = case["sealed"].clone();
        let ns = sealed["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        if namespaces.insert(ns.clone()) && ns != "default" {
            admin(&c, &["create", "namespace", &ns], None);
        }
        // Distinct object names, the content unchanged.
        let name = format!("upstream-{i}");
        sealed["metadata"]["name"] = name.clone().into();
        admin(&c, &["create", "-f", "-"], Some(&sealed.to_string()));
        let got = get_json(&c, &["sealedsecret", "-n", &ns, &name]);
        assert_eq!(
            got["spec"], case["sealed"]["spec"],
            "case {i}: spec changed"
        );
    }

    // Server-side apply, twice (the second is a no-op), then a change by another manager
    // that conflicts and is refused without --force-conflicts.
    let example =
        std::fs::read_to_string(workspace_root().join("deploy/examples/sealedsecret.yaml"))
            .unwrap();
    if !namespaces.contains("team-a") {
        admin(&c, &["create", "namespace", "team-a"], None);
    }
    let out = admin(&c, &["apply", "--server-side", "-f", "-"], Some(&example));
    assert!(out.contains("serverside-applied"), "{out}");
    let first = get_json(&c, &["sealedsecret", "-n", "team-a", "db-creds"]);
    let out = admin(&c, &["apply", "--server-side", "-f", "-"], Some(&example));
    assert!(out.contains("serverside-applied"), "{out}");
    let second = get_json(
        &c,
        &[
            "sealedsecret",
            "-n",
            "team-a",
            "db-creds",
            "--show-managed-fields",
        ],
    );
    assert_eq!(
        first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"],
        "re-applying the same object wrote it again"
    );
    assert!(
        second["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| m
                .iter()
                .any(|f| f["manager"] == "kubectl" && f["operation"] == "Apply")),
        "{second}"
    );
    let changed = example.replace("app: db", "app: other");
    assert_ne!(
        changed, example,
        "the example has no `app: db` label to change"
    );
    let err = c
        .kubectl_run(
            &[
                "apply",
                "--server-side",
                "--field-manager=someone-else",
                "-f",
                "-",
            ],
            Some(&changed),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("conflict"), "{err}");
}

#[test]
fn helm_install_and_kustomize_apply_every_object_read_back() {
    if skip_unless_real("helm_install_and_kustomize_apply_every_object_read_back") {
        return;
    }
    let helm = harness::cluster::find_helm().unwrap();
    // helm install (whatever apply method this helm uses) of the chart into a fresh cluster.
    let c = Cluster::control_plane().unwrap();
    let chart = workspace_root().join("deploy/helm/sealed-secrets");
    let (ok, out, err) = run(
        &helm,
        c.kubeconfig(),
        &[
            "install",
            "sealed-secrets",
            chart.to_str().unwrap(),
            "--namespace",
            "kube-system",
            "--wait=false",
        ],
        None,
    );
    assert!(ok, "helm install: {err}\n{out}");
    let (ok, manifest, err) = run(
        &helm,
        c.kubeconfig(),
        &[
            "get",
            "manifest",
            "sealed-secrets",
            "--namespace",
            "kube-system",
        ],
        None,
    );
    assert!(ok, "helm get manifest: {err}");
    let read_back = |c: &Cluster, render: &str, default_ns: &str| -> usize {
        let docs: Vec<Value> = serde_saphyr::from_multiple(render).unwrap();
        let mut n = 0;
        for d in docs.iter().filter(|d| d.is_object()) {
            let kind = d["kind"].as_str().unwrap().to_lowercase();
            let group = d["apiVersion"]
                .as_str()
                .unwrap()
                .split_once('/')
                .map(|(g, _)| format!(".{g}"))
                .unwrap_or_default();
            let name = d["metadata"]["name"].as_str().unwrap();
            let ns = d["metadata"]["namespace"].as_str().unwrap_or(default_ns);
            let got = get_json(c, &[&format!("{kind}{group}/{name}"), "-n", ns]);
            assert_eq!(got["metadata"]["name"], name, "{kind}{group}/{name}");
            n += 1;
        }
        n
    };
    let n = read_back(&c, &manifest, "kube-system");
    assert!(n >= 10, "helm installed only {n} objects:\n{manifest}");
    // The chart's crds/ are installed by helm install too.
    get_json(&c, &["crd", "sealedsecrets.bitnami.com"]);

    // kubectl apply -k deploy/base into another fresh cluster.
    let c2 = Cluster::control_plane().unwrap();
    let base = workspace_root().join("deploy/base");
    admin(&c2, &["apply", "-k", base.to_str().unwrap()], None);
    let render = run_tool(
        &find_kubectl().unwrap(),
        &["kustomize", base.to_str().unwrap()],
    )
    .unwrap();
    let n = read_back(&c2, &render, "kube-system");
    assert!(n >= 10, "deploy/base has only {n} objects");
}

#[test]
fn up_writes_its_files_and_down_stops_exactly_its_processes() {
    if skip_unless_real("up_writes_its_files_and_down_stops_exactly_its_processes") {
        return;
    }
    let c = Cluster::control_plane().unwrap();
    let dir = c.control_plane_handle().unwrap().dir().to_owned();
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    let port = env
        .lines()
        .find_map(|l| l.strip_prefix("KUBE_APISERVER_PORT="))
        .unwrap()
        .to_owned();
    assert!(env.contains("KUBE_APISERVER_HOST=127.0.0.1"), "{env}");
    assert!(
        std::fs::read_to_string(dir.join("ca.crt"))
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    // The API answers on the port env names, with the CA of ca.crt.
    let out = run_tool(
        Path::new("curl"),
        &[
            "-fsS",
            "--cacert",
            &dir.join("ca.crt").to_string_lossy(),
            &format!("https://127.0.0.1:{port}/readyz"),
        ],
    )
    .unwrap();
    assert_eq!(out, "ok");
    let pids: Vec<(String, u32)> = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "watchdog",
    ]
    .iter()
    .map(|n| {
        let p = std::fs::read_to_string(dir.join(format!("{n}.pid"))).unwrap();
        ((*n).to_owned(), p.trim().parse().unwrap())
    })
    .collect();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    };
    assert!(pids.iter().all(|(_, p)| alive(*p)), "{pids:?}");
    // Stopping is down.sh; the directory stays for the logs until the cluster is dropped.
    let out = Command::new("bash")
        .arg(workspace_root().join("tests/cluster/down.sh"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let still: Vec<&(String, u32)> = pids.iter().filter(|(_, p)| alive(*p)).collect();
    assert!(still.is_empty(), "still running after down.sh: {still:?}");
    assert!(dir.join("kube-apiserver.log").is_file());
}
