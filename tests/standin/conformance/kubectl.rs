//! Conformance of the stand-in against the real kubectl (v1.35): apply (client-side, so
//! GET + create or PATCH), get in table/yaml/json form, selectors, watch, wait for a
//! condition, status subresource patches, delete, the service proxy via `get --raw`, and a
//! bearer token.
//!
//! kubectl comes from `$KUBECTL` or `target/kube-tools/bin/kubectl`
//! (`.ci/install-kube-tools.sh`); these tests fail, they do not skip, when it is missing.

// Helpers outside #[test] fns fail loudly on purpose (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use harness::cluster::{Cluster, find_kubectl};
use harness::standin::Config;
use serde_json::Value;

const CRD: &str = include_str!("../../fixtures/sealedsecret-crd.yaml");
const EXAMPLE: &str = include_str!("../../fixtures/sealedsecret-example.yaml");

fn cluster(config: Config) -> Cluster {
    if let Err(e) = find_kubectl() {
        panic!("{e}");
    }
    Cluster::standin(config).unwrap()
}

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    c.kubectl_run(args, None).unwrap_or_else(|e| panic!("{e}"))
}

fn kubectl_in(c: &Cluster, args: &[&str], stdin: &str) -> String {
    c.kubectl_run(args, Some(stdin))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn kubectl_err(c: &Cluster, args: &[&str]) -> String {
    match c.kubectl_run(args, None) {
        Ok(out) => panic!("kubectl {args:?} should have failed, printed {out}"),
        Err(e) => e.to_string(),
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_crd_and_sealedsecret_get_list_wait_delete() {
    let c = cluster(Config::default());
    let ns = c.namespace("kubectl").await.unwrap();
    let n = ns.name();
    let out = kubectl_in(&c, &["apply", "-f", "-"], CRD);
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/sealedsecrets.bitnami.com created"
    );
    kubectl(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=10s",
        ],
    );

    let out = kubectl_in(&c, &["apply", "-n", n, "-f", "-"], EXAMPLE);
    assert_eq!(out.trim(), "sealedsecret.bitnami.com/mysecret created");
    // Re-applying unchanged is a no-op; a change is a JSON merge patch (CRs have no SMP).
    let out = kubectl_in(&c, &["apply", "-n", n, "-f", "-"], EXAMPLE);
    assert_eq!(out.trim(), "sealedsecret.bitnami.com/mysecret unchanged");
    let changed = EXAMPLE.replace("AgBy3i4OJSWK+PiTySYZZA==", "QUJD");
    let out = kubectl_in(&c, &["apply", "-n", n, "-f", "-"], &changed);
    assert_eq!(out.trim(), "sealedsecret.bitnami.com/mysecret configured");

    let obj = json(&kubectl(
        &c,
        &["get", "sealedsecret", "mysecret", "-n", n, "-o", "json"],
    ));
    assert_eq!(obj["spec"]["encryptedData"]["password"], "QUJD");
    assert_eq!(obj["metadata"]["generation"], 2);
    assert!(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let yaml = kubectl(
        &c,
        &[
            "get",
            "sealedsecrets.bitnami.com/mysecret",
            "-n",
            n,
            "-o",
            "yaml",
        ],
    );
    assert!(yaml.contains("kind: SealedSecret") && yaml.contains("name: mysecret"));
    let table = kubectl(&c, &["get", "sealedsecrets", "-n", n]);
    assert!(
        table.starts_with("NAME") && table.contains("mysecret"),
        "{table}"
    );
    assert_eq!(
        kubectl(
            &c,
            &[
                "get",
                "sealedsecrets",
                "-n",
                n,
                "-l",
                "app=demo",
                "-o",
                "name"
            ]
        )
        .trim(),
        "sealedsecret.bitnami.com/mysecret"
    );
    assert_eq!(
        kubectl(
            &c,
            &[
                "get",
                "sealedsecrets",
                "-n",
                n,
                "-l",
                "app=other",
                "-o",
                "name"
            ]
        )
        .trim(),
        ""
    );
    let all = kubectl(
        &c,
        &[
            "get",
            "sealedsecrets",
            "-A",
            "--field-selector",
            &format!("metadata.namespace={n}"),
            "-o",
            "name",
        ],
    );
    assert_eq!(all.trim(), "sealedsecret.bitnami.com/mysecret");

    // `kubectl wait --for=condition=Synced` sees a status written through /status.
    let mut wait = c.kubectl().unwrap();
    wait.args([
        "wait",
        "--for=condition=Synced",
        "sealedsecret/mysecret",
        "-n",
        n,
        "--timeout=30s",
    ]);
    let waiter = wait
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    kubectl(
        &c,
        &[
            "patch",
            "sealedsecret",
            "mysecret",
            "-n",
            n,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Synced","status":"True"}]}}"#,
        ],
    );
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    let obj = json(&kubectl(
        &c,
        &["get", "sealedsecret", "mysecret", "-n", n, "-o", "json"],
    ));
    assert_eq!(
        obj["metadata"]["generation"], 2,
        "status writes do not bump generation"
    );

    let out = kubectl(&c, &["delete", "sealedsecret", "mysecret", "-n", n]);
    assert!(out.contains("deleted"), "{out}");
    let err = kubectl_err(&c, &["get", "sealedsecret", "mysecret", "-n", n]);
    assert!(err.contains("Error from server (NotFound)"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_secret_with_strategic_merge_label_patch_and_watch() {
    let c = cluster(Config::default());
    let ns = c.namespace("kubectl").await.unwrap();
    let n = ns.name();
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {tier: db}\ntype: Opaque\nstringData:\n  a: one\n  b: two\n";
    kubectl_in(&c, &["apply", "-n", n, "-f", "-"], secret);
    let changed = secret
        .replace("tier: db", "tier: web")
        .replace("a: one", "a: uno");
    let out = kubectl_in(&c, &["apply", "-n", n, "-f", "-"], &changed);
    assert_eq!(out.trim(), "secret/s configured");
    let obj = json(&kubectl(&c, &["get", "secret", "s", "-n", n, "-o", "json"]));
    assert_eq!(obj["data"]["a"], "dW5v");
    assert_eq!(obj["metadata"]["labels"]["tier"], "web");
    assert!(obj.get("stringData").is_none());

    kubectl(&c, &["label", "secret", "s", "-n", n, "extra=yes"]);
    kubectl(&c, &["annotate", "secret", "s", "-n", n, "note=hi"]);
    kubectl(
        &c,
        &[
            "patch",
            "secret",
            "s",
            "-n",
            n,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/b"}]"#,
        ],
    );
    let obj = json(&kubectl(&c, &["get", "secret", "s", "-n", n, "-o", "json"]));
    assert_eq!(obj["metadata"]["labels"]["extra"], "yes");
    assert_eq!(obj["metadata"]["annotations"]["note"], "hi");
    assert!(obj["data"].get("b").is_none());

    // `kubectl get -w` streams changes.
    let mut watch = c.kubectl().unwrap();
    watch.args([
        "get",
        "configmaps",
        "-n",
        n,
        "-w",
        "-o",
        "name",
        "--request-timeout=6s",
    ]);
    let watcher = watch
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata: {k: v}\n";
    kubectl_in(&c, &["apply", "-n", n, "-f", "-"], cm);
    let out = watcher.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configmap/watched"),
        "watch saw: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = kubectl(&c, &["delete", "secret", "s", "-n", n]);
    assert!(out.contains("deleted"));
    let err = kubectl_err(&c, &["delete", "namespace", "default"]);
    assert!(err.contains("Forbidden"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_proxy_to_registered_endpoint() {
    let c = cluster(Config::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        for stream in listener.incoming().take(1) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let body = format!("proxied: {line}");
            write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    c.register_endpoint(
        "kube-system",
        "sealed-secrets-controller",
        &addr.to_string(),
    )
    .unwrap();
    let out = kubectl(
        &c,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:/proxy/v1/cert.pem",
        ],
    );
    assert_eq!(out, "proxied: GET /v1/cert.pem HTTP/1.1");
}

/// client-go never sends a bearer token over plain HTTP, and the stand-in serves plain HTTP:
/// with a token configured, kubectl is refused (kube-rs does send it, see standin_kube_rs.rs).
/// This pins both facts so that a change on either side is noticed.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_mode_refuses_kubectl_over_plain_http() {
    let c = cluster(Config {
        token: Some("kubectl-token".into()),
        ..Config::default()
    });
    let err = kubectl_err(&c, &["get", "ns"]);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    let open = cluster(Config::default());
    assert!(kubectl(&open, &["get", "ns", "-o", "name"]).contains("namespace/default"));
}

/// The `kube-standin` binary: kubeconfig written when ready, `--endpoint`, the admin API for
/// runtime endpoint registration and dumps, and a fault flag.
#[tokio::test(flavor = "multi_thread")]
async fn binary_serves_kubectl_with_endpoints_and_fault_flags() {
    find_kubectl().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        for stream in listener.incoming().take(2) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{line}",
                line.len()
            )
            .unwrap();
        }
    });
    let endpoint = format!("kube-system/sealed-secrets-controller={addr}");
    let c = Cluster::standin_binary(&["--endpoint", &endpoint]).unwrap();
    assert!(c.is_standin() && c.standin_handle().is_none());
    let out = kubectl(
        &c,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/kube-system/services/sealed-secrets-controller:http/proxy/healthz",
        ],
    );
    assert_eq!(out, "GET /healthz HTTP/1.1");
    c.register_endpoint("other", "svc", &addr.to_string())
        .unwrap();
    let out = kubectl(
        &c,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/other/services/svc:80/proxy/x",
        ],
    );
    assert_eq!(out, "GET /x HTTP/1.1");
    let ns = c.namespace("bin").await.unwrap();
    assert!(c.dump(Some(ns.name())).contains(ns.name()));

    let faulty = Cluster::standin_binary(&["--fault-500", "1"]).unwrap();
    let err = faulty
        .kubectl_run(&["get", "secrets"], None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("InternalError") || err.contains("Internal error"),
        "{err}"
    );
    // Discovery is spared, so this is the resource request failing, not kubectl's setup.
    assert!(
        faulty
            .kubectl_run(&["api-resources", "-o", "name"], None)
            .is_ok()
    );
}

/// The CRD generated into crds/ (issue #3) serves the example through kubectl too.
#[tokio::test(flavor = "multi_thread")]
async fn generated_crd_applies_and_serves_the_example() {
    let path = harness::cluster::workspace_root().join("crds/sealedsecrets.bitnami.com.yaml");
    let crd = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let c = cluster(Config::default());
    kubectl_in(&c, &["apply", "-f", "-"], &crd);
    kubectl(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=10s",
        ],
    );
    let out = kubectl_in(&c, &["apply", "-n", "default", "-f", "-"], EXAMPLE);
    assert_eq!(out.trim(), "sealedsecret.bitnami.com/mysecret created");
    let obj = json(&kubectl(
        &c,
        &["get", "sealedsecret", "mysecret", "-o", "json"],
    ));
    assert_eq!(
        obj["spec"]["encryptedData"]["password"],
        "AgBy3i4OJSWK+PiTySYZZA=="
    );
}

