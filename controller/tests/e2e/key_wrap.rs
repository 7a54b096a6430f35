//! Private keys wrapped by a KMS (docs/security.md, "Tier 2: key Secrets wrapped by a KMS"):
//! the controller with `--key-wrap-backend=aws-kms` against a `local-kms` process (built and
//! started by tests/kms/local-kms.sh; one server per test). Skipped with a message when Go is
//! missing, except on CI (`CI=true`), where they must run.

use std::process::Command;
use std::time::Duration;

use harness::cluster::{Process, free_port, wait_for_port};
use harness::kms::{ACCESS_KEY_ID, LocalKms, SECRET_ACCESS_KEY, pkcs11_wrapping_token};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use sealed_secrets_api::wrapped_key::WRAPPED_KEY_FIELD;
use sealed_secrets_kms::{
    AwsKms, AwsKmsConfig, CredentialSource, Credentials, WrapContext, WrappedKey,
};
use serde_json::json;

use crate::common::*;

const CLUSTER: &str = "e2e-cluster";
const UNWRAPS: &str =
    "sealed_secrets_controller_key_wrap_calls_total{backend=\"aws-kms\",operation=\"unwrap\"}";
const WRAPS: &str =
    "sealed_secrets_controller_key_wrap_calls_total{backend=\"aws-kms\",operation=\"wrap\"}";

/// What these tests do with a local-kms server: check what the controller stored, and run
/// controllers that wrap with it.
trait KmsControllers {
    fn client(&self) -> AwsKms;
    fn spawn(&self, env: &Env, extra: &[&str]) -> Controller;
    async fn run(&self, env: &Env, extra: &[&str]) -> Controller;
}

impl KmsControllers for LocalKms {
    /// The test's own client, to check what the controller stored.
    fn client(&self) -> AwsKms {
        let mut c = AwsKmsConfig::new(&self.alias, &self.region);
        c.endpoint = Some(self.endpoint.clone());
        c.credentials =
            CredentialSource::Static(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None));
        AwsKms::new(c).unwrap()
    }

    /// A controller wrapping its keys with this server (credentials from the environment).
    fn spawn(&self, env: &Env, extra: &[&str]) -> Controller {
        let http = format!("127.0.0.1:{}", free_port().unwrap());
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let mut cmd = Command::new(controller_binary());
        cmd.env("KUBECONFIG", env.cluster.kubeconfig())
            .env("POD_NAMESPACE", env.ctrl())
            .env("RUST_LOG", "warn,sealed_secrets_controller=debug")
            .envs(self.env())
            .args(["--listen-addr", &http, "--listen-metrics-addr", &metrics])
            .args([
                "--key-size",
                "2048",
                "--leader-election=false",
                "--log-info-stdout=false",
            ])
            .args(["--key-wrap-backend=aws-kms", "--key-wrap-key", &self.alias])
            .args(["--key-wrap-cluster", CLUSTER])
            .args(extra);
        let process = Process::spawn(cmd, env.cluster.temp_dir()).unwrap();
        Controller {
            process,
            http,
            metrics,
        }
    }

    async fn run(&self, env: &Env, extra: &[&str]) -> Controller {
        let c = self.spawn(env, extra);
        if let Err(e) = wait_for_port(&c.http, TIMEOUT) {
            panic!("controller did not listen: {e}\n{}", c.process.log());
        }
        eventually("the controller to serve a certificate", TIMEOUT, || async {
            c.cert().await
        })
        .await;
        c
    }
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

