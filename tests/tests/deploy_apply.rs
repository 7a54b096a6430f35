//! Issue #7: the rendered deploy manifests apply to the stand-in, and (issue #10, with
//! `SEALED_SECRETS_E2E_CLUSTER=real`) to a real API server.
//!
//! Each case renders the manifests exactly as a user would (`kubectl kustomize`, `helm
//! template`), applies the render with client-side `kubectl apply` to a fresh cluster, then
//! checks that every rendered object is retrievable under its kind, name and namespace (and in
//! the right scope), that a second apply changes nothing, and, where the render carries the
//! CRD, that the CRD serves the example SealedSecret.
//!
//! What this proves is that the manifests are well-formed objects of kinds and scopes the API
//! knows and that kubectl can apply them; not that they would run: the stand-in stores
//! Deployments, RBAC and the rest without acting on them (no Pods, no RBAC enforcement).
//!
//! kubectl and helm come from `$KUBECTL`/`$HELM` or `target/kube-tools/bin`
//! (`.ci/install-kube-tools.sh`); these tests fail, they do not skip, when either is missing.

// Helpers outside #[test] fns fail loudly on purpose (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use harness::cluster::{Cluster, find_helm, find_kubectl, run_tool, workspace_root};
use serde_json::Value;

/// Kinds of the renders that are cluster-scoped in Kubernetes; everything else is namespaced.
/// Written down here, independently of the stand-in's table, so that a wrong scope there
/// fails this test.
const CLUSTER_SCOPED: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
];

/// One rendered object: what `kubectl get` must find.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    api_version: String,
    kind: String,
    name: String,
    /// `None` for cluster-scoped objects.
    namespace: Option<String>,
}

impl Expected {
    /// `kind.group/name` as kubectl's resource argument (`serviceaccount/x` for core).
    fn reference(&self) -> String {
        let kind = self.kind.to_lowercase();
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{kind}.{group}/{}", self.name),
            None => format!("{kind}/{}", self.name),
        }
    }
}

fn path_arg(p: &std::path::Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("non UTF-8 path {}", p.display()))
        .to_owned()
}

fn deploy_dir(rel: &str) -> String {
    path_arg(&workspace_root().join("deploy").join(rel))
}

fn kubectl_path() -> PathBuf {
    find_kubectl().unwrap_or_else(|e| panic!("{e}"))
}

fn render_kustomize(dir: &str) -> String {
    run_tool(&kubectl_path(), &["kustomize", &deploy_dir(dir)]).unwrap_or_else(|e| panic!("{e}"))
}

/// `helm template` as issue #7 words it, plus `--include-crds`: `helm install` installs the
/// chart's `crds/`, `helm template` leaves them out unless asked.
fn render_helm() -> String {
    let helm = find_helm().unwrap_or_else(|e| panic!("{e}"));
    run_tool(
        &helm,
        &[
            "template",
            "sealed-secrets",
            &deploy_dir("helm/sealed-secrets"),
            "--namespace",
            "kube-system",
            "--include-crds",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The objects of a render; those without a namespace land in `default_ns` if namespaced.
fn expected_objects(render: &str, default_ns: &str) -> Vec<Expected> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(render)
        .unwrap_or_else(|e| panic!("the render is not YAML: {e}\n{render}"));
    let mut out: Vec<Expected> = docs
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let s = |v: &Value| {
                v.as_str()
                    .unwrap_or_else(|| panic!("rendered object without apiVersion/kind/name: {d}"))
                    .to_owned()
            };
            let kind = s(&d["kind"]);
            let namespace = (!CLUSTER_SCOPED.contains(&kind.as_str())).then(|| {
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(default_ns)
                    .to_owned()
            });
            Expected {
                api_version: s(&d["apiVersion"]),
                kind,
                name: s(&d["metadata"]["name"]),
                namespace,
            }
        })
        .collect();
    out.sort();
    out
}

