//! A hostile tenant's templates during a cold start: as many template bombs as the controller
//! reconciles at once (200 items of `{{ repeat 1048576 "a" }}` each, no ciphertext needed,
//! once 499 MB of controller memory for one) and two line-number oracles over a ciphertext the
//! tenant holds. The ordinary workload converges as in every scenario; the controller's peak
//! resident set stays under 64 MiB and it never restarts; every hostile object says the one
//! fixed message of a failed render, the same for both passwords, in status and Events.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::hostile_templates::{
    ORACLE_ALPHABET, oracle_templates, peak_rss, render_failure_message as render_failure,
};
use k8s_openapi::api::core::v1::Event;

use crate::check;
use crate::*;

/// Peak memory the controller may reach with the hostile objects in flight.
const MAX_PEAK: u64 = 64 << 20;

fn synced_false(ss: &SealedSecret) -> Option<String> {
    ss.status.as_ref()?.conditions.iter().find_map(|c| {
        (c.type_ == "Synced" && c.status == "False")
            .then(|| c.message.clone())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_templates() {
    let n = n_objects();
    let mut env = Env::new().await;
    let mut row = Row::new("hostile-templates", &env.cluster, n);
    let key = env.put_key().await;
    let keys_before = check::key_set(&env.client, env.ctrl()).await.unwrap();
    let w = env.workload(n, &key).await;
    let ns = env.ns().to_owned();

    let bomb_items: BTreeMap<String, String> = (0..200)
        .map(|i| (format!("k{i:03}"), r#"{{ repeat 1048576 "a" }}"#.to_owned()))
        .collect();
    let mut hostile: Vec<SealedSecret> = (0..CONCURRENCY)
        .map(|b| {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                "metadata": {"name": format!("bomb-{b}"), "namespace": ns},
                "spec": {"encryptedData": {}, "template": {"data": bomb_items}},
            }))
            .expect("bomb")
        })
        .collect();
    let oracles = [("oracle-a", "hunter2xyz"), ("oracle-b", "Zq9!m#Kp0w")];
    for (name, password) in oracles {
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {"pw": password},
        });
        let mut ss = sealed_secrets_api::seal_manifests(
            secret.to_string().as_bytes(),
            &[&key],
            &SealOptions::default(),
        )
        .expect("seal")
        .pop()
        .expect("one SealedSecret");
        ss.spec.template.data = Some(oracle_templates(ORACLE_ALPHABET));
        hostile.push(ss);
    }
    // The hostile objects first: the cold start meets them before the workload.
    env.create_all(&hostile).await;
    env.create_all(&w.sealed).await;

    let kubeconfig = env.cluster.kubeconfig().to_path_buf();
    let mut c = env.spawn_single(&kubeconfig);
    env.check(&w, &keys_before, 0).await;

    let sealed: Api<SealedSecret> = Api::namespaced(env.client.clone(), &ns);
    for ss in &hostile {
        let name = ss.metadata.name.clone().expect("name");
        let want = render_failure(&ns, &name);
        eventually(
            &format!("{name}: Synced=False with the fixed message"),
            Duration::from_secs(60),
            || async {
                let got = sealed.get_opt(&name).await.ok()??;
                (synced_false(&got).as_deref() == Some(want.as_str())).then_some(())
            },
        )
        .await;
    }
    let events: Api<Event> = Api::namespaced(env.client.clone(), &ns);
    let mut oracle_events = Vec::new();
    for (name, _) in oracles {
        let msg = eventually(
            &format!("an ErrUnsealFailed Event for {name}"),
            Duration::from_secs(60),
            || async {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| {
                        e.involved_object.name.as_deref() == Some(name)
                            && e.reason.as_deref() == Some("ErrUnsealFailed")
                    })?
                    .message
            },
        )
        .await;
        assert!(msg.contains(&render_failure(&ns, name)), "{msg}");
        oracle_events.push(msg.replace(name, "NAME"));
    }
    assert_eq!(oracle_events[0], oracle_events[1]);

    let pid = c.process.id().expect("the controller is running");
    let peak = peak_rss(pid).expect("the controller is running");
    println!(
        "controller VmHWM with {CONCURRENCY} template bombs x 200 items and 2 oracles: {} KiB",
        peak / 1024
    );
    assert!(c.process.is_running(), "the controller exited");
    assert!(
        peak < MAX_PEAK,
        "controller peak resident set {peak} bytes, want < {MAX_PEAK}"
    );
    row.faults = format!(
        "{CONCURRENCY} bombs x 200 items, 2 oracles; peak {} MiB",
        peak >> 20
    );
    row.restarts = "0".into();
}