/// `kubectl apply -f` of a `kind: List`: kubectl validates the items client-side against
/// `/openapi/v2` (protobuf) because no OpenAPI v3 path carries `v1/List`, and failed when
/// the stand-in answered 404 there.
#[tokio::test(flavor = "multi_thread")]
async fn apply_of_a_list_and_openapi_v2() {
    let c = cluster(Config::default());
    kubectl_in(&c, &["apply", "-f", "-"], CRD);
    kubectl(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=10s",
        ],
    );
    let ns = c.namespace("list").await.unwrap();
    let n = ns.name();
    let example: Value = serde_saphyr::from_str(EXAMPLE).unwrap();
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}},
            example,
        ],
    })
    .to_string();
    let out = kubectl_in(&c, &["apply", "-n", n, "-f", "-"], &list);
    assert_eq!(
        out.trim(),
        "configmap/a created\nsealedsecret.bitnami.com/mysecret created"
    );
    let out = kubectl_in(&c, &["apply", "-n", n, "-f", "-"], &list);
    assert_eq!(
        out.trim(),
        "configmap/a unchanged\nsealedsecret.bitnami.com/mysecret unchanged"
    );
    let doc = json(&kubectl(&c, &["get", "--raw", "/openapi/v2"]));
    assert_eq!(doc["swagger"], "2.0");

    // The server is the release kubectl expects: no version skew warning.
    let mut cmd = c.kubectl().unwrap();
    let out = cmd.args(["version", "-o", "json"]).output().unwrap();
    assert!(out.status.success());
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["serverVersion"]["minor"], "35");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("skew"), "{stderr}");
}

