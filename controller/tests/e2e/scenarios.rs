//! Upstream's controller integration scenarios (§8.1), plus restart without re-decryption
//! and the upstream-sealed vectors.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use sealed_secrets_api::annotations::{MANAGED, PATCH};
use sealed_secrets_crypto::{Certificate, PrivateKey, Scope};
use serde_json::json;

use crate::common::*;
use crate::unseal::owned_by;

/// (scope, namespace, name) of an upstream vector.
type VectorObject = (String, String, String);
/// (item, ciphertext, plaintext).
type VectorItem = (String, String, Vec<u8>);

fn existing_secret(
    ns: &str,
    name: &str,
    annotations: &[(&str, &str)],
    data: &[(&str, &str)],
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            labels: Some([("preexisting".to_owned(), "yes".to_owned())].into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_rename_append() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();

    // Create: data, template labels, status, event.
    let ss = seal(
        ns,
        "mysecret",
        &[("foo", "bar")],
        &key,
        json!({"metadata": {"labels": {"app": "x"}}}),
    );
    let (created, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "foo").as_deref(), Some("bar"));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "x");
    assert!(owned_by(&s, created.metadata.uid.as_deref().unwrap()));
    // Upstream writes the template's annotations and nothing else (here: none); ours keeps
    // its source digest in the SealedSecret's status instead.
    assert_eq!(s.metadata.annotations, None);
    let st = env
        .wait_ss_where(ns, "mysecret", "status Synced", |ss| {
            ss.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
        })
        .await;
    let status = st.status.unwrap();
    let cond = &status.conditions[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("Synced", "True")
    );
    assert_eq!(cond.last_transition_time, cond.last_update_time);
    assert_eq!(status.observed_generation, Some(1));
    assert!(
        status
            .source_digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:")),
        "status records the source digest: {status:?}"
    );
    env.wait_event(ns, "mysecret", "Unsealed").await;
    let first_update = cond.last_update_time.clone().unwrap();

    // Update with a new spec, at least a second later so the times differ.
    eventually("a new second", TIMEOUT, || async {
        (jiff::Timestamp::now().as_second() > first_update.0.as_second()).then_some(())
    })
    .await;
    let mut cur = env.sealed(ns).get("mysecret").await.unwrap();
    let ss2 = seal(ns, "mysecret", &[("foo", "baz")], &key, json!({}));
    cur.spec = ss2.spec;
    env.sealed(ns)
        .replace("mysecret", &PostParams::default(), &cur)
        .await
        .unwrap();
    env.wait_secret_where(ns, "mysecret", "updated data", |s| {
        data_of(s, "foo").as_deref() == Some("baz")
    })
    .await;
    let st = env
        .wait_ss_where(ns, "mysecret", "observedGeneration 2", |ss| {
            ss.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == Some(2))
        })
        .await;
    let cond = &st.status.as_ref().unwrap().conditions[0];
    assert_ne!(cond.last_transition_time, cond.last_update_time);

    // Renamed item key: items are not bound into the crypto.
    let mut cur = env.sealed(ns).get("mysecret").await.unwrap();
    let v = cur.spec.encrypted_data.remove("foo").unwrap();
    cur.spec.encrypted_data.insert("renamed", v);
    env.sealed(ns)
        .replace("mysecret", &PostParams::default(), &cur)
        .await
        .unwrap();
    env.wait_secret_where(ns, "mysecret", "renamed item", |s| {
        data_of(s, "renamed").as_deref() == Some("baz")
    })
    .await;

    // Appended item sealed raw with label ns/name.
    let mut cur = env.sealed(ns).get("mysecret").await.unwrap();
    cur.spec.encrypted_data.insert(
        "extra",
        seal_value(&key, Scope::Strict, ns, "mysecret", "more"),
    );
    env.sealed(ns)
        .replace("mysecret", &PostParams::default(), &cur)
        .await
        .unwrap();
    let s = env
        .wait_secret_where(ns, "mysecret", "appended item", |s| {
            data_of(s, "extra").as_deref() == Some("more")
        })
        .await;
    assert_eq!(data_of(&s, "renamed").as_deref(), Some("baz"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_and_patch_ownership() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    let secrets = env.secrets(ns);

    // managed: taken over, overwritten.
    let s = env
        .take_over(
            &existing_secret(ns, "managed", &[(MANAGED, "true")], &[("old", "1")]),
            &seal(ns, "managed", &[("foo", "bar")], &key, json!({})),
            "managed takeover",
        )
        .await;
    assert_eq!(data_of(&s, "foo").as_deref(), Some("bar"));
    assert_eq!(data_of(&s, "old"), None, "overwrite replaces data");
    assert!(
        s.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("preexisting"))
    );

    // managed + patch: ownership taken, merged.
    let s = env
        .take_over(
            &existing_secret(
                ns,
                "both",
                &[(MANAGED, "true"), (PATCH, "true")],
                &[("old", "1")],
            ),
            &seal(ns, "both", &[("foo", "bar")], &key, json!({})),
            "managed+patch",
        )
        .await;
    assert_eq!(data_of(&s, "foo").as_deref(), Some("bar"));
    assert_eq!(data_of(&s, "old").as_deref(), Some("1"));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["preexisting"], "yes");

    // patch only: merged, no ownership.
    env.create_over(
        &existing_secret(ns, "patched", &[(PATCH, "true")], &[("old", "1")]),
        &seal(ns, "patched", &[("foo", "bar")], &key, json!({})),
    )
    .await;
    let s = env
        .wait_secret_where(ns, "patched", "patch", |s| data_of(s, "foo").is_some())
        .await;
    assert_eq!(data_of(&s, "old").as_deref(), Some("1"));
    assert!(s.metadata.owner_references.is_none_or(|r| r.is_empty()));

    // patch on an empty Secret.
    let mut empty = existing_secret(ns, "empty", &[(PATCH, "true")], &[]);
    empty.data = None;
    env.create_over(
        &empty,
        &seal(ns, "empty", &[("foo", "bar")], &key, json!({})),
    )
    .await;
    let s = env
        .wait_secret_where(ns, "empty", "patch on empty", |s| {
            data_of(s, "foo").is_some()
        })
        .await;
    assert!(s.metadata.owner_references.is_none_or(|r| r.is_empty()));

    // Unowned without annotations: refused, reported.
    env.create_over(
        &existing_secret(ns, "foreign", &[], &[("mine", "1")]),
        &seal(ns, "foreign", &[("foo", "bar")], &key, json!({})),
    )
    .await;
    let ev = env.wait_event(ns, "foreign", "ErrUpdateFailed").await;
    assert!(
        ev.message
            .unwrap()
            .contains("already exists and is not managed by SealedSecret")
    );
    let st = env
        .wait_ss_where(ns, "foreign", "status False", |ss| {
            ss.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.status == "False"))
        })
        .await;
    assert!(
        st.status.unwrap().conditions[0]
            .message
            .as_deref()
            .unwrap()
            .contains("not managed")
    );
    let s = secrets.get("foreign").await.unwrap();
    assert_eq!(data_of(&s, "mine").as_deref(), Some("1"));
    assert_eq!(data_of(&s, "foo"), None);
    let m = c.metrics_text().await;
    assert!(m.contains(&format!("sealed_secrets_controller_unseal_errors_total{{reason=\"unmanaged\",namespace=\"{ns}\"}}")), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreation_of_deleted_secrets() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    let secrets = env.secrets(ns);

    // Owned: recreated.
    let (_, s) = env
        .unseal(&seal(ns, "owned", &[("foo", "bar")], &key, json!({})))
        .await;
    env.delete_and_wait_recreated(ns, &s, "recreated owned Secret")
        .await;

    // Unowned + managed: taken over, then recreated.
    let s = env
        .take_over(
            &existing_secret(ns, "managed", &[(MANAGED, "true")], &[("old", "1")]),
            &seal(ns, "managed", &[("foo", "bar")], &key, json!({})),
            "taken over",
        )
        .await;
    env.delete_and_wait_recreated(ns, &s, "recreated managed Secret")
        .await;

    // Patch-only: not recreated.
    env.create_over(
        &existing_secret(ns, "patchonly", &[(PATCH, "true")], &[("old", "1")]),
        &seal(ns, "patchonly", &[("foo", "bar")], &key, json!({})),
    )
    .await;
    env.wait_secret_where(ns, "patchonly", "patched", |s| data_of(s, "foo").is_some())
        .await;
    secrets
        .delete("patchonly", &DeleteParams::default())
        .await
        .unwrap();

    // Unowned without annotation: refused, and after deletion not recreated by a Secret event.
    env.create_over(
        &existing_secret(ns, "plain", &[], &[("old", "1")]),
        &seal(ns, "plain", &[("foo", "bar")], &key, json!({})),
    )
    .await;
    env.wait_event(ns, "plain", "ErrUpdateFailed").await;

    // Give the controller time to (wrongly) act on the deletion: a fresh owned Secret
    // deleted after it is our barrier.
    let (_, b) = env
        .unseal(&seal(ns, "barrier", &[("foo", "bar")], &key, json!({})))
        .await;
    env.delete_and_wait_recreated(ns, &b, "barrier recreated")
        .await;
    assert!(
        secrets.get_opt("patchonly").await.unwrap().is_none(),
        "patch-only Secret must not be recreated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_scopes_types_and_immutable() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    let other_ns = format!("{ns}-other");
    env.create_namespace(&other_ns).await;

    // Wrong key.
    let (wrong, _) = make_key(std::time::SystemTime::now());
    env.create_ss(&seal(
        ns,
        "wrongkey",
        &[("foo", "bar")],
        wrong.public_key(),
        json!({}),
    ))
    .await;
    let ev = env.wait_event(ns, "wrongkey", "ErrUnsealFailed").await;
    assert!(
        ev.message
            .as_deref()
            .unwrap()
            .starts_with("Failed to unseal: "),
        "{ev:?}"
    );
    assert!(
        ev.message
            .as_deref()
            .unwrap()
            .contains("no key could decrypt secret")
    );

    // Strict scope, wrong name / wrong namespace: no Secret.
    let mut ss = seal(ns, "right", &[("foo", "bar")], &key, json!({}));
    ss.metadata.name = Some("wrongname".into());
    env.create_ss(&ss).await;
    let mut ss = seal(ns, "wrongns", &[("foo", "bar")], &key, json!({}));
    ss.metadata.namespace = Some(other_ns.clone());
    env.create_ss(&ss).await;

    // Cluster-wide: any name and namespace.
    let cw =
        json!({"metadata": {"annotations": {"sealedsecrets.bitnami.com/cluster-wide": "true"}}});
    let mut ss = seal(ns, "right", &[("foo", "cw")], &key, cw.clone());
    ss.metadata.name = Some("cw-wrongname".into());
    env.create_ss(&ss).await;
    let mut ss = seal(ns, "cw-wrongns", &[("foo", "cw")], &key, cw);
    ss.metadata.namespace = Some(other_ns.clone());
    env.create_ss(&ss).await;

    // Namespace-wide: any name, not another namespace.
    let nw =
        json!({"metadata": {"annotations": {"sealedsecrets.bitnami.com/namespace-wide": "true"}}});
    let mut ss = seal(ns, "right", &[("foo", "nw")], &key, nw.clone());
    ss.metadata.name = Some("nw-wrongname".into());
    env.create_ss(&ss).await;
    let mut ss = seal(ns, "nw-wrongns", &[("foo", "nw")], &key, nw);
    ss.metadata.namespace = Some(other_ns.clone());
    env.create_ss(&ss).await;

    // Custom type and immutable.
    env.create_ss(&seal(
        ns,
        "docker",
        &[(".dockerconfigjson", "{}")],
        &key,
        json!({"type": "kubernetes.io/dockerconfigjson"}),
    ))
    .await;
    env.create_ss(&seal(
        ns,
        "frozen",
        &[("foo", "bar")],
        &key,
        json!({"immutable": true}),
    ))
    .await;

    assert_eq!(
        data_of(&env.wait_secret(ns, "cw-wrongname").await, "foo").as_deref(),
        Some("cw")
    );
    assert_eq!(
        data_of(&env.wait_secret(&other_ns, "cw-wrongns").await, "foo").as_deref(),
        Some("cw")
    );
    assert_eq!(
        data_of(&env.wait_secret(ns, "nw-wrongname").await, "foo").as_deref(),
        Some("nw")
    );
    assert_eq!(
        env.wait_secret(ns, "docker").await.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    assert_eq!(env.wait_secret(ns, "frozen").await.immutable, Some(true));
    env.wait_event(ns, "wrongname", "ErrUnsealFailed").await;
    env.wait_event(&other_ns, "wrongns", "ErrUnsealFailed")
        .await;
    env.wait_event(&other_ns, "nw-wrongns", "ErrUnsealFailed")
        .await;
    for (n, name) in [
        (ns, "wrongkey"),
        (ns, "wrongname"),
        (other_ns.as_str(), "wrongns"),
        (other_ns.as_str(), "nw-wrongns"),
    ] {
        assert!(
            env.secrets(n).get_opt(name).await.unwrap().is_none(),
            "{n}/{name} must not be produced"
        );
    }

    // Updating an immutable target.
    let mut cur = env.sealed(ns).get("frozen").await.unwrap();
    cur.spec = seal(
        ns,
        "frozen",
        &[("foo", "changed")],
        &key,
        json!({"immutable": true}),
    )
    .spec;
    env.sealed(ns)
        .replace("frozen", &PostParams::default(), &cur)
        .await
        .unwrap();
    let ev = env.wait_event(ns, "frozen", "ErrUpdateFailed").await;
    assert!(
        ev.message
            .unwrap()
            .contains("the target Secret is immutable")
    );
    env.wait_ss_where(ns, "frozen", "observedGeneration 2", |ss| {
        ss.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == Some(2))
    })
    .await;
    assert_eq!(
        data_of(&env.secrets(ns).get("frozen").await.unwrap(), "foo").as_deref(),
        Some("bar")
    );
}

#[test]
fn version_flag() {
    let out = std::process::Command::new(controller_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("controller version: v"), "{text}");
}

/// A value sealed by upstream's own crypto (fixtures), with upstream's key loaded as an
/// existing key Secret, becomes the right Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sealed_secret_with_upstream_key() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/upstream-vectors");
    let key_pem = std::fs::read(dir.join("key-a.pem")).unwrap();
    let cert_pem = std::fs::read(dir.join("cert-a.pem")).unwrap();
    let vectors: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("vectors.json")).unwrap()).unwrap();

    let env = Env::new().await;
    env.put_key_secret("sealed-secrets-keyupstr", &key_pem, &cert_pem, true)
        .await;
    let c = env.start_controller(&[]).await;
    // The existing key is used: no new key was generated.
    let served = Certificate::from_pem(c.cert().await.unwrap().as_bytes()).unwrap();
    assert_eq!(
        served.public_key().fingerprint(),
        PrivateKey::from_pem(&key_pem).unwrap().fingerprint()
    );
    assert_eq!(env.key_secrets().await.len(), 1);

    // Group the key-a cases by (scope, namespace, name).
    let mut objects: BTreeMap<VectorObject, Vec<VectorItem>> = BTreeMap::new();
    for case in vectors["cases"].as_array().unwrap() {
        if case["sealed_with"] != "key-a" {
            continue;
        }
        let k = (
            case["scope"].as_str().unwrap().to_owned(),
            case["namespace"].as_str().unwrap().to_owned(),
            case["name"].as_str().unwrap().to_owned(),
        );
        let plain =
            sealed_secrets_crypto::decode_base64(case["plaintext_b64"].as_str().unwrap()).unwrap();
        objects.entry(k).or_default().push((
            case["value"].as_str().unwrap().to_owned(),
            case["ciphertext_b64"].as_str().unwrap().to_owned(),
            plain,
        ));
    }
    assert!(
        objects
            .keys()
            .any(|(_, ns, name)| ns == "team-a" && name == "db-creds")
    );
    let mut namespaces = std::collections::BTreeSet::new();
    for (i, ((scope, ns, name), items)) in objects.iter().enumerate() {
        let scope: Scope = scope.parse().unwrap();
        // Cluster-wide/namespace-wide vectors may name any object; keep names unique.
        let (ns, name) = match scope {
            Scope::Strict => (ns.clone(), name.clone()),
            Scope::NamespaceWide => (ns.clone(), format!("nw-{i}")),
            Scope::ClusterWide => (env.ns().to_owned(), format!("cw-{i}")),
        };
        if namespaces.insert(ns.clone()) && ns != env.ns() {
            env.create_namespace(&ns).await;
        }
        let mut ss = sealed_secrets_api::SealedSecret::new(&name, Default::default());
        ss.metadata.namespace = Some(ns.clone());
        if let Some(a) = sealed_secrets_api::annotations::scope_annotation(scope) {
            ss.metadata.annotations = Some([(a.to_owned(), "true".to_owned())].into());
        }
        for (item, ct, _) in items {
            ss.spec.encrypted_data.insert(item.clone(), ct.clone());
        }
        let (_, s) = env.unseal(&ss).await;
        for (item, _, plain) in items {
            let got = s
                .data
                .as_ref()
                .unwrap()
                .get(item)
                .map(|b| b.0.clone())
                .unwrap_or_default();
            assert_eq!(&got, plain, "{ns}/{name} item {item}");
        }
    }
    // Every value opened with the one key (no hint: upstream ciphertexts carry none).
    let fp = PrivateKey::from_pem(&key_pem)
        .unwrap()
        .fingerprint()
        .to_string();
    let m = c.metrics_text().await;
    assert!(
        m.contains(&format!(
            "sealed_secrets_controller_key_values_opened_total{{fingerprint=\"{fp}\"}}"
        )),
        "{m}"
    );
}

