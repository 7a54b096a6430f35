//! Keys wrapped by a KMS, from the operator's side (docs/security.md, "Tier 2"), with
//! `local-kms` (tests/kms/local-kms.sh): `keys wrap` / `keys unwrap` round trip, `keys list`,
//! `keys backup` keeping wrapped keys wrapped, `verify-backup` refusing them clearly, restore
//! into a fresh control plane whose controller opens them (and, first, one that cannot: wrong
//! binding), and a KMS that is down leaving every key Secret untouched.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use harness::cluster::{Cluster, Process, binary_path, free_port, wait_for_port};
use harness::kms::LocalKms;
use harness::wait::eventually;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, PostParams};
use sealed_secrets_api::wrapped_key::{WRAPPED_KEY_FIELD, WRAPPED_SECRET_TYPE};
use sealed_secrets_crypto::{Fingerprint, PrivateKey};

use super::{CTRL_NAME, CTRL_NS, expose_controller};
use crate::common::{self, SECRET_YAML, fixture, run_cmd};

const WRAP_CLUSTER: &str = "e2e-wrap";

/// kubeseal against `cluster` with local-kms's environment and `args`, then the backend flags.
fn kubeseal_kms(cluster: &Cluster, kms: &LocalKms, dir: &Path, args: &[&str]) -> common::Run {
    let mut c = common::cmd(dir);
    c.env("KUBECONFIG", cluster.kubeconfig())
        .envs(kms.env())
        .args(args)
        .args([
            "--key-wrap-backend",
            "aws-kms",
            "--key-wrap-key",
            &kms.alias,
        ])
        .args(["--key-wrap-cluster", WRAP_CLUSTER]);
    run_cmd(&mut c, b"")
}

fn kubeseal(cluster: &Cluster, dir: &Path, args: &[&str]) -> common::Run {
    validate_with(cluster, dir, args, b"")
}

fn validate_with(cluster: &Cluster, dir: &Path, args: &[&str], stdin: &[u8]) -> common::Run {
    let mut c = common::cmd(dir);
    c.env("KUBECONFIG", cluster.kubeconfig()).args(args);
    run_cmd(&mut c, stdin)
}

async fn key_secrets(api: &Api<Secret>) -> Vec<Secret> {
    api.list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key"))
        .await
        .unwrap()
        .items
}

fn fixture_fingerprints() -> Vec<Fingerprint> {
    let mut fps: Vec<Fingerprint> = ["key-a.pem", "key-b.pem"]
        .iter()
        .map(|k| {
            PrivateKey::from_pem(&std::fs::read(fixture(k)).unwrap())
                .unwrap()
                .fingerprint()
                .clone()
        })
        .collect();
    fps.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    fps
}

/// The fingerprints of the plain keys in `secrets`, sorted.
fn plain_fingerprints(secrets: &[Secret]) -> Vec<Fingerprint> {
    let mut fps: Vec<Fingerprint> = secrets
        .iter()
        .map(|s| {
            let pem = &s.data.as_ref().unwrap()["tls.key"].0;
            PrivateKey::from_pem(pem).unwrap().fingerprint().clone()
        })
        .collect();
    fps.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    fps
}

fn versions(secrets: &[Secret]) -> BTreeMap<String, String> {
    secrets
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap(),
                s.metadata.resource_version.clone().unwrap(),
            )
        })
        .collect()
}

/// A controller in `cluster` wrapping with `kms` for `wrap_cluster`, listening on `port` (the
/// service proxy's endpoint, registered by the first one).
async fn controller(
    cluster: &Cluster,
    kms: &LocalKms,
    wrap_cluster: &str,
    port: u16,
    first: bool,
) -> (Process, String) {
    let metrics = free_port().unwrap();
    let mut cmd = std::process::Command::new(binary_path("sealed-secrets-controller").unwrap());
    cmd.env("KUBECONFIG", cluster.kubeconfig())
        .env("POD_NAMESPACE", CTRL_NS)
        .env("POD_NAME", "sealed-secrets-controller-0")
        .envs(kms.env())
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .args(["--listen-metrics-addr", &format!("127.0.0.1:{metrics}")])
        .args(["--key-size", "2048", "--leader-election=false"])
        .args([
            "--key-wrap-backend",
            "aws-kms",
            "--key-wrap-key",
            &kms.alias,
        ])
        .args(["--key-wrap-cluster", wrap_cluster]);
    let proc = Process::spawn(cmd, cluster.temp_dir()).unwrap();
    let addr = format!("127.0.0.1:{port}");
    wait_for_port(&addr, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}: {}", proc.log()));
    if first {
        expose_controller(cluster, CTRL_NAME, &addr).await;
    }
    (proc, addr)
}