fn managers(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_owned(),
                        e["operation"].as_str().unwrap().to_owned(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `kubectl apply --server-side`: field managers, no-op re-apply, conflicts with another
/// manager's change, `--force-conflicts`, and fields removed when no longer applied; and a
/// SealedSecret (a custom resource with a status subresource) applied the same way.
#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_managers_conflicts_and_force() {
    let c = cluster(Config::default());
    let ns = c.namespace("ssa").await.unwrap();
    let n = ns.name();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels: {app: x}\ndata: {a: \"1\", b: \"2\"}\n";
    let out = kubectl_in(&c, &["apply", "--server-side", "-n", n, "-f", "-"], cm);
    assert_eq!(out.trim(), "configmap/ssa serverside-applied");
    let get = || {
        json(&kubectl(
            &c,
            &[
                "get",
                "cm",
                "ssa",
                "-n",
                n,
                "-o",
                "json",
                "--show-managed-fields",
            ],
        ))
    };
    let first = get();
    assert_eq!(
        managers(&first),
        [(
            "kubectl".to_owned(),
            "Apply".to_owned(),
            serde_json::json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
        )]
    );
    kubectl_in(&c, &["apply", "--server-side", "-n", n, "-f", "-"], cm);
    assert_eq!(
        get()["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"],
        "an unchanged apply writes nothing"
    );

    kubectl(
        &c,
        &[
            "patch",
            "cm",
            "ssa",
            "-n",
            n,
            "--type=merge",
            "-p",
            r#"{"data":{"a":"edited"}}"#,
        ],
    );
    let m = managers(&get());
    assert_eq!(m[1].0, "kubectl-patch");
    assert_eq!(m[1].2, serde_json::json!({"f:data": {"f:a": {}}}));
    let changed = cm.replace("a: \"1\"", "a: \"3\"");
    let err = match c.kubectl_run(
        &["apply", "--server-side", "-n", n, "-f", "-"],
        Some(&changed),
    ) {
        Ok(out) => panic!("the apply should have conflicted: {out}"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl-patch\"")
            && err.contains(".data.a"),
        "{err}"
    );
    assert_eq!(get()["data"]["a"], "edited");
    // Applying the other manager's value co-owns the field without a conflict.
    kubectl_in(
        &c,
        &["apply", "--server-side", "-n", n, "-f", "-"],
        &cm.replace("a: \"1\"", "a: \"edited\""),
    );
    let out = kubectl_in(
        &c,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-n",
            n,
            "-f",
            "-",
        ],
        &changed,
    );
    assert_eq!(out.trim(), "configmap/ssa serverside-applied");
    let forced = get();
    assert_eq!(forced["data"]["a"], "3");
    assert_eq!(
        managers(&forced).len(),
        1,
        "the patcher lost its only field"
    );
    // A field no longer applied, and owned by nobody else, is removed.
    let without_b = changed.replace(", b: \"2\"", "");
    kubectl_in(
        &c,
        &["apply", "--server-side", "-n", n, "-f", "-"],
        &without_b,
    );
    assert_eq!(get()["data"], serde_json::json!({"a": "3"}));

    kubectl_in(&c, &["apply", "--server-side", "-f", "-"], CRD);
    kubectl(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=10s",
        ],
    );
    let out = kubectl_in(&c, &["apply", "--server-side", "-n", n, "-f", "-"], EXAMPLE);
    assert_eq!(
        out.trim(),
        "sealedsecret.bitnami.com/mysecret serverside-applied"
    );
    let ss = json(&kubectl(
        &c,
        &["get", "sealedsecret", "mysecret", "-n", n, "-o", "json"],
    ));
    assert_eq!(
        ss["spec"]["encryptedData"]["password"],
        "AgBy3i4OJSWK+PiTySYZZA=="
    );
    assert_eq!(ss["metadata"]["generation"], 1);
}