/// A restarted controller finds every Secret already produced from the same generation and
/// keys, and decrypts nothing (counted through the RSA and per-key metrics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_does_not_decrypt_again() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    for i in 0..5 {
        env.create_ss(&seal(
            ns,
            &format!("s{i}"),
            &[("a", "1"), ("b", "2")],
            &key,
            json!({}),
        ))
        .await;
    }
    for i in 0..5 {
        env.wait_secret(ns, &format!("s{i}")).await;
    }
    eventually("10 values opened", TIMEOUT, || async {
        (c.metric("sealed_secrets_controller_key_values_opened_total")
            .await
            == 10.0)
            .then_some(())
    })
    .await;
    // The hint annotation makes it one RSA operation per value.
    assert_eq!(
        c.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        10.0
    );
    let status = c.process.stop().unwrap();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");

    let c2 = env.start_controller(&[]).await;
    eventually(
        "the restarted controller to reconcile all 5",
        TIMEOUT,
        || async {
            (c2.metric("sealed_secrets_controller_unseal_requests_total")
                .await
                >= 5.0)
                .then_some(())
        },
    )
    .await;
    eventually("5 digest matches in the log", TIMEOUT, || async {
        (c2.process.log().matches("source digest matches").count() >= 5).then_some(())
    })
    .await;
    assert_eq!(
        c2.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        0.0
    );
    assert_eq!(
        c2.metric("sealed_secrets_controller_key_values_opened_total")
            .await,
        0.0
    );

    // A spec change is decrypted again.
    let mut cur = env.sealed(ns).get("s0").await.unwrap();
    cur.spec = seal(ns, "s0", &[("a", "new")], &key, json!({})).spec;
    env.sealed(ns)
        .replace("s0", &PostParams::default(), &cur)
        .await
        .unwrap();
    env.wait_secret_where(ns, "s0", "re-decrypted", |s| {
        data_of(s, "a").as_deref() == Some("new")
    })
    .await;
    assert_eq!(
        c2.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        1.0
    );
}
