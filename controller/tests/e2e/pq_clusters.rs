//! Post-quantum values across clusters and across a disaster (README "Post-quantum sealing"):
//! one SealedSecret sealed by kubeseal for two clusters' recipients opens in each cluster; a
//! cluster's keys, rotated, backed up with `kubeseal keys backup --age-identities` and
//! restored with `keys restore` into a fresh control plane, open the values sealed to both its
//! identities there; and the exported identity file opens them with the stock `age` CLI (built
//! by tests/age/interop.sh), no kubeseal needed.

use std::path::Path;
use std::process::Command;

use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{Envelope, Fingerprint, Scope, decode_base64, envelope};

use crate::common::*;
use crate::post_quantum::{pq_value, sealed_secret};

/// The stock `age` binary tests/age/interop.sh builds, when it has run.
fn age_binary() -> Option<std::path::PathBuf> {
    let p = harness::cluster::workspace_root().join("target/age-interop/bin/age");
    p.is_file().then_some(p)
}

/// Opens one value with `age -d -i identities`.
fn age_decrypt(age: &Path, identities: &Path, dir: &Path, value: &str) -> String {
    let file = dir.join("value.age");
    std::fs::write(&file, decode_base64(value).unwrap()).unwrap();
    let out = Command::new(age)
        .arg("-d")
        .arg("-i")
        .arg(identities)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A copy of `ss` as it would be applied again elsewhere (no server-set fields).
fn fresh(ss: &SealedSecret) -> SealedSecret {
    let mut c = ss.clone();
    c.metadata.resource_version = None;
    c.metadata.uid = None;
    c.metadata.creation_timestamp = None;
    c.metadata.generation = None;
    c.metadata.managed_fields = None;
    c.status = None;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_quantum_across_two_clusters_and_a_restore_from_backup() {
    let started = std::time::Instant::now();
    // The two control planes boot side by side (mostly waiting on etcd and the API server),
    // and so does the third, the restore's, while A is at work.
    let boot = || tokio::task::spawn_blocking(|| harness::cluster::Cluster::start().unwrap());
    let (a, b) = (boot(), boot());
    let a = Env::on(a.await.unwrap()).await;
    let b = Env::on(b.await.unwrap()).await;
    let ca = a.start_controller(&["--key-renew-period=0"]).await;
    let cb = b.start_controller(&["--key-renew-period=0"]).await;
    let ra1 = ca.recipient().await.expect("cluster A's recipient");
    let rb = cb.recipient().await.expect("cluster B's recipient");
    let ns = a.ns().to_owned();
    b.create_namespace(&ns).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).display().to_string();

    // Multi-cluster: kubeseal seals for both recipients (a recipients file, offline).
    std::fs::write(path("clusters.age.txt"), format!("# A\n{ra1}\n# B\n{rb}\n")).unwrap();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shared\n  namespace: {ns}\nstringData:\n  password: hunter2\n"
    );
    let (ok, out, err) = run_kubeseal(
        &a,
        &["--recipients-file", &path("clusters.age.txt"), "-o", "json"],
        secret.as_bytes(),
    )
    .await;
    assert!(ok, "{err}");
    let shared: SealedSecret = serde_json::from_str(&out).unwrap();
    let value = shared
        .spec
        .encrypted_data
        .get("password")
        .unwrap()
        .to_owned();
    let names: Vec<Fingerprint> = vec![ra1.fingerprint().clone(), rb.fingerprint().clone()];
    assert!(
        matches!(envelope(&decode_base64(&value).unwrap()).unwrap(),
            Envelope::PostQuantum { recipients, .. } if recipients == names),
        "one post-quantum value with a stanza for each cluster"
    );
    for env in [&a, &b] {
        let (_, s) = env.unseal(&fresh(&shared)).await;
        assert_eq!(data_of(&s, "password").as_deref(), Some("hunter2"));
    }
    drop(cb);
    drop(b);
    let fresh_cluster = boot();

    // Cluster A rotates; a value for the new identity.
    let (ok, _, err) = run_kubeseal(
        &a,
        &["keys", "rotate", "--controller-namespace", a.ctrl()],
        b"",
    )
    .await;
    assert!(ok, "{err}");
    let ra2 = eventually("cluster A's new recipient", TIMEOUT, || async {
        ca.recipient().await.filter(|r| *r != ra1)
    })
    .await;
    let after = sealed_secret(
        &ns,
        "after",
        &[(
            "token",
            pq_value(&ra2, Scope::Strict, &ns, "after", "t0k3n"),
        )],
    );
    a.unseal(&after).await;

    // The backup, with the identities exported for age.
    std::fs::write(path("pass"), "correct horse battery staple\n").unwrap();
    let (ok, _, err) = run_kubeseal(
        &a,
        &[
            "keys",
            "backup",
            "-o",
            &path("keys.backup"),
            "--passphrase-file",
            &path("pass"),
            "--age-identities",
            &path("ids.txt"),
            "--controller-namespace",
            a.ctrl(),
        ],
        b"",
    )
    .await;
    assert!(ok, "{err}");
    drop(ca);
    drop(a);

    // Stock age opens both values with the exported identities alone.
    match age_binary() {
        Some(age) => {
            let ids = Path::new(&path("ids.txt")).to_owned();
            assert_eq!(age_decrypt(&age, &ids, dir.path(), &value), "hunter2");
            let token = after.spec.encrypted_data.get("token").unwrap();
            assert_eq!(age_decrypt(&age, &ids, dir.path(), token), "t0k3n");
        }
        // On the real control plane CI runs tests/age/interop.sh first (.ci/test).
        None if !harness::control_plane::backend_is_standin() => {
            panic!("target/age-interop/bin/age is missing: run tests/age/interop.sh first")
        }
        None => eprintln!("skipping the age CLI check: run tests/age/interop.sh to build age"),
    }

    // A fresh control plane: restore, then the controller serves the newest identity and
    // opens the values of both identities.
    let c = Env::on(fresh_cluster.await.unwrap()).await;
    c.create_namespace(&ns).await;
    let (ok, _, err) = run_kubeseal(
        &c,
        &[
            "keys",
            "restore",
            &path("keys.backup"),
            "--passphrase-file",
            &path("pass"),
            "--yes",
            "--controller-namespace",
            c.ctrl(),
        ],
        b"",
    )
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("2 key(s) restored"), "{err}");
    let cc = c.start_controller(&["--key-renew-period=0"]).await;
    assert_eq!(cc.recipient().await.as_ref(), Some(&ra2));
    let (_, s) = c.unseal(&fresh(&shared)).await;
    assert_eq!(data_of(&s, "password").as_deref(), Some("hunter2"));
    let (_, s) = c.unseal(&fresh(&after)).await;
    assert_eq!(data_of(&s, "token").as_deref(), Some("t0k3n"));
    eprintln!(
        "two clusters, a rotation, a backup and a restore: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
