//! Post-quantum keys (`crates/crypto/FORMAT.md` §3, docs/design.md "Keys"): every key the
//! controller generates carries an age identity in its key Secret (`age.key`), its recipient
//! is published at `/v1/age-recipient.txt` and in the certificate ConfigMap, and values
//! sealed to it (alone or beside RSA values in one object) are unsealed; a rotation brings a
//! new identity while values sealed to the old one still open. Key Secrets without the field
//! (upstream's) stay RSA-only keys, and an unusable field costs only the post-quantum half.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use sealed_secrets_api::SealedSecret;
use sealed_secrets_api::seal::{AGE_KEY_FIELD, AGE_RECIPIENT_CONFIGMAP_KEY, AGE_RECIPIENT_PATH};
use sealed_secrets_crypto::{
    PqIdentity, PqRecipient, PublicKey, Scope, encode_base64, seal_multi, seal_pq,
};
use serde_json::json;

use crate::common::*;

/// The series of one format in `format_values_opened_total`.
pub(crate) fn opened(format: &str) -> String {
    format!("sealed_secrets_controller_format_values_opened_total{{format=\"{format}\"}}")
}

/// The value of the sample `series` (exact name and labels) in an exposition.
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

impl Controller {
    /// The recipient served at `/v1/age-recipient.txt`, checked to be one `age1pq1…` line of
    /// text; `None` on any other status.
    pub(crate) async fn recipient(&self) -> Option<PqRecipient> {
        let r = self.get(AGE_RECIPIENT_PATH).await;
        if r.status != 200 {
            return None;
        }
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{r:?}"
        );
        let text = r.body_text();
        assert!(
            text.starts_with("age1pq1") && text.ends_with('\n'),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
        Some(text.trim_end().parse().unwrap())
    }
}

/// One post-quantum value for `ns/name` in base64.
pub(crate) fn pq_value(r: &PqRecipient, scope: Scope, ns: &str, name: &str, value: &str) -> String {
    encode_base64(&seal_pq(&[r], &scope.label(ns, name), value.as_bytes()).unwrap())
}

/// `ns/name` with these already sealed items.
pub(crate) fn sealed_secret(ns: &str, name: &str, items: &[(&str, String)]) -> SealedSecret {
    let data: serde_json::Map<String, serde_json::Value> = items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"encryptedData": data},
    }))
    .unwrap()
}

/// The identity in a key Secret's `age.key`.
fn identity_of(key_secret: &Secret) -> PqIdentity {
    let line = &key_secret.data.as_ref().unwrap()[AGE_KEY_FIELD].0;
    let text = std::str::from_utf8(line).unwrap();
    assert!(text.starts_with("AGE-SECRET-KEY-PQ-1") && text.ends_with('\n'));
    text.trim_end().parse().unwrap()
}

