//! Keys held in a PKCS#11 token (docs/security.md, "Tier 1: keys held in a PKCS#11 token"):
//! the controller with `--key-backend=pkcs11` on a kryoptic soft token (built and initialised
//! by tests/hsm/token.sh). Skipped with a message when the token cannot be built, except on
//! CI (`CI=true`), where they must run.
//!
//! One controller scenario carries most checks (CI time): an adopted key, values sealed by
//! upstream's kubeseal and by ours in all three scopes, a multi-recipient value, `/v1/verify`
//! and `/v1/rotate`, a rotation to a key the controller makes in the token, a restart with no
//! token decryption, no private key in the key Secrets or the logs, and an independent
//! PKCS#11 client (OpenSC's pkcs11-tool) confirming the key cannot leave the
//! token and never could.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::token_key::{TOKEN_KEY_SECRET_TYPE, URI_FIELD};
use sealed_secrets_api::{SealOptions, SealedSecret};
use sealed_secrets_crypto::{PrivateKey, PublicKey};
use serde_json::{Value, json};

use crate::common::*;

const TOKEN: &str = "sealed-secrets-e2e";
const DECRYPTS: &str =
    "sealed_secrets_controller_key_backend_calls_total{backend=\"pkcs11\",operation=\"decrypt\"}";

/// A fresh kryoptic token; `None` (after saying why) off CI when it cannot be built.
fn token(dir: &Path) -> Option<HashMap<String, String>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/hsm/token.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["init", dir.to_str().unwrap(), TOKEN])
        .output()
        .unwrap();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let on_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!on_ci, "CI=true: the PKCS#11 test token must build: {why}");
        let _ = writeln!(std::io::stderr(), "SKIPPED: no PKCS#11 test token: {why}");
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

/// OpenSC's pkcs11-tool on the test token, logged in.
fn pkcs11_tool(vars: &HashMap<String, String>, args: &[&str]) -> std::process::Output {
    let pin = std::fs::read_to_string(&vars["SEALED_SECRETS_PKCS11_PIN_FILE"]).unwrap();
    Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&vars["SEALED_SECRETS_PKCS11_MODULE"])
        .args(["--token-label", TOKEN, "--login", "--pin", pin.trim()])
        .args(args)
        .env("KRYOPTIC_CONF", &vars["KRYOPTIC_CONF"])
        .output()
        .unwrap()
}

/// The controller's token flags.
fn token_flags(vars: &HashMap<String, String>) -> Vec<String> {
    vec![
        "--key-backend=pkcs11".into(),
        format!("--key-pkcs11-token={TOKEN}"),
        format!(
            "--key-pkcs11-module={}",
            vars["SEALED_SECRETS_PKCS11_MODULE"]
        ),
        format!(
            "--key-pkcs11-pin-file={}",
            vars["SEALED_SECRETS_PKCS11_PIN_FILE"]
        ),
    ]
}

/// Starts the controller on the token; `wait_cert` waits for a served certificate.
async fn start(
    env: &Env,
    vars: &HashMap<String, String>,
    extra: &[&str],
    wait_cert: bool,
) -> Controller {
    let mut args: Vec<String> = token_flags(vars);
    args.push("--key-renew-period=0".into());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The module reads its configuration from the process's environment.
    let c = env.spawn_controller_env(&args, &[("KRYOPTIC_CONF", &vars["KRYOPTIC_CONF"])]);
    if let Err(e) = harness::cluster::wait_for_port(&c.http, TIMEOUT) {
        panic!("controller did not listen: {e}\n{}", c.process.log());
    }
    if wait_cert {
        eventually("a certificate", TIMEOUT, || async { c.cert().await }).await;
    }
    c
}

/// The value of one sample line `name{labels} v`; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .map(|v| v.trim().parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

/// A token key Secret: the certificate and the URI, nothing private.
fn assert_token_key_secret(s: &Secret, log: &str) -> String {
    let name = s.metadata.name.clone().unwrap();
    assert_eq!(s.type_.as_deref(), Some(TOKEN_KEY_SECRET_TYPE), "{name}");
    let data = s.data.as_ref().unwrap();
    let mut fields: Vec<&str> = data.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["pkcs11.uri", "tls.crt"], "{name}");
    let stored = serde_json::to_string(s).unwrap();
    assert!(!stored.contains("PRIVATE KEY") && !stored.contains("AGE-SECRET-KEY"));
    assert!(!log.contains("PRIVATE KEY") && !log.contains("AGE-SECRET-KEY"));
    let uri = String::from_utf8(data[URI_FIELD].0.clone()).unwrap();
    assert!(uri.starts_with(&format!("pkcs11:token={TOKEN};")), "{uri}");
    uri
}

