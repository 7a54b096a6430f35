//! Upstream Sealed Secrets' own `kubeseal` and `controller` (built from the pinned Go module by
//! `tests/upstream/build.sh`) as peers of ours, on a real control plane:
//!
//! - upstream kubeseal seals, our controller produces the Secrets, and the reverse;
//! - migration upstream → ours → upstream on the same key Secrets, nothing rewritten;
//! - `--fetch-cert`, `--validate` and `--re-encrypt` of each CLI against the other controller;
//! - `kubeseal keys backup` of upstream's keys, restored into a fresh control plane.
//!
//! "Exactly those Secrets" is judged by upstream itself: every produced Secret is compared
//! with what upstream's `kubeseal --recovery-unseal` (the same `Unseal` code upstream's
//! controller runs) makes of the SealedSecret as stored in the cluster, field by field, and its
//! values with the plaintext the test sealed.
//!
//! Each test starts a control plane of its own (the harness's real backend, tests/cluster/up.sh)
//! and applies `deploy/base` and upstream's own RBAC (its chart's ServiceAccount and RBAC
//! templates, rendered from the pinned Go module under names of their own). Both controllers
//! run with in-cluster configuration only (a TokenRequest token), through
//! tests/upstream/run-controller.sh: ours as `kube-system/sealed-secrets-controller` bound by
//! `deploy/base`'s RBAC, upstream's as `kube-system/upstream-sealed-secrets` bound by its
//! chart's RBAC, so each meets exactly the rights its own install grants.
//!
//! `kubeseal --fetch-cert`, `--validate` and `--re-encrypt` go through the real API server's
//! service proxy: the API server refuses loopback endpoints, so the controller's loopback
//! listener is reached through a network namespace with a veth pair and relays
//! (`Cluster::register_endpoint`, which needs root). Certificates are also fetched by `--cert`
//! URL from the loopback listener and from our cert ConfigMap.
//!
//! Skipped (with the reason printed) unless `SEALED_SECRETS_E2E_CLUSTER=real`; in that mode a
//! missing binary or script fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;
mod crd;
mod pq_keys;
mod sealing;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use harness::cluster::{binary_path, random_suffix};
use harness::upstream::{InCluster, skip_unless_real, upstream_binary};
use serde_json::{Value, json};

use common::{
    CTRL_NS, Env, TIMEOUT, assert_all_produced, assert_clean_log, decoded, eventually, expect,
    kubeseal_with, other_cert, route_service_to, secret_versions, secret_yaml, wait_settled,
};
use sealing::{seal_every_kind, seal_many};

#[test]
fn upstream_kubeseal_seals_for_our_controller() {
    if skip_unless_real("upstream_kubeseal_seals_for_our_controller") {
        return;
    }
    let env = Env::new();
    let ours = env.start_ours();
    let ns = env.namespace("up2ours");

    // Upstream kubeseal takes our certificate from our loopback listener by URL, and the same
    // certificate is in our cert ConfigMap.
    let url = format!("http://{}/v1/cert.pem", ours.http);
    let upstream = upstream_binary("kubeseal").unwrap();
    let fetched = env.kubeseal(&upstream, &["--fetch-cert", "--cert", &url], "");
    assert_eq!(fetched, ours.cert().unwrap());
    let cm = env
        .get_json(&["configmap", "sealed-secrets-cert", "-n", CTRL_NS])
        .unwrap();
    assert_eq!(cm["data"]["cert.pem"].as_str(), Some(fetched.as_str()));

    let expects = seal_every_kind(
        &env,
        &upstream,
        &binary_path("kubeseal").unwrap(),
        &url,
        &ns,
    );
    assert_all_produced(&env, &ns, &expects);
    assert_clean_log(&ours);
}