/// Applies `render` to a fresh stand-in (with `-n apply_ns` if given, as `helm install -n`
/// would place objects without a namespace) and checks it; returns the cluster for more checks.
fn apply_and_check(what: &str, render: &str, apply_ns: Option<&str>) -> (Cluster, Vec<Expected>) {
    let expected = expected_objects(render, apply_ns.unwrap_or("default"));
    assert!(
        expected.len() >= 5,
        "{what}: suspiciously small render:\n{render}"
    );
    let c = Cluster::start_private().unwrap();
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        c.kubectl_run(args, stdin)
            .unwrap_or_else(|e| panic!("{what}: {e}\nstate: {}", c.dump(None)))
    };

    let mut apply_args = vec!["apply", "-f", "-"];
    if let Some(ns) = apply_ns {
        apply_args.extend(["-n", ns]);
    }
    let out = kubectl(&apply_args, Some(render));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{what}: apply printed\n{out}");
    assert!(
        lines.iter().all(|l| l.ends_with(" created")),
        "{what}: apply printed\n{out}"
    );

    let (found, versions_before) = get_all(&kubectl, &expected);
    assert_eq!(
        found, expected,
        "{what}: kubectl get does not find the rendered objects"
    );

    // Client-side apply again is a no-op: kubectl finds an empty three-way patch for every
    // object, and the server writes nothing (no new resourceVersion). The one exception is
    // kubectl's, not the server's: a policy/v1 PodDisruptionBudget's `selector` has patch
    // strategy `replace`, so kubectl always sends it and prints "configured", on a real
    // cluster too; the server sees an identical object and writes nothing. On a real server the
    // chart's Deployment is another: its probes carry `initialDelaySeconds: 0`, a zero value
    // the server does not store, so kubectl finds it missing and sends it again each time
    // (the stand-in stores it). What matters, nothing written, is checked for every object.
    let real_server = !c.is_standin();
    let rv_before = c.standin_handle().map(|h| h.resource_version());
    let out = kubectl(&apply_args, Some(render));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "{what}: re-apply printed\n{out}"
    );
    assert!(
        lines.iter().all(|l| l.ends_with(" unchanged")
            || (l.starts_with("poddisruptionbudget.policy/") && l.ends_with(" configured"))
            || (real_server && l.starts_with("deployment.apps/") && l.ends_with(" configured"))),
        "{what}: re-apply is not a no-op:\n{out}"
    );
    let rv_after = c.standin_handle().map(|h| h.resource_version());
    assert_eq!(
        rv_before, rv_after,
        "{what}: re-apply wrote to the server:\n{out}"
    );
    // On any backend: no object got a new resourceVersion.
    let (_, versions_after) = get_all(&kubectl, &expected);
    assert_eq!(
        versions_before, versions_after,
        "{what}: re-apply wrote to the server:\n{out}"
    );
    (c, expected)
}

