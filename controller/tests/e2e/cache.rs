//! What the controller keeps and where: a metadata-only SealedSecret cache (memory bounded
//! whatever tenants create), the size limit, and the source digest in the SealedSecret's
//! status rather than on the Secret (docs/design.md, "What the controller keeps").

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::PostParams;
use sealed_secrets_api::SealedSecret;
use sealed_secrets_api::annotations::SOURCE_DIGEST;
use sealed_secrets_controller::reconcile::legacy_source_digest;
use sealed_secrets_crypto::{Fingerprint, PublicKey, Scope};
use serde_json::json;

use harness::hostile_templates::peak_rss;

use crate::common::*;
use crate::post_quantum::{opened, pq_value, sample, sealed_secret};

/// A value of `len` bytes that differs per object (so a mix-up between objects shows).
fn big_value(i: usize, len: usize) -> String {
    let head = format!("object-{i:03}:");
    let fill = char::from(b'a' + u8::try_from(i % 26).unwrap());
    let mut v = head;
    v.extend(std::iter::repeat_n(fill, len - v.len()));
    v
}

/// Sealed for `ns/name` with one item `v` of `value`.
fn sealed_with(ns: &str, name: &str, value: &str, key: &PublicKey) -> SealedSecret {
    seal(ns, name, &[("v", value)], key, json!({}))
}

/// Each Secret holds exactly its object's value (compared by length and content).
async fn assert_secrets(env: &Env, ns: &str, n: usize, len: usize) {
    for i in 0..n {
        let name = format!("big{i}");
        let s = env.wait_secret(ns, &name).await;
        let got = s.data.as_ref().and_then(|d| d.get("v")).unwrap();
        assert!(
            got.0.len() == len && got.0 == big_value(i, len).as_bytes(),
            "Secret {ns}/{name} holds the wrong value ({} bytes)",
            got.0.len()
        );
    }
}

/// 60 SealedSecrets of 1.33 MB each (one 1,000,000-byte value: what one tenant may create)
/// used to take a controller that caches whole objects from about 24 MB to 123 MB peak RSS;
/// about 200 of them passed a 256 MiB limit, and each restart listed them all again. With
/// the metadata-only cache, the peak stays bounded by the reconciles running at once
/// (`--concurrency`), not by the number of objects, both while unsealing them and at a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sealed_secrets_do_not_fill_the_controllers_memory() {
    const N: usize = 60;
    const LEN: usize = 1_000_000;
    // Idle (about 20 MiB) plus a few reconciles of one large object each: far below what
    // 60 cached objects of 1.33 MB take (80 MB on their own).
    const PEAK_LIMIT: u64 = 80 * 1024 * 1024;
    let env = Env::new().await;
    let c = env.start_controller(&["--concurrency", "2"]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    for i in 0..N {
        let ss = sealed_with(ns, &format!("big{i}"), &big_value(i, LEN), &key);
        let size = serde_json::to_vec(&ss).unwrap().len();
        assert!(size > 1_300_000, "a large object: {size} bytes");
        env.create_ss(&ss).await;
    }
    eventually("60 Secrets", Duration::from_secs(300), || async {
        let have = env
            .secrets(ns)
            .list_metadata(&Default::default())
            .await
            .unwrap()
            .items
            .len();
        (have >= N).then_some(())
    })
    .await;
    assert_secrets(&env, ns, N, LEN).await;
    let first = peak_rss(c.pid()).unwrap();
    println!("peak RSS while unsealing {N} objects of 1.33 MB: {first} bytes");
    assert!(
        first < PEAK_LIMIT,
        "peak RSS {first} bytes while unsealing {N} large SealedSecrets (limit {PEAK_LIMIT})"
    );

    // A restart lists them all again (and checks each against its status digest).
    let mut c = c;
    assert!(c.process.stop().unwrap().success());
    let c2 = env.start_controller(&["--concurrency", "2"]).await;
    eventually(
        "the restarted controller to reconcile all 60",
        Duration::from_secs(120),
        || async {
            (c2.metric("sealed_secrets_controller_unseal_requests_total")
                .await
                >= N as f64)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        c2.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        0.0,
        "a warm restart decrypts nothing"
    );
    let second = peak_rss(c2.pid()).unwrap();
    println!("peak RSS of a restart over {N} objects of 1.33 MB: {second} bytes");
    assert!(
        second < PEAK_LIMIT,
        "peak RSS {second} bytes restarting over {N} large SealedSecrets (limit {PEAK_LIMIT})"
    );
    assert_secrets(&env, ns, N, LEN).await;
}

/// A SealedSecret above `--max-sealed-secret-size` is not processed: Synced=False and a
/// Warning Event name the limit; one below it is unsealed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_secrets_above_the_size_limit_are_refused_naming_the_limit() {
    let env = Env::new().await;
    let c = env
        .start_controller(&["--max-sealed-secret-size=100000"])
        .await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    env.create_ss(&sealed_with(ns, "large", &"x".repeat(100_000), &key))
        .await;
    env.create_ss(&sealed_with(ns, "small", "fine", &key)).await;
    let ss = env
        .wait_ss_where(ns, "large", "Synced=False", |ss| {
            ss.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.status == "False"))
        })
        .await;
    let message = ss.status.unwrap().conditions[0].message.clone().unwrap();
    assert!(
        message.contains("above this controller's limit of 100000 bytes")
            && message.contains("--max-sealed-secret-size"),
        "{message}"
    );
    let event = env.wait_event(ns, "large", "ErrUnsealFailed").await;
    assert!(
        event
            .message
            .as_deref()
            .is_some_and(|m| m.contains("--max-sealed-secret-size")),
        "{event:?}"
    );
    let small = env.wait_secret(ns, "small").await;
    assert_eq!(data_of(&small, "v").as_deref(), Some("fine"));
    assert!(
        env.secrets(ns).get_opt("large").await.unwrap().is_none(),
        "no Secret from a refused object"
    );
    // Not retried: one attempt, one Event.
    assert_eq!(
        c.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        1.0
    );
}

