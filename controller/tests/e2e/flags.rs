//! Flags and inputs not covered elsewhere: multi-recipient values sealed by the real
//! kubeseal, legacy `spec.data`, `--skip-recreate`, `--label-selector`,
//! `--all-namespaces=false`, `--additional-namespaces`, `--old-gc-behavior`.
//!
//! "Nothing happened" is always checked after a barrier: a later object that the same
//! controller did handle.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PropagationPolicy};
use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{Envelope, Scope};
use serde_json::json;

use crate::common::*;

async fn gone(env: &Env, ns: &str, name: &str) {
    let api = env.sealed(ns);
    eventually(&format!("SealedSecret {ns}/{name} gone"), TIMEOUT, || {
        let api = api.clone();
        async move { api.get_opt(name).await.unwrap().is_none().then_some(()) }
    })
    .await;
}

async fn absent(env: &Env, ns: &str, name: &str) -> bool {
    env.secrets(ns).get_opt(name).await.unwrap().is_none()
}

/// Two `--recipient-cert` files (the controller's and another): one multi-recipient
/// ciphertext per value, which the controller opens with its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_recipient_values_sealed_by_kubeseal_unseal() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("controller.pem");
    std::fs::write(&ours, c.cert().await.unwrap()).unwrap();
    let other =
        harness::cluster::workspace_root().join("tests/fixtures/upstream-vectors/cert-b.pem");
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "multi", "namespace": env.ns()},
        "stringData": {"user": "admin", "password": "s3cret"},
    });
    let (ok, stdout, stderr) = run_kubeseal(
        &env,
        &[
            "--recipient-cert",
            ours.to_str().unwrap(),
            "--recipient-cert",
            other.to_str().unwrap(),
            "-o",
            "json",
        ],
        secret.to_string().as_bytes(),
    )
    .await;
    assert!(ok, "kubeseal failed: {stderr}");
    let ss: SealedSecret = serde_json::from_str(&stdout).unwrap();
    let hint = &ss.metadata.annotations.as_ref().unwrap()["sealed-secrets-rs.dev/sealing-key"];
    assert_eq!(hint.split(',').count(), 2, "{hint}");
    let ct = sealed_secrets_crypto::decode_base64(ss.spec.encrypted_data.get("password").unwrap())
        .unwrap();
    match sealed_secrets_crypto::envelope(&ct).unwrap() {
        Envelope::Multi { recipients } => assert_eq!(recipients.len(), 2),
        other => panic!("expected a multi-recipient envelope, got {other:?}"),
    }
    let (_, s) = env.unseal(&ss).await;
    assert_eq!(data_of(&s, "user").as_deref(), Some("admin"));
    assert_eq!(data_of(&s, "password").as_deref(), Some("s3cret"));
    assert_eq!(
        c.metric("sealed_secrets_controller_key_values_opened_total")
            .await,
        2.0
    );
}