#[test]
fn our_kubeseal_seals_for_upstream_controller() {
    if skip_unless_real("our_kubeseal_seals_for_upstream_controller") {
        return;
    }
    let env = Env::new();
    let mut theirs = env.start_upstream();
    let ns = env.namespace("ours2up");
    let url = format!("http://{}/v1/cert.pem", theirs.http);
    let ours = binary_path("kubeseal").unwrap();
    let fetched = env.kubeseal(&ours, &["--fetch-cert", "--cert", &url], "");
    assert_eq!(fetched, theirs.cert().unwrap());
    let cert = env.write("upstream-cert.pem", &fetched);

    let expects = seal_every_kind(
        &env,
        &ours,
        &upstream_binary("kubeseal").unwrap(),
        &cert.to_string_lossy(),
        &ns,
    );
    assert_all_produced(&env, &ns, &expects);

    // Our multi-recipient output (--recipient-cert twice) is ours only: upstream's
    // controller refuses it cleanly (status False with a reason, a Warning event, no Secret)
    // and keeps working.
    let other = other_cert(&env);
    let multi = env.kubeseal(
        &ours,
        &[
            "--recipient-cert",
            &cert.to_string_lossy(),
            "--recipient-cert",
            &other.to_string_lossy(),
        ],
        &secret_yaml(Some(&ns), "multi", "", "stringData:\n  k: two-recipients\n"),
    );
    env.create(&multi);
    let status = eventually(
        "upstream's verdict on the multi-recipient SealedSecret",
        TIMEOUT,
        || {
            let ss = env.get_json(&["sealedsecret", "multi", "-n", &ns])?;
            let cond = ss["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Synced")?
                .clone();
            (cond["status"] == "False").then_some(cond)
        },
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no key could decrypt secret"),
        "upstream's reason: {status}"
    );
    // Events are recorded asynchronously (client-go's broadcaster): poll.
    eventually("upstream's ErrUnsealFailed event", TIMEOUT, || {
        let events = env.get_json(&[
            "events",
            "-n",
            &ns,
            "--field-selector",
            "involvedObject.name=multi",
        ])?;
        events["items"]
            .as_array()?
            .iter()
            .any(|e| e["reason"] == "ErrUnsealFailed" && e["type"] == "Warning")
            .then_some(())
    });
    assert!(env.get_json(&["secret", "multi", "-n", &ns]).is_none());
    assert!(theirs.process.is_running(), "upstream's controller died");
    let after = env.kubeseal(
        &ours,
        &["--cert", &cert.to_string_lossy()],
        &secret_yaml(
            Some(&ns),
            "after-multi",
            "",
            "stringData:\n  k: still-works\n",
        ),
    );
    env.create(&after);
    assert_all_produced(&env, &ns, &[expect("after-multi", &[("k", "still-works")])]);
    assert_clean_log(&theirs);
}

#[test]
fn migration_upstream_to_ours_and_back() {
    if skip_unless_real("migration_upstream_to_ours_and_back") {
        return;
    }
    let env = Env::new();
    let ns = env.namespace("migrate");
    let upstream_kubeseal = upstream_binary("kubeseal").unwrap();

    let t = Instant::now();
    let phase = |what: &str| eprintln!("migration: {what} at {:.1}s", t.elapsed().as_secs_f64());

    // Upstream generates its key and unseals 50 SealedSecrets.
    let mut theirs = env.start_upstream();
    let cert = theirs.cert().unwrap();
    let cert_file = env.write("cert.pem", &cert);
    let keys_before = env.key_secrets();
    assert_eq!(keys_before.len(), 1, "upstream generated one key");
    let expects = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "m",
        50,
    );
    assert_all_produced(&env, &ns, &expects);
    wait_settled(&theirs, 50.0);
    phase("upstream unsealed 50");
    let versions = secret_versions(&env, &ns);
    assert_eq!(versions.len(), 50);
    theirs.process.stop();
    assert_clean_log(&theirs);

    // Ours with deploy/base's settings: same key, same certificate, nothing rewritten.
    let ours = env.start_ours();
    assert_eq!(
        ours.cert().unwrap(),
        cert,
        "ours serves upstream's certificate"
    );
    wait_settled(&ours, 50.0);
    phase("ours took over");
    assert_eq!(
        env.key_secrets().keys().collect::<Vec<_>>(),
        keys_before.keys().collect::<Vec<_>>(),
        "no new key"
    );
    assert_eq!(
        secret_versions(&env, &ns),
        versions,
        "ours rewrote Secrets upstream made"
    );
    assert_all_produced(&env, &ns, &expects);
    // And it is live: a new SealedSecret (upstream kubeseal, upstream's cert) is unsealed.
    let new = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "during-ours",
        1,
    );
    assert_all_produced(&env, &ns, &new);
    assert_clean_log(&ours);
    drop(ours);

    // Back to upstream: same key, still correct, its own Secrets not rewritten.
    let versions = secret_versions(&env, &ns);
    let theirs = env.start_upstream();
    assert_eq!(theirs.cert().unwrap(), cert);
    wait_settled(&theirs, 51.0);
    phase("upstream took back");
    assert_eq!(
        env.key_secrets().keys().collect::<Vec<_>>(),
        keys_before.keys().collect::<Vec<_>>(),
        "no new key"
    );
    let after = secret_versions(&env, &ns);
    for e in &expects {
        assert_eq!(
            after[&e.name], versions[&e.name],
            "upstream rewrote {}",
            e.name
        );
    }
    assert_all_produced(&env, &ns, &expects);
    assert_all_produced(&env, &ns, &new);
    let last = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "after",
        1,
    );
    assert_all_produced(&env, &ns, &last);
    assert_clean_log(&theirs);
}

