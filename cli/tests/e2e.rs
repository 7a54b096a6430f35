//! End-to-end tests against the kube stand-in, a private real control plane
//! (SEALED_SECRETS_E2E_CLUSTER=real: the service proxy is the real API server's, reaching the
//! backends through a network namespace) or a cluster named by SEALED_SECRETS_E2E_KUBECONFIG:
//! `--fetch-cert`, sealing without `--cert`,
//! `--cert-from-configmap`, `--validate`, `--re-encrypt` through the API server's service
//! proxy, and `keys list/backup/restore/verify-backup` on key Secrets.
//!
//! The controller behind the proxy is a small in-test HTTP server speaking upstream's
//! `/v1/cert.pem`, `/v1/verify` and `/v1/rotate` with the fixture keys, so these tests check
//! the CLI's side of the protocol independently of the controller's implementation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;
// Post-quantum sealing through the controller and the cert ConfigMap, and key backups
// carrying age.key (e2e/pq.rs).
#[path = "e2e/pq.rs"]
mod pq;
// Keys wrapped by a KMS: keys wrap/unwrap, backup and restore with local-kms (e2e/key_wrap.rs).
#[path = "e2e/key_wrap.rs"]
mod key_wrap;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

use harness::cluster::Cluster;
use harness::wait::eventually;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Secret, Service, ServicePort, ServiceSpec};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use sealed_secrets_api::{UnsealOptions, decrypt_items, parse_sealed_secrets, reseal, verify};
use sealed_secrets_crypto::{Certificate, KeyRing, PrivateKey};

use common::{SECRET_YAML, fixture, run_cmd};

const CTRL_NS: &str = "kube-system";
const CTRL_NAME: &str = "sealed-secrets-controller";

fn ring(keys: &[&str]) -> KeyRing {
    let mut r = KeyRing::new();
    for k in keys {
        r.insert(PrivateKey::from_pem(&std::fs::read(fixture(k)).unwrap()).unwrap());
    }
    r
}

/// A fake controller: cert-a is the newest cert, key-a opens, rotate re-seals for cert-b.
fn fake_controller() -> String {
    serve(handle)
}

/// Serves `handler` (path, body -> status line, body) on a local port; returns the address.
fn serve(handler: fn(&str, &[u8]) -> (&'static str, Vec<u8>)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let (status, resp) = handler(&path, &body);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                resp.len()
            );
            let _ = stream.write_all(&resp);
        }
    });
    addr
}

fn handle(path: &str, body: &[u8]) -> (&'static str, Vec<u8>) {
    let opts = UnsealOptions::default();
    match path {
        "/v1/cert.pem" => ("200 OK", std::fs::read(fixture("cert-a.pem")).unwrap()),
        "/v1/verify" => match parse_sealed_secrets(body) {
            Ok(list) if list.len() == 1 => match verify(&list[0], &ring(&["key-a.pem"]), &opts) {
                Ok(_) => ("200 OK", Vec::new()),
                Err(_) => ("409 Conflict", Vec::new()),
            },
            _ => ("500 Internal Server Error", b"bad request body".to_vec()),
        },
        "/v1/rotate" => {
            let Ok(list) = parse_sealed_secrets(body) else {
                return ("500 Internal Server Error", Vec::new());
            };
            let Ok(items) = decrypt_items(&list[0], &ring(&["key-a.pem", "key-b.pem"]), &opts)
            else {
                return ("500 Internal Server Error", Vec::new());
            };
            let cert =
                Certificate::from_pem(&std::fs::read(fixture("cert-b.pem")).unwrap()).unwrap();
            let new = reseal(&list[0], &items, &[cert.public_key()]).unwrap();
            // Upstream's answer has no apiVersion/kind.
            let mut v: serde_json::Value =
                serde_json::from_str(&sealed_secrets_api::output::to_json(&new)).unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.remove("apiVersion");
            obj.remove("kind");
            obj.get_mut("metadata").unwrap()["creationTimestamp"] = "2020-01-01T00:00:00Z".into();
            ("200 OK", v.to_string().into_bytes())
        }
        _ => ("404 Not Found", b"404 page not found".to_vec()),
    }
}