/// The fingerprints a recorded digest lists.
fn digest_keys(d: &str) -> BTreeSet<Fingerprint> {
    d.split_once(";keys=")
        .unwrap()
        .1
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| k.parse().unwrap())
        .collect()
}

/// Secrets written by an older version of this controller carry the
/// `sealed-secrets-rs.dev/source-digest` annotation (and the SealedSecret's status no
/// digest). The first start of this version trusts that annotation (nothing is decrypted),
/// removes it from the Secret, and records the digest in the status instead; a later
/// restart needs nothing from the Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_annotation_of_older_versions_is_removed_without_decrypting() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    env.create_ss(&seal(
        ns,
        "old",
        &[("a", "1")],
        &key,
        json!({"metadata": {"annotations": {"team": "x"}}}),
    ))
    .await;
    let ss = env
        .wait_ss_where(ns, "old", "a recorded digest", |ss| {
            ss.status
                .as_ref()
                .is_some_and(|s| s.source_digest.is_some())
        })
        .await;
    assert!(c.process.stop().unwrap().success());

    // What an older version left: the digest on the Secret, none in the status.
    let recorded = ss.status.as_ref().unwrap().source_digest.clone().unwrap();
    let legacy = legacy_source_digest(&ss, &digest_keys(&recorded));
    let mut secret = env.secrets(ns).get("old").await.unwrap();
    assert_eq!(
        secret.metadata.annotations,
        Some([("team".to_owned(), "x".to_owned())].into()),
        "exactly the template's annotations"
    );
    secret
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SOURCE_DIGEST.to_owned(), legacy);
    env.secrets(ns)
        .replace("old", &PostParams::default(), &secret)
        .await
        .unwrap();
    let mut old = env.sealed(ns).get("old").await.unwrap();
    old.status.as_mut().unwrap().source_digest = None;
    env.sealed(ns)
        .replace_status("old", &PostParams::default(), &old)
        .await
        .unwrap();

    let c2 = env.start_controller(&[]).await;
    let s = env
        .wait_secret_where(ns, "old", "the legacy annotation removed", |s| {
            s.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| !a.contains_key(SOURCE_DIGEST))
        })
        .await;
    assert_eq!(
        s.metadata.annotations,
        Some([("team".to_owned(), "x".to_owned())].into())
    );
    assert_eq!(data_of(&s, "a").as_deref(), Some("1"));
    let st = env
        .wait_ss_where(ns, "old", "the digest back in the status", |ss| {
            ss.status
                .as_ref()
                .is_some_and(|s| s.source_digest.is_some())
        })
        .await;
    assert_eq!(
        st.status.unwrap().source_digest.as_deref(),
        Some(recorded.as_str()),
        "the same Secret, the same keys: the same digest"
    );
    assert_eq!(
        c2.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        0.0,
        "the older version's annotation saved the decryption"
    );
}