/// `kubectl create namespace|secret|configmap` send protobuf bodies (typed client-go
/// clients), which the stand-in decodes for these kinds; other kinds are refused by name.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_sends_protobuf() {
    let c = cluster(Config::default());
    let n = format!("pb-{}", harness::cluster::random_suffix(6));
    assert_eq!(
        kubectl(&c, &["create", "namespace", &n]).trim(),
        format!("namespace/{n} created")
    );
    kubectl(
        &c,
        &[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            &n,
            "--from-literal=password=s3cr3t",
            "--type=Opaque",
        ],
    );
    kubectl(
        &c,
        &[
            "create",
            "secret",
            "generic",
            "untyped",
            "-n",
            &n,
            "--from-literal=a=b",
        ],
    );
    kubectl(
        &c,
        &[
            "create",
            "configmap",
            "c",
            "-n",
            &n,
            "--from-literal=x=y",
            "--from-literal=z=w",
        ],
    );
    let s = json(&kubectl(
        &c,
        &["get", "secret", "s", "-n", &n, "-o", "json"],
    ));
    assert_eq!(s["data"]["password"], "czNjcjN0");
    assert_eq!(s["type"], "Opaque");
    let untyped = json(&kubectl(
        &c,
        &["get", "secret", "untyped", "-n", &n, "-o", "json"],
    ));
    assert_eq!(
        untyped["type"], "Opaque",
        "an empty type defaults to Opaque"
    );
    let cm = json(&kubectl(
        &c,
        &["get", "configmap", "c", "-n", &n, "-o", "json"],
    ));
    assert_eq!(cm["data"], serde_json::json!({"x": "y", "z": "w"}));
    let err = kubectl_err(&c, &["create", "serviceaccount", "sa", "-n", &n]);
    assert!(
        err.contains("application/vnd.kubernetes.protobuf only for Secret, ConfigMap, Namespace"),
        "{err}"
    );
    kubectl(&c, &["delete", "namespace", &n]);
}