/// The certificate ConfigMap's recipient once it equals `want` (`None`: once it has none).
async fn wait_configmap_recipient(env: &Env, want: Option<&PqRecipient>) {
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), env.ctrl());
    let want = want.map(|r| format!("{r}\n"));
    eventually("the ConfigMap's recipient", TIMEOUT, || async {
        let cm = cms.get_opt("sealed-secrets-cert").await.unwrap()?;
        let data = cm.data?;
        (data.contains_key("cert.pem") && data.get(AGE_RECIPIENT_CONFIGMAP_KEY) == want.as_ref())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_quantum_and_mixed_objects_unseal_with_the_published_recipient() {
    let env = Env::new().await;
    let mut c = env.start_controller(&["--key-renew-period=0"]).await;
    let ns = env.ns();

    // The generated key Secret holds the identity beside the RSA key; the endpoint and the
    // ConfigMap publish its recipient.
    let keys = env.key_secrets().await;
    assert_eq!(keys.len(), 1);
    let data = keys[0].data.as_ref().unwrap();
    assert!(data.contains_key("tls.key") && data.contains_key("tls.crt"));
    let identity = identity_of(&keys[0]);
    let r = c.recipient().await.expect("a recipient");
    assert_eq!(&r, identity.recipient());
    wait_configmap_recipient(&env, Some(&r)).await;

    // All post-quantum.
    let ss = sealed_secret(
        ns,
        "pq",
        &[
            ("user", pq_value(&r, Scope::Strict, ns, "pq", "admin")),
            ("password", pq_value(&r, Scope::Strict, ns, "pq", "hunter2")),
        ],
    );
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "user").as_deref(), Some("admin"));
    assert_eq!(data_of(&s, "password").as_deref(), Some("hunter2"));

    // Mixed: upstream's RSA format, our multi-recipient format and post-quantum in one object.
    let key: PublicKey = env.served_key(&c).await;
    let label = Scope::Strict.label(ns, "mixed");
    let ss = sealed_secret(
        ns,
        "mixed",
        &[
            ("rsa", seal_value(&key, Scope::Strict, ns, "mixed", "one")),
            (
                "multi",
                encode_base64(&seal_multi(&[&key], &label, b"two").unwrap()),
            ),
            ("pq", pq_value(&r, Scope::Strict, ns, "mixed", "three")),
        ],
    );
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "rsa").as_deref(), Some("one"));
    assert_eq!(data_of(&s, "multi").as_deref(), Some("two"));
    assert_eq!(data_of(&s, "pq").as_deref(), Some("three"));
    eventually("values counted per format", TIMEOUT, || async {
        let text = c.metrics_text().await;
        (sample(&text, &opened("post-quantum")) >= 3.0
            && sample(&text, &opened("rsa")) >= 1.0
            && sample(&text, &opened("rsa-multi")) >= 1.0)
            .then_some(())
    })
    .await;

    // Namespace-wide: another name in the namespace opens; moved to another namespace, it is
    // refused with a status that says so and does not leak the value.
    let other_ns = format!("{ns}-pq-other");
    env.create_namespace(&other_ns).await;
    let nw = pq_value(&r, Scope::NamespaceWide, ns, "", "namespaced-secret");
    let mut ss = sealed_secret(ns, "renamed", &[("v", nw.clone())]);
    ss.metadata.annotations = Some(BTreeMap::from([(
        "sealedsecrets.bitnami.com/namespace-wide".to_owned(),
        "true".to_owned(),
    )]));
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "v").as_deref(), Some("namespaced-secret"));
    let mut moved = ss.clone();
    moved.metadata.namespace = Some(other_ns.clone());
    let mut strict_moved = sealed_secret(
        &other_ns,
        "pq",
        &[("password", pq_value(&r, Scope::Strict, ns, "pq", "hunter2"))],
    );
    strict_moved.metadata.namespace = Some(other_ns.clone());
    for (name, ss) in [("renamed", moved), ("pq", strict_moved)] {
        env.create_ss(&ss).await;
        let ss = env
            .wait_ss_where(&other_ns, name, "Synced=False", |ss| {
                ss.status
                    .as_ref()
                    .is_some_and(|s| s.conditions.iter().any(|c| c.status == "False"))
            })
            .await;
        let status = serde_json::to_string(&ss.status).unwrap();
        assert!(status.contains("no key could decrypt"), "{status}");
        assert!(
            !status.contains("hunter2") && !status.contains("namespaced-secret"),
            "{status}"
        );
        assert!(
            env.secrets(&other_ns)
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
        );
    }

    // The census of values by format, refused objects included: pq 2, mixed 1+1+1,
    // renamed 1, and the two moved copies 1 each. A deleted object leaves it.
    let census = |rsa: f64, multi: f64, pq: f64| {
        let c = &c;
        async move {
            let text = c.metrics_text().await;
            let series =
                |f: &str| format!("sealed_secrets_controller_sealed_values{{format=\"{f}\"}}");
            let got = (
                sample(&text, &series("rsa")),
                sample(&text, &series("rsa-multi")),
                sample(&text, &series("post-quantum")),
            );
            (got == (rsa, multi, pq)).then_some(())
        }
    };
    eventually(
        "values by format: 1 rsa, 1 rsa-multi, 6 post-quantum",
        TIMEOUT,
        || census(1.0, 1.0, 6.0),
    )
    .await;
    env.sealed(ns)
        .delete("pq", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted object's 2 values gone", TIMEOUT, || {
        census(1.0, 1.0, 4.0)
    })
    .await;
    assert!(c.process.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_brings_a_new_identity_and_old_values_still_open() {
    let env = Env::new().await;
    let mut c = env.start_controller(&["--key-renew-period=0"]).await;
    let ns = env.ns();
    let r1 = c.recipient().await.expect("a recipient");
    let ss = sealed_secret(
        ns,
        "before",
        &[("v", pq_value(&r1, Scope::Strict, ns, "before", "first"))],
    );
    env.unseal(&ss).await;

    // Certificates' NotBefore and Secrets' creationTimestamp have one-second resolution: keys
    // made within one second tie, and after the restart below the first would stay newest
    // (§4.4). Not a wait for another process, so a plain sleep.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.signal("USR1");
    let keys = eventually("a key generated on SIGUSR1", TIMEOUT, || async {
        let keys = env.key_secrets().await;
        (keys.len() == 2).then_some(keys)
    })
    .await;
    let ids: Vec<PqIdentity> = keys.iter().map(identity_of).collect();
    assert_ne!(ids[0].recipient(), ids[1].recipient(), "a new identity");
    let r2 = eventually("the new recipient to be served", TIMEOUT, || async {
        c.recipient().await.filter(|r| *r != r1)
    })
    .await;
    assert!(ids.iter().any(|i| *i.recipient() == r2));
    wait_configmap_recipient(&env, Some(&r2)).await;

    // A value for the new key, and one sealed to the old recipient after the rotation.
    let ss = sealed_secret(
        ns,
        "after",
        &[
            ("new", pq_value(&r2, Scope::Strict, ns, "after", "second")),
            ("old", pq_value(&r1, Scope::Strict, ns, "after", "still")),
        ],
    );
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "new").as_deref(), Some("second"));
    assert_eq!(data_of(&s, "old").as_deref(), Some("still"));

    // `/v1/rotate` (kubeseal --re-encrypt) keeps a post-quantum value post-quantum, sealed
    // again to the newest identity, and an RSA value RSA.
    let key = env.served_key(&c).await;
    let ss = sealed_secret(
        ns,
        "rotated",
        &[
            ("pq", pq_value(&r1, Scope::Strict, ns, "rotated", "quantum")),
            (
                "rsa",
                seal_value(&key, Scope::Strict, ns, "rotated", "classic"),
            ),
        ],
    );
    let resp = c
        .post("/v1/rotate", &serde_json::to_vec(&ss).unwrap())
        .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let rotated: SealedSecret = serde_json::from_slice(&resp.body).unwrap();
    let value = |item: &str| {
        sealed_secrets_crypto::decode_base64(rotated.spec.encrypted_data.get(item).unwrap())
            .unwrap()
    };
    let newest = ids.iter().find(|i| *i.recipient() == r2).unwrap();
    let mut only_new = sealed_secrets_crypto::KeyRing::new();
    only_new.insert_pq(newest.clone());
    let opened = only_new
        .open(&Scope::Strict.label(ns, "rotated"), &value("pq"), &[])
        .expect("sealed to the newest identity");
    assert_eq!(opened.plaintext.as_bytes(), b"quantum");
    assert!(!sealed_secrets_crypto::is_pq(&value("rsa")));
    let (_, s) = env.unseal(&rotated).await;
    assert_eq!(data_of(&s, "pq").as_deref(), Some("quantum"));
    assert_eq!(data_of(&s, "rsa").as_deref(), Some("classic"));

    // A restart loads both identities from the key Secrets: a new object with one value for
    // each opens.
    c.process.stop();
    let c = env.start_controller(&["--key-renew-period=0"]).await;
    assert_eq!(c.recipient().await, Some(r2.clone()));
    let ss = sealed_secret(
        ns,
        "restarted",
        &[
            (
                "new",
                pq_value(&r2, Scope::Strict, ns, "restarted", "second"),
            ),
            (
                "old",
                pq_value(&r1, Scope::Strict, ns, "restarted", "first"),
            ),
        ],
    );
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "new").as_deref(), Some("second"));
    assert_eq!(data_of(&s, "old").as_deref(), Some("first"));
}