/// Every expected object under its kind, name and namespace, in one `kubectl get` per
/// namespace: what was found (sorted) and each found object's resourceVersion.
fn get_all(
    kubectl: &dyn Fn(&[&str], Option<&str>) -> String,
    expected: &[Expected],
) -> (Vec<Expected>, Vec<(Expected, String)>) {
    let namespaces: BTreeSet<Option<&String>> =
        expected.iter().map(|e| e.namespace.as_ref()).collect();
    let mut found = Vec::new();
    let mut versions = Vec::new();
    for ns in namespaces {
        let refs: Vec<String> = expected
            .iter()
            .filter(|e| e.namespace.as_ref() == ns)
            .map(Expected::reference)
            .collect();
        let mut args = vec!["get", "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend(refs.iter().map(String::as_str));
        let got: Value = serde_json::from_str(&kubectl(&args, None)).unwrap();
        let items = match got["kind"].as_str() {
            Some("List") => got["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![got],
        };
        for item in items {
            let e = Expected {
                api_version: item["apiVersion"].as_str().unwrap_or_default().to_owned(),
                kind: item["kind"].as_str().unwrap_or_default().to_owned(),
                name: item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                namespace: item["metadata"]["namespace"].as_str().map(str::to_owned),
            };
            let rv = item["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            versions.push((e.clone(), rv));
            found.push(e);
        }
    }
    found.sort();
    versions.sort();
    (found, versions)
}

/// The render's CRD serves SealedSecrets: the deploy example (namespace team-a) is created
/// and read back.
fn crd_serves_the_example(what: &str, c: &Cluster) {
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        c.kubectl_run(args, stdin)
            .unwrap_or_else(|e| panic!("{what}: {e}\nstate: {}", c.dump(None)))
    };
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=10s",
        ],
        None,
    );
    let example_path = workspace_root().join("deploy/examples/sealedsecret.yaml");
    let example = std::fs::read_to_string(&example_path)
        .unwrap_or_else(|e| panic!("{}: {e}", example_path.display()));
    // Not `kubectl create namespace`: its typed client sends protobuf, which the stand-in
    // refuses (JSON only) and that command does not retry as JSON.
    kubectl(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n"),
    );
    let out = kubectl(&["create", "-f", "-"], Some(&example));
    assert_eq!(out.trim(), "sealedsecret.bitnami.com/db-creds created");
    let obj: Value = serde_json::from_str(&kubectl(
        &[
            "get",
            "sealedsecret",
            "db-creds",
            "-n",
            "team-a",
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    assert_eq!(obj["apiVersion"], "bitnami.com/v1alpha1");
    assert!(
        obj["spec"]["encryptedData"]["password"]
            .as_str()
            .is_some_and(|p| p.starts_with("AgCbFlxX")),
        "{obj}"
    );
    assert_eq!(obj["spec"]["template"]["metadata"]["labels"]["app"], "db");
}

/// What every render of the controller contains, beyond "whatever was rendered".
fn assert_controller_objects(what: &str, expected: &[Expected], ns: &str) {
    for (kind, name) in [
        ("ServiceAccount", "sealed-secrets-controller"),
        ("Deployment", "sealed-secrets-controller"),
        ("Service", "sealed-secrets-controller"),
        ("PodDisruptionBudget", "sealed-secrets-controller"),
    ] {
        assert!(
            expected
                .iter()
                .any(|e| e.kind == kind && e.name == name && e.namespace.as_deref() == Some(ns)),
            "{what}: no {kind} {ns}/{name} in the render: {expected:#?}"
        );
    }
    for kind in ["Role", "RoleBinding"] {
        assert!(
            expected.iter().any(|e| e.kind == kind),
            "{what}: no {kind} in the render"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kustomize_base_applies_and_reapplies_unchanged() {
    let render = render_kustomize("base");
    let (c, expected) = apply_and_check("kustomize deploy/base", &render, Some("kube-system"));
    assert_controller_objects("kustomize deploy/base", &expected, "kube-system");
    assert!(
        expected
            .iter()
            .any(|e| e.kind == "ClusterRole" && e.namespace.is_none())
    );
    // Built-in kinds keep the registry semantics the table gives them.
    let deploy: Value = serde_json::from_str(
        &c.kubectl_run(
            &[
                "get",
                "deployment",
                "sealed-secrets-controller",
                "-n",
                "kube-system",
                "-o",
                "json",
            ],
            None,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(deploy["metadata"]["generation"], 1);
    // No controller acted on it (a real server returns an empty status object).
    assert!(
        deploy
            .get("status")
            .is_none_or(|s| s.as_object().is_some_and(|o| o.is_empty())),
        "{deploy}"
    );
    crd_serves_the_example("kustomize deploy/base", &c);
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_template_applies_and_reapplies_unchanged() {
    let render = render_helm();
    let (c, expected) = apply_and_check("helm template", &render, Some("kube-system"));
    assert_controller_objects("helm template", &expected, "kube-system");
    assert!(
        expected
            .iter()
            .any(|e| e.kind == "CustomResourceDefinition"),
        "helm template --include-crds rendered no CRD"
    );
    crd_serves_the_example("helm template", &c);
}

/// The namespaced overlay brings its own Namespace (applied first, as kustomize orders it)
/// and the network-policy component.
#[tokio::test(flavor = "multi_thread")]
async fn kustomize_namespaced_overlay_applies_with_namespace_and_network_policy() {
    let render = render_kustomize("overlays/namespaced");
    let (c, expected) = apply_and_check("kustomize overlays/namespaced", &render, None);
    assert_controller_objects("kustomize overlays/namespaced", &expected, "sealed-secrets");
    assert!(expected.iter().any(|e| e.kind == "NetworkPolicy"));
    assert!(expected.iter().all(|e| e.kind != "ClusterRole"));
    // Discovery tells kubectl the scope of each new kind.
    let cluster_scoped = c
        .kubectl_run(&["api-resources", "--namespaced=false", "-o", "name"], None)
        .unwrap();
    let namespaced = c
        .kubectl_run(&["api-resources", "--namespaced=true", "-o", "name"], None)
        .unwrap();
    for r in [
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
    ] {
        assert!(
            cluster_scoped.lines().any(|l| l == r),
            "{r}: {cluster_scoped}"
        );
    }
    for r in [
        "serviceaccounts",
        "deployments.apps",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "poddisruptionbudgets.policy",
        "networkpolicies.networking.k8s.io",
    ] {
        assert!(namespaced.lines().any(|l| l == r), "{r}: {namespaced}");
    }
    // Short names from discovery work as on a real cluster.
    let out = c
        .kubectl_run(
            &[
                "get",
                "deploy,sa,pdb,netpol",
                "-n",
                "sealed-secrets",
                "-o",
                "name",
            ],
            None,
        )
        .unwrap();
    for name in [
        "deployment.apps/sealed-secrets-controller",
        "serviceaccount/sealed-secrets-controller",
        "poddisruptionbudget.policy/sealed-secrets-controller",
    ] {
        assert!(out.lines().any(|l| l == name), "{name}: {out}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("networkpolicy.networking.k8s.io/")),
        "{out}"
    );
}
