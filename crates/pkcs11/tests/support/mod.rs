//! Runs each test against a real PKCS#11 token of its own.
//!
//! A PKCS#11 module reads its configuration (`KRYOPTIC_CONF`, `SOFTHSM2_CONF`) once, at
//! `C_Initialize`, from the environment, and may be initialised once per process. So every
//! test re-runs itself in a child process whose environment names a token made for it by
//! `tests/hsm/token.sh`: tokens never leak state (logins, PIN tries) between tests.
//!
//! Without the module (no apt, no network) a test is skipped with a message, except on CI
//! (`CI=true`), where it fails.

#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part"
)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sealed_secrets_pkcs11::{Token, TokenConfig};

const CHILD: &str = "SEALED_SECRETS_PKCS11_TEST_CHILD";

/// Which PKCS#11 module a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// kryoptic, built by tests/hsm/token.sh.
    Kryoptic,
    /// Debian's SoftHSM2 (to record what it cannot do).
    SoftHsm2,
}

/// The token a child test process runs against.
#[derive(Debug)]
pub struct TokenEnv {
    pub module: PathBuf,
    pub label: String,
    pub pin_file: PathBuf,
    pub dir: PathBuf,
    /// Environment for other clients (pkcs11-tool) of the same token.
    pub env: Vec<(String, String)>,
}

impl TokenEnv {
    pub fn config(&self) -> TokenConfig {
        TokenConfig::new(&self.module, &self.label, &self.pin_file)
    }

    pub fn open(&self) -> Token {
        Token::open(&self.config()).unwrap_or_else(|e| panic!("open token: {e}"))
    }

    /// Runs OpenSC's pkcs11-tool, an independent PKCS#11 client, on this token.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        let pin = std::fs::read_to_string(&self.pin_file).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(&self.module)
            .args(["--token-label", &self.label, "--login", "--pin", pin.trim()])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.output().unwrap_or_else(|e| panic!("pkcs11-tool: {e}"))
    }

    /// The `Access:` flags (`sensitive`, `never extractable`, …) that pkcs11-tool itself
    /// reads for the object labelled `label` of `kind` (`privkey` or `secrkey`).
    pub fn access_flags(&self, kind: &str, label: &str) -> Vec<String> {
        let header = match kind {
            "privkey" => "Private Key Object",
            "secrkey" => "Secret Key Object",
            other => panic!("no pkcs11-tool header known for --type {other}"),
        };
        let out = self.pkcs11_tool(&["--list-objects", "--type", kind]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // One block per object, each starting with the header.
        let access = text
            .split(header)
            .find(|block| {
                block
                    .lines()
                    .any(|l| l.trim_start().strip_prefix("label:").map(str::trim) == Some(label))
            })
            .and_then(|block| {
                block
                    .lines()
                    .find(|l| l.trim_start().starts_with("Access:"))
            })
            .unwrap_or_else(|| panic!("no Access line for `{label}` in:\n{text}"));
        let list = access.split_once(':').map(|(_, v)| v).unwrap_or_default();
        list.split(',').map(|f| f.trim().to_owned()).collect()
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// In the parent process: makes a token, runs the calling test again in a child process
/// with the token's environment, fails if the child failed, and returns `None`. In that
/// child: returns the token.
pub fn token(module: Module) -> Option<TokenEnv> {
    if std::env::var_os(CHILD).is_some() {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("child without {k}"));
        return Some(TokenEnv {
            module: var("SEALED_SECRETS_PKCS11_MODULE").into(),
            label: var("SEALED_SECRETS_PKCS11_TOKEN"),
            pin_file: var("SEALED_SECRETS_PKCS11_PIN_FILE").into(),
            dir: var("SEALED_SECRETS_PKCS11_TEST_DIR").into(),
            env: ["KRYOPTIC_CONF", "SOFTHSM2_CONF"]
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
                .collect(),
        });
    }
    let test = std::thread::current()
        .name()
        .unwrap_or_else(|| panic!("run under the libtest harness"))
        .to_owned();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let label = "sealed-secrets-test";
    let vars = match make_token(module, dir.path(), label) {
        Ok(vars) => vars,
        Err(why) if !on_ci() => {
            // Written to the stream itself: libtest would hide an eprintln of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no PKCS#11 test token ({why}); on CI this fails"
            );
            return None;
        }
        Err(why) => panic!("cannot make the PKCS#11 test token: {why}"),
    };
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exe)
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SEALED_SECRETS_PKCS11_TEST_DIR", dir.path())
        .envs(&vars)
        .output()
        .unwrap_or_else(|e| panic!("re-running {test}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} failed against the token:\n{stdout}\n{stderr}"
    );
    None
}

fn make_token(module: Module, dir: &Path, label: &str) -> Result<HashMap<String, String>, String> {
    let script = repo().join("tests/hsm/token.sh");
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "token.sh {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    match module {
        Module::Kryoptic => {
            let dir = dir.to_str().ok_or("temp dir is not UTF-8")?;
            let out = run(&["init", dir, label])?;
            Ok(out
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect())
        }
        Module::SoftHsm2 => {
            // token.sh build installs Debian's softhsm2 with the other packages.
            run(&["build"])?;
            let conf = dir.join("softhsm2.conf");
            let tokens = dir.join("tokens");
            std::fs::create_dir_all(&tokens).map_err(|e| e.to_string())?;
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let pin_file = dir.join("user.pin");
            std::fs::write(&pin_file, "87654321\n").map_err(|e| e.to_string())?;
            let out = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", "12345678", "--pin", "87654321"])
                .env("SOFTHSM2_CONF", &conf)
                .output()
                .map_err(|e| format!("softhsm2-util: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let mut vars = HashMap::new();
            vars.insert("SOFTHSM2_CONF".into(), conf.display().to_string());
            vars.insert(
                "SEALED_SECRETS_PKCS11_MODULE".into(),
                "/usr/lib/softhsm/libsofthsm2.so".into(),
            );
            vars.insert("SEALED_SECRETS_PKCS11_TOKEN".into(), label.into());
            vars.insert(
                "SEALED_SECRETS_PKCS11_PIN_FILE".into(),
                pin_file.display().to_string(),
            );
            Ok(vars)
        }
    }
}
