//! Post-quantum sealing through every offline kubeseal mode (`crates/crypto/FORMAT.md` §3):
//! `--recipients-file` sealing in each scope, `--raw`, multi-cluster, `--merge-into` into an
//! RSA object, `--recovery-unseal` with age identity files and key Secrets carrying `age.key`,
//! `reencrypt --recipients-file` upgrading a tree with `audit` telling before and after, and
//! hostile input leaving no output behind. The cluster side (`--fetch-recipient`, sealing
//! through the controller) is in `e2e/pq.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::path::{Path, PathBuf};

use sealed_secrets_api::parse_sealed_secrets;
use sealed_secrets_crypto::{
    Envelope, KeyRing, PqIdentity, Scope, ValueFormat, decode_base64, envelope, value_format,
};

use common::{SECRET_YAML, fixture, run};

fn pq_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pq-fixtures")
        .join(name)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn identity(n: u8) -> PqIdentity {
    let text = std::fs::read_to_string(pq_fixture(&format!("identity-{n}.txt"))).unwrap();
    PqIdentity::parse_file(&text).unwrap().remove(0)
}

/// The formats of every value of every SealedSecret in `text`, in order.
fn formats(text: &str) -> Vec<ValueFormat> {
    parse_sealed_secrets(text.as_bytes())
        .unwrap()
        .iter()
        .flat_map(|ss| {
            ss.spec
                .encrypted_data
                .iter()
                .map(|(_, v)| value_format(&decode_base64(v).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn unseal(dir: &Path, key: &Path, sealed: &str) -> common::Run {
    run(
        dir,
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            &p(key),
            "-o",
            "yaml",
        ],
        sealed.as_bytes(),
    )
}

#[test]
fn every_scope_flows_into_the_post_quantum_seal() {
    let d = tempfile::tempdir().unwrap();
    let r1 = p(&pq_fixture("recipient-1.txt"));
    for (scope, label) in [
        ("strict", &b"team-a/db-creds"[..]),
        ("namespace-wide", b"team-a"),
        ("cluster-wide", b""),
    ] {
        let r = run(
            d.path(),
            &["--recipients-file", &r1, "--scope", scope, "-o", "yaml"],
            SECRET_YAML.as_bytes(),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.contains("post-quantum format"), "{}", r.stderr);
        assert_eq!(formats(&r.stdout), [ValueFormat::PostQuantum; 2]);
        let ss = parse_sealed_secrets(r.stdout.as_bytes()).unwrap().remove(0);
        for (_, v) in ss.spec.encrypted_data.iter() {
            let Envelope::PostQuantum {
                label: bound,
                recipients,
            } = envelope(&decode_base64(v).unwrap()).unwrap()
            else {
                panic!("not post-quantum");
            };
            assert_eq!(bound, label, "{scope}");
            assert_eq!(recipients, [identity(1).fingerprint().clone()]);
        }
        let u = unseal(d.path(), &pq_fixture("identity-1.txt"), &r.stdout);
        assert_eq!(u.code, 0, "{}", u.stderr);
        assert!(u.stdout.contains("password: czNjcjN0"), "{}", u.stdout);
        // Moved to another name: only the strict scope refuses it.
        let moved = r.stdout.replace("name: db-creds", "name: other");
        let u = unseal(d.path(), &pq_fixture("identity-1.txt"), &moved);
        assert_eq!(u.code == 0, scope != "strict", "{scope}: {}", u.stderr);
    }
}

#[test]
fn raw_and_multi_cluster_post_quantum_values() {
    let d = tempfile::tempdir().unwrap();
    let (r1, r2) = (
        p(&pq_fixture("recipient-1.txt")),
        p(&pq_fixture("recipient-2.txt")),
    );
    let r = run(
        d.path(),
        &[
            "--raw",
            "--recipients-file",
            &r1,
            "-n",
            "team-a",
            "--name",
            "db",
        ],
        b"raw-value",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ct = decode_base64(&r.stdout).unwrap();
    assert_eq!(value_format(&ct), ValueFormat::PostQuantum);
    let mut ring = KeyRing::new();
    ring.insert_pq(identity(1));
    let opened = ring
        .open(&Scope::Strict.label("team-a", "db"), &ct, &[])
        .unwrap();
    assert_eq!(opened.plaintext.as_bytes(), b"raw-value");

    // Two clusters: one file each, or both lines in one file; each identity alone opens.
    let both = d.path().join("both.txt");
    std::fs::write(
        &both,
        std::fs::read_to_string(&r1).unwrap() + "\n" + &std::fs::read_to_string(&r2).unwrap(),
    )
    .unwrap();
    for args in [
        vec!["--recipients-file", &r1, "--recipients-file", &r2],
        vec!["--recipients-file", both.to_str().unwrap()],
    ] {
        let r = run(d.path(), &args, SECRET_YAML.as_bytes());
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.contains("for 2 recipient(s)"), "{}", r.stderr);
        for n in ["identity-1.txt", "identity-2.txt"] {
            let u = unseal(d.path(), &pq_fixture(n), &r.stdout);
            assert_eq!(u.code, 0, "{n}: {}", u.stderr);
        }
    }
}

#[test]
fn merge_into_adds_post_quantum_items_to_an_rsa_object() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("ss.yaml");
    let r = run(
        d.path(),
        &["--cert", &p(&fixture("cert-a.pem")), "-w", &p(&target)],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let more =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ignored\nstringData:\n  token: t0k3n\n";
    let r = run(
        d.path(),
        &[
            "--merge-into",
            &p(&target),
            "--recipients-file",
            &p(&pq_fixture("recipient-1.txt")),
        ],
        more.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let merged = std::fs::read_to_string(&target).unwrap();
    assert_eq!(
        formats(&merged),
        // password, token, username
        [
            ValueFormat::Upstream,
            ValueFormat::PostQuantum,
            ValueFormat::Upstream
        ]
    );
    // The key Secret holding both keys opens the whole object; the identity alone only the
    // post-quantum item.
    let u = unseal(d.path(), &pq_fixture("key-secret.yaml"), &merged);
    assert_eq!(u.code, 0, "{}", u.stderr);
    assert!(u.stdout.contains("token: dDBrM24="), "{}", u.stdout);
    assert!(u.stdout.contains("password: czNjcjN0"), "{}", u.stdout);
    let u = unseal(d.path(), &pq_fixture("identity-1.txt"), &merged);
    assert_eq!(u.code, 1);
    assert!(u.stderr.contains("(password, username)"), "{}", u.stderr);
}

#[test]
fn reencrypt_upgrades_a_tree_and_audit_tells_before_and_after() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let rsa = run(
        d.path(),
        &["--cert", &p(&fixture("cert-a.pem")), "-o", "yaml"],
        SECRET_YAML.as_bytes(),
    );
    std::fs::write(tree.join("rsa.yaml"), &rsa.stdout).unwrap();
    std::fs::copy(pq_fixture("mixed.yaml"), tree.join("mixed.yaml")).unwrap();
    std::fs::copy(pq_fixture("sealed-pq.yaml"), tree.join("pq.yaml")).unwrap();
    let pq_before = std::fs::read(tree.join("pq.yaml")).unwrap();

    let a = run(d.path(), &["audit", &p(&tree)], b"");
    assert_eq!(a.code, 3, "{}", a.stderr);
    assert!(
        a.stdout
            .contains("total: 3 SealedSecret(s), 5 value(s): 3 RSA-only, 2 post-quantum"),
        "{}",
        a.stdout
    );

    let r1 = p(&pq_fixture("recipient-1.txt"));
    let key = p(&pq_fixture("key-secret.yaml"));
    let args = [
        "reencrypt",
        "--recovery-private-key",
        &key,
        "--post-quantum",
        "--recipients-file",
        &r1,
        &p(&tree),
    ];
    let r = run(d.path(), &args, b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("2 SealedSecret(s) re-encrypted in 2 file(s)")
            && r.stderr
                .contains("1 already sealed for the new post-quantum recipients"),
        "{}",
        r.stderr
    );
    // Already post-quantum for these recipients: not rewritten at all.
    assert_eq!(std::fs::read(tree.join("pq.yaml")).unwrap(), pq_before);

    let a = run(d.path(), &["audit", &p(&tree)], b"");
    assert_eq!(a.code, 0, "{}\n{}", a.stdout, a.stderr);
    assert!(
        a.stdout
            .contains("total: 3 SealedSecret(s), 5 value(s): 0 RSA-only, 5 post-quantum"),
        "{}",
        a.stdout
    );
    // Now the post-quantum identity alone opens everything.
    for f in ["rsa.yaml", "mixed.yaml", "pq.yaml"] {
        let text = std::fs::read_to_string(tree.join(f)).unwrap();
        let u = unseal(d.path(), &pq_fixture("identity-1.txt"), &text);
        assert_eq!(u.code, 0, "{f}: {}", u.stderr);
    }
    // A second run has nothing to do.
    let r = run(d.path(), &args, b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("0 SealedSecret(s) re-encrypted"),
        "{}",
        r.stderr
    );
}

#[test]
fn hostile_input_fails_cleanly_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.yaml");
    let bad = p(&pq_fixture("hostile/bad-recipient.txt"));
    // A recipients file with a bad checksum: named by file and line, no -w file.
    let r = run(
        d.path(),
        &["--recipients-file", &bad, "-w", &p(&out)],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bad-recipient.txt`, line 2"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    // Not a recipients file at all (a certificate), and an oversized one.
    let huge = d.path().join("huge.txt");
    std::fs::write(&huge, "#".repeat(300 * 1024)).unwrap();
    for f in [p(&fixture("cert-a.pem")), p(&huge)] {
        let r = run(
            d.path(),
            &["--recipients-file", &f, "-w", &p(&out)],
            SECRET_YAML.as_bytes(),
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
        assert!(!out.exists());
    }
    // --merge-into with a bad recipient leaves the target byte for byte.
    let target = d.path().join("t.yaml");
    std::fs::copy(pq_fixture("mixed.yaml"), &target).unwrap();
    let before = std::fs::read(&target).unwrap();
    let r = run(
        d.path(),
        &["--merge-into", &p(&target), "--recipients-file", &bad],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert_eq!(std::fs::read(&target).unwrap(), before);
    // Every hostile value: --recovery-unseal names object and item and writes no -w file.
    for f in ["bad-stanza", "many-stanzas", "no-intro-end", "truncated"] {
        let file = pq_fixture(&format!("hostile/{f}.yaml"));
        let r = run(
            d.path(),
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                &p(&pq_fixture("identity-1.txt")),
                "-f",
                &p(&file),
                "-w",
                &p(&out),
            ],
            b"",
        );
        assert_eq!(r.code, 1, "{f}");
        assert!(
            r.stderr
                .contains("item `password` of SealedSecret `team-a/db-creds`"),
            "{f}: {}",
            r.stderr
        );
        assert!(!out.exists(), "{f}");
    }
    // reencrypt: the file with a hostile value is left untouched, the run fails.
    let tree = d.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::copy(pq_fixture("hostile/truncated.yaml"), tree.join("t.yaml")).unwrap();
    let before = std::fs::read(tree.join("t.yaml")).unwrap();
    let r = run(
        d.path(),
        &[
            "reencrypt",
            "--recovery-private-key",
            &p(&pq_fixture("key-secret.yaml")),
            "--recipients-file",
            &p(&pq_fixture("recipient-2.txt")),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("t.yaml: line 1: SealedSecret `team-a/db-creds`"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(tree.join("t.yaml")).unwrap(), before);
    // An age identity file with a broken line: named by file and line, the key not echoed.
    let ids = d.path().join("ids.txt");
    std::fs::write(&ids, "# x\nAGE-SECRET-KEY-PQ-1QQQQQQ\n").unwrap();
    let r = unseal(
        d.path(),
        &ids,
        &std::fs::read_to_string(pq_fixture("sealed-pq.yaml")).unwrap(),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("ids.txt`, line 2"), "{}", r.stderr);
    assert!(!r.stderr.contains("1QQQQQQ"), "{}", r.stderr);
}
