//! Hostile templates against the real controller binary: the status and the Event of a
//! failed render are one fixed message whatever the values (the line-number oracle), and a
//! template bomb of 200 items leaves the controller small and running.

use std::collections::BTreeMap;

use sealed_secrets_api::SealedSecret;
use serde_json::json;

use harness::hostile_templates::{
    ORACLE_ALPHABET, oracle_templates, peak_rss, render_failure_message as render_failure,
};

use crate::common::*;

fn synced_false_message(ss: &SealedSecret) -> Option<String> {
    ss.status.as_ref()?.conditions.iter().find_map(|c| {
        (c.type_ == "Synced" && c.status == "False")
            .then(|| c.message.clone())
            .flatten()
    })
}

/// Two passwords, the same attacking template: status and Event say the same fixed message
/// (but for the object's name), which names no item and no line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_failures_reveal_nothing_in_status_or_events() {
    let env = Env::new().await;
    let c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns().to_owned();
    for (name, password) in [("pw-a", "hunter2xyz"), ("pw-b", "Zq9!m#Kp0w")] {
        let mut ss = seal(&ns, name, &[("pw", password)], &key, json!({}));
        ss.spec.template.data = Some(oracle_templates(ORACLE_ALPHABET));
        env.create_ss(&ss).await;
    }
    for name in ["pw-a", "pw-b"] {
        let want = render_failure(&ns, name);
        let ss = env
            .wait_ss_where(&ns, name, "Synced=False", |ss| {
                synced_false_message(ss).is_some()
            })
            .await;
        assert_eq!(synced_false_message(&ss).unwrap(), want);
        let ev = env.wait_event(&ns, name, "ErrUnsealFailed").await;
        let msg = ev.message.unwrap_or_default();
        assert!(msg.contains(&want), "{msg}");
        assert!(!msg.contains("line") && !msg.contains("`t"), "{msg}");
    }
    // The Events of both objects read the same once their names are taken out.
    let a = env.wait_event(&ns, "pw-a", "ErrUnsealFailed").await.message;
    let b = env.wait_event(&ns, "pw-b", "ErrUnsealFailed").await.message;
    assert_eq!(
        a.unwrap_or_default().replace("pw-a", "NAME"),
        b.unwrap_or_default().replace("pw-b", "NAME")
    );
}

/// The reproduction: 7.8 KB SealedSecrets with `encryptedData: {}` and 200 items of
/// `{{ repeat 1048576 "a" }}` (one took the controller from 15 MB to 499 MB), as many as the
/// controller reconciles at once. Its peak resident set stays under 64 MiB, it keeps running,
/// and it still unseals an ordinary object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_bombs_leave_the_controller_small() {
    const BOMBS: usize = 8;
    let env = Env::new().await;
    let mut c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns().to_owned();
    let items: BTreeMap<String, String> = (0..200)
        .map(|i| (format!("k{i:03}"), r#"{{ repeat 1048576 "a" }}"#.to_owned()))
        .collect();
    for b in 0..BOMBS {
        let ss: SealedSecret = serde_json::from_value(json!({
            "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": format!("bomb-{b}"), "namespace": ns},
            "spec": {"encryptedData": {}, "template": {"data": items}},
        }))
        .unwrap();
        env.create_ss(&ss).await;
    }
    for b in 0..BOMBS {
        let name = format!("bomb-{b}");
        let want = render_failure(&ns, &name);
        env.wait_ss_where(&ns, &name, "the bomb refused", |ss| {
            synced_false_message(ss).as_deref() == Some(want.as_str())
        })
        .await;
    }
    // Barrier: an ordinary object created after the bombs is unsealed.
    let (_, s) = env
        .unseal(&seal(&ns, "plain", &[("x", "y")], &key, json!({})))
        .await;
    assert_eq!(data_of(&s, "x").as_deref(), Some("y"));
    assert!(env.secrets(&ns).get_opt("bomb-0").await.unwrap().is_none());
    let peak = peak_rss(c.pid()).unwrap();
    println!(
        "controller VmHWM after {BOMBS} template bombs: {} KiB",
        peak / 1024
    );
    assert!(c.process.is_running(), "the controller exited");
    assert!(peak < 64 << 20, "controller peak resident set {peak} bytes");
}
