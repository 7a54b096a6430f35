//! `local-kms`, an emulator of the AWS KMS JSON API, as the tests of every package start it:
//! built and run by `tests/kms/local-kms.sh` (docs/security.md, "Tier 2"), one server per
//! test, so that stopping or freezing it touches no other test. Where Go is missing the tests
//! are skipped with a message, except on CI (`CI=true`), where they must run.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Access key and secret every local-kms test uses (local-kms checks no signature, but our
/// client signs every request, so the values must exist).
pub const ACCESS_KEY_ID: &str = "AKIDLOCAL";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "local-secret";

/// One running local-kms server, stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct LocalKms {
    /// The server's directory (seed, database, log, pid).
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The seeded AES-256 key's ID.
    pub key_id: String,
    /// Its alias, `alias/sealed-secrets`.
    pub alias: String,
    /// The region the server answers for.
    pub region: String,
    pid: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script() -> PathBuf {
    repo().join("tests/kms/local-kms.sh")
}

impl LocalKms {
    /// Starts a server for `test`, or `None` (after saying why) where it may be skipped.
    pub fn start(test: &str) -> Option<LocalKms> {
        let dir = repo()
            .join("target/kms-tests")
            .join(format!("{test}-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .output();
        let on_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let out = match out {
            Ok(o) if o.status.success() => o,
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    !on_ci,
                    "CI=true: local-kms must run, but tests/kms/local-kms.sh failed: {why}"
                );
                // Past libtest's capture, so a skip is visible in a plain `cargo test`.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: local-kms unavailable (needs Go 1.25+ and the Go module proxy): {why}"
                );
                return None;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_owned))
                .unwrap_or_else(|| panic!("local-kms.sh printed no {k}: {text}"))
        };
        Some(LocalKms {
            endpoint: get("SEALED_SECRETS_KMS_ENDPOINT"),
            key_id: get("SEALED_SECRETS_KMS_KEY_ID"),
            alias: get("SEALED_SECRETS_KMS_KEY_ALIAS"),
            region: get("AWS_REGION"),
            pid: get("LOCAL_KMS_PID"),
            dir,
        })
    }

    /// Sends `sig` (e.g. `-STOP` to freeze it: calls then time out, as with a KMS that is
    /// unreachable; `-CONT` to thaw it).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid])
            .status()
            .unwrap_or_else(|e| panic!("kill {sig}: {e}"));
        assert!(ok.success(), "kill {sig} {}", self.pid);
    }

    /// Stops the server (its keys are gone with it: a later start seeds a new one).
    pub fn stop(&self) {
        // Thaw a frozen server so that it can stop (quietly: it may be gone already).
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid])
            .stderr(std::process::Stdio::null())
            .status();
        let status = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status()
            .unwrap_or_else(|e| panic!("local-kms.sh stop: {e}"));
        assert!(status.success());
    }

    /// The environment a process of ours needs to use this server with `--key-wrap-backend
    /// aws-kms` (region, endpoint, credentials).
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_REGION", self.region.clone()),
            ("AWS_ENDPOINT_URL_KMS", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        ]
    }
}

impl Drop for LocalKms {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A kryoptic token (tests/hsm/token.sh) labelled `token` in `dir`, with an AES-256 wrapping key
/// `key` made by OpenSC's `pkcs11-tool`, as an operator would adopt one. Returns the script's
/// variables (`SEALED_SECRETS_PKCS11_MODULE`, `SEALED_SECRETS_PKCS11_PIN_FILE`,
/// `KRYOPTIC_CONF`, ...); `None` (after saying why) off CI when the token cannot be built.
pub fn pkcs11_wrapping_token(
    dir: &Path,
    token: &str,
    key: &str,
) -> Option<HashMap<String, String>> {
    let vars = pkcs11_token(dir, token)?;
    let pin = std::fs::read_to_string(&vars["SEALED_SECRETS_PKCS11_PIN_FILE"])
        .unwrap_or_else(|e| panic!("the token's PIN file: {e}"));
    let keygen = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&vars["SEALED_SECRETS_PKCS11_MODULE"])
        .args(["--token-label", token, "--login", "--pin", pin.trim()])
        .args([
            "--keygen",
            "--key-type",
            "AES:32",
            "--label",
            key,
            "--sensitive",
        ])
        .env("KRYOPTIC_CONF", &vars["KRYOPTIC_CONF"])
        .output()
        .unwrap_or_else(|e| panic!("pkcs11-tool: {e}"));
    assert!(
        keygen.status.success(),
        "pkcs11-tool --keygen: {}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    Some(vars)
}

/// A kryoptic token (tests/hsm/token.sh) labelled `token` in `dir`, empty. Returns the
/// script's variables as [`pkcs11_wrapping_token`] does; `None` (after saying why) off CI when
/// the token cannot be built.
pub fn pkcs11_token(dir: &Path, token: &str) -> Option<HashMap<String, String>> {
    let out = Command::new("bash")
        .arg(repo().join("tests/hsm/token.sh"))
        .arg("init")
        .arg(dir)
        .arg(token)
        .output()
        .unwrap_or_else(|e| panic!("tests/hsm/token.sh: {e}"));
    let on_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(!on_ci, "CI=true: the PKCS#11 test token must build: {why}");
        let _ = writeln!(std::io::stderr(), "SKIPPED: no PKCS#11 test token: {why}");
        return None;
    }
    let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Some(vars)
}