/// A Secret deleted and created again by someone else (with `managed`) is not the one the
/// status digest names: its data is decrypted for again, not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_secret_is_not_trusted_by_the_digest() {
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns();
    env.create_ss(&seal(ns, "r", &[("a", "right")], &key, json!({})))
        .await;
    env.wait_ss_where(ns, "r", "a recorded digest", |ss| {
        ss.status
            .as_ref()
            .is_some_and(|s| s.source_digest.is_some())
    })
    .await;
    assert!(c.process.stop().unwrap().success());
    let old = env.secrets(ns).get("r").await.unwrap();
    env.secrets(ns)
        .delete("r", &Default::default())
        .await
        .unwrap();
    let mut forged = k8s_openapi::api::core::v1::Secret::default();
    forged.metadata.name = Some("r".into());
    forged.metadata.annotations = Some(
        [(
            sealed_secrets_api::annotations::MANAGED.to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    forged.data = Some([("a".to_owned(), k8s_openapi::ByteString(b"planted".to_vec()))].into());
    eventually("the old Secret gone", TIMEOUT, || async {
        env.secrets(ns)
            .get_opt("r")
            .await
            .unwrap()
            .filter(|s| s.metadata.uid == old.metadata.uid)
            .is_none()
            .then_some(())
    })
    .await;
    env.secrets(ns)
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    let c2 = env.start_controller(&[]).await;
    env.wait_secret_where(ns, "r", "the right value back", |s| {
        data_of(s, "a").as_deref() == Some("right")
    })
    .await;
    assert!(
        c2.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await
            >= 1.0
    );
}

/// A restart over SealedSecrets already in sync reads none of them again: no GET of a
/// SealedSecret or of a Secret in their namespace (counted by the stand-in, or by the real
/// API server's audit log), no decryption, and each still counts as handled and Synced in the
/// metrics. Objects that did change while the controller was down are handled as before: a
/// new generation is unsealed again, a deleted Secret is produced again, a Secret whose
/// labels were edited by hand gets the template's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_no_synced_object_again() {
    const N: usize = 12;
    // Post-quantum objects beside them: their Secrets record the identity's fingerprint.
    const P: usize = 3;
    let env = Env::on(harness::cluster::Cluster::start_counting_gets().unwrap()).await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns().to_owned();
    let other = env.cluster.namespace("e2e-changed").await.unwrap();
    let changed = other.name().to_owned();
    let labelled = json!({"metadata": {"labels": {"team": "x"}}});
    for i in 0..N {
        let v = format!("value-{i}");
        env.create_ss(&seal(
            &ns,
            &format!("s{i}"),
            &[("a", &v), ("b", "2")],
            &key,
            labelled.clone(),
        ))
        .await;
    }
    let recipient = c.recipient().await.expect("a post-quantum recipient");
    for i in 0..P {
        let name = format!("p{i}");
        let v = pq_value(&recipient, Scope::Strict, &ns, &name, &format!("pq-{i}"));
        env.create_ss(&sealed_secret(&ns, &name, &[("a", v)])).await;
    }
    for name in ["edited", "deleted", "relabelled"] {
        env.create_ss(&seal(
            &changed,
            name,
            &[("a", "before")],
            &key,
            labelled.clone(),
        ))
        .await;
    }
    let synced = |ns: String, n: usize| {
        let api = env.sealed(&ns);
        async move {
            let list = api.list(&Default::default()).await.unwrap().items;
            (list.len() == n
                && list.iter().all(|ss| {
                    ss.status.as_ref().is_some_and(|s| {
                        s.source_digest.is_some() && s.observed_generation == ss.metadata.generation
                    })
                }))
            .then_some(())
        }
    };
    eventually(
        "every SealedSecret synced",
        Duration::from_secs(120),
        || synced(ns.clone(), N + P),
    )
    .await;
    eventually("the changed namespace synced", TIMEOUT, || {
        synced(changed.clone(), 3)
    })
    .await;
    assert!(c.process.stop().unwrap().success());

    // While the controller is down: a new generation, a deleted Secret, labels edited.
    let mut edited = env.sealed(&changed).get("edited").await.unwrap();
    edited.spec = seal(
        &changed,
        "edited",
        &[("a", "after")],
        &key,
        labelled.clone(),
    )
    .spec;
    env.sealed(&changed)
        .replace("edited", &PostParams::default(), &edited)
        .await
        .unwrap();
    env.secrets(&changed)
        .delete("deleted", &Default::default())
        .await
        .unwrap();
    let mut relabelled = env.secrets(&changed).get("relabelled").await.unwrap();
    relabelled.metadata.labels = Some([("team".to_owned(), "y".to_owned())].into());
    env.secrets(&changed)
        .replace("relabelled", &PostParams::default(), &relabelled)
        .await
        .unwrap();

    let gets = |resource: &str| env.cluster.object_gets(resource, &ns);
    let before = (gets("sealedsecrets"), gets("secrets"));
    assert!(
        before.0.is_some() && before.1.is_some(),
        "this cluster counts GETs"
    );
    let c2 = env.start_controller(&[]).await;
    env.wait_secret_where(&changed, "edited", "the new generation unsealed", |s| {
        data_of(s, "a").as_deref() == Some("after")
    })
    .await;
    env.wait_secret_where(&changed, "deleted", "the deleted Secret back", |s| {
        data_of(s, "a").as_deref() == Some("before")
    })
    .await;
    env.wait_secret_where(&changed, "relabelled", "the template's labels back", |s| {
        s.metadata.labels == Some([("team".to_owned(), "x".to_owned())].into())
    })
    .await;
    eventually("every object accounted for", TIMEOUT, || async {
        let handled = c2
            .metric("sealed_secrets_controller_unseal_requests_total")
            .await;
        let synced = c2
            .metrics_text()
            .await
            .lines()
            .filter(|l| {
                l.starts_with("sealed_secrets_controller_condition_info{")
                    && l.contains(&format!("namespace=\"{ns}\""))
                    && l.ends_with(" 1")
            })
            .count();
        (handled >= (N + P + 3) as f64 && synced == N + P).then_some(())
    })
    .await;
    let after = (gets("sealedsecrets"), gets("secrets"));
    assert_eq!(
        (
            after.0.unwrap() - before.0.unwrap(),
            after.1.unwrap() - before.1.unwrap()
        ),
        (0, 0),
        "GETs of SealedSecrets and of Secrets in the namespace of objects in sync"
    );
    assert_eq!(
        c2.metric("sealed_secrets_controller_rsa_decryptions_total")
            .await,
        2.0,
        "decrypted: the new generation and the deleted Secret only (one value each)"
    );
    assert_eq!(
        sample(&c2.metrics_text().await, &opened("post-quantum")),
        0.0,
        "post-quantum values opened again after the restart"
    );
    for i in 0..N {
        let s = env.secrets(&ns).get(&format!("s{i}")).await.unwrap();
        assert_eq!(data_of(&s, "a"), Some(format!("value-{i}")));
    }
    for i in 0..P {
        let s = env.secrets(&ns).get(&format!("p{i}")).await.unwrap();
        assert_eq!(data_of(&s, "a"), Some(format!("pq-{i}")));
    }
}