/// A private cluster whose controller Service is served by [`fake_controller`].
async fn cluster_with_controller() -> Cluster {
    let cluster = Cluster::start_private().unwrap();
    expose_controller(&cluster, CTRL_NAME, &fake_controller()).await;
    cluster
}

/// Makes the controller listening on `addr` reachable as Service `name` through the API
/// server's service proxy (the way kubeseal reaches it, §6.2): the Service, then its endpoint.
async fn expose_controller(cluster: &Cluster, name: &str, addr: &str) {
    add_service(cluster, name, None).await;
    cluster.register_endpoint(CTRL_NS, name, addr).unwrap();
}

/// Creates a Service `name` in the controller namespace, with no endpoint unless registered.
/// With `selector`, it selects pods (none run here), as a controller's Service does.
async fn add_service(cluster: &Cluster, name: &str, selector: Option<&str>) {
    let svc = Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(CTRL_NS.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 8080,
                ..Default::default()
            }]),
            selector: selector.map(|app| BTreeMap::from([("app".to_string(), app.to_string())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let client = cluster.client().await.unwrap();
    Api::<Service>::namespaced(client.clone(), CTRL_NS)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    if selector.is_some() && !cluster.is_standin() {
        // A real API server proxies by the Service's Endpoints, which the endpoints controller
        // writes (empty: no pod matches) a moment after the Service appears.
        let endpoints = Api::<Endpoints>::namespaced(client, CTRL_NS);
        for _ in 0..100 {
            if endpoints.get_opt(name).await.unwrap().is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the endpoints controller wrote no Endpoints for Service {name} in 10 s");
    }
}

fn kubeseal(cluster: &Cluster, dir: &Path, args: &[&str], stdin: &[u8]) -> common::Run {
    let mut c = common::cmd(dir);
    c.env("KUBECONFIG", cluster.kubeconfig()).args(args);
    run_cmd(&mut c, stdin)
}

fn recover(dir: &Path, key: &str, sealed: &str) -> common::Run {
    let k = fixture(key).display().to_string();
    common::run(
        dir,
        &["--recovery-unseal", "--recovery-private-key", &k],
        sealed.as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_cert_and_seal_through_the_service_proxy() {
    let cluster = cluster_with_controller().await;
    let d = tempfile::tempdir().unwrap();
    let r = kubeseal(&cluster, d.path(), &["--fetch-cert"], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.raw_stdout, std::fs::read(fixture("cert-a.pem")).unwrap());
    let r = kubeseal(&cluster, d.path(), &[], SECRET_YAML.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recover(d.path(), "key-a.pem", &r.stdout).code, 0);
    // A controller that is not there: upstream's message plus our hint.
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--controller-name", "nope"],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("cannot get sealed secret service"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
}

/// The way upstream's integration suite calls kubeseal: connection flags appended again and
/// again (`--kubeconfig` of an earlier spec whose file is gone, then the current one; `-n`
/// twice). pflag keeps the last value of each, so must we.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_connection_flags_take_their_last_value() {
    let cluster = cluster_with_controller().await;
    let d = tempfile::tempdir().unwrap();
    let good = cluster.kubeconfig().display().to_string();
    let gone = d.path().join("removed-kubeconfig").display().to_string();
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "--kubeconfig",
            &gone,
            "--kubeconfig",
            &good,
            "-n",
            "other",
            "--namespace",
            "team-a",
            "--controller-name",
            "nope",
            "--controller-name",
            CTRL_NAME,
        ],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recover(d.path(), "key-a.pem", &r.stdout).code, 0);
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--fetch-cert", "--kubeconfig", &gone, "--kubeconfig", &good],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.raw_stdout, std::fs::read(fixture("cert-a.pem")).unwrap());
    // The other order fails on the missing file: the last value is the one used.
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--fetch-cert", "--kubeconfig", &good, "--kubeconfig", &gone],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_from_configmap() {
    let cluster = Cluster::start_private().unwrap();
    let client = cluster.client().await.unwrap();
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("sealed-secrets-cert".into()),
            namespace: Some(CTRL_NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "cert.pem".to_owned(),
            std::fs::read_to_string(fixture("cert-b.pem")).unwrap(),
        )])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client, CTRL_NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--cert-from-configmap"],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(recover(d.path(), "key-b.pem", &r.stdout).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_re_encrypt_through_the_controller() {
    let cluster = cluster_with_controller().await;
    let d = tempfile::tempdir().unwrap();
    let cert_a = fixture("cert-a.pem").display().to_string();
    let cert_b = fixture("cert-b.pem").display().to_string();
    let sealed_a = common::run(d.path(), &["--cert", &cert_a], SECRET_YAML.as_bytes()).stdout;
    let sealed_b = common::run(d.path(), &["--cert", &cert_b], SECRET_YAML.as_bytes()).stdout;
    let r = kubeseal(&cluster, d.path(), &["--validate"], sealed_a.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = kubeseal(&cluster, d.path(), &["--validate"], sealed_b.as_bytes());
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: unable to decrypt sealed secret: db-creds\n"
    );
    // Re-encrypt: the answer (no apiVersion/kind) is completed and server fields cleared.
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--re-encrypt", "-o", "yaml"],
        sealed_a.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("kind: SealedSecret"), "{}", r.stdout);
    assert!(!r.stdout.contains("creationTimestamp"), "{}", r.stdout);
    assert_eq!(recover(d.path(), "key-b.pem", &r.stdout).code, 0);
    // With only -f, the input file is rewritten (upstream #405).
    let f = d.path().join("s.json");
    std::fs::write(&f, &sealed_a).unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--re-encrypt", "-f", &f.display().to_string()],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rewritten = std::fs::read_to_string(&f).unwrap();
    assert_eq!(recover(d.path(), "key-b.pem", &rewritten).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_backup_restore_list_verify() {
    let cluster = Cluster::start_private().unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Secret> = Api::namespaced(client, CTRL_NS);
    let list: serde_json::Value = sealed_secrets_api::manifest::parse_documents(
        &std::fs::read(fixture("key-backup-list.yaml")).unwrap(),
    )
    .unwrap()
    .remove(0);
    let mut names = Vec::new();
    for item in list["items"].as_array().unwrap() {
        let mut s: Secret = serde_json::from_value(item.clone()).unwrap();
        s.metadata.resource_version = None;
        names.push(s.metadata.name.clone().unwrap());
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let pass = d.path().join("pass");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let pass = pass.display().to_string();
    let backup = d.path().join("keys.age");
    let backup_s = backup.display().to_string();

    let r = kubeseal(&cluster, d.path(), &["keys", "list"], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key_a = PrivateKey::from_pem(&std::fs::read(fixture("key-a.pem")).unwrap()).unwrap();
    assert!(
        r.stdout.contains(key_a.fingerprint().as_str()),
        "{}",
        r.stdout
    );

    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "backup",
            "-o",
            &backup_s,
            "--passphrase-file",
            &pass,
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let data = std::fs::read(&backup).unwrap();
    assert!(data.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Never overwritten without --force.
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "backup",
            "-o",
            &backup_s,
            "--passphrase-file",
            &pass,
        ],
        b"",
    );
    assert_eq!(r.code, 1);

    // The encrypted backup opens SealedSecrets of both keys.
    let tree = d.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for (f, cert) in [("a.json", "cert-a.pem"), ("b.json", "cert-b.pem")] {
        let c = fixture(cert).display().to_string();
        let out = common::run(d.path(), &["--cert", &c], SECRET_YAML.as_bytes()).stdout;
        std::fs::write(tree.join(f), out).unwrap();
    }
    let tree_s = tree.display().to_string();
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "verify-backup",
            &backup_s,
            &tree_s,
            "--passphrase-file",
            &pass,
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Restore into an emptied namespace, then again (idempotent).
    for n in &names {
        api.delete(n, &DeleteParams::default()).await.unwrap();
    }
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "restore",
            &backup_s,
            "--passphrase-file",
            &pass,
            "--yes",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for n in &names {
        assert!(api.get_opt(n).await.unwrap().is_some(), "{n} restored");
    }
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "restore",
            &backup_s,
            "--passphrase-file",
            &pass,
            "--yes",
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("0 key(s) restored, 2 already present"),
        "{}",
        r.stderr
    );

    // A Secret of the same name holding another key is never overwritten.
    api.delete(&names[0], &DeleteParams::default())
        .await
        .unwrap();
    let other = PrivateKey::generate(2048).unwrap();
    let other_cert = other
        .self_signed_certificate(&sealed_secrets_crypto::CertParams::default())
        .unwrap();
    // A real API server requires both tls.key and tls.crt in a kubernetes.io/tls Secret.
    let clash = Secret {
        metadata: ObjectMeta {
            name: Some(names[0].clone()),
            namespace: Some(CTRL_NS.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (
                "tls.key".to_owned(),
                ByteString(other.to_pkcs1_pem().as_bytes().to_vec()),
            ),
            (
                "tls.crt".to_owned(),
                ByteString(other_cert.pem().as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    };
    api.create(&PostParams::default(), &clash).await.unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "restore",
            &backup_s,
            "--passphrase-file",
            &pass,
            "--yes",
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);

    // Wrong passphrase.
    std::fs::write(&pass, "wrong\n").unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "restore",
            &backup_s,
            "--passphrase-file",
            &pass,
            "--yes",
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot decrypt backup"), "{}", r.stderr);
}

/// `keys rotate`: the CLI annotates the newest key Secret and waits for a new one. The
/// controller's side (a new key on that annotation) is simulated here by a task that reacts to
/// the annotation, so the CLI's half of the protocol is pinned independently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_requests_a_key_and_waits_for_it() {
    let cluster = Cluster::start_private().unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Secret> = Api::namespaced(client, CTRL_NS);
    // A real API server requires both tls.key and tls.crt in a kubernetes.io/tls Secret.
    let key_secret = |name: &str, key: &PrivateKey, cert: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(CTRL_NS.into()),
            labels: Some(BTreeMap::from([(
                "sealedsecrets.bitnami.com/sealed-secrets-key".to_owned(),
                "active".to_owned(),
            )])),
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
                ByteString(std::fs::read(fixture(cert)).unwrap()),
            ),
        ])),
        ..Default::default()
    };
    let first = PrivateKey::from_pem(&std::fs::read(fixture("key-a.pem")).unwrap()).unwrap();
    api.create(
        &PostParams::default(),
        &key_secret("sealed-secrets-keyfirst", &first, "cert-a.pem"),
    )
    .await
    .unwrap();
    let d = tempfile::tempdir().unwrap();

    // Nobody answers: a clear timeout error.
    let r = kubeseal(
        &cluster,
        d.path(),
        &["keys", "rotate", "--timeout", "1"],
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("created no new key"), "{}", r.stderr);
    let annotated = api.get("sealed-secrets-keyfirst").await.unwrap();
    assert!(
        annotated
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(sealed_secrets_api::annotations::ROTATE_REQUEST))
    );

    // A "controller" that reacts to the annotation.
    let new_key = PrivateKey::from_pem(&std::fs::read(fixture("key-b.pem")).unwrap()).unwrap();
    let expected = new_key.fingerprint().to_string();
    let api2 = api.clone();
    let secret = key_secret("sealed-secrets-keysecond", &new_key, "cert-b.pem");
    // It creates the key once it sees this request, not after a guessed delay: a key that
    // exists before kubeseal has looked is, rightly, no new key to kubeseal.
    let before = annotated
        .metadata
        .annotations
        .unwrap_or_default()
        .get(sealed_secrets_api::annotations::ROTATE_REQUEST)
        .cloned();
    let reactor = tokio::spawn(async move {
        eventually(
            "kubeseal to request a key again",
            std::time::Duration::from_secs(30),
            || {
                let api = api2.clone();
                let before = before.clone();
                async move {
                    let s = api.get("sealed-secrets-keyfirst").await.ok()?;
                    let now = s
                        .metadata
                        .annotations?
                        .get(sealed_secrets_api::annotations::ROTATE_REQUEST)
                        .cloned();
                    (now != before).then_some(())
                }
            },
        )
        .await;
        api2.create(&PostParams::default(), &secret).await.unwrap();
    });
    let dir = d.path().to_owned();
    let kubeconfig = cluster.kubeconfig().to_owned();
    let r = tokio::task::spawn_blocking(move || {
        let mut c = common::cmd(&dir);
        c.env("KUBECONFIG", kubeconfig)
            .args(["keys", "rotate", "--timeout", "30"]);
        run_cmd(&mut c, b"")
    })
    .await
    .unwrap();
    reactor.await.unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{expected}\n"));
}

