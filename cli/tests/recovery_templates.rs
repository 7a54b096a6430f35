//! `kubeseal --recovery-unseal` on hostile templates: the same fixed message as the
//! controller whatever the values, and the same per-object budget (a 400-item template bomb
//! once took it to 1.5 GB).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: panics are failures

mod common;

use std::path::Path;

use common::{cmd, fixture, run, run_cmd};
use harness::hostile_templates::oracle_templates;

/// The oracle's alphabet here: the passwords tried use no other character.
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&";

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// A SealedSecret (JSON) of `password` for `ns/n`, with `template` as spec.template.data.
fn sealed_with_template(dir: &Path, password: &str, template: serde_json::Value) -> String {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "n", "namespace": "ns"},
        "stringData": {"pw": password},
    });
    let r = run(
        dir,
        &["--cert", &p(&fixture("cert-a.pem")), "-o", "json"],
        secret.to_string().as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut ss: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    ss["spec"]["template"]["data"] = template;
    ss.to_string()
}

fn recovery_unseal(dir: &Path, sealed: &str) -> common::Run {
    run(
        dir,
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            &p(&fixture("key-a.pem")),
        ],
        sealed.as_bytes(),
    )
}

#[test]
fn template_failures_give_one_fixed_message() {
    let d = tempfile::tempdir().unwrap();
    let mut stderrs = Vec::new();
    for password in ["hunter2xyz", "Zq9!m#Kp0w"] {
        let r = recovery_unseal(
            d.path(),
            &sealed_with_template(
                d.path(),
                password,
                serde_json::json!(oracle_templates(ALPHABET)),
            ),
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(r.stdout, "");
        assert!(
            r.stderr
                .contains("failed to render spec.template.data of SealedSecret `ns/n`"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("hint: "), "{}", r.stderr);
        assert!(!r.stderr.contains("line"), "{}", r.stderr);
        stderrs.push(r.stderr);
    }
    assert_eq!(stderrs[0], stderrs[1]);

    // A parse error needs no value: it is reported in detail.
    let broken = serde_json::json!({"bad": "ok\n{{ if .pw }}"});
    let r = recovery_unseal(d.path(), &sealed_with_template(d.path(), "x", broken));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("item `bad`") && r.stderr.contains("line 2"),
        "{}",
        r.stderr
    );
}

/// 400 items of `{{ repeat 1048576 "a" }}`, no ciphertext needed: refused with the fixed
/// message within a data limit of 256 MiB (the old code needed 1.5 GB, and aborts under it).
#[test]
fn a_template_bomb_is_stopped_within_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let items: serde_json::Map<String, serde_json::Value> = (0..400)
        .map(|i| (format!("k{i:03}"), r#"{{ repeat 1048576 "a" }}"#.into()))
        .collect();
    let ss = serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "bomb", "namespace": "ns"},
        "spec": {"encryptedData": {}, "template": {"data": items}},
    });
    // The hermetic command of the other tests, run through `sh` to set RLIMIT_DATA (kB): the
    // private writable memory the process may map.
    let base = cmd(d.path());
    let mut sh = std::process::Command::new("sh");
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.current_dir(d.path())
        .args(["-c", r#"ulimit -d 262144 && exec "$0" "$@""#])
        .arg(base.get_program())
        .args([
            "--recovery-unseal",
            "--recovery-private-key",
            &p(&fixture("key-a.pem")),
        ]);
    let r = run_cmd(&mut sh, ss.to_string().as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("failed to render spec.template.data of SealedSecret `ns/bomb`"),
        "{}",
        r.stderr
    );
}