/// Seals with upstream's own kubeseal binary (target/upstream-bin) from a certificate file.
fn upstream_seal(env: &Env, cert: &Path, scope: &str, secret: &Value) -> SealedSecret {
    let kubeseal = harness::upstream::upstream_binary("kubeseal").unwrap();
    let mut child = Command::new(kubeseal)
        .args([
            "--cert",
            cert.to_str().unwrap(),
            "--scope",
            scope,
            "-o",
            "json",
        ])
        .env("KUBECONFIG", env.cluster.kubeconfig())
        .env("HOME", env.cluster.temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(secret.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "upstream kubeseal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn secret_json(ns: &str, name: &str, key: &str, value: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": ns, "annotations": annotations},
           "stringData": {key: value}})
}

/// Values sealed with ours, for several recipients (a multi-recipient value).
fn seal_for(keys: &[&PublicKey], secret: &Value) -> SealedSecret {
    let input = serde_json::to_vec(secret).unwrap();
    sealed_secrets_api::seal_manifests(&input, keys, &SealOptions::default())
        .unwrap()
        .pop()
        .unwrap()
}

/// The `Access:` flags OpenSC's pkcs11-tool (an independent PKCS#11 client) reads for the
/// private key object labelled `label`, e.g. `sensitive, always sensitive, never extractable,
/// local`.
fn access_flags(vars: &HashMap<String, String>, label: &str) -> Vec<String> {
    let out = pkcs11_tool(vars, &["--list-objects", "--type", "privkey"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let access = text
        .split("Private Key Object")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_adopt_unseal_every_format_rotate_and_restart_without_token_calls() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vars) = token(dir.path()) else {
        return;
    };
    // A key made outside our code, as an operator would, to adopt.
    let keygen = pkcs11_tool(
        &vars,
        &[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--label",
            "operator-key",
            "--usage-decrypt",
            "--usage-sign",
            "--sensitive",
        ],
    );
    assert!(
        keygen.status.success(),
        "pkcs11-tool --keypairgen: {}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let env = Env::new().await;
    let ns = env.ns().to_owned();
    let c = start(&env, &vars, &["--key-pkcs11-adopt=operator-key"], true).await;

    // The adopted key is the only key (no key was generated beside it).
    let keys = env.key_secrets().await;
    assert_eq!(keys.len(), 1);
    let uri = assert_token_key_secret(&keys[0], &c.process.log());
    assert!(uri.contains("object=operator-key"), "{uri}");
    let ann = keys[0].metadata.annotations.clone().unwrap();
    assert_eq!(ann["sealed-secrets-rs.dev/key-origin"], "adopted");
    let adopted = env.served_key(&c).await;

    // No post-quantum recipient: said plainly.
    let r = c.get("/v1/age-recipient.txt").await;
    assert_eq!(r.status, 404);
    assert!(r.body_text().contains("PKCS#11 token"), "{}", r.body_text());

    // Upstream's kubeseal, all three scopes; ours with the key hint; a multi-recipient value.
    let cert_file = dir.path().join("cert.pem");
    std::fs::write(&cert_file, c.cert().await.unwrap()).unwrap();
    let mut sealed = Vec::new();
    for (scope, name, ann) in [
        ("strict", "up-strict", json!({})),
        (
            "namespace-wide",
            "up-ns",
            json!({"sealedsecrets.bitnami.com/namespace-wide": "true"}),
        ),
        (
            "cluster-wide",
            "up-cluster",
            json!({"sealedsecrets.bitnami.com/cluster-wide": "true"}),
        ),
    ] {
        let s = secret_json(&ns, name, "v", scope, ann);
        sealed.push((upstream_seal(&env, &cert_file, scope, &s), scope.to_owned()));
    }
    let ours = seal_for(
        &[&adopted],
        &secret_json(&ns, "ours", "v", "ours", json!({})),
    );
    sealed.push((ours.clone(), "ours".into()));
    let absent = PrivateKey::generate(2048).unwrap();
    let multi = seal_for(
        &[absent.public_key(), &adopted],
        &secret_json(&ns, "multi", "v", "multi", json!({})),
    );
    sealed.push((multi, "multi".into()));
    for (ss, want) in &sealed {
        let (_, secret) = env.unseal(ss).await;
        assert_eq!(data_of(&secret, "v").as_deref(), Some(want.as_str()));
    }
    let text = c.metrics_text().await;
    let decrypts = sample(&text, DECRYPTS);
    // One token decryption per value (one key: the hint or not, nothing else to try).
    assert_eq!(decrypts, sealed.len() as f64, "{text}");

    // /v1/verify through the token.
    let body = serde_json::to_vec(&ours).unwrap();
    assert_eq!(c.post("/v1/verify", &body).await.status, 200);

    // A rotation (SIGUSR1): a key made in the token by the controller, served from now on.
    // Certificates have whole-second NotBefore: a new key made in the adopted key's second
    // would tie with it after a restart (upstream's rule then keeps the first), so the
    // rotation waits for that second to pass.
    let adopted_not_before =
        sealed_secrets_crypto::Certificate::from_pem(c.cert().await.unwrap().as_bytes())
            .unwrap()
            .not_before();
    eventually(
        "the adopted key's NotBefore second to pass",
        TIMEOUT,
        || async {
            (std::time::SystemTime::now() >= adopted_not_before + std::time::Duration::from_secs(1))
                .then_some(())
        },
    )
    .await;
    c.signal("USR1");
    let keys = eventually("a second key Secret", TIMEOUT, || async {
        let k = env.key_secrets().await;
        (k.len() == 2).then_some(k)
    })
    .await;
    eventually("the new certificate", TIMEOUT, || async {
        (env.served_key(&c).await != adopted).then_some(())
    })
    .await;
    let new_key = env.served_key(&c).await;
    let made = keys
        .iter()
        .find(|k| {
            k.metadata.annotations.as_ref().unwrap()["sealed-secrets-rs.dev/key-origin"]
                == "generated"
        })
        .unwrap();
    assert_token_key_secret(made, &c.process.log());
    let made_name = made.metadata.name.clone().unwrap();
    // /v1/rotate re-seals a value of the old key to the new one, decrypting in the token.
    let r = c.post("/v1/rotate", &body).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let rotated: SealedSecret = serde_json::from_slice(&r.body).unwrap();
    assert_ne!(rotated.spec.encrypted_data, ours.spec.encrypted_data);
    // ...which the new key (in the token too) opens.
    let body = serde_json::to_vec(&rotated).unwrap();
    assert_eq!(c.post("/v1/verify", &body).await.status, 200);
    let fresh = seal_for(
        &[&new_key],
        &secret_json(&ns, "after", "v", "after", json!({})),
    );
    let (_, s) = env.unseal(&fresh).await;
    assert_eq!(data_of(&s, "v").as_deref(), Some("after"));

    // An independent PKCS#11 client: the controller's key cannot leave the token, never could.
    let access = access_flags(&vars, &made_name);
    for want in ["sensitive", "always sensitive", "never extractable"] {
        assert!(access.iter().any(|f| f == want), "{want}: {access:?}");
    }
    assert!(!access.iter().any(|f| f == "extractable"), "{access:?}");
    let mut c = c;
    assert!(c.process.stop().unwrap().success());
    assert!(!c.process.log().contains("PRIVATE KEY"));

    // A warm restart: every object is in sync, no token decryption at all.
    let n = sealed.len() + 1;
    let mut c = start(&env, &vars, &["--key-pkcs11-adopt=operator-key"], true).await;
    assert_eq!(env.served_key(&c).await, new_key);
    eventually(
        "the restarted controller to check every object",
        TIMEOUT,
        || async {
            (c.metric("sealed_secrets_controller_unseal_requests_total")
                .await
                >= n as f64)
                .then_some(())
        },
    )
    .await;
    let text = c.metrics_text().await;
    assert_eq!(sample(&text, DECRYPTS), 0.0, "{text}");
    // Adopting again adds nothing.
    assert_eq!(env.key_secrets().await.len(), 2);
    assert!(c.process.stop().unwrap().success());
    assert!(!c.process.log().contains("PRIVATE KEY"));
}

/// A wrong PIN, then a replica that cannot find a key object (another token, or the object was
/// removed): each is reported — readiness names the key Secret, an Event, a metric — and generates no key in
/// its place; the key Secret is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_object_is_reported_and_no_key_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vars) = token(dir.path()) else {
        return;
    };
    let env = Env::new().await;
    // A key Secret naming an object this token does not hold.
    let other = PrivateKey::generate(2048).unwrap();
    let cert = other
        .self_signed_certificate(&sealed_secrets_crypto::CertParams::default())
        .unwrap();
    let mut s = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("sealed-secrets-keygone".into()),
            namespace: Some(env.ctrl().into()),
            labels: Some([(KEY_LABEL.to_owned(), "active".to_owned())].into()),
            annotations: Some(
                [(
                    "sealed-secrets-rs.dev/key-origin".to_owned(),
                    "generated".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some(TOKEN_KEY_SECRET_TYPE.into()),
        data: Some(sealed_secrets_api::token_key::data(
            cert.pem(),
            &format!("pkcs11:token={TOKEN};object=sealed-secrets-keygone;type=private"),
        )),
        ..Default::default()
    };
    s = env
        .secrets(env.ctrl())
        .create(&Default::default(), &s)
        .await
        .unwrap();
    // First a wrong PIN: reported, /healthz up; the PIN is not tried again until its file
    // changes, and then the token opens without a restart.
    let pin_file = dir.path().join("mounted.pin");
    std::fs::write(&pin_file, "000000\n").unwrap();
    let pin_flag = format!("--key-pkcs11-pin-file={}", pin_file.display());
    let mut c = start(&env, &vars, &[&pin_flag], false).await;
    let body = eventually("readiness to say the PIN was refused", TIMEOUT, || async {
        let r = c.get("/readyz").await;
        let body = r.body_text();
        (r.status == 503 && body.contains("refused the PIN")).then_some(body)
    })
    .await;
    assert!(body.contains("sealed-secrets-keygone"), "{body}");
    assert!(!body.contains("000000"), "{body}");
    assert_eq!(c.get("/healthz").await.status, 200);
    let up = "sealed_secrets_controller_key_backend_up{backend=\"pkcs11\"}";
    assert_eq!(sample(&c.metrics_text().await, up), 0.0);
    std::fs::copy(&vars["SEALED_SECRETS_PKCS11_PIN_FILE"], &pin_file).unwrap();
    eventually(
        "the token to open with the new PIN file",
        TIMEOUT,
        || async { (sample(&c.metrics_text().await, up) == 1.0).then_some(()) },
    )
    .await;
    let body = eventually("readiness to name the key Secret", TIMEOUT, || async {
        let r = c.get("/readyz").await;
        let body = r.body_text();
        (r.status == 503 && body.contains("no private key")).then_some(body)
    })
    .await;
    assert!(body.contains("sealed-secrets-keygone"), "{body}");
    assert_eq!(c.get("/healthz").await.status, 200);
    env.wait_event(env.ctrl(), "sealed-secrets-keygone", "TokenKeyUnusable")
        .await;
    let series = "sealed_secrets_controller_key_backend_unusable{backend=\"pkcs11\",secret=\"sealed-secrets-keygone\"}";
    eventually("the unusable metric", TIMEOUT, || async {
        (sample(&c.metrics_text().await, series) == 1.0).then_some(())
    })
    .await;
    eventually("the refused generation to be logged", TIMEOUT, || async {
        c.process
            .log()
            .contains("no new key until they are usable")
            .then_some(())
    })
    .await;
    // No key of its own, and the key Secret untouched.
    assert_eq!(env.key_secrets().await.len(), 1);
    let now = env
        .secrets(env.ctrl())
        .get("sealed-secrets-keygone")
        .await
        .unwrap();
    assert_eq!(now.data, s.data);
    assert_eq!(now.metadata.resource_version, s.metadata.resource_version);
    assert!(c.cert().await.is_none());
    assert!(c.process.stop().unwrap().success());
}