/// `kubeseal` (upstream's or ours) `--fetch-cert`, `--validate` and `--re-encrypt` against
/// `controller` (the other project's) through the real API server's service proxy, and the
/// re-encrypted SealedSecret unsealed by that controller.
fn cli_against_controller(env: &Env, kubeseal: &Path, controller: &InCluster) {
    route_service_to(env, controller);
    let run = |args: &[&str], stdin: &str| {
        kubeseal_with(
            kubeseal,
            env.cluster.kubeconfig(),
            env.work.path(),
            args,
            stdin,
        )
    };
    let ok = |args: &[&str], stdin: &str| {
        let out = run(args, stdin);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            kubeseal.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let cert = ok(&["--fetch-cert"], "");
    assert_eq!(
        cert,
        controller.cert().unwrap(),
        "--fetch-cert through the proxy"
    );
    let cert_file = env.write(&format!("cert-{}.pem", random_suffix(4)), &cert);
    let cert_arg = cert_file.to_string_lossy().into_owned();

    let ns = env.namespace("cli");
    let sealed = env.kubeseal(
        kubeseal,
        &["--cert", &cert_arg],
        &secret_yaml(
            Some(&ns),
            "checked",
            "  labels:\n    app: cli\n",
            "stringData:\n  user: alice\n  pass: wonderland\n",
        ),
    );
    let sealed_file = env.write(&format!("sealed-{}.json", random_suffix(4)), &sealed);

    // --validate: accepted as sealed; refused when renamed (the strict label no longer fits).
    ok(&["--validate", "-f", &sealed_file.to_string_lossy()], "");
    let mut renamed: Value = serde_json::from_str(&sealed).unwrap();
    renamed["metadata"]["name"] = json!("renamed");
    let out = run(&["--validate"], &renamed.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unable to decrypt sealed secret"),
        "--validate of a renamed strict SealedSecret: {stderr}"
    );

    // --re-encrypt: a new ciphertext for every item, same metadata; the controller opens it.
    // With only -f, the result replaces the input file (upstream #405, kept by ours).
    let out = ok(&["--re-encrypt", "-f", &sealed_file.to_string_lossy()], "");
    assert_eq!(out, "", "--re-encrypt -f writes the file, not stdout");
    let rotated = std::fs::read_to_string(&sealed_file).unwrap();
    // And from stdin to stdout.
    let piped: Value = serde_json::from_str(&ok(&["--re-encrypt"], &sealed)).unwrap();
    assert_eq!(piped["kind"], "SealedSecret");
    let rotated_json: Value = serde_json::from_str(&rotated).unwrap();
    let before: Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(rotated_json["kind"], "SealedSecret", "{rotated}");
    assert_eq!(rotated_json["metadata"]["name"], "checked");
    let items = |v: &Value| v["spec"]["encryptedData"].as_object().unwrap().clone();
    assert_eq!(
        items(&rotated_json).keys().collect::<Vec<_>>(),
        items(&before).keys().collect::<Vec<_>>()
    );
    for (k, v) in items(&rotated_json) {
        assert_ne!(v, items(&before)[&k], "item {k} was re-encrypted");
    }
    assert!(rotated_json["metadata"]["creationTimestamp"].is_null());
    env.create(&rotated);
    assert_all_produced(
        env,
        &ns,
        &[expect(
            "checked",
            &[("user", "alice"), ("pass", "wonderland")],
        )],
    );
}

#[test]
fn upstream_kubeseal_fetch_validate_reencrypt_against_ours() {
    if skip_unless_real("upstream_kubeseal_fetch_validate_reencrypt_against_ours") {
        return;
    }
    let env = Env::new();
    let ours = env.start_ours();
    cli_against_controller(&env, &upstream_binary("kubeseal").unwrap(), &ours);
    // Our CLI reads the same certificate from our ConfigMap on the real API server.
    let from_cm = env.kubeseal(
        &binary_path("kubeseal").unwrap(),
        &["--fetch-cert", "--cert-from-configmap"],
        "",
    );
    assert_eq!(from_cm, ours.cert().unwrap());
    assert_clean_log(&ours);

    // The key Secret ours generated is an ordinary upstream key: upstream's controller loads
    // it instead of generating one, and serves the same certificate.
    let cert = ours.cert().unwrap();
    drop(ours);
    let theirs = env.start_upstream();
    assert_eq!(
        theirs.cert().unwrap(),
        cert,
        "upstream loads the key ours made"
    );
    assert_eq!(env.key_secrets().len(), 1, "no new key");
    assert_clean_log(&theirs);
}

#[test]
fn our_kubeseal_fetch_validate_reencrypt_against_upstream() {
    if skip_unless_real("our_kubeseal_fetch_validate_reencrypt_against_upstream") {
        return;
    }
    let env = Env::new();
    let theirs = env.start_upstream();
    cli_against_controller(&env, &binary_path("kubeseal").unwrap(), &theirs);
    assert_clean_log(&theirs);
}

#[test]
fn backup_of_upstream_keys_restored_into_a_fresh_control_plane() {
    if skip_unless_real("backup_of_upstream_keys_restored_into_a_fresh_control_plane") {
        return;
    }
    let a = Env::new();
    let ns = a.namespace("backup");
    let upstream_kubeseal = upstream_binary("kubeseal").unwrap();
    let ours_kubeseal = binary_path("kubeseal").unwrap();

    // Upstream's controller makes a key, then a second one (SIGUSR1, upstream's manual
    // renewal); SealedSecrets sealed with each.
    let theirs = a.start_upstream();
    let first = theirs.cert().unwrap();
    let first_file = a.write("first.pem", &first);
    let mut expects = seal_many(
        &a,
        &upstream_kubeseal,
        &first_file.to_string_lossy(),
        &ns,
        "k1",
        3,
    );
    // Certificates date their NotBefore to the second: two keys made within one second are
    // equally new to both controllers, and which one seals is then arbitrary (upstream's too).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let pid = theirs.process.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    let second = eventually("upstream's second key", TIMEOUT, || {
        theirs.cert().filter(|c| *c != first)
    });
    let second_file = a.write("second.pem", &second);
    expects.extend(seal_many(
        &a,
        &upstream_kubeseal,
        &second_file.to_string_lossy(),
        &ns,
        "k2",
        3,
    ));
    assert_all_produced(&a, &ns, &expects);
    let keys = a.key_secrets();
    assert_eq!(keys.len(), 2);

    // Our backup of upstream's key Secrets, passphrase-protected; the SealedSecrets as a
    // user keeps them (no server-set fields).
    let keep = tempfile::tempdir().unwrap();
    let passphrase = keep.path().join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple\n").unwrap();
    let backup = keep.path().join("keys.backup");
    a.kubeseal(
        &ours_kubeseal,
        &[
            "keys",
            "backup",
            "-o",
            &backup.to_string_lossy(),
            "--passphrase-file",
            &passphrase.to_string_lossy(),
        ],
        "",
    );
    // Our unencrypted backup is a v1.List of the key Secrets, which upstream's kubeseal takes
    // as --recovery-private-key: it opens SealedSecrets of both keys.
    let plain = keep.path().join("keys-plain.json");
    a.kubeseal(
        &ours_kubeseal,
        &[
            "keys",
            "backup",
            "--insecure-plaintext",
            "-o",
            &plain.to_string_lossy(),
        ],
        "",
    );
    let sealed = a.by_name("sealedsecrets", &ns);
    for name in ["k1-0", "k2-0"] {
        let opened = a.upstream_unseal(&sealed[name], &plain);
        assert_eq!(
            decoded(&opened)["name"],
            name,
            "upstream recovery with our backup"
        );
    }
    let listed = a.get_json(&["sealedsecrets", "-n", &ns]).unwrap();
    let manifests: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ss| {
            json!({
                "apiVersion": ss["apiVersion"],
                "kind": "SealedSecret",
                "metadata": {"name": ss["metadata"]["name"], "namespace": ns},
                "spec": ss["spec"],
            })
            .to_string()
        })
        .collect();
    assert_eq!(manifests.len(), 6);
    assert_clean_log(&theirs);
    drop(theirs);
    drop(a);

    // A fresh control plane: restore, then our controller opens everything upstream sealed,
    // with upstream's keys only.
    let b = Env::new();
    b.kubectl(&["create", "namespace", &ns]);
    b.kubeseal(
        &ours_kubeseal,
        &[
            "keys",
            "restore",
            &backup.to_string_lossy(),
            "--passphrase-file",
            &passphrase.to_string_lossy(),
            "--yes",
        ],
        "",
    );
    let restored = b.key_secrets();
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        keys.keys().collect::<Vec<_>>()
    );
    for (name, key) in &keys {
        assert_eq!(
            restored[name]["data"], key["data"],
            "key Secret {name} restored as it was"
        );
    }
    for m in &manifests {
        b.create(m);
    }
    let ours = b.start_ours();
    assert_eq!(
        ours.cert().unwrap(),
        second,
        "the newest restored key is the sealing key"
    );
    assert_all_produced(&b, &ns, &expects);
    assert_eq!(b.key_secrets().len(), 2, "no new key");
    assert_clean_log(&ours);
}
