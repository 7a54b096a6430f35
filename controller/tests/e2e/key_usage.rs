//! Which keys the SealedSecrets still need (docs/design.md "Keys an object needs"), the same
//! answer three ways: the controller's gauge `sealed_objects{fingerprint}`, kubeseal's `keys
//! list` OBJECTS (from the keys each object's status records) and `keys retire`, which deletes
//! a key only when nothing needs it. Checked against the true counts (what the test sealed)
//! after creates, an update, a delete, a rotation and a re-encryption of every object.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{DeleteParams, Patch, PatchParams};
use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{PqRecipient, PublicKey, Scope, encode_base64};
use serde_json::json;

use crate::common::*;
use crate::post_quantum::{pq_value, sealed_secret};

/// The two names of one key: its RSA public key and its post-quantum recipient.
struct KeyNames {
    rsa: PublicKey,
    pq: PqRecipient,
}

impl KeyNames {
    fn rsa_fp(&self) -> String {
        self.rsa.fingerprint().to_string()
    }
    fn pq_fp(&self) -> String {
        self.pq.fingerprint().to_string()
    }
}

/// The key the controller serves now.
async fn served(env: &Env, c: &Controller) -> KeyNames {
    KeyNames {
        rsa: env.served_key(c).await,
        pq: c.recipient().await.expect("a recipient"),
    }
}