async fn readyz(addr: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_wrap_unwrap_backup_and_restore_with_local_kms() {
    let Some(kms) = LocalKms::start("cli-wrap") else {
        return;
    };
    let started = std::time::Instant::now();
    let cluster = Cluster::start_private().unwrap();
    let api: Api<Secret> = Api::namespaced(cluster.client().await.unwrap(), CTRL_NS);
    let list = sealed_secrets_api::manifest::parse_documents(
        &std::fs::read(fixture("key-backup-list.yaml")).unwrap(),
    )
    .unwrap()
    .remove(0);
    for item in list["items"].as_array().unwrap() {
        let mut s: Secret = serde_json::from_value(item.clone()).unwrap();
        s.metadata.resource_version = None;
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let fixtures = fixture_fingerprints();

    // Wrap: every plain key, with the warning; no private key left in any Secret.
    let r = kubeseal_kms(&cluster, &kms, d.path(), &["keys", "wrap"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("upstream's controller") && r.stderr.contains("cannot read them"),
        "{}",
        r.stderr
    );
    let wrapped = key_secrets(&api).await;
    assert_eq!(wrapped.len(), 2);
    for s in &wrapped {
        assert_eq!(s.type_.as_deref(), Some(WRAPPED_SECRET_TYPE));
        let data = s.data.as_ref().unwrap();
        assert!(data.contains_key(WRAPPED_KEY_FIELD) && !data.contains_key("tls.key"));
        assert!(!serde_json::to_string(s).unwrap().contains("PRIVATE KEY"));
    }
    let r = kubeseal(&cluster, d.path(), &["keys", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for fp in &fixtures {
        let row = r.stdout.lines().find(|l| l.contains(fp.as_str()));
        assert!(row.is_some_and(|l| l.ends_with("wrapped")), "{}", r.stdout);
    }

    // The backup keeps them wrapped; verify-backup says it needs the KMS.
    let backup = d.path().join("keys.yaml");
    let backup_s = backup.display().to_string();
    let r = kubeseal(
        &cluster,
        d.path(),
        &["keys", "backup", "-o", &backup_s, "--insecure-plaintext"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("stay wrapped"), "{}", r.stderr);
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(text.contains(WRAPPED_KEY_FIELD) && !text.contains("PRIVATE KEY"));
    let sealed = d.path().join("sealed.yaml");
    let out = common::run(
        d.path(),
        &["--cert", &fixture("cert-a.pem").display().to_string()],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(&sealed, &out.stdout).unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "verify-backup",
            &backup_s,
            &sealed.display().to_string(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is wrapped by a KMS"), "{}", r.stderr);

    // Unwrap: the same keys, plain again, with the warning.
    let r = kubeseal_kms(&cluster, &kms, d.path(), &["keys", "unwrap"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("in the clear"), "{}", r.stderr);
    let plain = key_secrets(&api).await;
    assert_eq!(plain_fingerprints(&plain), fixtures);

    // Restore the wrapped backup into a fresh control plane. A controller bound to another
    // cluster name cannot open them: it says which, records an Event, deletes nothing, and
    // works with a key of its own; one with the right binding opens them.
    let fresh = Cluster::start_private().unwrap();
    let fresh_api: Api<Secret> = Api::namespaced(fresh.client().await.unwrap(), CTRL_NS);
    let r = kubeseal(
        &fresh,
        d.path(),
        &[
            "keys",
            "restore",
            &backup_s,
            "--insecure-plaintext",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("wrapped by a KMS"), "{}", r.stderr);
    let restored = key_secrets(&fresh_api).await;
    assert_eq!(versions(&restored).len(), 2);
    let restored_names: Vec<String> = restored
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();

    let port = free_port().unwrap();
    let (mut wrong, addr) = controller(&fresh, &kms, "another-cluster", port, true).await;
    eventually(
        "/readyz to name the restored keys",
        Duration::from_secs(60),
        || async {
            let (status, body) = readyz(&addr).await?;
            (status == 200 && restored_names.iter().all(|n| body.contains(n))).then_some(())
        },
    )
    .await;
    let events: Api<Event> = Api::namespaced(fresh.client().await.unwrap(), CTRL_NS);
    eventually(
        "a KeyUnwrapFailed Event",
        Duration::from_secs(30),
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("KeyUnwrapFailed"))
                .then_some(())
        },
    )
    .await;
    // The old value does not open there; the controller's own new key does.
    let r = validate_with(&fresh, d.path(), &["--validate"], out.stdout.as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let own = kubeseal(&fresh, d.path(), &["--fetch-cert"]);
    assert_eq!(own.code, 0, "{}", own.stderr);
    wrong.stop();
    let after = key_secrets(&fresh_api).await;
    for s in &restored {
        let now = after
            .iter()
            .find(|a| a.metadata.name == s.metadata.name)
            .expect("a restored key was deleted");
        assert_eq!(now.data, s.data, "a restored key was rewritten");
    }

    let (mut right, _) = controller(&fresh, &kms, WRAP_CLUSTER, port, false).await;
    eventually(
        "the restored key to open the old value",
        Duration::from_secs(60),
        || async {
            let r = validate_with(&fresh, d.path(), &["--validate"], out.stdout.as_bytes());
            (r.code == 0).then_some(())
        },
    )
    .await;
    right.stop();

    // A KMS that is down: nothing converted, nothing written.
    let before = versions(&key_secrets(&api).await);
    kms.stop();
    let r = kubeseal_kms(&cluster, &kms, d.path(), &["keys", "wrap"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(versions(&key_secrets(&api).await), before);
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("key wrap e2e took {:?}\n", started.elapsed()),
    );
}
