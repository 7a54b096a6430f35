//! Keys (§4.2-4.4 and beyond): generation on an empty start, renewal, cutoff, SIGUSR1,
//! malformed key Secrets, the key watcher, the certificate ConfigMap, and HA.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use sealed_secrets_crypto::Certificate;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generates_a_key_on_empty_start_and_renews_by_period() {
    let env = Env::new().await;
    let c = env
        .start_controller(&[
            "--key-renew-period=4s",
            "--privatekey-labels=team=sec",
            "--privatekey-annotations=note=x",
        ])
        .await;
    let keys = env.key_secrets().await;
    assert!(!keys.is_empty());
    let k = &keys[0];
    assert_eq!(k.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(
        k.metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("sealed-secrets-key")
    );
    assert_eq!(k.metadata.labels.as_ref().unwrap()["team"], "sec");
    assert_eq!(k.metadata.annotations.as_ref().unwrap()["note"], "x");
    let first = c.cert().await.unwrap();
    eventually("a renewed key", Duration::from_secs(20), || async {
        (env.key_secrets().await.len() >= 2).then_some(())
    })
    .await;
    eventually("the newest cert to change", TIMEOUT, || async {
        (c.cert().await? != first).then_some(())
    })
    .await;
    assert!(c.metric("sealed_secrets_controller_keys_active").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_renews_now_and_configmap_follows() {
    let env = Env::new().await;
    let mut c = env.start_controller(&["--key-renew-period=0"]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), env.ctrl());
    let cert1 = c.cert().await.unwrap();
    let cm = eventually("the cert ConfigMap", TIMEOUT, || async {
        cms.get_opt("sealed-secrets-cert").await.unwrap()
    })
    .await;
    assert_eq!(cm.data.as_ref().unwrap()["cert.pem"], cert1);

    assert_eq!(env.key_secrets().await.len(), 1);
    c.signal("USR1");
    eventually("a key generated on SIGUSR1", TIMEOUT, || async {
        (env.key_secrets().await.len() == 2).then_some(())
    })
    .await;
    let cert2 = eventually("the new cert to be served", TIMEOUT, || async {
        c.cert().await.filter(|c| *c != cert1)
    })
    .await;
    let cm = eventually("the ConfigMap to follow", TIMEOUT, || async {
        cms.get_opt("sealed-secrets-cert")
            .await
            .unwrap()
            .filter(|cm| cm.data.as_ref().unwrap()["cert.pem"] == cert2)
    })
    .await;
    let all = &cm.data.as_ref().unwrap()["certs.pem"];
    let certs = Certificate::all_from_pem(all.as_bytes()).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].pem(), cert2, "newest first");
    assert!(c.process.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutoff_generates_a_new_key_when_the_newest_is_older() {
    let env = Env::new().await;
    let (k, cert) = make_key(SystemTime::now() - Duration::from_secs(3 * 86400));
    env.put_key_secret(
        "sealed-secrets-keyold01",
        k.to_pkcs1_pem().as_bytes(),
        cert.pem().as_bytes(),
        true,
    )
    .await;
    // Without cutoff: the old key is kept as the newest, nothing generated.
    let mut c = env.start_controller(&[]).await;
    assert_eq!(c.cert().await.unwrap(), cert.pem());
    assert_eq!(env.key_secrets().await.len(), 1);
    c.process.stop();
    // Cutoff yesterday: the key is older, so a new one is generated at startup.
    let yesterday = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
    let cutoff =
        jiff::fmt::rfc2822::to_string(&yesterday.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
    let c = env.start_controller(&["--key-cutoff-time", &cutoff]).await;
    eventually("a key newer than the cutoff", TIMEOUT, || async {
        (env.key_secrets().await.len() == 2).then_some(())
    })
    .await;
    eventually("the new key served", TIMEOUT, || async {
        (c.cert().await? != cert.pem()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_key_secret_is_reported_and_skipped() {
    let env = Env::new().await;
    let (k, cert) = make_key(SystemTime::now() - Duration::from_secs(60));
    env.put_key_secret(
        "sealed-secrets-keybad01",
        b"not a key",
        cert.pem().as_bytes(),
        true,
    )
    .await;
    env.put_key_secret(
        "sealed-secrets-keygood1",
        k.to_pkcs1_pem().as_bytes(),
        cert.pem().as_bytes(),
        true,
    )
    .await;
    let mut c = env.start_controller(&[]).await;
    assert_eq!(c.cert().await.unwrap(), cert.pem());
    assert!(c.process.is_running());
    c.process
        .wait_for_log("skipping malformed key Secret", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    let log = c.process.log();
    assert!(log.contains("sealed-secrets-keybad01"), "{log}");
    assert!(!log.contains("not a key"));
    // It still unseals with the good key.
    let ss = seal(env.ns(), "s", &[("a", "b")], k.public_key(), json!({}));
    env.unseal(&ss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_watcher_adds_and_removes_keys_without_restart() {
    let env = Env::new().await;
    let (a, cert_a) = make_key(SystemTime::now() - Duration::from_secs(3600));
    env.put_key_secret(
        "sealed-secrets-keyaaaaa",
        a.to_pkcs1_pem().as_bytes(),
        cert_a.pem().as_bytes(),
        true,
    )
    .await;
    let c = env.start_controller(&[]).await;
    assert_eq!(c.cert().await.unwrap(), cert_a.pem());

    // A SealedSecret for a key the controller does not have yet fails...
    let (b, cert_b) = make_key(SystemTime::now() - Duration::from_secs(60));
    env.create_ss(&seal(
        env.ns(),
        "later",
        &[("a", "b")],
        b.public_key(),
        json!({}),
    ))
    .await;
    env.wait_event(env.ns(), "later", "ErrUnsealFailed").await;
    // ...until the key is added: it is picked up, becomes the newest, and the object unseals.
    env.put_key_secret(
        "sealed-secrets-keybbbbb",
        b.to_pkcs1_pem().as_bytes(),
        cert_b.pem().as_bytes(),
        true,
    )
    .await;
    eventually("key B served", TIMEOUT, || async {
        (c.cert().await? == cert_b.pem()).then_some(())
    })
    .await;
    env.wait_secret(env.ns(), "later").await;
    assert_eq!(c.metric("sealed_secrets_controller_keys_active").await, 2.0);

    // Relabelled away from `active`: removed, A is the newest again.
    let patch = json!({"metadata": {"labels": {KEY_LABEL: "compromised"}}});
    env.secrets(env.ctrl())
        .patch(
            "sealed-secrets-keybbbbb",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    eventually("key B removed", TIMEOUT, || async {
        (c.cert().await? == cert_a.pem()).then_some(())
    })
    .await;
    assert_eq!(c.metric("sealed_secrets_controller_keys_active").await, 1.0);
    // Never deleted from the API.
    assert!(
        env.secrets(env.ctrl())
            .get_opt("sealed-secrets-keybbbbb")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_survive_a_leader_kill() {
    let env = Env::new().await;
    let args = [
        "--leader-election=true",
        "--leader-election-lease-duration=4s",
    ];
    let a = env.start_controller_with(&args, false).await;
    let b = env.start_controller_with(&args, false).await;
    let leader_index = eventually("one leader", TIMEOUT, || async {
        let la = a.metric("sealed_secrets_controller_leader").await;
        let lb = b.metric("sealed_secrets_controller_leader").await;
        match (la as i64, lb as i64) {
            (1, 0) => Some(0),
            (0, 1) => Some(1),
            _ => None,
        }
    })
    .await;
    let (leader, follower) = if leader_index == 0 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // Only one key was generated (by the leader), and both replicas serve it.
    let cert = eventually("the leader's key", TIMEOUT, || async {
        leader.cert().await
    })
    .await;
    eventually("the follower to serve the same cert", TIMEOUT, || async {
        (follower.cert().await? == cert).then_some(())
    })
    .await;
    assert_eq!(env.key_secrets().await.len(), 1);
    let key = env.served_key(follower).await;
    env.unseal(&seal(env.ns(), "before", &[("a", "1")], &key, json!({})))
        .await;
    // The follower does not reconcile.
    assert_eq!(
        follower
            .metric("sealed_secrets_controller_unseal_requests_total")
            .await,
        0.0
    );
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), env.ctrl());
    let lease = leases.get("sealed-secrets-controller").await.unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap();

    // Kill the leader hard (no lease release): the follower takes over within the lease.
    leader.signal("KILL");
    let started = std::time::Instant::now();
    eventually("the follower to lead", Duration::from_secs(20), || async {
        (follower.metric("sealed_secrets_controller_leader").await == 1.0).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "takeover took {:?}",
        started.elapsed()
    );
    let lease = leases.get("sealed-secrets-controller").await.unwrap();
    assert_ne!(lease.spec.unwrap().holder_identity.unwrap(), holder);
    let (_, after) = env
        .unseal(&seal(env.ns(), "after", &[("a", "2")], &key, json!({})))
        .await;
    assert_eq!(data_of(&after, "a").as_deref(), Some("2"));
    assert_eq!(
        env.key_secrets().await.len(),
        1,
        "the new leader does not generate another key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_environment_variables() {
    let env = Env::new().await;
    let http = format!("127.0.0.1:{}", harness::cluster::free_port().unwrap());
    let metrics = format!("127.0.0.1:{}", harness::cluster::free_port().unwrap());
    let mut cmd = std::process::Command::new(controller_binary());
    cmd.env("KUBECONFIG", env.cluster.kubeconfig())
        .env("POD_NAMESPACE", env.ctrl())
        .env("SEALED_SECRETS_LISTEN_ADDR", &http)
        .env("SEALED_SECRETS_LISTEN_METRICS_ADDR", &metrics)
        .env("SEALED_SECRETS_KEY_SIZE", "2048")
        .env("SEALED_SECRETS_LEADER_ELECTION", "false")
        .env("SEALED_SECRETS_KEY_PREFIX", "from-env")
        .env("SEALED_SECRETS_CERT_CONFIGMAP", "")
        // The flag wins over the variable.
        .env("SEALED_SECRETS_MY_CN", "ignored")
        .args(["--my-cn", "from-flag", "--log-format=json"]);
    let process = harness::cluster::Process::spawn(cmd, env.cluster.temp_dir()).unwrap();
    let c = Controller {
        process,
        http,
        metrics,
    };
    let pem = eventually("a cert", TIMEOUT, || async {
        if harness::cluster::wait_for_port(&c.http, Duration::from_millis(100)).is_err() {
            return None;
        }
        c.cert().await
    })
    .await;
    let keys = env.key_secrets().await;
    assert!(
        keys[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("from-env")
    );
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), env.ctrl());
    assert!(
        cms.get_opt("sealed-secrets-cert").await.unwrap().is_none(),
        "empty --cert-configmap disables it"
    );
    let log = c.process.log();
    assert!(log.lines().any(|l| l.starts_with('{')), "json logs: {log}");
    // CN from the flag, not the variable.
    let der_has = |needle: &str| pem_contains_text(&pem, needle);
    assert!(der_has("from-flag") && !der_has("ignored"));
}

fn pem_contains_text(pem: &str, needle: &str) -> bool {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = sealed_secrets_crypto::decode_base64(&b64).unwrap();
    der.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// `kubeseal keys rotate` (the real binary) annotates the newest key Secret; the leader
/// generates a key at once, the CLI prints its fingerprint, the ConfigMap follows, and the
/// request left on the Secret never produces another key (not even after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeseal_keys_rotate_generates_a_key_once() {
    let env = Env::new().await;
    let mut c = env.start_controller(&["--key-renew-period=0"]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), env.ctrl());
    let cert1 = c.cert().await.unwrap();
    eventually("the cert ConfigMap", TIMEOUT, || async {
        cms.get_opt("sealed-secrets-cert")
            .await
            .unwrap()
            .filter(|cm| cm.data.as_ref().unwrap()["cert.pem"] == cert1)
    })
    .await;
    let before = env.key_secrets().await;
    assert_eq!(before.len(), 1);
    // No waiting here: the CLI itself stamps its request in a second after the newest key,
    // so a rotation asked for right after the key was made is still answered exactly once.

    let (ok, stdout, stderr) = run_kubeseal(
        &env,
        &[
            "keys",
            "rotate",
            "--controller-namespace",
            env.ctrl(),
            "--timeout",
            "90",
        ],
        b"",
    )
    .await;
    assert!(
        ok,
        "kubeseal keys rotate failed: {stderr}\n{}",
        c.process.log()
    );
    let fp = stdout.trim().to_owned();
    assert!(fp.starts_with("SHA256:"), "{stdout}");

    let after = env.key_secrets().await;
    assert_eq!(after.len(), 2);
    let new = after
        .iter()
        .find(|s| s.metadata.name != before[0].metadata.name)
        .unwrap();
    let new_cert = String::from_utf8(new.data.as_ref().unwrap()["tls.crt"].0.clone()).unwrap();
    assert_eq!(
        Certificate::from_pem(new_cert.as_bytes())
            .unwrap()
            .public_key()
            .fingerprint()
            .to_string(),
        fp
    );
    eventually("the new cert to be served", TIMEOUT, || async {
        (c.cert().await? == new_cert).then_some(())
    })
    .await;
    let cm = eventually("the ConfigMap to follow", TIMEOUT, || async {
        cms.get_opt("sealed-secrets-cert")
            .await
            .unwrap()
            .filter(|cm| cm.data.as_ref().unwrap()["cert.pem"] == new_cert)
    })
    .await;
    let certs =
        Certificate::all_from_pem(cm.data.as_ref().unwrap()["certs.pem"].as_bytes()).unwrap();
    assert_eq!(certs.len(), 2);

    // The request stays on the old key Secret (the CLI asked the newest one at the time).
    let old = env
        .secrets(env.ctrl())
        .get(before[0].metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert!(
        old.metadata
            .annotations
            .unwrap()
            .contains_key("sealed-secrets-rs.dev/rotate-requested-at")
    );
    // Barrier: a SealedSecret unsealed after the rotation shows the leader tasks ran on.
    let key = env.served_key(&c).await;
    env.unseal(&seal(env.ns(), "b1", &[("a", "1")], &key, json!({})))
        .await;
    c.process
        .wait_for_log("key rotation requested", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    assert_eq!(c.process.log().matches("key rotation requested").count(), 1);
    assert_eq!(env.key_secrets().await.len(), 2);

    // A restarted controller (no memory of the request) does not answer it again.
    c.process.stop();
    let mut c2 = env.start_controller(&["--key-renew-period=0"]).await;
    assert_eq!(c2.cert().await.unwrap(), new_cert);
    env.unseal(&seal(env.ns(), "b2", &[("a", "2")], &key, json!({})))
        .await;
    assert!(!c2.process.log().contains("key rotation requested"));
    assert_eq!(env.key_secrets().await.len(), 2);
    assert!(c2.process.is_running());
}
