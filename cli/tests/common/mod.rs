//! Shared helpers for the CLI tests: run the binary hermetically, normalise random output.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The upstream vectors (keys, certificates, a key backup, upstream kubeseal's output): one
/// copy for the whole workspace, shared with the crypto and controller tests; its README says
/// where each file came from.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/upstream-vectors")
}

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

/// A finished run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Run {
    /// `exit`, stdout and stderr, normalised for snapshots.
    pub fn snapshot(&self, tmp: &Path) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            normalize(&self.stdout, tmp),
            normalize(&self.stderr, tmp)
        )
    }
}

/// The binary, with no SEALED_SECRETS_* or KUBECONFIG from the caller's environment.
pub fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubeseal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SEALED_SECRETS_") || k == "KUBECONFIG" {
            c.env_remove(k);
        }
    }
    c.env("HOME", dir)
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .current_dir(dir);
    c
}

/// Runs with args and stdin.
pub fn run(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    run_cmd(cmd(dir).args(args), stdin)
}

/// Runs a prepared command with stdin.
pub fn run_cmd(c: &mut Command, stdin: &[u8]) -> Run {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubeseal");
    {
        let mut i = child.stdin.take().unwrap();
        // The process may exit before reading stdin.
        let _ = i.write_all(stdin);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        raw_stdout: stdout,
    }
}

/// Replaces ciphertexts (long base64 runs) with `<ciphertext>`, the temp dir with `<tmp>`,
/// and the crate version with `<version>`.
pub fn normalize(s: &str, tmp: &Path) -> String {
    let s = s.replace(&fixtures_dir().display().to_string(), "<fixtures>");
    let s = s.replace(&tmp.display().to_string(), "<tmp>");
    let s = s.replace(env!("CARGO_PKG_VERSION"), "<version>");
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 80 {
            out.push_str("<ciphertext>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A Secret manifest in YAML.
pub const SECRET_YAML: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db-creds
  namespace: team-a
  labels:
    app: db
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{\"leak\":\"me\"}'
type: Opaque
data:
  username: YWRtaW4=
stringData:
  password: s3cr3t
";

/// Two Secrets as a JSON stream, the second without namespace.
pub const SECRETS_JSON: &str = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"one","namespace":"team-a"},"stringData":{"a":"1"}}
{"apiVersion":"v1","kind":"Secret","metadata":{"name":"two"},"data":{"b":"Mg=="}}
"#;