/// helm v4 on the stand-in: install (server-side apply, and the release record written as
/// a protobuf Secret), an upgrade conflicting with a field kubectl changed, the same upgrade
/// with `--force-conflicts`, and uninstall.
#[tokio::test(flavor = "multi_thread")]
async fn helm_v4_install_upgrade_conflict_and_uninstall() {
    let helm = harness::cluster::find_helm().unwrap_or_else(|e| panic!("{e}"));
    let c = cluster(Config::default());
    let chart = harness::cluster::workspace_root().join("deploy/helm/sealed-secrets");
    let chart = chart.to_str().unwrap();
    let kubeconfig = c.kubeconfig().to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
        all.extend_from_slice(args);
        harness::cluster::run_tool(&helm, &all)
    };
    let out = run(&["install", "ss", chart, "-n", "kube-system"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");
    let deploy = || {
        json(&kubectl(
            &c,
            &[
                "get",
                "deploy",
                "sealed-secrets-controller",
                "-n",
                "kube-system",
                "-o",
                "json",
                "--show-managed-fields",
            ],
        ))
    };
    let d = deploy();
    assert_eq!(
        managers(&d)
            .iter()
            .map(|m| (m.0.as_str(), m.1.as_str()))
            .collect::<Vec<_>>(),
        [("helm", "Apply")]
    );
    let release = kubectl(
        &c,
        &[
            "get",
            "secrets",
            "-n",
            "kube-system",
            "-l",
            "owner=helm",
            "-o",
            "name",
        ],
    );
    assert_eq!(release.trim(), "secret/sh.helm.release.v1.ss.v1");

    kubectl(
        &c,
        &[
            "patch",
            "deploy",
            "sealed-secrets-controller",
            "-n",
            "kube-system",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
    );
    let err = run(&[
        "upgrade",
        "ss",
        chart,
        "-n",
        "kube-system",
        "--set",
        "image.pullPolicy=Always",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conflict with \"kubectl-patch\"") && err.contains(".spec.replicas"),
        "{err}"
    );
    let out = run(&[
        "upgrade",
        "ss",
        chart,
        "-n",
        "kube-system",
        "--set",
        "image.pullPolicy=Always",
        "--force-conflicts",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("STATUS: deployed"), "{out}");
    let d = deploy();
    assert_eq!(
        d["spec"]["replicas"], 2,
        "the chart's replicaCount, taken back from kubectl"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );

    run(&["uninstall", "ss", "-n", "kube-system"]).unwrap_or_else(|e| panic!("{e}"));
    let left = kubectl(
        &c,
        &[
            "get",
            "deploy,secrets,serviceaccounts",
            "-n",
            "kube-system",
            "-o",
            "name",
        ],
    );
    assert_eq!(
        left.trim(),
        "",
        "uninstall removes everything, the release records too"
    );
}
