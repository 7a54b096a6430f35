//! Known-answer vectors sealed by upstream Sealed Secrets v0.36.6's own Go code
//! (`tests/fixtures/upstream-vectors` at the workspace root, shared with the CLI and controller
//! tests).

// Test code: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use sealed_secrets_crypto::{
    Certificate, Envelope, KeyRing, OpenError, PrivateKey, Scope, decode_base64, envelope,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    must_fail: Vec<MustFail>,
}

#[derive(Deserialize)]
struct Case {
    sealed_with: String,
    scope: String,
    namespace: String,
    name: String,
    value: String,
    plaintext_b64: String,
    ciphertext_b64: String,
}

#[derive(Deserialize)]
struct MustFail {
    ciphertext_b64: String,
    scope: String,
    namespace: String,
    name: String,
    why: String,
}

/// The upstream vectors, shared with kubeseal's and the controller's tests: one copy for the
/// whole workspace, at `tests/fixtures/upstream-vectors` (its README says where they came from).
fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/upstream-vectors")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vectors() -> Vectors {
    serde_json::from_slice(&fixture("vectors.json")).unwrap()
}

fn key(name: &str) -> PrivateKey {
    PrivateKey::from_pem(&fixture(&format!("{name}.pem"))).unwrap()
}

fn both_keys() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.insert(key("key-a"));
    ring.insert(key("key-b"));
    ring
}

#[test]
fn every_upstream_case_opens_with_both_keys_loaded() {
    let ring = both_keys();
    let v = vectors();
    assert_eq!(v.cases.len(), 36);
    for case in &v.cases {
        let scope: Scope = case.scope.parse().unwrap();
        let label = scope.label(&case.namespace, &case.name);
        let ct = decode_base64(&case.ciphertext_b64).unwrap();
        assert_eq!(envelope(&ct).unwrap(), Envelope::Upstream { rsa_len: 512 });
        let opened = ring
            .open(&label, &ct, &[])
            .unwrap_or_else(|e| panic!("{} {} {}: {e}", case.sealed_with, case.scope, case.value));
        let expected = decode_base64(&case.plaintext_b64).unwrap();
        assert_eq!(
            opened.plaintext.as_bytes(),
            expected.as_slice(),
            "{}",
            case.value
        );
        let sealer = key(&case.sealed_with);
        assert_eq!(&opened.key, sealer.fingerprint());
    }
}

#[test]
fn hint_makes_each_value_cost_one_rsa_operation() {
    let ring = both_keys();
    let b = key("key-b");
    let v = vectors();
    let cases: Vec<&Case> = v
        .cases
        .iter()
        .filter(|c| c.sealed_with == "key-b")
        .collect();
    for case in &cases {
        let label = case
            .scope
            .parse::<Scope>()
            .unwrap()
            .label(&case.namespace, &case.name);
        let ct = decode_base64(&case.ciphertext_b64).unwrap();
        let opened = ring.open(&label, &ct, &[b.fingerprint().clone()]).unwrap();
        assert_eq!(opened.rsa_operations, 1);
    }
}

#[test]
fn every_must_fail_case_is_refused() {
    let ring = both_keys();
    let v = vectors();
    assert_eq!(v.must_fail.len(), 4);
    for case in &v.must_fail {
        let label = case
            .scope
            .parse::<Scope>()
            .unwrap()
            .label(&case.namespace, &case.name);
        let ct = decode_base64(&case.ciphertext_b64).unwrap();
        assert_eq!(
            ring.open(&label, &ct, &[]).unwrap_err(),
            OpenError::NoKey,
            "{}",
            case.why
        );
    }
}

#[test]
fn fingerprints_match_ssh_keygen() {
    // `ssh-keygen -lf` of the certificates' public keys, the value upstream's
    // `ssh.FingerprintSHA256` computes.
    assert_eq!(
        key("key-a").fingerprint().as_str(),
        "SHA256:ahUs7lVAssjs1vckhx01QyCWswJsc/JAQ9OYqyDYrkA"
    );
    assert_eq!(
        key("key-b").fingerprint().as_str(),
        "SHA256:IMM190be6CweClFnnD7eN4i3KMAdNGFSc5BaEewccAQ"
    );
    for name in ["a", "b"] {
        let cert = Certificate::from_pem(&fixture(&format!("cert-{name}.pem"))).unwrap();
        assert_eq!(cert.public_key(), key(&format!("key-{name}")).public_key());
        assert_eq!(cert.public_key().bits(), 4096);
    }
}

#[test]
fn pkcs1_round_trip_and_pkcs8_input() {
    let a = key("key-a");
    let pem = a.to_pkcs1_pem();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert_eq!(
        PrivateKey::from_pem(pem.as_bytes()).unwrap().fingerprint(),
        a.fingerprint()
    );
    // PKCS#8 of the same key (made with `openssl pkcs8 -topk8 -nocrypt`).
    let pkcs8 = std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
        .arg(vectors_dir().join("key-a.pem"))
        .output();
    if let Ok(out) = pkcs8
        && out.status.success()
    {
        let k = PrivateKey::from_pem(&out.stdout).unwrap();
        assert_eq!(k.fingerprint(), a.fingerprint());
    }
    assert!(!format!("{a:?}").contains("MII"));
}

#[test]
fn certificate_parsing_rejects_non_rsa_and_garbage() {
    let ec =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ec-cert.pem"))
            .unwrap();
    let err = Certificate::from_pem(&ec).unwrap_err();
    assert_eq!(err.to_string(), "expected RSA public key but found ECDSA");
    assert!(Certificate::from_pem(b"").is_err());
    assert!(
        Certificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .is_err()
    );
}

/// A multi-recipient version-2 value written by an independent implementation of `FORMAT.md`
/// §2 (Python `cryptography`: RSA-OAEP-SHA256, HKDF-SHA256, AES-256-GCM) for key-a and key-b
/// under the strict label `team-a/db-creds`: each key alone opens it to `hello`, with one RSA
/// operation; another label does not.
#[test]
fn multi_recipient_version_2_from_an_independent_implementation() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multi-v2-hello.b64");
    let text = std::fs::read_to_string(path).unwrap();
    let value = decode_base64(text.trim()).unwrap();
    assert_eq!(value[6], sealed_secrets_crypto::MULTI_VERSION);
    for name in ["key-a", "key-b"] {
        let mut ring = KeyRing::new();
        ring.insert(key(name));
        let opened = ring.open(b"team-a/db-creds", &value, &[]).unwrap();
        assert_eq!(opened.plaintext.as_bytes(), b"hello");
        assert_eq!(opened.rsa_operations, 1);
        assert_eq!(
            ring.open(b"team-a/other", &value, &[]).unwrap_err(),
            OpenError::NoKey
        );
    }
}