/// A v1 SealedSecret: the whole Secret as JSON, sealed into `spec.data`.
fn legacy(env: &Env, c_key: &sealed_secrets_crypto::PublicKey, name: &str) -> SealedSecret {
    let inner = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": env.ns(), "labels": {"v1": "yes"}},
        "data": {"foo": sealed_secrets_crypto::encode_base64(b"legacy")},
    });
    let ct = sealed_secrets_crypto::seal(
        c_key,
        &Scope::Strict.label(env.ns(), name),
        inner.to_string().as_bytes(),
    )
    .unwrap();
    let mut ss = SealedSecret::new(name, Default::default());
    ss.metadata.namespace = Some(env.ns().to_owned());
    ss.spec.data = Some(sealed_secrets_crypto::encode_base64(&ct));
    ss
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_v1_data_accepted_by_default_and_refused_when_disabled() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let (_, s) = env.unseal(&legacy(&env, &key, "v1")).await;
    assert_eq!(data_of(&s, "foo").as_deref(), Some("legacy"));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["v1"], "yes");
    c.process.stop();

    let _c = env
        .start_controller(&["--accept-deprecated-v1-data=false"])
        .await;
    env.create_ss(&legacy(&env, &key, "refused")).await;
    let ev = env.wait_event(env.ns(), "refused", "ErrUnsealFailed").await;
    assert!(
        ev.message
            .as_deref()
            .unwrap()
            .contains("deprecated 'data' field"),
        "{ev:?}"
    );
    let st = env
        .wait_ss_where(env.ns(), "refused", "status False", |ss| {
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
            .contains("flip the feature flag")
    );
    assert!(absent(&env, env.ns(), "refused").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_recreate_leaves_deleted_secrets_deleted() {
    let env = Env::new().await;
    let c = env.start_controller(&["--skip-recreate"]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    env.unseal(&seal(ns, "once", &[("a", "1")], &key, json!({})))
        .await;
    env.secrets(ns)
        .delete("once", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Secret deleted", TIMEOUT, || async {
        absent(&env, ns, "once").await.then_some(())
    })
    .await;
    // Barrier: a later SealedSecret is handled.
    env.unseal(&seal(ns, "barrier", &[("a", "1")], &key, json!({})))
        .await;
    assert!(
        absent(&env, ns, "once").await,
        "--skip-recreate recreated it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selector_limits_sealed_secrets_and_recreation() {
    let env = Env::new().await;
    let c = env.start_controller(&["--label-selector=team=a"]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    let labelled = |name: &str, team: &str| {
        let mut ss = seal(
            ns,
            name,
            &[("a", "1")],
            &key,
            json!({"metadata": {"labels": {"team": team}}}),
        );
        ss.metadata.labels = Some([("team".to_owned(), team.to_owned())].into());
        ss
    };
    env.create_ss(&labelled("other", "b")).await;
    env.create_ss(&seal(ns, "unlabelled", &[("a", "1")], &key, json!({})))
        .await;
    let (_, s) = env.unseal(&labelled("mine", "a")).await;
    assert!(absent(&env, ns, "other").await);
    assert!(absent(&env, ns, "unlabelled").await);
    // The Secret (labelled through the template) is watched too: deleted, it is recreated.
    env.delete_and_wait_recreated(ns, &s, "recreated").await;
    assert!(absent(&env, ns, "other").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_namespace_only_and_additional_namespaces() {
    let env = Env::new().await;
    let extra = format!("{}-extra", env.ns());
    let ignored = format!("{}-ignored", env.ns());
    env.create_namespace(&extra).await;
    env.create_namespace(&ignored).await;

    let mut c = env.start_controller(&["--all-namespaces=false"]).await;
    let key = env.served_key(&c).await;
    env.create_ss(&seal(env.ns(), "elsewhere", &[("a", "1")], &key, json!({})))
        .await;
    env.unseal(&seal(env.ctrl(), "own", &[("a", "1")], &key, json!({})))
        .await;
    assert!(absent(&env, env.ns(), "elsewhere").await);
    c.process.stop();

    let list = format!("{extra},does-not-exist");
    let mut c = env
        .start_controller(&["--additional-namespaces", &list])
        .await;
    env.create_ss(&seal(&ignored, "no", &[("a", "1")], &key, json!({})))
        .await;
    env.unseal(&seal(&extra, "yes", &[("a", "1")], &key, json!({})))
        .await;
    // The own namespace is always watched: `own` is reconciled again (digest match).
    eventually("the own namespace reconciled", TIMEOUT, || async {
        (c.metric("sealed_secrets_controller_unseal_requests_total")
            .await
            >= 2.0)
            .then_some(())
    })
    .await;
    assert!(absent(&env, &ignored, "no").await);
    assert!(absent(&env, env.ns(), "elsewhere").await);
    c.process
        .wait_for_log("additional namespace does not exist", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    let log = c.process.log();
    assert!(log.contains("does-not-exist"), "{log}");
}

/// Without `--old-gc-behavior` a Secret left behind (orphaning delete, or
/// `skip-set-owner-references`) stays; with it, the controller deletes what the deleted
/// SealedSecret produced, and never a foreign Secret of the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_gc_behavior_deletes_produced_secrets() {
    let env = Env::new().await;
    let ns = env.ns();
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    let skip = json!({"metadata": {"annotations": {"sealedsecrets.bitnami.com/skip-set-owner-references": "true"}}});

    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    for (name, extra) in [("orphaned", json!({})), ("unowned", skip.clone())] {
        env.unseal(&seal(ns, name, &[("a", "1")], &key, extra))
            .await;
        env.sealed(ns).delete(name, &orphan).await.unwrap();
        gone(&env, ns, name).await;
    }
    env.unseal(&seal(ns, "barrier1", &[("a", "1")], &key, json!({})))
        .await;
    assert!(!absent(&env, ns, "orphaned").await);
    assert!(!absent(&env, ns, "unowned").await);
    c.process.stop();

    let c = env.start_controller(&["--old-gc-behavior"]).await;
    // A foreign Secret with the name of a SealedSecret that is refused.
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("foreign".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    env.create_over(
        &foreign,
        &seal(ns, "foreign", &[("a", "1")], &key, json!({})),
    )
    .await;
    env.wait_event(ns, "foreign", "ErrUpdateFailed").await;
    for (name, extra) in [("orphaned2", json!({})), ("unowned2", skip)] {
        env.unseal(&seal(ns, name, &[("a", "1")], &key, extra))
            .await;
        env.sealed(ns).delete(name, &orphan).await.unwrap();
        eventually(
            &format!("{name} deleted by the controller"),
            TIMEOUT,
            || async { absent(&env, ns, name).await.then_some(()) },
        )
        .await;
    }
    env.sealed(ns)
        .delete("foreign", &DeleteParams::default())
        .await
        .unwrap();
    gone(&env, ns, "foreign").await;
    env.unseal(&seal(ns, "barrier2", &[("a", "1")], &key, json!({})))
        .await;
    assert!(
        !absent(&env, ns, "foreign").await,
        "a foreign Secret was deleted"
    );
    assert!(
        c.process
            .log()
            .contains("deleted Secret of deleted SealedSecret")
    );
}

/// pflag's rule, as upstream's controller: a flag given twice takes its last value
/// (manifests, Helm `extraArgs` and wrappers append flags after the defaults).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_flags_take_their_last_value() {
    let env = Env::new().await;
    let c = env
        .start_controller(&[
            "--key-prefix=first",
            "--key-prefix",
            "second",
            "--cert-configmap",
            "cm-first",
            "--cert-configmap=cm-second",
            "--label-selector=team=b",
            "--label-selector=team=a",
        ])
        .await;
    let keys = env.key_secrets().await;
    assert!(!keys.is_empty());
    for k in &keys {
        let name = k.metadata.name.as_deref().unwrap_or_default();
        assert!(name.starts_with("second"), "key Secret `{name}`");
    }
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(env.client.clone(), env.ctrl());
    eventually(
        "the cert ConfigMap of the last --cert-configmap",
        TIMEOUT,
        || {
            let cms = cms.clone();
            async move { cms.get_opt("cm-second").await.unwrap() }
        },
    )
    .await;
    assert!(cms.get_opt("cm-first").await.unwrap().is_none());
    // The last --label-selector: team=b is ignored, team=a (the barrier) is unsealed.
    let key = env.served_key(&c).await;
    let ns = env.ns();
    let labelled = |name: &str, team: &str| {
        let mut ss = seal(ns, name, &[("a", "1")], &key, json!({}));
        ss.metadata.labels = Some([("team".to_owned(), team.to_owned())].into());
        ss
    };
    env.create_ss(&labelled("b", "b")).await;
    env.unseal(&labelled("a", "a")).await;
    assert!(absent(&env, ns, "b").await);
}