/// The real controller binary (built by `cargo build --workspace --bins`, as CI does) behind
/// the cluster's service proxy: the whole online path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_real_controller() {
    use harness::cluster::{Process, binary_path, free_port, wait_for_port};
    let controller_bin = binary_path("sealed-secrets-controller")
        .expect("build it first: cargo build -p sealed-secrets-controller");
    let cluster = Cluster::start_private().unwrap();
    let port = free_port().unwrap();
    let metrics = free_port().unwrap();
    let mut cmd = std::process::Command::new(controller_bin);
    cmd.env("KUBECONFIG", cluster.kubeconfig())
        .env("POD_NAMESPACE", CTRL_NS)
        .env("POD_NAME", "sealed-secrets-controller-0")
        .args([
            "--listen-addr",
            &format!("127.0.0.1:{port}"),
            "--listen-metrics-addr",
            &format!("127.0.0.1:{metrics}"),
            "--key-size",
            "2048",
            "--leader-election=false",
        ]);
    let mut proc = Process::spawn(cmd, cluster.temp_dir()).unwrap();
    wait_for_port(
        &format!("127.0.0.1:{port}"),
        std::time::Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", proc.log()));
    expose_controller(&cluster, CTRL_NAME, &format!("127.0.0.1:{port}")).await;
    let d = tempfile::tempdir().unwrap();
    // The first key may still be in the making.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cert = loop {
        let r = kubeseal(&cluster, d.path(), &["--fetch-cert"], b"");
        if r.code == 0 && r.stdout.contains("BEGIN CERTIFICATE") {
            break r.stdout;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cert: {}\n{}",
            r.stderr,
            proc.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let cert_file = d.path().join("cert.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    let sealed = kubeseal(&cluster, d.path(), &[], SECRET_YAML.as_bytes());
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--validate"],
        sealed.stdout.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, proc.log());
    let foreign = common::run(
        d.path(),
        &["--cert", &fixture("cert-a.pem").display().to_string()],
        SECRET_YAML.as_bytes(),
    );
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--validate"],
        foreign.stdout.as_bytes(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("unable to decrypt sealed secret: db-creds"),
        "{}",
        r.stderr
    );
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--re-encrypt"],
        sealed.stdout.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, proc.log());
    let r2 = kubeseal(&cluster, d.path(), &["--validate"], r.stdout.as_bytes());
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    let r = kubeseal(&cluster, d.path(), &["keys", "list"], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = Certificate::from_pem(cert.as_bytes()).unwrap();
    assert!(
        r.stdout.contains(c.public_key().fingerprint().as_str()),
        "{}",
        r.stdout
    );
    // Offline validation against the served cert agrees.
    let r = common::run(
        d.path(),
        &["--validate", "--cert", &cert_file.display().to_string()],
        sealed.stdout.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    proc.stop();
}

/// No silent waits (a Service without a ready pod fails at once with
/// the server's reason), no Rust Debug in messages, an unreachable API server named as such,
/// --request-timeout bounding the whole operation, and -v 6 showing the HTTP calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failures_are_prompt_and_plain() {
    let cluster = cluster_with_controller().await;
    let d = tempfile::tempdir().unwrap();

    // Service present, no endpoint: kube-rs's default retry used to wait ~5 minutes.
    add_service(&cluster, "no-pods", Some("no-pods")).await;
    let started = std::time::Instant::now();
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--fetch-cert", "--controller-name", "no-pods"],
        b"",
    );
    let took = started.elapsed();
    eprintln!("no ready pod: failed after {took:?}");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no endpoints available for service"),
        "{}",
        r.stderr
    );
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");

    // 404: upstream's message, "not found" once, no Debug of the Status.
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--fetch-cert", "--controller-name", "nope"],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.matches("not found").count(), 1, "{}", r.stderr);
    for debug in ["Status {", "Some(", "ListMeta", "ApiError"] {
        assert!(!r.stderr.contains(debug), "{}", r.stderr);
    }

    // An endpoint that accepts connections and never answers: --request-timeout bounds it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    expose_controller(&cluster, "silent", &silent_addr).await;
    let started = std::time::Instant::now();
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "--fetch-cert",
            "--controller-name",
            "silent",
            "--request-timeout",
            "2s",
        ],
        b"",
    );
    let took = started.elapsed();
    eprintln!("silent controller, --request-timeout 2s: failed after {took:?}");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no result within 2s"), "{}", r.stderr);
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
    drop(silent);

    // -v 6: every HTTP call with its status.
    let r = kubeseal(&cluster, d.path(), &["-v", "6", "--fetch-cert"], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("GET http")
            && r.stderr.contains(
                "/api/v1/namespaces/kube-system/services/sealed-secrets-controller 200 OK in "
            ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("/proxy/v1/cert.pem 200 OK in "),
        "{}",
        r.stderr
    );
    assert_eq!(r.raw_stdout, std::fs::read(fixture("cert-a.pem")).unwrap());

    // An API server that is not there is named as such, not blamed on --controller-name.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let kubeconfig = d.path().join("unreachable.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n"
        ),
    )
    .unwrap();
    let mut c = common::cmd(d.path());
    c.env("KUBECONFIG", &kubeconfig).args(["--fetch-cert"]);
    let r = run_cmd(&mut c, b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "cannot reach the Kubernetes API server at https://127.0.0.1:{port}/"
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("--controller-name"), "{}", r.stderr);
    assert!(!r.stderr.contains("ServiceError"), "{}", r.stderr);
}