/// Every sample of `sealed_objects`: fingerprint (or `unknown`) -> objects.
fn census(text: &str) -> BTreeMap<String, u64> {
    let prefix = "sealed_secrets_controller_sealed_objects{fingerprint=\"";
    text.lines()
        .filter_map(|l| {
            let (fp, rest) = l.strip_prefix(prefix)?.split_once("\"}")?;
            Some((fp.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// The true counts: every object's keys as sealed (`None`: it does not open).
fn truth(objects: &BTreeMap<&str, Option<BTreeSet<String>>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for keys in objects.values() {
        match keys {
            Some(keys) => {
                for k in keys {
                    *out.entry(k.clone()).or_insert(0) += 1;
                }
            }
            None => *out.entry("unknown".to_owned()).or_insert(0) += 1,
        }
    }
    out
}

async fn wait_census(c: &Controller, want: &BTreeMap<String, u64>, what: &str) {
    eventually(what, TIMEOUT, || async {
        (census(&c.metrics_text().await) == *want).then_some(())
    })
    .await;
}

/// `kubeseal keys ARGS` against the test's controller namespace.
async fn keys(env: &Env, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--controller-namespace", env.ctrl()]);
    run_kubeseal(env, &all, b"").await
}

/// `keys list`'s OBJECTS per fingerprint.
fn listed_objects(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((cols.first()?.to_string(), cols.get(5)?.to_string()))
        })
        .collect()
}

/// Replaces the values of `ns/name` (a merge patch of the spec: no conflict with the
/// controller's status writes).
async fn set_values(env: &Env, ns: &str, name: &str, ss: &SealedSecret) {
    let patch = json!({"spec": {"encryptedData": ss.spec.encrypted_data}});
    env.sealed(ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_per_key_agree_with_the_truth_and_retire_waits_for_none() {
    let env = Env::new().await;
    let c = env.start_controller(&["--key-renew-period=0"]).await;
    let ns = env.ns();
    let a = served(&env, &c).await;
    let rsa = |k: &KeyNames, name: &str| seal_value(&k.rsa, Scope::Strict, ns, name, "v");
    let pq = |k: &KeyNames, name: &str| pq_value(&k.pq, Scope::Strict, ns, name, "v");
    let set = |fps: &[String]| Some(fps.iter().cloned().collect::<BTreeSet<_>>());

    // Creates: RSA-only, post-quantum-only, mixed, and one that does not open (one item for
    // the key, one broken) and so has no record of its keys.
    let mut objects: BTreeMap<&str, Option<BTreeSet<String>>> = BTreeMap::new();
    for name in ["rsa-0", "rsa-1", "rsa-2"] {
        env.create_ss(&sealed_secret(ns, name, &[("a", rsa(&a, name))]))
            .await;
        objects.insert(name, set(&[a.rsa_fp()]));
    }
    for name in ["pq-0", "pq-1"] {
        env.create_ss(&sealed_secret(ns, name, &[("a", pq(&a, name))]))
            .await;
        objects.insert(name, set(&[a.pq_fp()]));
    }
    let mixed = [("r", rsa(&a, "mixed")), ("p", pq(&a, "mixed"))];
    env.create_ss(&sealed_secret(ns, "mixed", &mixed)).await;
    objects.insert("mixed", set(&[a.rsa_fp(), a.pq_fp()]));
    let broken = encode_base64(b"not a sealed value at all, but base64");
    let half = [("a", rsa(&a, "half")), ("b", broken)];
    env.create_ss(&sealed_secret(ns, "half", &half)).await;
    objects.insert("half", None);
    wait_census(&c, &truth(&objects), "the census after the creates").await;

    // keys list: 6 objects record key A (either name); `half` is counted apart.
    let (ok, out, err) = keys(&env, &["list"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        listed_objects(&out).get(&a.rsa_fp()).map(String::as_str),
        Some("6"),
        "{out}"
    );
    assert!(
        err.contains("1 SealedSecret(s) have no current record"),
        "{err}"
    );
    // The only key is the newest: never retired.
    let (ok, _, err) = keys(&env, &["retire", &a.rsa_fp(), "--yes"]).await;
    assert!(!ok && err.contains("newest active key"), "{err}");

    // An update (rsa-2 becomes post-quantum) and a delete (pq-0).
    set_values(
        &env,
        ns,
        "rsa-2",
        &sealed_secret(ns, "rsa-2", &[("a", pq(&a, "rsa-2"))]),
    )
    .await;
    objects.insert("rsa-2", set(&[a.pq_fp()]));
    env.sealed(ns)
        .delete("pq-0", &DeleteParams::default())
        .await
        .unwrap();
    objects.remove("pq-0");
    wait_census(
        &c,
        &truth(&objects),
        "the census after an update and a delete",
    )
    .await;

    // A rotation: key B. Key A is still needed by every object, `half` included (its record
    // is missing, so kubeseal tries the key on it).
    let (ok, new_fp, err) = keys(&env, &["rotate"]).await;
    assert!(ok, "{err}");
    let b = eventually("the new key served", TIMEOUT, || async {
        let k = served(&env, &c).await;
        (k.rsa_fp() == new_fp.trim() && k.pq_fp() != a.pq_fp()).then_some(k)
    })
    .await;
    let (ok, _, err) = keys(&env, &["retire", &a.rsa_fp(), "--yes"]).await;
    assert!(!ok, "{err}");
    assert!(
        err.contains("6 SealedSecret(s) in the cluster still need key"),
        "{err}"
    );
    assert!(err.contains(&format!("`{ns}/half` needs")), "{err}");

    // Re-encrypt every object that opens (`/v1/rotate`, as kubeseal --re-encrypt): each
    // value goes to B in its own format.
    for name in ["rsa-0", "rsa-1", "rsa-2", "pq-1", "mixed"] {
        let current = env.sealed(ns).get(name).await.unwrap();
        let r = c
            .post("/v1/rotate", &serde_json::to_vec(&current).unwrap())
            .await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let rotated: SealedSecret = serde_json::from_slice(&r.body).unwrap();
        set_values(&env, ns, name, &rotated).await;
    }
    objects.insert("rsa-0", set(&[b.rsa_fp()]));
    objects.insert("rsa-1", set(&[b.rsa_fp()]));
    objects.insert("rsa-2", set(&[b.pq_fp()]));
    objects.insert("pq-1", set(&[b.pq_fp()]));
    objects.insert("mixed", set(&[b.rsa_fp(), b.pq_fp()]));
    let want = truth(&objects);
    assert!(!want.contains_key(&a.rsa_fp()) && !want.contains_key(&a.pq_fp()));
    wait_census(&c, &want, "the census after the re-encryption").await;

    // Only `half` needs A now, found by trying the key.
    let (ok, _, err) = keys(&env, &["retire", &a.pq_fp(), "--yes"]).await;
    assert!(!ok && err.contains("1 SealedSecret(s)"), "{err}");
    env.sealed(ns)
        .delete("half", &DeleteParams::default())
        .await
        .unwrap();
    objects.remove("half");
    wait_census(&c, &truth(&objects), "the census after deleting half").await;
    let (ok, out, _) = keys(&env, &["list"]).await;
    assert!(ok);
    let listed = listed_objects(&out);
    assert_eq!(
        listed.get(&a.rsa_fp()).map(String::as_str),
        Some("0"),
        "{out}"
    );
    assert_eq!(
        listed.get(&b.rsa_fp()).map(String::as_str),
        Some("5"),
        "{out}"
    );

    // Nothing needs A: without a terminal it still wants --yes; then it goes.
    let before = env.key_secrets().await.len();
    let (ok, _, err) = keys(&env, &["retire", &a.rsa_fp()]).await;
    assert!(!ok && err.contains("needs a confirmation"), "{err}");
    assert!(err.contains("back up the keys first"), "{err}");
    assert_eq!(env.key_secrets().await.len(), before);
    let (ok, _, err) = keys(&env, &["retire", &a.rsa_fp(), "--yes"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("5 checked"), "{err}");
    let left = env.key_secrets().await;
    assert_eq!(left.len(), before - 1);
    eventually("the controller drops key A", TIMEOUT, || async {
        (c.metric("sealed_secrets_controller_keys_active").await == 1.0).then_some(())
    })
    .await;
    // Everything still opens with B.
    let (_, s) = env
        .unseal(&sealed_secret(ns, "after", &[("a", pq(&b, "after"))]))
        .await;
    assert_eq!(data_of(&s, "a").as_deref(), Some("v"));
}

/// A key Secret with an RSA key (certificate from `not_before`) and a post-quantum identity,
/// as the controller writes them.
async fn put_pq_key(
    env: &Env,
    name: &str,
    not_before: std::time::SystemTime,
) -> (PublicKey, sealed_secrets_crypto::PqIdentity) {
    use k8s_openapi::ByteString;
    use sealed_secrets_api::seal::AGE_KEY_FIELD;
    let (k, cert) = make_key(not_before);
    let id = sealed_secrets_crypto::PqIdentity::generate().unwrap();
    let mut s = env
        .put_key_secret(
            name,
            k.to_pkcs1_pem().as_bytes(),
            cert.pem().as_bytes(),
            true,
        )
        .await;
    s.data.as_mut().unwrap().insert(
        AGE_KEY_FIELD.to_owned(),
        ByteString(format!("{}\n", id.to_age_string().as_str()).into_bytes()),
    );
    env.secrets(env.ctrl())
        .replace(name, &Default::default(), &s)
        .await
        .unwrap();
    (k.public_key().clone(), id)
}

/// The same at scale, run by hand to measure (`KEY_USAGE_OBJECTS`, default 10,000; one value
/// each, a third RSA, the rest post-quantum): `keys retire` before any controller ran (every
/// object decided by trying the key), the census against the true counts once a controller
/// has reconciled them all, after deleting and updating a tenth each, and `keys list` /
/// `keys retire` from the status records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: minutes at 10,000 objects"]
async fn objects_per_key_at_scale() {
    use futures::StreamExt as _;
    use std::time::{Duration, Instant, SystemTime};
    let n: usize = std::env::var("KEY_USAGE_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let env = Env::new().await;
    let ns = env.ns().to_owned();
    let now = SystemTime::now();
    let (a_rsa, a_pq) = put_pq_key(
        &env,
        "sealed-secrets-keyolda",
        now - Duration::from_secs(3600),
    )
    .await;
    put_pq_key(
        &env,
        "sealed-secrets-keynewb",
        now - Duration::from_secs(60),
    )
    .await;
    let a_fp = a_rsa.fingerprint().to_string();
    let value = |i: usize| {
        let name = format!("o{i}");
        if i.is_multiple_of(3) {
            seal_value(&a_rsa, Scope::Strict, &ns, &name, "v")
        } else {
            pq_value(a_pq.recipient(), Scope::Strict, &ns, &name, "v")
        }
    };
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let ss = sealed_secret(&ns, &format!("o{i}"), &[("a", value(i))]);
            let api = env.sealed(&ns);
            async move { api.create(&Default::default(), &ss).await.unwrap() }
        })
        .buffer_unordered(16)
        .for_each(|_| async {})
        .await;
    eprintln!(
        "created {n} SealedSecrets in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // No controller yet: no records, every object is decided by trying key A.
    let t = Instant::now();
    let (ok, _, err) = keys(&env, &["retire", &a_fp, "--yes"]).await;
    assert!(
        !ok && err.contains(&format!("{n} SealedSecret(s) in the cluster still need")),
        "{err}"
    );
    eprintln!(
        "keys retire, {n} objects tried with the key: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let c = env.start_controller(&["--key-renew-period=0"]).await;
    let mut objects: BTreeMap<String, String> = (0..n)
        .map(|i| {
            let fp = if i.is_multiple_of(3) {
                a_fp.clone()
            } else {
                a_pq.fingerprint().to_string()
            };
            (format!("o{i}"), fp)
        })
        .collect();
    let want = |objects: &BTreeMap<String, String>| {
        let mut m = BTreeMap::new();
        for fp in objects.values() {
            *m.entry(fp.clone()).or_insert(0u64) += 1;
        }
        m
    };
    let long = Duration::from_secs(1800);
    let t = Instant::now();
    let target = want(&objects);
    eventually("the census of every object", long, || async {
        (census(&c.metrics_text().await) == target).then_some(())
    })
    .await;
    eprintln!(
        "census exact after the cold start: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // Delete a tenth, turn another tenth of the RSA ones post-quantum.
    for i in (0..n).step_by(10) {
        env.sealed(&ns)
            .delete(&format!("o{i}"), &DeleteParams::default())
            .await
            .unwrap();
        objects.remove(&format!("o{i}"));
    }
    for i in (3..n).step_by(30) {
        let name = format!("o{i}");
        let ss = sealed_secret(
            &ns,
            &name,
            &[(
                "a",
                pq_value(a_pq.recipient(), Scope::Strict, &ns, &name, "w"),
            )],
        );
        set_values(&env, &ns, &name, &ss).await;
        objects.insert(name, a_pq.fingerprint().to_string());
    }
    let target = want(&objects);
    eventually("the census after deletes and updates", long, || async {
        (census(&c.metrics_text().await) == target).then_some(())
    })
    .await;
    // Status writes may trail the census by a moment.
    let total = objects.len();
    let t = Instant::now();
    let out = eventually("keys list to count every object", long, || async {
        let (ok, out, _) = keys(&env, &["list"]).await;
        (ok && listed_objects(&out).get(&a_fp).map(String::as_str) == Some(&total.to_string()))
            .then_some(out)
    })
    .await;
    eprintln!(
        "keys list over {total} recorded objects: {:.1}s\n{out}",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (ok, _, err) = keys(&env, &["retire", &a_fp, "--yes"]).await;
    assert!(
        !ok && err.contains(&format!("{total} SealedSecret(s)")),
        "{err}"
    );
    eprintln!(
        "keys retire over {total} recorded objects: {:.1}s",
        t.elapsed().as_secs_f64()
    );
}
