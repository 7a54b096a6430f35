//! Tests of the kubeseal binary that need more than "args and stdin in, output out" (which are
//! the golden cases of `tests/cmd/`, run by `tests/cmd.rs`): round trips through
//! `--recovery-unseal`, files written and rewritten, trees, backups, terminals, servers.
//! Outputs are insta snapshots (ciphertexts normalised); round trips check the values.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::fs;
use std::path::Path;

use common::{SECRET_YAML, SECRETS_JSON, fixture, run};
use insta::assert_snapshot;

/// The set-up every case shares: a fresh directory to run kubeseal in (its HOME, where
/// files are written), with the fixtures' certificate A as the default `--cert`.
struct Sandbox(tempfile::TempDir);

impl Sandbox {
    fn new() -> Self {
        Sandbox(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Runs kubeseal with `args` and `stdin` (see [`common::run`]).
    fn run(&self, args: &[&str], stdin: &[u8]) -> common::Run {
        run(self.path(), args, stdin)
    }

    /// The kubeseal command, prepared to run here, for extra environment.
    fn cmd(&self) -> std::process::Command {
        common::cmd(self.path())
    }

    /// Seals `input` with `args` (+ --cert cert-a unless a --cert is given) and returns stdout.
    fn seal(&self, args: &[&str], input: &str) -> String {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !args.contains(&"--cert") {
            all.push("--cert".into());
            all.push(cert_a());
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let r = self.run(&refs, input.as_bytes());
        assert_eq!(r.code, 0, "stderr: {}", r.stderr);
        r.stdout
    }

    /// `--recovery-unseal` of `sealed` with the key file(s) `keys`.
    fn unseal(&self, keys: &str, sealed: &str, extra: &[&str]) -> common::Run {
        let mut args = vec!["--recovery-unseal", "--recovery-private-key", keys];
        args.extend_from_slice(extra);
        self.run(&args, sealed.as_bytes())
    }

    /// `r` normalised for a snapshot (ciphertexts, this directory, the version).
    fn snapshot(&self, r: &common::Run) -> String {
        r.snapshot(self.path())
    }

    /// `text` normalised for a snapshot.
    fn normalize(&self, text: &str) -> String {
        common::normalize(text, self.path())
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn cert_a() -> String {
    p(&fixture("cert-a.pem"))
}
fn cert_b() -> String {
    p(&fixture("cert-b.pem"))
}
fn key_a() -> String {
    p(&fixture("key-a.pem"))
}
fn key_b() -> String {
    p(&fixture("key-b.pem"))
}

#[test]
fn seal_yaml_to_json_and_recover() {
    let d = Sandbox::new();
    let out = d.seal(&[], SECRET_YAML);
    assert_snapshot!("seal_yaml_default_json", d.normalize(&out));
    assert!(
        !out.contains("leak"),
        "last-applied annotation must be stripped"
    );
    assert!(out.contains("sealed-secrets-rs.dev/sealing-key"));
    let r = d.unseal(&key_a(), &out, &["-o", "yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!("recovery_unseal_yaml", d.snapshot(&r));
    assert!(r.stdout.contains("password: czNjcjN0")); // base64("s3cr3t")
}

#[test]
fn seal_json_stream_yaml_output_and_default_namespace() {
    let d = Sandbox::new();
    let out = d.seal(&["-o", "yaml"], SECRETS_JSON);
    assert_snapshot!("seal_json_stream_yaml", d.normalize(&out));
    assert_eq!(out.matches("---\n").count(), 2);
    assert!(out.contains("namespace: default"));
    let r = d.unseal(&key_a(), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\"b\": \"Mg==\""));
}

#[test]
fn write_file_atomically_with_format_from_extension() {
    let d = Sandbox::new();
    let target = d.path().join("out.yml");
    let r = d.run(
        &["--cert", &cert_a(), "-f", "-", "-w", &p(&target)],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    let written = fs::read_to_string(&target).unwrap();
    assert!(written.starts_with("---\n"), "{written}");
    // Leftover temporary files would show up here.
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn scopes_name_and_namespace_rules() {
    let d = Sandbox::new();
    let cw = d.seal(
        &["--scope", "cluster-wide", "--name", "renamed"],
        SECRET_YAML,
    );
    assert_snapshot!("seal_cluster_wide_renamed", d.normalize(&cw));
    let nw = d.seal(&["--scope", "namespace-wide"], SECRET_YAML);
    assert!(nw.contains("sealedsecrets.bitnami.com/namespace-wide"));
    // Cluster-wide values open under another name.
    let moved = cw.replace("\"name\": \"renamed\"", "\"name\": \"elsewhere\"");
    let r = d.unseal(&key_a(), &moved, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // -n given explicitly and different: tests/cmd/namespace-mismatch.toml.
    // -n fills in a missing namespace.
    let out = d.seal(
        &["-n", "given"],
        "kind: Secret\nmetadata: {name: x}\nstringData: {a: b}\n",
    );
    assert!(out.contains("\"namespace\": \"given\""));
}

#[test]
fn empty_data_needs_flag() {
    let d = Sandbox::new();
    let input = "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: nsx}\n";
    // Without the flag: tests/cmd/empty-data.toml.
    let out = d.seal(&["--allow-empty-data"], input);
    assert!(out.contains("\"encryptedData\": {}"), "{out}");
}

#[test]
fn raw_mode() {
    let d = Sandbox::new();
    let value = d.path().join("v.txt");
    fs::write(&value, "raw-value").unwrap();
    let r = d.run(
        &[
            "--raw",
            "--cert",
            &cert_a(),
            "-n",
            "team-a",
            "--name",
            "db",
            "--from-file",
            &format!("k={}", p(&value)),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("Ag") && !r.stdout.ends_with('\n'),
        "{}",
        r.stdout
    );
    // The value opens with the strict label team-a/db.
    let ss = format!(
        "{{\"apiVersion\":\"bitnami.com/v1alpha1\",\"kind\":\"SealedSecret\",\"metadata\":{{\"name\":\"db\",\"namespace\":\"team-a\"}},\"spec\":{{\"encryptedData\":{{\"k\":\"{}\"}}}}}}",
        r.stdout
    );
    let u = d.unseal(&key_a(), &ss, &[]);
    assert_eq!(u.code, 0, "{}", u.stderr);
    assert!(u.stdout.contains("cmF3LXZhbHVl")); // base64("raw-value")
    // stdin, cluster-wide: no name or namespace needed.
    let r = d.run(
        &["--raw", "--cert", &cert_a(), "--scope", "cluster-wide"],
        b"v",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Flag errors of --raw: tests/cmd/raw-*.toml, from-file-without-raw.toml.
}

#[test]
fn multi_recipient_by_recipient_cert_and_directory() {
    let d = Sandbox::new();
    let out = d.seal(
        &["--recipient-cert", &cert_a(), "--recipient-cert", &cert_b()],
        SECRET_YAML,
    );
    assert!(out.contains(','), "hint lists both keys");
    for key in [key_a(), key_b()] {
        let r = d.unseal(&key, &out, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    // --cert and --recipient-cert add up.
    let out = d.seal(
        &["--cert", &cert_a(), "--recipient-cert", &cert_b()],
        SECRET_YAML,
    );
    for key in [key_a(), key_b()] {
        let r = d.unseal(&key, &out, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let certs = d.path().join("certs");
    fs::create_dir(&certs).unwrap();
    fs::copy(fixture("cert-a.pem"), certs.join("a.pem")).unwrap();
    fs::copy(fixture("cert-b.pem"), certs.join("b.crt")).unwrap();
    let out = d.seal(&["--recipient-cert", &p(&certs)], SECRET_YAML);
    let r = d.unseal(&key_b(), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A single cert stays in upstream's format (readable by upstream controllers).
    let single = d.seal(&[], SECRET_YAML);
    assert!(single.contains("\"password\": \"Ag"));
    // The multi-recipient format is announced on stderr every time.
    let dir = p(&certs);
    let a = cert_a();
    for args in [
        vec!["--recipient-cert", dir.as_str()],
        vec![
            "--recipient-cert",
            a.as_str(),
            "--recipient-cert",
            dir.as_str(),
            "-o",
            "yaml",
        ],
    ] {
        let r = d.run(&args, SECRET_YAML.as_bytes());
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr.contains("multi-recipient format")
                && r.stderr
                    .contains("upstream Sealed Secrets controllers cannot open it"),
            "{}",
            r.stderr
        );
    }
    // --cert names one certificate, as upstream's: a directory is refused, pointing at
    // --recipient-cert.
    let r = d.run(&["--cert", &dir], SECRET_YAML.as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: failed to read certificate")
            && r.stderr.contains("hint: --cert takes one certificate")
            && r.stderr.contains("--recipient-cert"),
        "{}",
        r.stderr
    );
    let r = d.run(&["--cert", &cert_a()], SECRET_YAML.as_bytes());
    assert_eq!(r.stderr, "", "one certificate: upstream's format, no note");
}

#[test]
fn cert_as_file_url_and_fetch_cert() {
    let d = Sandbox::new();
    let url = format!("file://{}", cert_a());
    let out = d.seal(&["--cert", &url], SECRET_YAML);
    assert_eq!(d.unseal(&key_a(), &out, &[]).code, 0);
    let r = d.run(&["--fetch-cert", "--cert", &url], b"");
    assert_eq!(r.code, 0);
    assert_eq!(r.raw_stdout, fs::read(fixture("cert-a.pem")).unwrap());
}

#[test]
fn merge_into_keeps_target_scope_and_format() {
    let d = Sandbox::new();
    let target = d.path().join("sealed.yaml");
    let sealed = d.seal(&["-o", "yaml", "--scope", "namespace-wide"], SECRET_YAML);
    fs::write(&target, &sealed).unwrap();
    let update = "apiVersion: v1\nkind: Secret\nmetadata: {name: ignored, namespace: ignored, labels: {tier: x}}\nstringData: {extra: more}\n";
    let r = d.run(
        &["--cert", &cert_a(), "--merge-into", &p(&target)],
        update.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let merged = fs::read_to_string(&target).unwrap();
    assert_snapshot!("merge_into_yaml", d.normalize(&merged));
    let u = d.unseal(&key_a(), &merged, &[]);
    assert_eq!(u.code, 0, "{}", u.stderr);
    assert!(u.stdout.contains("\"extra\": \"bW9yZQ==\""));
}

#[test]
fn recovery_unseal_key_formats() {
    let d = Sandbox::new();
    let out_b = d.seal(&["--cert", &cert_b()], SECRET_YAML);
    // v1.List backup with both keys.
    let r = d.unseal(&p(&fixture("key-backup-list.yaml")), &out_b, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Comma list and repeated flags.
    let both = format!("{},{}", key_a(), key_b());
    assert_eq!(d.unseal(&both, &out_b, &[]).code, 0);
    let r = d.run(
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            &key_a(),
            "--recovery-private-key",
            &key_b(),
        ],
        out_b.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A Secret (JSON) holding tls.key.
    let secret = d.path().join("key.json");
    let pem = fs::read(fixture("key-b.pem")).unwrap();
    fs::write(
        &secret,
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{{\"name\":\"k\"}},\"data\":{{\"tls.key\":\"{}\"}}}}",
            sealed_secrets_crypto::encode_base64(&pem)
        ),
    )
    .unwrap();
    assert_eq!(d.unseal(&p(&secret), &out_b, &[]).code, 0);
    // Wrong key.
    let r = d.unseal(&key_a(), &out_b, &[]);
    assert_eq!(r.code, 1);
    assert_snapshot!("recovery_unseal_wrong_key", d.snapshot(&r));
}

#[test]
fn recovery_unseal_opens_upstream_sealed_vectors() {
    let d = Sandbox::new();
    let cases: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture("upstream-sealed.json")).unwrap()).unwrap();
    for case in cases.as_array().unwrap() {
        let sealed = case["sealed"].to_string();
        let r = d.unseal(&p(&fixture("key-backup-list.yaml")), &sealed, &[]);
        assert_eq!(r.code, 0, "{}: {}", case["scope"], r.stderr);
        let secret: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        for (item, plain) in case["plaintexts"].as_object().unwrap() {
            let got = secret["data"]
                .get(item)
                .and_then(|v| v.as_str())
                .unwrap_or("");
            assert_eq!(got, plain.as_str().unwrap(), "{} {item}", case["scope"]);
        }
    }
}

#[test]
fn offline_validate() {
    let d = Sandbox::new();
    let out = d.seal(&[], SECRET_YAML);
    let ok = d.run(&["--validate", "--cert", &cert_a()], out.as_bytes());
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.stdout, "");
    // Another cert of the same size: caught by the key hint.
    let r = d.run(&["--validate", "--cert", &cert_b()], out.as_bytes());
    assert_eq!(r.code, 1);
    assert_snapshot!("validate_other_cert", d.snapshot(&r));
    // Without a hint (sealed by upstream), broken base64 and inconsistent scope.
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["metadata"]["annotations"] = serde_json::json!({});
    v["spec"]["encryptedData"]["username"] = "not base64!".into();
    v["spec"]["template"]["metadata"]["annotations"] =
        serde_json::json!({"sealedsecrets.bitnami.com/cluster-wide": "true"});
    let r = d.run(
        &["--validate", "--cert", &cert_a()],
        v.to_string().as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert_snapshot!("validate_broken", d.snapshot(&r));
    // Upstream-sealed values (no hint) with the right cert pass.
    let cases: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture("upstream-sealed.json")).unwrap()).unwrap();
    let first = cases[0]["sealed"].to_string();
    assert_eq!(
        d.run(&["--validate", "--cert", &cert_a()], first.as_bytes())
            .code,
        0
    );
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let d = Sandbox::new();
    let out = d.path().join("out.json");
    let expired = d.path().join("expired.pem");
    {
        use sealed_secrets_crypto::{CertParams, PrivateKey};
        use std::time::{Duration, SystemTime};
        let key = PrivateKey::generate(2048).unwrap();
        let cert = key
            .self_signed_certificate(&CertParams {
                common_name: String::new(),
                not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
                validity: Duration::from_secs(86_400),
            })
            .unwrap();
        fs::write(&expired, cert.pem()).unwrap();
    }
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("bad_not_yaml", vec![], "{not: [valid"),
        (
            "bad_not_a_secret",
            vec![],
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        ),
        (
            "bad_missing_name",
            vec![],
            "apiVersion: v1\nkind: Secret\nmetadata: {namespace: n}\nstringData: {a: b}\n",
        ),
        ("bad_no_documents", vec![], ""),
        (
            "bad_expired_cert",
            vec!["--cert".into(), p(&expired)],
            SECRET_YAML,
        ),
        (
            "bad_missing_cert_file",
            vec!["--cert".into(), p(&d.path().join("nope.pem"))],
            SECRET_YAML,
        ),
        (
            "bad_unreadable_input",
            vec!["-f".into(), p(&d.path().join("missing.yaml"))],
            "",
        ),
        (
            "bad_output_format",
            vec!["-o".into(), "xml".into()],
            SECRET_YAML,
        ),
        (
            "bad_scope",
            vec!["--scope".into(), "galaxy-wide".into()],
            SECRET_YAML,
        ),
        (
            "bad_cert_not_pem",
            vec!["--cert".into(), key_a()],
            SECRET_YAML,
        ),
    ];
    for (name, extra, input) in cases {
        let mut args: Vec<String> = vec!["-w".into(), p(&out)];
        if !extra.iter().any(|a| a == "--cert") {
            args.push("--cert".into());
            args.push(cert_a());
        }
        args.extend(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = d.run(&refs, input.as_bytes());
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{name}: {}", r.stderr);
        assert!(!out.exists(), "{name} wrote an output file");
        // The messages themselves: tests/cmd/bad-*.toml (the expired certificate is made here).
        if name == "bad_expired_cert" {
            assert_snapshot!(name, d.snapshot(&r));
        }
    }
}

#[test]
fn env_fallbacks() {
    let d = Sandbox::new();
    let r = common::run_cmd(
        d.cmd()
            .env("SEALED_SECRETS_CERT", cert_a())
            .env("SEALED_SECRETS_FORMAT", "yaml")
            .env("SEALED_SECRETS_SCOPE", "cluster-wide"),
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("---\n"));
    assert!(r.stdout.contains("sealedsecrets.bitnami.com/cluster-wide"));
    // The flag wins over the variable.
    let r = common::run_cmd(
        d.cmd()
            .env("SEALED_SECRETS_CERT", cert_a())
            .env("SEALED_SECRETS_FORMAT", "yaml")
            .args(["-o", "json"]),
        SECRET_YAML.as_bytes(),
    );
    assert!(r.stdout.starts_with('{'));
}

#[test]
fn broken_pipe_is_quiet() {
    let d = Sandbox::new();
    let big: String = (0..200)
        .map(|i| format!("---\nkind: Secret\nmetadata: {{name: s{i}, namespace: nsx}}\nstringData: {{a: b}}\n"))
        .collect();
    let mut child = d
        .cmd()
        .args(["--cert", &cert_a()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(big.as_bytes())
            .unwrap();
    }
    drop(child.stdout.take()); // reader goes away
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn scan_finds_plaintext_secrets() {
    let d = Sandbox::new();
    let repo = d.path().join("repo");
    fs::create_dir_all(repo.join("apps/db")).unwrap();
    fs::create_dir_all(repo.join("chart/templates")).unwrap();
    fs::write(repo.join("chart/Chart.yaml"), "name: c\n").unwrap();
    fs::write(
        repo.join("chart/templates/secret.yaml"),
        "kind: Secret\nstringData:\n  a: {{ .Values.a }}\n",
    )
    .unwrap();
    fs::write(
        repo.join("apps/db/all.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n{SECRET_YAML}"),
    )
    .unwrap();
    fs::write(repo.join("apps/db/list.json"), SECRETS_JSON).unwrap();
    let sealed = d.seal(&["-o", "yaml"], SECRET_YAML);
    fs::write(repo.join("apps/db/sealed.yaml"), sealed).unwrap();
    let r = d.run(&["scan", &p(&repo)], b"");
    assert_eq!(r.code, 3, "findings exit 3 (errors exit 1)");
    assert_snapshot!("scan_findings", d.snapshot(&r));
    let r = d.run(&["scan", &p(&repo.join("apps/db/sealed.yaml"))], b"");
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn audit_by_fingerprint_cert_and_private_key() {
    let d = Sandbox::new();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.yaml"), d.seal(&["-o", "yaml"], SECRET_YAML)).unwrap();
    fs::write(
        tree.join("b.json"),
        d.seal(&["--cert", &cert_b()], SECRETS_JSON),
    )
    .unwrap();
    let cases: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture("upstream-sealed.json")).unwrap()).unwrap();
    // Sealed by upstream (no hint) with key-a.
    fs::write(tree.join("upstream.json"), cases[0]["sealed"].to_string()).unwrap();
    let r = d.run(&["audit", "--key", &cert_a(), &p(&tree)], b"");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_snapshot!("audit_by_cert", d.snapshot(&r));
    let r = d.run(&["audit", "--key", &key_a(), &p(&tree)], b"");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_snapshot!("audit_by_private_key", d.snapshot(&r));
    let r = d.run(
        &[
            "audit",
            "--key",
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn reencrypt_tree_in_place() {
    let d = Sandbox::new();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let cm = "# config\napiVersion: v1\nkind: ConfigMap\nmetadata:   {name: keep-me-exactly}\n";
    let sealed = d.seal(&["-o", "yaml", "--scope", "namespace-wide"], SECRET_YAML);
    let file = tree.join("app.yaml");
    fs::write(&file, format!("{cm}{sealed}")).unwrap();
    let json_file = tree.join("two.json");
    fs::write(&json_file, d.seal(&[], SECRETS_JSON)).unwrap();
    let untouched = tree.join("other.yaml");
    fs::write(&untouched, cm).unwrap();
    let r = d.run(
        &[
            "reencrypt",
            "--recovery-private-key",
            &key_a(),
            "--cert",
            &cert_b(),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!("reencrypt_report", d.snapshot(&r));
    let new = fs::read_to_string(&file).unwrap();
    assert!(new.starts_with(cm), "{new}");
    assert!(new.contains("sealedsecrets.bitnami.com/namespace-wide"));
    assert_eq!(fs::read_to_string(&untouched).unwrap(), cm);
    // Now only key-b opens them.
    let sealed_part = &new[cm.len()..];
    assert_eq!(d.unseal(&key_a(), sealed_part, &[]).code, 1);
    assert_eq!(d.unseal(&key_b(), sealed_part, &[]).code, 0);
    let json = fs::read_to_string(&json_file).unwrap();
    assert_eq!(d.unseal(&key_b(), &json, &[]).code, 0);
    // Second run: nothing to do.
    let r = d.run(
        &[
            "reencrypt",
            "--recovery-private-key",
            &key_a(),
            "--cert",
            &cert_b(),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("0 SealedSecret(s) re-encrypted"),
        "{}",
        r.stderr
    );
    // Wrong key: error, file untouched.
    let before = fs::read_to_string(&file).unwrap();
    let r = d.run(
        &[
            "reencrypt",
            "--recovery-private-key",
            &key_a(),
            "--cert",
            &cert_a(),
            &p(&file),
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert_eq!(fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn verify_backup_offline_with_plaintext_and_encrypted_backups() {
    let d = Sandbox::new();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.json"), d.seal(&[], SECRET_YAML)).unwrap();
    fs::write(
        tree.join("b.json"),
        d.seal(&["--cert", &cert_b()], SECRET_YAML),
    )
    .unwrap();
    let list = p(&fixture("key-backup-list.yaml"));
    let r = d.run(&["keys", "verify-backup", &list, &p(&tree)], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A backup with only key-a misses b.json.
    let only_a = d.path().join("only-a.pem");
    fs::copy(fixture("key-a.pem"), &only_a).unwrap();
    let r = d.run(&["keys", "verify-backup", &p(&only_a), &p(&tree)], b"");
    assert_eq!(r.code, 1);
    assert_snapshot!("verify_backup_missing_key", d.snapshot(&r));
}

#[test]
fn completion_and_man() {
    let d = Sandbox::new();
    let r = d.run(&["completion", "bash"], b"");
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--recovery-private-key"));
    let r = d.run(&["completion", "zsh"], b"");
    assert_eq!(r.code, 0);
    let r = d.run(&["man"], b"");
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.contains(".TH"),
        "{}",
        &r.stdout[..100.min(r.stdout.len())]
    );
    // A clean NAME line, and one page per command with --dir.
    assert!(
        r.stdout
            .contains(".SH NAME\nkubeseal \\- Encrypt a Kubernetes Secret"),
        "{}",
        &r.stdout[..400.min(r.stdout.len())]
    );
    assert!(
        r.stdout.contains("kubeseal\\-keys(1)"),
        "top page names kubeseal-keys(1)"
    );
    let man = d.path().join("man1");
    let r = d.run(&["man", "--dir", &p(&man)], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    for page in [
        "kubeseal.1",
        "kubeseal-keys.1",
        "kubeseal-keys-list.1",
        "kubeseal-keys-rotate.1",
        "kubeseal-keys-backup.1",
        "kubeseal-keys-restore.1",
        "kubeseal-keys-verify-backup.1",
        "kubeseal-scan.1",
        "kubeseal-audit.1",
        "kubeseal-reencrypt.1",
        "kubeseal-completion.1",
        "kubeseal-man.1",
    ] {
        let text = fs::read_to_string(man.join(page)).unwrap_or_default();
        assert!(text.contains(".SH NAME"), "{page} missing or without NAME");
    }
    let keys = fs::read_to_string(man.join("kubeseal-keys-list.1")).unwrap();
    assert!(
        keys.contains(".SH NAME\nkubeseal\\-keys\\-list \\- List"),
        "{keys}"
    );
}

/// Ambiguous or oversized input is refused with a message naming the
/// problem (and every limit with its value), legitimate big streams are accepted, usage
/// errors exit 1, and nothing is written on failure.
#[test]
fn bad_input_named_precisely_and_limits_realistic() {
    let d = Sandbox::new();
    let out = d.path().join("out.json");
    let fail = |args: &[&str], input: &str| {
        let mut all = vec!["-w", out.to_str().unwrap(), "--cert"];
        let c = cert_a();
        all.push(&c);
        all.extend_from_slice(args);
        let r = d.run(&all, input.as_bytes());
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(!out.exists(), "wrote output on error: {}", r.stderr);
        r.stderr
    };
    // A key repeated in JSON data: serde_json would keep the last value silently.
    let dup = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"n"},"data":{"a":"MQ==","a":"Mg=="}}"#;
    let e = fail(&[], dup);
    assert!(e.contains("duplicate key `a`"), "{e}");
    // Two YAML documents pasted together without `---`.
    let glued = format!("{}{}", SECRET_YAML, SECRET_YAML);
    let e = fail(&[], &glued);
    assert!(
        e.contains("duplicate key `apiVersion`") && e.contains("without a `---` line"),
        "{e}"
    );
    assert!(!e.contains("DuplicateKeyPolicy"), "{e}");
    // Too deep: the limit is named with its value.
    let deep = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
    let e = fail(&[], &deep);
    assert!(
        e.contains("nesting depth") && e.contains("the limit is 64"),
        "{e}"
    );
    // More documents than the limit: size and limit in the message.
    let many = "a: 1\n---\n".repeat(100_001);
    let e = fail(&[], &many);
    assert!(
        e.contains("number of documents is more than 100000, the limit is 100000"),
        "{e}"
    );
    // Usage errors exit 1 like upstream's, not clap's 2.
    assert!(fail(&["--no-such-flag"], SECRET_YAML).contains("--no-such-flag"));
    assert!(fail(&["-o"], SECRET_YAML).contains("a value is required"));

    // 1,100 documents (over serde-saphyr's default budget of 1,024) are sealed.
    let big: String = (0..1100)
        .map(|i| {
            format!(
                "---\nkind: Secret\nmetadata: {{name: s{i}, namespace: n}}\nstringData: {{a: b}}\n"
            )
        })
        .collect();
    let sealed = d.seal(&["-o", "yaml"], &big);
    assert_eq!(sealed.matches("kind: SealedSecret").count(), 1100);
    // kind: List and the typed SecretList are flattened.
    for kind in ["List", "SecretList"] {
        let list = format!(
            "apiVersion: v1\nkind: {kind}\nitems:\n- {{apiVersion: v1, kind: Secret, metadata: {{name: a, namespace: n}}, stringData: {{x: y}}}}\n- {{apiVersion: v1, kind: Secret, metadata: {{name: b, namespace: n}}, stringData: {{x: z}}}}\n"
        );
        let sealed = d.seal(&["-o", "yaml"], &list);
        assert_eq!(sealed.matches("kind: SealedSecret").count(), 2, "{kind}");
        assert!(sealed.contains("name: b"), "{kind}");
    }
}

/// `--merge-into` with an input that has no data leaves the target as it
/// was, byte for byte.
#[test]
fn merge_into_with_empty_data_leaves_the_target_unchanged() {
    let d = Sandbox::new();
    let target = d.path().join("sealed.yaml");
    fs::write(&target, d.seal(&["-o", "yaml"], SECRET_YAML)).unwrap();
    let before = fs::read(&target).unwrap();
    let empty = "apiVersion: v1\nkind: Secret\nmetadata: {name: x, labels: {new: label}}\n";
    let r = d.run(
        &["--cert", &cert_b(), "--merge-into", &p(&target)],
        empty.as_bytes(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("secret.data is empty"), "{}", r.stderr);
    assert_eq!(fs::read(&target).unwrap(), before);
    let r = d.run(
        &[
            "--cert",
            &cert_b(),
            "--allow-empty-data",
            "--merge-into",
            &p(&target),
        ],
        empty.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::read(&target).unwrap(), before);
}

/// A key file whose Secret lacks `tls.key` names the Secret and the field,
/// instead of a later "no key could decrypt".
#[test]
fn key_backup_item_without_tls_key_is_named() {
    let d = Sandbox::new();
    let sealed = d.seal(&[], SECRET_YAML);
    let mut list = fs::read_to_string(fixture("key-backup-list.yaml")).unwrap();
    list.push_str(
        "- apiVersion: v1\n  kind: Secret\n  metadata: {name: not-a-key}\n  data: {tls.crt: eA==}\n",
    );
    let keys = d.path().join("keys.yaml");
    fs::write(&keys, list).unwrap();
    let r = d.unseal(&p(&keys), &sealed, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Secret 3 (`not-a-key`) has no data[\"tls.key\"]"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("no key could decrypt"), "{}", r.stderr);
}

/// A loopback HTTP server answering every request with `body` (one thread, test only).
fn serve_http(body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/v1/cert.pem")
}

/// A plain-HTTP certificate URL needs --allow-insecure-cert-url and is
/// warned about; a fetched certificate is bounded in size.
#[test]
fn plain_http_cert_url_needs_the_flag_and_is_bounded() {
    let d = Sandbox::new();
    let url = serve_http(fs::read(fixture("cert-a.pem")).unwrap());
    let r = d.run(&["--cert", &url], SECRET_YAML.as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("plain HTTP"), "{}", r.stderr);
    assert!(
        r.stderr.contains("--allow-insecure-cert-url"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    let r = d.run(
        &["--cert", &url, "--allow-insecure-cert-url"],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.starts_with("warning: "), "{}", r.stderr);
    assert_eq!(d.unseal(&key_a(), &r.stdout, &[]).code, 0);
    // A certificate server that answers with 1 MiB is cut off at the limit.
    let big = serve_http(vec![b'A'; 1024 * 1024]);
    let r = d.run(
        &["--fetch-cert", "--cert", &big, "--allow-insecure-cert-url"],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("larger than 65536 bytes"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

/// `--recovery-unseal -w` writes plaintext Secrets owner-only, even over an
/// existing world-readable file.
#[cfg(unix)]
#[test]
fn recovery_unseal_output_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = Sandbox::new();
    let sealed = d.seal(&[], SECRET_YAML);
    for existing in [false, true] {
        let out = d.path().join(format!("plain-{existing}.yaml"));
        if existing {
            fs::write(&out, "old").unwrap();
            fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let r = d.unseal(&key_a(), &sealed, &["-w", &p(&out)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "existing={existing}");
        assert!(fs::read_to_string(&out).unwrap().contains("kind: Secret"));
    }
}

/// With no terminal, a passphrase prompt says so and how to pass it instead
/// (the prompt itself goes through rpassword on /dev/tty, never echoing).
#[cfg(unix)]
#[test]
fn passphrase_without_terminal_says_so() {
    let d = Sandbox::new();
    let pf = d.path().join("pass");
    fs::write(&pf, "correct horse\n").unwrap();
    let plain = fs::read(fixture("key-backup-list.yaml")).unwrap();
    let enc = kubeseal::backup_encryption::encrypt(
        &plain,
        &kubeseal::args::EncryptArgs {
            passphrase_file: Some(pf),
            ..Default::default()
        },
    )
    .unwrap();
    let backup = d.path().join("keys.backup");
    fs::write(&backup, enc).unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.json"), d.seal(&[], SECRET_YAML)).unwrap();
    // setsid: no controlling terminal, whatever the test runner has.
    let mut c = std::process::Command::new("setsid");
    c.arg(env!("CARGO_BIN_EXE_kubeseal"))
        .args(["keys", "verify-backup", &p(&backup), &p(&tree)])
        .env_remove("SEALED_SECRETS_BACKUP_PASSPHRASE")
        .env("HOME", d.path())
        .env("NO_COLOR", "1");
    let r = common::run_cmd(&mut c, b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no terminal is available"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--passphrase-file"), "{}", r.stderr);
}

/// What cannot be parsed is still scanned (as text) and reported; --strict
/// fails on it; kustomize secretGenerators with values are findings.
#[test]
fn scan_looks_into_what_does_not_parse() {
    let d = Sandbox::new();
    let repo = d.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    // A template with a literal password next to a templated one.
    fs::write(
        repo.join("tpl.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\nstringData:\n  user: {{ .Values.user }}\n  password: hunter2\n",
    )
    .unwrap();
    // Only template references: not plaintext.
    fs::write(
        repo.join("tpl-ok.yaml"),
        "kind: Secret\nmetadata:\n  name: x\ndata:\n  a: {{ .Values.a | b64enc }}\n",
    )
    .unwrap();
    // Not UTF-8.
    let mut latin1 =
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: latin\nstringData:\n  p: caf\xe9\n"
            .to_vec();
    latin1.push(b'\n');
    fs::write(repo.join("latin1.yaml"), latin1).unwrap();
    // One broken YAML document before a Secret.
    fs::write(
        repo.join("broken.yaml"),
        "a: [unclosed\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: after-broken}\nstringData: {k: v}\n",
    )
    .unwrap();
    // A JSON stream with a syntax error before a Secret.
    fs::write(
        repo.join("stream.json"),
        "{\"kind\": \"ConfigMap\"}\n{\"kind\": \"ConfigMap\",,}\n{\"kind\": \"Secret\", \"metadata\": {\"name\": \"tail\"},\n \"stringData\": {\"k\": \"v\"}}\n",
    )
    .unwrap();
    fs::write(
        repo.join("kustomization.yaml"),
        "resources: [deploy.yaml]\nsecretGenerator:\n- name: app-env\n  envs: [app.env]\n- name: creds\n  literals:\n  - password=hunter2\n- name: empty\n",
    )
    .unwrap();
    let r = d.run(&["scan", &p(&repo)], b"");
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    for want in [
        "tpl.yaml:2: unsealed Secret (found as text) `{{ .Release.Name }}-db`",
        "latin1.yaml:2: unsealed Secret (found as text) `latin`",
        "broken.yaml:4: unsealed Secret `after-broken`",
        "stream.json:3: unsealed Secret (found as text) `tail`",
        "kustomization.yaml:3: kustomize secretGenerator with values `app-env (envs)`",
        "kustomization.yaml:5: kustomize secretGenerator with values `creds (literals)`",
    ] {
        assert!(r.stdout.contains(want), "missing {want}:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("tpl-ok"), "{}", r.stdout);
    assert!(!r.stdout.contains("empty"), "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 6, "{}", r.stdout);
    for skipped in [
        "tpl.yaml",
        "tpl-ok.yaml",
        "latin1.yaml",
        "broken.yaml",
        "stream.json",
    ] {
        assert!(
            r.stderr.contains(&format!("{skipped}: ")),
            "{skipped} not reported:\n{}",
            r.stderr
        );
    }
    let r = d.run(&["scan", "--strict", &p(&repo)], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--strict: 5 file(s)"), "{}", r.stderr);
    // A clean tree passes --strict.
    let clean = d.path().join("clean");
    fs::create_dir(&clean).unwrap();
    fs::write(clean.join("cm.yaml"), "kind: ConfigMap\ndata: {a: b}\n").unwrap();
    let r = d.run(&["scan", "--strict", &p(&clean)], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // "could not look" (1) is not "found something" (3).
    let r = d.run(&["scan", &p(&d.path().join("missing"))], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
}

/// A symbolic link named like a manifest is not followed (no loops, no
/// escaping the tree) but is reported, and --strict fails on it.
#[test]
fn scan_reports_symbolic_links_it_does_not_follow() {
    let d = Sandbox::new();
    let repo = d.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    let outside = d.path().join("outside.yaml");
    fs::write(
        &outside,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: linked}\nstringData: {k: v}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("linked.yaml")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("notes.txt")).unwrap();
    fs::write(repo.join("cm.yaml"), "kind: ConfigMap\ndata: {a: b}\n").unwrap();
    let r = d.run(&["scan", &p(&repo)], b"");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("linked.yaml: symbolic link: not followed, not scanned"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("notes.txt"), "{}", r.stderr);
    let r = d.run(&["scan", "--strict", &p(&repo)], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--strict: 1 file(s)"), "{}", r.stderr);
}

/// The encrypted backup `kubeseal keys backup` writes is accepted wherever a
/// private key file is: --recovery-private-key, reencrypt, audit --key (a one-key backup).
/// Each keys subcommand takes only its own flags.
#[test]
fn encrypted_backup_is_a_key_file_everywhere() {
    let d = Sandbox::new();
    let pf = d.path().join("pass");
    fs::write(&pf, "correct horse\n").unwrap();
    let enc = |plain: &[u8], name: &str| {
        let ct = kubeseal::backup_encryption::encrypt(
            plain,
            &kubeseal::args::EncryptArgs {
                passphrase_file: Some(pf.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        let f = d.path().join(name);
        fs::write(&f, ct).unwrap();
        p(&f)
    };
    let both = enc(
        &fs::read(fixture("key-backup-list.yaml")).unwrap(),
        "keys.backup",
    );
    let only_a = enc(&fs::read(fixture("key-a.pem")).unwrap(), "a.backup");
    let sealed = d.seal(&[], SECRET_YAML);
    let r = d.unseal(&both, &sealed, &["--passphrase-file", &p(&pf)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("\"username\": \"YWRtaW4=\""),
        "{}",
        r.stdout
    );
    // The passphrase from the variable works too.
    let mut c = d.cmd();
    c.env("SEALED_SECRETS_BACKUP_PASSPHRASE", "correct horse")
        .args(["--recovery-unseal", "--recovery-private-key", &both]);
    let r = common::run_cmd(&mut c, sealed.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A wrong passphrase is a clear error.
    let wrong = d.path().join("wrong");
    fs::write(&wrong, "nope\n").unwrap();
    let r = d.unseal(&both, &sealed, &["--passphrase-file", &p(&wrong)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot decrypt backup"), "{}", r.stderr);

    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.json"), &sealed).unwrap();
    let r = d.run(
        &[
            "reencrypt",
            "--recovery-private-key",
            &both,
            "--passphrase-file",
            &p(&pf),
            "--cert",
            &cert_b(),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let moved = fs::read_to_string(tree.join("a.json")).unwrap();
    assert_eq!(d.unseal(&key_b(), &moved, &[]).code, 0);
    let r = d.run(
        &[
            "audit",
            "--key",
            &only_a,
            "--passphrase-file",
            &p(&pf),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(
        r.code, 0,
        "resealed for b: nothing sealed with a any more: {}",
        r.stderr
    );

    // Flags of another keys subcommand are refused, not ignored.
    for args in [
        vec!["keys", "restore", "x.backup", "--recipient", "age1xyz"],
        vec![
            "keys",
            "verify-backup",
            "x.backup",
            "dir",
            "--recipient",
            "age1xyz",
        ],
        vec!["keys", "backup", "-o", "x.backup", "--identity", "id.txt"],
        vec!["keys", "list", "--passphrase-file", "p"],
    ] {
        let r = d.run(&args, b"");
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("unexpected argument"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// On a real terminal (a pty from util-linux's `script`), the passphrase
/// prompt does not echo what is typed, and the typed passphrase opens the backup.
#[cfg(unix)]
#[test]
fn passphrase_prompt_does_not_echo() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let d = Sandbox::new();
    let pf = d.path().join("pass");
    fs::write(&pf, "correct horse battery\n").unwrap();
    let enc = kubeseal::backup_encryption::encrypt(
        &fs::read(fixture("key-backup-list.yaml")).unwrap(),
        &kubeseal::args::EncryptArgs {
            passphrase_file: Some(pf),
            ..Default::default()
        },
    )
    .unwrap();
    let backup = d.path().join("keys.backup");
    fs::write(&backup, enc).unwrap();
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.json"), d.seal(&[], SECRET_YAML)).unwrap();
    let inner = format!(
        "{} keys verify-backup {} {}",
        env!("CARGO_BIN_EXE_kubeseal"),
        p(&backup),
        p(&tree)
    );
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_remove("SEALED_SECRETS_BACKUP_PASSPHRASE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs the command on a pty");
    let mut out = child.stdout.take().unwrap();
    // Type only once the prompt is shown, and a moment later: rpassword writes the prompt
    // first and switches echo off just after, so typing the instant the prompt appears races
    // with that switch (on a loaded machine the passphrase was echoed, a false failure). A
    // human cannot type within that window; the pause keeps the test about our behaviour.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Passphrase: ") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    out.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(
        !text.contains("correct horse"),
        "the passphrase was echoed:\n{text}"
    );
    assert!(status.success(), "{text}");
    assert!(text.contains("it opens 1 SealedSecret(s)"), "{text}");
}

/// Kubeconfig problems in one plain line: no Debug-quoted path, and no
/// parser snippet that could print a token from the file.
#[test]
fn kubeconfig_errors_are_plain_and_leak_nothing() {
    let d = Sandbox::new();
    let missing = d.path().join("missing.kubeconfig");
    let r = d.run(&["--fetch-cert", "--kubeconfig", &p(&missing)], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("missing.kubeconfig`: no such file or directory"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("'\""), "{}", r.stderr);
    let broken = d.path().join("broken.kubeconfig");
    fs::write(
        &broken,
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {token: SECRETTOKEN, x: [}\n",
    )
    .unwrap();
    let r = d.run(&["keys", "list", "--kubeconfig", &p(&broken)], b"");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("line 5"), "{}", r.stderr);
    assert!(!r.stderr.contains("SECRETTOKEN"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// Go's pflag lets a later occurrence of a flag replace an earlier one, and scripts rely on
/// it (upstream's integration suite appends `-n` and `--cert` again and again): every
/// single-valued flag takes its last value, short and long spellings alike, and a flag still
/// beats its environment variable.
#[test]
fn repeated_flags_take_their_last_value() {
    let d = Sandbox::new();
    // -n / --namespace: the input declares team-a, so only a last value of team-a seals.
    for args in [
        vec!["-n", "other", "-n", "team-a"],
        vec!["--namespace", "other", "-n", "team-a"],
        vec!["-n", "other", "--namespace=team-a"],
    ] {
        let mut all = args.clone();
        let a = cert_a();
        all.extend(["--cert", a.as_str()]);
        let r = d.run(&all, SECRET_YAML.as_bytes());
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    // -o and --scope: the last one shapes the output.
    let out = d.seal(
        &[
            "-o",
            "json",
            "--format",
            "yaml",
            "--scope",
            "cluster-wide",
            "--scope",
            "strict",
        ],
        SECRET_YAML,
    );
    assert!(out.starts_with("---\napiVersion:"), "{out}");
    assert!(!out.contains("cluster-wide"), "{out}");
    // The variable is only a fallback: repeated flags win over it too.
    let r = common::run_cmd(
        d.cmd().env("SEALED_SECRETS_FORMAT", "json").args([
            "-o",
            "json",
            "-o",
            "yaml",
            "--cert",
            &cert_a(),
        ]),
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("---\napiVersion:"), "{}", r.stdout);
    // Repeated switches are no error either.
    let r = d.run(
        &[
            "--allow-empty-data",
            "--allow-empty-data",
            "--cert",
            &cert_a(),
        ],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Subcommands inherit the rule.
    let man = d.path().join("man");
    let r = d.run(
        &[
            "man",
            "--dir",
            &p(&d.path().join("first")),
            "--dir",
            &p(&man),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(man.join("kubeseal.1").exists());
    assert!(!d.path().join("first").exists());
}

/// A repeated `--cert` means what it means upstream: the last certificate, in upstream's
/// single-recipient format, with a note on stderr naming the new spelling for several
/// clusters (a repeated --cert used to add recipients).
#[test]
fn repeated_cert_takes_the_last_and_says_so() {
    let d = Sandbox::new();
    let r = d.run(
        &["--cert", &cert_a(), "--cert", &cert_b()],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("note: --cert was given 2 times: only the last one is used")
            && r.stderr.contains("--recipient-cert"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("multi-recipient"), "{}", r.stderr);
    assert!(r.stdout.contains("\"password\": \"Ag"), "upstream's format");
    assert_eq!(d.unseal(&key_b(), &r.stdout, &[]).code, 0);
    assert_eq!(d.unseal(&key_a(), &r.stdout, &[]).code, 1);
    // The environment's --cert is replaced by the flag, without a note (given once).
    let r = common::run_cmd(
        d.cmd()
            .env("SEALED_SECRETS_CERT", cert_a())
            .args(["--cert", &cert_b()]),
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(d.unseal(&key_b(), &r.stdout, &[]).code, 0);
    // --fetch-cert prints the last one too.
    let r = d.run(
        &["--fetch-cert", "--cert", &cert_a(), "--cert", &cert_b()],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.raw_stdout, fs::read(fixture("cert-b.pem")).unwrap());
    // `reencrypt` follows the same rule.
    let tree = d.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("s.json"), d.seal(&[], SECRET_YAML)).unwrap();
    let r = d.run(
        &[
            "reencrypt",
            "--recovery-private-key",
            &key_a(),
            "--cert",
            &cert_a(),
            "--cert",
            &cert_b(),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("note: --cert was given 2 times"),
        "{}",
        r.stderr
    );
    let moved = fs::read_to_string(tree.join("s.json")).unwrap();
    assert_eq!(d.unseal(&key_b(), &moved, &[]).code, 0);
    assert_eq!(d.unseal(&key_a(), &moved, &[]).code, 1);
    // ... and seals for several clusters with --recipient-cert.
    let r = d.run(
        &[
            "reencrypt",
            "--recovery-private-key",
            &key_b(),
            "--recipient-cert",
            &cert_a(),
            "--recipient-cert",
            &cert_b(),
            &p(&tree),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let moved = fs::read_to_string(tree.join("s.json")).unwrap();
    for key in [key_a(), key_b()] {
        assert_eq!(d.unseal(&key, &moved, &[]).code, 0);
    }
}

/// Upstream's own words where it has them, matched as upstream's integration suite matches
/// them (`^error:.*key could decrypt secret (.*)`, `^error:.*no such file or directory`):
/// stderr starts with the error line, upstream's sentence first, our context after it.
#[test]
fn errors_keep_upstreams_wording() {
    let d = Sandbox::new();
    let sealed = d.seal(&[], SECRET_YAML);
    let first_line = |s: &str| s.lines().next().unwrap_or_default().to_owned();
    // No key at all (the suite runs it so, with an unusable --kubeconfig).
    let r = d.run(
        &[
            "--recovery-unseal",
            "--kubeconfig",
            "/?this/file/cannot/possibly/exist/right?",
        ],
        sealed.as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        first_line(&r.stderr),
        "error: no key could decrypt secret (password, username): SealedSecret `team-a/db-creds`, no private key given (--recovery-private-key)"
    );
    // A wrong key.
    let r = d.unseal(&key_b(), &sealed, &[]);
    assert_eq!(r.code, 1);
    assert_eq!(
        first_line(&r.stderr),
        "error: no key could decrypt secret (password, username): SealedSecret `team-a/db-creds`, tried 1 private key"
    );
    // A certificate that does not exist.
    let r = d.run(
        &["--cert", "/?this/file/cannot/possibly/exist/right?"],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 1);
    let line = first_line(&r.stderr);
    assert!(
        line.starts_with("error:") && line.ends_with("no such file or directory"),
        "{line}"
    );
}

/// Key files as upstream reads them: client-go fills in a missing kind, so a SecretList
/// marshalled by Go (no `kind` anywhere, what upstream's integration suite writes), a List
/// whose items have no kind/apiVersion, a kind-less single Secret and a typed SecretList all
/// hold keys.
#[test]
fn key_files_without_kind_are_accepted() {
    let d = Sandbox::new();
    let sealed = d.seal(&["--cert", &cert_b()], SECRET_YAML);
    let key = sealed_secrets_crypto::encode_base64(&fs::read(fixture("key-b.pem")).unwrap());
    let other = sealed_secrets_crypto::encode_base64(&fs::read(fixture("key-a.pem")).unwrap());
    let item = |k: &str| {
        serde_json::json!({
            "metadata": {"name": "sealed-secrets-key1", "namespace": "kube-system",
                         "labels": {"sealedsecrets.bitnami.com/sealed-secrets-key": "active"},
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "managedFields": [{"manager": "sealed-secrets-controller",
                                            "operation": "Update", "apiVersion": "v1",
                                            "time": "2026-01-01T00:00:00Z",
                                            "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:data": {".": {}, "f:tls.key": {}}}}]},
            "data": {"tls.crt": "eA==", "tls.key": k},
            "type": "kubernetes.io/tls",
        })
    };
    let cases = [
        (
            "go-marshalled SecretList",
            serde_json::json!({"metadata": {"resourceVersion": "42"},
                               "items": [item(&other), item(&key)]})
            .to_string(),
        ),
        (
            "List with kind-less items",
            serde_json::json!({"apiVersion": "v1", "kind": "List",
                               "items": [item(&key)]})
            .to_string(),
        ),
        (
            "typed SecretList",
            serde_json::json!({"apiVersion": "v1", "kind": "SecretList",
                               "items": [item(&key)]})
            .to_string(),
        ),
        ("kind-less Secret", item(&key).to_string()),
        (
            "kind-less Secret in YAML",
            format!("metadata:\n  name: k\ndata:\n  tls.key: {key}\n"),
        ),
    ];
    for (what, text) in cases {
        let f = d.path().join("keys.json");
        fs::write(&f, text).unwrap();
        let r = d.unseal(&p(&f), &sealed, &[]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        let secret: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(secret["kind"], "Secret", "{what}");
    }
    // Another kind is still refused, naming it; a Secret without tls.key gets upstream's
    // sentence first.
    let f = d.path().join("cm.json");
    fs::write(
        &f,
        serde_json::json!({"items": [{"kind": "ConfigMap", "metadata": {"name": "x"}}]})
            .to_string(),
    )
    .unwrap();
    let r = d.unseal(&p(&f), &sealed, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("ConfigMap"), "{}", r.stderr);
    fs::write(
        &f,
        serde_json::json!({"items": [{"metadata": {"name": "x"}, "data": {"tls.crt": "eA=="}}]})
            .to_string(),
    )
    .unwrap();
    let r = d.unseal(&p(&f), &sealed, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: secret must contain a 'tls.data' key: "),
        "{}",
        r.stderr
    );
}
