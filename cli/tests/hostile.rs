//! Hostile inputs the CLI must refuse or report, offline: multi-recipient values of version 1
//! (no key commitment, crates/crypto/FORMAT.md §2.2), key backups that would plant a key
//! (plaintext, certificate dated ahead), and manifests hidden in dot-directories from `scan`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{fixture, run};
use sealed_secrets_crypto::{
    CertParams, Certificate, PrivateKey, Scope, encode_base64, seal_multi, seal_multi_v1,
};

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn cert(name: &str) -> Certificate {
    Certificate::from_pem(&fs::read(fixture(name)).unwrap()).unwrap()
}

/// A SealedSecret `team-a/db` whose `password` is `value` (already base64).
fn sealed_secret(value: &str) -> String {
    format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: team-a\nspec:\n  encryptedData:\n    password: {value}\n  template:\n    metadata:\n      name: db\n      namespace: team-a\n"
    )
}

/// `team-a/db` with `password: hunter2` sealed for cert-a in multi-recipient version `v`.
fn multi(v: u8) -> String {
    let a = cert("cert-a.pem");
    let label = Scope::Strict.label("team-a", "db");
    let ct = match v {
        1 => seal_multi_v1(&[a.public_key()], &label, b"hunter2").unwrap(),
        _ => seal_multi(&[a.public_key()], &label, b"hunter2").unwrap(),
    };
    sealed_secret(&encode_base64(&ct))
}

const HUNTER2_B64: &str = "aHVudGVyMg==";

#[test]
fn recovery_unseal_refuses_multi_recipient_v1_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    let key = p(&fixture("key-a.pem"));
    let args = ["--recovery-unseal", "--recovery-private-key", key.as_str()];

    // Version 2 opens as before.
    let r = run(d.path(), &args, multi(2).as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(HUNTER2_B64), "{}", r.stdout);

    let r = run(d.path(), &args, multi(1).as_bytes());
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.is_empty(), "nothing printed: {}", r.stdout);
    assert!(
        r.stderr
            .contains("multi-recipient version 1 (no key commitment) is refused"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--accept-multi-recipient-v1"),
        "{}",
        r.stderr
    );

    let mut with_flag = args.to_vec();
    with_flag.push("--accept-multi-recipient-v1");
    let r = run(d.path(), &with_flag, multi(1).as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(HUNTER2_B64), "{}", r.stdout);
}

#[test]
fn offline_validate_reports_multi_recipient_v1_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    let c = p(&fixture("cert-a.pem"));
    let args = ["--validate", "--cert", c.as_str()];
    assert_eq!(run(d.path(), &args, multi(2).as_bytes()).code, 0);
    let r = run(d.path(), &args, multi(1).as_bytes());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("multi-recipient version 1 (no key commitment)"),
        "{}",
        r.stderr
    );
    let mut with_flag = args.to_vec();
    with_flag.push("--accept-multi-recipient-v1");
    let r = run(d.path(), &with_flag, multi(1).as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn audit_and_scan_list_multi_recipient_v1_values() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    fs::create_dir_all(repo.join("apps")).unwrap();
    fs::write(repo.join("apps/v1.yaml"), multi(1)).unwrap();
    fs::write(repo.join("apps/v2.yaml"), multi(2)).unwrap();

    // Audit for another key: the version-1 value is still listed (it names cert-a only).
    let b = p(&fixture("cert-b.pem"));
    let r = run(d.path(), &["audit", "--key", &b, &p(&repo)], b"");
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "v1.yaml:1: SealedSecret `team-a/db` item `password` (multi-recipient version 1"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("v2.yaml"), "{}", r.stdout);

    let r = run(d.path(), &["scan", &p(&repo)], b"");
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("v1.yaml:1: multi-recipient version-1 value"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("v2.yaml"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("found 1 multi-recipient version-1 value(s)"),
        "{}",
        r.stderr
    );
    fs::remove_file(repo.join("apps/v1.yaml")).unwrap();
    assert_eq!(run(d.path(), &["scan", &p(&repo)], b"").code, 0);
}

const PLAIN_SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\n  namespace: ci\nstringData:\n  token: abc\n";

#[test]
fn scan_enters_hidden_directories_but_not_git() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    for dir in [".github/workflows", ".argocd", ".git/objects"] {
        fs::create_dir_all(repo.join(dir)).unwrap();
    }
    fs::write(repo.join(".github/workflows/secret.yaml"), PLAIN_SECRET).unwrap();
    fs::write(repo.join(".argocd/sealed.yaml"), multi(1)).unwrap();
    fs::write(repo.join(".git/objects/secret.yaml"), PLAIN_SECRET).unwrap();

    let r = run(d.path(), &["scan", &p(&repo)], b"");
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(".github/workflows/secret.yaml:2: unsealed Secret `ci/leaked`"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(".argocd/sealed.yaml:1:"), "{}", r.stdout);
    assert!(!r.stdout.contains(".git/"), "never .git: {}", r.stdout);

    let r = run(d.path(), &["scan", "--skip-hidden", &p(&repo)], b"");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// A key Secret as an attacker would put it in a backup: forged labels and annotations (our
/// key-origin included), another type, and a certificate valid from `not_before`.
fn hostile_key_secret(name: &str, not_before: SystemTime) -> serde_json::Value {
    let key = PrivateKey::generate(2048).unwrap();
    let params = CertParams {
        not_before,
        ..CertParams::default()
    };
    let crt = key.self_signed_certificate(&params).unwrap();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
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
            "tls.key": encode_base64(key.to_pkcs1_pem().as_bytes()),
            "tls.crt": encode_base64(crt.pem().as_bytes()),
        },
    })
}

/// A plaintext backup (a `v1.List`) of `items`.
fn plaintext_backup(dir: &Path, items: Vec<serde_json::Value>) -> String {
    let path = dir.join("backup.json");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    fs::write(&path, list.to_string()).unwrap();
    p(&path)
}

/// Refused from the file alone: the kubeconfig of these runs does not exist, so a refusal
/// that names the backup proves no request (let alone a write) reached any cluster.
#[test]
fn hostile_backups_are_refused_before_any_cluster_is_contacted() {
    let d = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ahead = hostile_key_secret("sealed-secrets-keyzzzzz", now + Duration::from_secs(180));
    let backup = plaintext_backup(d.path(), vec![ahead]);

    let r = run(d.path(), &["keys", "restore", &backup, "--yes"], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not encrypted"), "{}", r.stderr);
    assert!(r.stderr.contains("--insecure-plaintext"), "{}", r.stderr);
    assert!(!r.stderr.contains("kubeconfig"), "{}", r.stderr);

    let r = run(
        d.path(),
        &["keys", "restore", &backup, "--insecure-plaintext", "--yes"],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("`sealed-secrets-keyzzzzz`") && r.stderr.contains("in the future"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("kubeconfig"), "{}", r.stderr);

    // A certificate of another key than the one restored.
    let mut mismatched = hostile_key_secret("sealed-secrets-keyyyyyy", now);
    let other = hostile_key_secret("x", now);
    mismatched["data"]["tls.crt"] = other["data"]["tls.crt"].clone();
    let backup = plaintext_backup(d.path(), vec![mismatched]);
    let r = run(
        d.path(),
        &["keys", "restore", &backup, "--insecure-plaintext", "--yes"],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("certificate of another key"),
        "{}",
        r.stderr
    );
}