/// Checks a stored key Secret is wrapped (no private field) and opens, with the test's own
/// client, to a key whose PEM is then looked for in `log`.
async fn assert_wrapped(kms: &LocalKms, s: &Secret, log: &str) {
    let name = s.metadata.name.clone().unwrap();
    assert_eq!(
        s.type_.as_deref(),
        Some("sealed-secrets-rs.dev/wrapped-key")
    );
    let data = s.data.as_ref().unwrap();
    assert!(!data.contains_key("tls.key"), "{name} holds a plain key");
    assert!(
        !data.contains_key("age.key"),
        "{name} holds a plain identity"
    );
    assert!(data.contains_key("tls.crt"));
    let ann = s.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["sealed-secrets-rs.dev/key-wrap-backend"], "aws-kms");
    let envelope = WrappedKey::from_bytes(&data[WRAPPED_KEY_FIELD].0).unwrap();
    let ctx = WrapContext::new(CLUSTER, s.metadata.namespace.clone().unwrap(), name.clone());
    let payload = envelope.open(&kms.client(), &ctx).await.unwrap();
    let fields: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let key_b64 = fields["tls.key"].as_str().unwrap();
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap();
    let pem = String::from_utf8(pem).unwrap();
    assert!(pem.contains("PRIVATE KEY"));
    // Neither the Secret (any field) nor the log holds the key or a line of it.
    let stored = serde_json::to_string(s).unwrap();
    for line in pem.lines().filter(|l| l.len() > 20) {
        assert!(
            !stored.contains(line) && !log.contains(line),
            "private key of {name} leaked"
        );
    }
    assert!(!stored.contains(key_b64) && !log.contains(key_b64));
    assert!(!log.contains("PRIVATE KEY"));
    // The post-quantum identity is in the same envelope, and nowhere else.
    let age = base64::engine::general_purpose::STANDARD
        .decode(fields["age.key"].as_str().unwrap())
        .unwrap();
    let age = String::from_utf8(age).unwrap();
    let age = age.trim();
    assert!(
        age.starts_with("AGE-SECRET-KEY-PQ-1"),
        "{name}: no age identity wrapped"
    );
    assert!(!stored.contains(age) && !log.contains(age) && !log.contains("AGE-SECRET-KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_keys_fresh_start_restart_and_rotation() {
    let Some(kms) = LocalKms::start("fresh") else {
        return;
    };
    let env = Env::new().await;
    let mut c = kms.run(&env, &["--key-renew-period=0"]).await;
    let keys = env.key_secrets().await;
    assert_eq!(keys.len(), 1);
    assert_wrapped(&kms, &keys[0], &c.process.log()).await;
    let text = c.metrics_text().await;
    assert_eq!(sample(&text, WRAPS), 1.0, "{text}");
    // The writer remembers its key: no unwrap at all.
    assert_eq!(sample(&text, UNWRAPS), 0.0, "{text}");
    let served = env.served_key(&c).await;
    let recipient = c.get("/v1/age-recipient.txt").await;
    assert_eq!(recipient.status, 200);
    let ss = seal(env.ns(), "s1", &[("a", "b")], &served, json!({}));
    let (_, secret) = env.unseal(&ss).await;
    assert_eq!(data_of(&secret, "a").as_deref(), Some("b"));
    c.process.stop();

    // A restart: exactly one unwrap for the one key, the same certificate, still unsealing.
    let mut c = kms.run(&env, &["--key-renew-period=0"]).await;
    assert_eq!(env.served_key(&c).await, served);
    // The post-quantum identity came back out of the envelope too.
    let after = c.get("/v1/age-recipient.txt").await;
    assert_eq!(
        (after.status, after.body_text()),
        (200, recipient.body_text())
    );
    let ss = seal(env.ns(), "s2", &[("c", "d")], &served, json!({}));
    let (_, secret) = env.unseal(&ss).await;
    assert_eq!(data_of(&secret, "c").as_deref(), Some("d"));
    let text = c.metrics_text().await;
    assert_eq!(sample(&text, UNWRAPS), 1.0, "{text}");
    assert_eq!(sample(&text, WRAPS), 0.0, "{text}");

    // Rotation (SIGUSR1 renews now): the new key is wrapped too, and costs no unwrap.
    c.signal("USR1");
    let keys = eventually("a second key Secret", TIMEOUT, || async {
        let k = env.key_secrets().await;
        (k.len() == 2).then_some(k)
    })
    .await;
    eventually("the new certificate to be served", TIMEOUT, || async {
        (env.served_key(&c).await != served).then_some(())
    })
    .await;
    for k in &keys {
        assert_wrapped(&kms, k, &c.process.log()).await;
    }
    let text = c.metrics_text().await;
    assert_eq!(sample(&text, UNWRAPS), 1.0, "{text}");
    assert_eq!(sample(&text, WRAPS), 1.0, "{text}");
    // Values sealed to the old key keep unsealing.
    let ss = seal(env.ns(), "s3", &[("e", "f")], &served, json!({}));
    env.unseal(&ss).await;
    c.process.stop();
    assert!(!c.process.log().contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_down_at_start_is_reported_then_keys_open_when_it_is_back() {
    let Some(kms) = LocalKms::start("down") else {
        return;
    };
    let env = Env::new().await;
    let mut c = kms.run(&env, &["--key-renew-period=0"]).await;
    let served = env.served_key(&c).await;
    c.process.stop();
    let name = env.key_secrets().await[0].metadata.name.clone().unwrap();

    kms.signal("-STOP");
    let c = kms.spawn(&env, &["--key-renew-period=0"]);
    // A second replica, stopped while it waits: SIGTERM ends the wait.
    let mut other = kms.spawn(&env, &["--key-renew-period=0"]);
    // The first unwrap times out (10 s), then the servers start and say why they are not ready.
    eventually(
        "/readyz to name the waiting key",
        Duration::from_secs(60),
        || async {
            let r = try_http(&c.http, "GET", "/readyz", &[], b"").await.ok()?;
            (r.status == 503 && r.body_text().contains(&name)).then_some(())
        },
    )
    .await;
    assert_eq!(c.get("/healthz").await.status, 200);
    eventually(
        "the second replica to wait",
        Duration::from_secs(60),
        || async {
            let r = try_http(&other.http, "GET", "/readyz", &[], b"")
                .await
                .ok()?;
            (r.status == 503).then_some(())
        },
    )
    .await;
    other.signal("TERM");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while other.process.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGTERM did not end a replica waiting for its keys:\n{}",
            other.process.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(other.process.log().contains("shutting down"));
    let series =
        format!("sealed_secrets_controller_keys_unusable{{secret=\"{name}\",transient=\"true\"}}");
    eventually("the unusable-key metric", TIMEOUT, || async {
        (sample(&c.metrics_text().await, &series) == 1.0).then_some(())
    })
    .await;
    env.wait_event(env.ctrl(), &name, "KeyUnwrapFailed").await;
    assert!(c.process.log().contains(&name));

    kms.signal("-CONT");
    eventually(
        "the key to open once the KMS is back",
        Duration::from_secs(90),
        || async { (c.cert().await.is_some()).then_some(()) },
    )
    .await;
    assert_eq!(env.served_key(&c).await, served);
    eventually("/readyz to be ready", TIMEOUT, || async {
        (c.get("/readyz").await.status == 200).then_some(())
    })
    .await;
    let text = c.metrics_text().await;
    assert_eq!(sample(&text, &series), 0.0, "{text}");
    env.wait_event(env.ctrl(), &name, "KeyUnwrapped").await;
    // The outage added no key and rewrote none.
    assert_eq!(env.key_secrets().await.len(), 1);
    let ss = seal(env.ns(), "s", &[("a", "b")], &served, json!({}));
    env.unseal(&ss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_key_copied_to_another_secret_is_refused_and_reported() {
    let Some(kms) = LocalKms::start("copy") else {
        return;
    };
    let env = Env::new().await;
    let c = kms.run(&env, &["--key-renew-period=0"]).await;
    let served = env.served_key(&c).await;
    let original = env.key_secrets().await.remove(0);
    let mut copy = original.clone();
    copy.metadata = kube::api::ObjectMeta {
        name: Some("sealed-secrets-keycopy1".into()),
        namespace: original.metadata.namespace.clone(),
        labels: original.metadata.labels.clone(),
        annotations: original.metadata.annotations.clone(),
        ..Default::default()
    };
    env.secrets(env.ctrl())
        .create(&PostParams::default(), &copy)
        .await
        .unwrap();
    eventually("/readyz to name the copy", TIMEOUT, || async {
        let r = c.get("/readyz").await;
        (r.status == 200 && r.body_text().contains("sealed-secrets-keycopy1")).then_some(())
    })
    .await;
    let series = "sealed_secrets_controller_keys_unusable{secret=\"sealed-secrets-keycopy1\",transient=\"false\"}";
    assert_eq!(sample(&c.metrics_text().await, series), 1.0);
    env.wait_event(env.ctrl(), "sealed-secrets-keycopy1", "KeyUnwrapFailed")
        .await;
    assert!(c.process.log().contains("sealed-secrets-keycopy1"));
    // The original key stays in use; nothing was deleted or rewritten.
    assert_eq!(env.served_key(&c).await, served);
    let ss = seal(env.ns(), "s", &[("a", "b")], &served, json!({}));
    env.unseal(&ss).await;
    let stored = env
        .secrets(env.ctrl())
        .get("sealed-secrets-keycopy1")
        .await
        .unwrap();
    assert_eq!(stored.data, copy.data);
    assert_eq!(env.key_secrets().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs11_wrapped_keys_fresh_start_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(vars) = pkcs11_wrapping_token(dir.path(), "sealed-secrets-e2e", "sealed-secrets-wrap")
    else {
        return;
    };
    let env = Env::new().await;
    let spawn = || {
        let http = format!("127.0.0.1:{}", free_port().unwrap());
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let mut cmd = Command::new(controller_binary());
        cmd.env("KUBECONFIG", env.cluster.kubeconfig())
            .env("POD_NAMESPACE", env.ctrl())
            .env("RUST_LOG", "warn,sealed_secrets_controller=debug")
            .env("KRYOPTIC_CONF", &vars["KRYOPTIC_CONF"])
            .args(["--listen-addr", &http, "--listen-metrics-addr", &metrics])
            .args([
                "--key-size",
                "2048",
                "--leader-election=false",
                "--log-info-stdout=false",
            ])
            .args(["--key-renew-period=0", "--key-wrap-backend=pkcs11"])
            .args([
                "--key-wrap-key=sealed-secrets-wrap",
                "--key-wrap-cluster",
                CLUSTER,
            ])
            .args(["--key-wrap-pkcs11-token=sealed-secrets-e2e"])
            .arg(format!(
                "--key-wrap-pkcs11-module={}",
                vars["SEALED_SECRETS_PKCS11_MODULE"]
            ))
            .arg(format!(
                "--key-wrap-pkcs11-pin-file={}",
                vars["SEALED_SECRETS_PKCS11_PIN_FILE"]
            ));
        let process = Process::spawn(cmd, env.cluster.temp_dir()).unwrap();
        let c = Controller {
            process,
            http,
            metrics,
        };
        if let Err(e) = wait_for_port(&c.http, TIMEOUT) {
            panic!("controller did not listen: {e}\n{}", c.process.log());
        }
        c
    };
    let unwraps =
        "sealed_secrets_controller_key_wrap_calls_total{backend=\"pkcs11\",operation=\"unwrap\"}";
    let mut c = spawn();
    eventually("a certificate", TIMEOUT, || async { c.cert().await }).await;
    let keys = env.key_secrets().await;
    assert_eq!(keys.len(), 1);
    let data = keys[0].data.as_ref().unwrap();
    assert!(data.contains_key(WRAPPED_KEY_FIELD) && !data.contains_key("tls.key"));
    let ann = keys[0].metadata.annotations.as_ref().unwrap();
    assert_eq!(ann["sealed-secrets-rs.dev/key-wrap-backend"], "pkcs11");
    let served = env.served_key(&c).await;
    c.process.stop();
    assert!(!c.process.log().contains("PRIVATE KEY"));

    let mut c = spawn();
    eventually("a certificate after restart", TIMEOUT, || async {
        c.cert().await
    })
    .await;
    assert_eq!(env.served_key(&c).await, served);
    let ss = seal(env.ns(), "s", &[("a", "b")], &served, json!({}));
    env.unseal(&ss).await;
    assert_eq!(sample(&c.metrics_text().await, unwraps), 1.0);
    assert_eq!(env.key_secrets().await.len(), 1);
    c.process.stop();
}