/// A key Secret as upstream (or an older version, or a restore) writes it, plus `extra`.
async fn put_key_secret_with(env: &Env, name: &str, extra: &[(&str, &[u8])]) -> Secret {
    let (k, cert) = make_key(SystemTime::now() - Duration::from_secs(60));
    let mut data = BTreeMap::from([
        (
            "tls.key".to_owned(),
            ByteString(k.to_pkcs1_pem().as_bytes().to_vec()),
        ),
        (
            "tls.crt".to_owned(),
            ByteString(cert.pem().as_bytes().to_vec()),
        ),
    ]);
    for (f, v) in extra {
        data.insert((*f).to_owned(), ByteString(v.to_vec()));
    }
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(env.ctrl().into()),
            labels: Some([(KEY_LABEL.to_owned(), "active".to_owned())].into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    env.secrets(env.ctrl())
        .create(&PostParams::default(), &s)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_key_serves_no_recipient_until_a_rotation() {
    let env = Env::new().await;
    let upstream = put_key_secret_with(&env, "sealed-secrets-keyupstr", &[]).await;
    let mut c = env.start_controller(&["--key-renew-period=0"]).await;
    let r = c.get(AGE_RECIPIENT_PATH).await;
    assert_eq!(r.status, 404, "{r:?}");
    let text = r.body_text();
    assert!(
        text.contains("rotate") && text.lines().count() == 1,
        "{text}"
    );
    wait_configmap_recipient(&env, None).await;
    let keys_pq = "sealed_secrets_controller_keys_post_quantum";
    assert_eq!(c.metric(keys_pq).await, 0.0);

    c.signal("USR1");
    let r = eventually("a recipient after the rotation", TIMEOUT, || async {
        c.recipient().await
    })
    .await;
    wait_configmap_recipient(&env, Some(&r)).await;
    eventually("one key with an identity counted", TIMEOUT, || async {
        (c.metric(keys_pq).await == 1.0).then_some(())
    })
    .await;
    // The upstream key Secret was not written to.
    let now = env
        .secrets(env.ctrl())
        .get("sealed-secrets-keyupstr")
        .await
        .unwrap();
    assert_eq!(
        now.metadata.resource_version,
        upstream.metadata.resource_version
    );
    assert!(!now.data.unwrap().contains_key(AGE_KEY_FIELD));
    c.process.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_identity_is_reported_and_the_rsa_key_still_unseals() {
    let env = Env::new().await;
    let garbage = b"AGE-SECRET-KEY-PQ-1NOTAKEYATALLXYZ\n";
    put_key_secret_with(&env, "sealed-secrets-keybadpq", &[(AGE_KEY_FIELD, garbage)]).await;
    let mut c = env.start_controller(&["--key-renew-period=0"]).await;
    c.process
        .wait_for_log("post-quantum identity of a key Secret skipped", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    let log = c.process.log();
    assert!(
        log.contains("sealed-secrets-keybadpq") && log.contains("`age.key`"),
        "{log}"
    );
    assert!(!log.contains("NOTAKEYATALL"), "the field is never quoted");
    assert_eq!(c.get(AGE_RECIPIENT_PATH).await.status, 404);
    let key = env.served_key(&c).await;
    let ns = env.ns();
    env.unseal(&seal(ns, "rsa", &[("a", "b")], &key, json!({})))
        .await;
    assert!(c.process.is_running());
}

/// Hostile post-quantum values (crates/crypto/FORMAT.md §3.5): thousands of stanzas, an
/// oversized header, a wrong-length `mlkem768x25519` stanza, a truncated payload, a forged
/// header MAC, and a value for another key. Each is refused, by unsealing (status and no
/// Secret) and by `/v1/verify` (409), in bounded time; the controller goes on unsealing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_post_quantum_values_are_refused_cleanly() {
    let env = Env::new().await;
    // Room for one verify request per value within the rate limit.
    let mut c = env
        .start_controller(&["--key-renew-period=0", "--rate-limit-burst=10"])
        .await;
    let ns = env.ns();
    let r = c.recipient().await.expect("a recipient");
    let label = Scope::Strict.label(ns, "hostile");
    let good = seal_pq(&[&r], &label, b"hunter2").unwrap();
    let intro = b"age-encryption.org/v1\n".as_slice();

    let mut stanzas = intro.to_vec();
    for _ in 0..5000 {
        stanzas.extend_from_slice(b"-> X\n\n");
    }
    stanzas.extend_from_slice(b"--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    let mut oversized = intro.to_vec();
    oversized.extend_from_slice(b"-> X\n");
    for _ in 0..(200 * 1024 / 64) {
        oversized.extend_from_slice(&[b'A'; 64]);
        oversized.push(b'\n');
    }
    let mut short_enc = intro.to_vec();
    short_enc.extend_from_slice(
        b"-> mlkem768x25519 AAAA\nAAAA\n--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    );
    let truncated = good[..good.len() - 10].to_vec();
    let mut forged = good.clone();
    let mac = forged.windows(4).position(|w| w == b"--- ").unwrap() + 5;
    forged[mac] = if forged[mac] == b'A' { b'B' } else { b'A' };
    let other = PqIdentity::generate().unwrap();
    let for_other = seal_pq(&[other.recipient()], &label, b"hunter2").unwrap();
    let values: [(&str, &[u8]); 6] = [
        ("stanzas", &stanzas),
        ("oversized", &oversized),
        ("short-enc", &short_enc),
        ("truncated", &truncated),
        ("forged-mac", &forged),
        ("other-key", &for_other),
    ];
    for (item, value) in values {
        let ss = sealed_secret(ns, "hostile", &[(item, encode_base64(value))]);
        let started = std::time::Instant::now();
        let r = c
            .post("/v1/verify", &serde_json::to_vec(&ss).unwrap())
            .await;
        assert_eq!(r.status, 409, "{item}: {r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{item}: bounded work"
        );
    }
    let items: Vec<(&str, String)> = values
        .iter()
        .map(|(item, v)| (*item, encode_base64(v)))
        .collect();
    env.create_ss(&sealed_secret(ns, "hostile", &items)).await;
    let ss = env
        .wait_ss_where(ns, "hostile", "Synced=False", |ss| {
            ss.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.status == "False"))
        })
        .await;
    let status = serde_json::to_string(&ss.status).unwrap();
    for (item, _) in values {
        assert!(status.contains(item), "every item named: {status}");
    }
    assert!(!status.contains("hunter2"), "{status}");
    assert!(env.secrets(ns).get_opt("hostile").await.unwrap().is_none());
    // Still unsealing.
    let ok = sealed_secret(
        ns,
        "fine",
        &[("v", pq_value(&r, Scope::Strict, ns, "fine", "ok"))],
    );
    let (_, s) = env.unseal(&ok).await;
    assert_eq!(data_of(&s, "v").as_deref(), Some("ok"));
    assert!(c.process.is_running());
}

/// The real `kubeseal --post-quantum` takes the recipient from the ConfigMap this controller
/// publishes (`--cert-from-configmap`, plain `get configmaps`), and this controller unseals
/// what it wrote: the two halves of the recipient contract, end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeseal_post_quantum_from_our_configmap_unseals() {
    let env = Env::new().await;
    let c = env.start_controller(&["--key-renew-period=0"]).await;
    let r = c.recipient().await.expect("a recipient");
    wait_configmap_recipient(&env, Some(&r)).await;
    let ns = env.ns();
    let (ok, fetched, stderr) = run_kubeseal(
        &env,
        &[
            "--controller-namespace",
            env.ctrl(),
            "--cert-from-configmap",
            "--fetch-recipient",
        ],
        b"",
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(fetched, format!("{r}\n"));
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: from-kubeseal\n  namespace: {ns}\nstringData:\n  password: hunter2\n"
    );
    let (ok, sealed, stderr) = run_kubeseal(
        &env,
        &[
            "--controller-namespace",
            env.ctrl(),
            "--cert-from-configmap",
            "--post-quantum",
            "-o",
            "json",
        ],
        secret.as_bytes(),
    )
    .await;
    assert!(ok, "{stderr}");
    let ss: SealedSecret = serde_json::from_str(&sealed).unwrap();
    let value = ss.spec.encrypted_data.get("password").unwrap();
    assert!(sealed_secrets_crypto::is_pq(
        &sealed_secrets_crypto::decode_base64(value).unwrap()
    ));
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "password").as_deref(), Some("hunter2"));
}