/// A hostile plaintext backup: a key Secret with forged labels and annotations (our
/// key-origin included) and another type. Without `--yes` and without a terminal nothing is
/// written; with `--yes` the Secret written carries only the key, its certificate, its name and
/// the active label, marked restored, and the operator is told it becomes the sealing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_restore_of_a_hostile_backup_writes_only_what_matters() {
    let cluster = Cluster::start_private().unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Secret> = Api::namespaced(client, CTRL_NS);
    let key = PrivateKey::generate(2048).unwrap();
    let crt = key
        .self_signed_certificate(&sealed_secrets_crypto::CertParams::default())
        .unwrap();
    let name = "sealed-secrets-keyevil1";
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": {
                "sealedsecrets.bitnami.com/sealed-secrets-key": "active",
                "forged": "label",
            },
            "annotations": {
                "sealed-secrets-rs.dev/key-origin": "generated",
                "forged": "annotation",
            },
        },
        "type": "Opaque",
        "data": {
            "tls.key": sealed_secrets_crypto::encode_base64(key.to_pkcs1_pem().as_bytes()),
            "tls.crt": sealed_secrets_crypto::encode_base64(crt.pem().as_bytes()),
            "extra": "eA==",
        },
    }]});
    let d = tempfile::tempdir().unwrap();
    let backup = d.path().join("backup.json");
    std::fs::write(&backup, list.to_string()).unwrap();
    let backup = backup.display().to_string();

    // No terminal, no --yes: refused after listing the key, before any write.
    let r = kubeseal(
        &cluster,
        d.path(),
        &["keys", "restore", &backup, "--insecure-plaintext"],
        b"y\n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("needs a confirmation"), "{}", r.stderr);
    assert!(
        r.stderr.contains(key.fingerprint().as_str()),
        "fingerprint shown: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("would become the controller's newest key"),
        "{}",
        r.stderr
    );
    assert!(
        api.get_opt(name).await.unwrap().is_none(),
        "nothing written"
    );

    let r = kubeseal(
        &cluster,
        d.path(),
        &["keys", "restore", &backup, "--insecure-plaintext", "--yes"],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = api.get(name).await.unwrap();
    assert_eq!(
        s.metadata.labels.unwrap(),
        BTreeMap::from([(
            "sealedsecrets.bitnami.com/sealed-secrets-key".to_owned(),
            "active".to_owned()
        )])
    );
    let annotations = s.metadata.annotations.unwrap();
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        vec!["sealed-secrets-rs.dev/restored-at"],
        "no forged annotation, no key-origin"
    );
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = s.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["tls.crt", "tls.key"]);
}
