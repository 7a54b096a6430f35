//! The controller under API faults injected by the stand-in (these tests need the stand-in and
//! are skipped against a real cluster): status writes retried until written, leadership kept
//! under Lease conflicts, and a start-up that survives API errors.

use std::time::{Duration, Instant};

use harness::standin::Faults;
use serde_json::json;

use crate::common::*;

fn faults(env: &Env) -> Option<&harness::standin::Handle> {
    let h = env.cluster.standin_handle();
    if h.is_none() {
        eprintln!("skipped: fault injection needs the stand-in");
    }
    h
}

fn synced(ss: &sealed_secrets_api::SealedSecret) -> bool {
    ss.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Synced" && c.status == "True")
    })
}

/// A status write that fails (here: half of all updates answer 409, twice in a row
/// for about a quarter of the writes) is requeued with backoff until the status is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_status_writes_are_retried_until_written() {
    let env = Env::new().await;
    let Some(standin) = faults(&env) else { return };
    let c = env.start_controller(&[]).await;
    let key = env.served_key(&c).await;
    let ns = env.ns().to_owned();
    standin.set_faults(Faults {
        conflict_fraction: 0.5,
        ..Default::default()
    });
    let n = 40;
    for i in 0..n {
        env.create_ss(&seal(&ns, &format!("s{i}"), &[("a", "b")], &key, json!({})))
            .await;
    }
    for i in 0..n {
        env.wait_secret(&ns, &format!("s{i}")).await;
    }
    let failed_writes = c.process.log().matches("failed to update status").count();
    // The faults stop; nothing changes any more that would trigger a reconcile by itself.
    standin.set_faults(Faults::default());
    let start = Instant::now();
    let api = env.sealed(&ns);
    let missing = eventually("every SealedSecret to get its status", TIMEOUT, || {
        let api = api.clone();
        async move {
            let list = api.list(&Default::default()).await.ok()?;
            let missing: Vec<String> = list
                .items
                .iter()
                .filter(|s| !synced(s))
                .filter_map(|s| s.metadata.name.clone())
                .collect();
            missing.is_empty().then_some(missing)
        }
    })
    .await;
    assert!(missing.is_empty());
    eprintln!(
        "{failed_writes} status writes failed under 50% conflicts; all {n} statuses written {:?} after the faults stopped",
        start.elapsed()
    );
    assert!(
        failed_writes > 0,
        "the fault injection did not hit a status write; the test proves nothing"
    );
    assert!(
        c.metric("sealed_secrets_controller_unseal_errors_total")
            .await
            >= 1.0
    );
}

/// 10% of Lease updates answered 409 do not make the leader step down: a renewal
/// that conflicts is retried within the renew deadline, as client-go does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_does_not_flap_under_lease_conflicts() {
    let env = Env::new().await;
    let Some(standin) = faults(&env) else { return };
    let mut c = env.start_controller(&["--leader-election=true"]).await;
    c.process
        .wait_for_log("became the leader", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    standin.set_faults(Faults {
        conflict_fraction: 0.1,
        ..Default::default()
    });
    // 60 s at one renewal every 2 s: 30 renewals, of which 3 conflict on average; without the
    // retry the chance that none does is 0.9^30, about 4%.
    let window = Duration::from_secs(60);
    tokio::time::sleep(window).await;
    standin.set_faults(Faults::default());
    let log = c.process.log();
    let flaps = log.matches("lost leadership").count() + log.matches("stepping down").count();
    let retried = log.matches("lease renewal failed; retrying").count();
    eprintln!(
        "under 10% Lease conflicts for {window:?}: {flaps} leadership losses, {retried} renewals retried"
    );
    assert_eq!(flaps, 0, "the leader stepped down {flaps} times:\n{log}");
    assert_eq!(log.matches("became the leader").count(), 1);
    assert_eq!(c.metric("sealed_secrets_controller_leader").await, 1.0);
}

/// A Lease call that hangs (every API answer delayed 20 s, longer than the 15 s lease)
/// is abandoned at the renew deadline (10 s) and the leader steps down, instead of waiting
/// on the call while its Lease expires and another replica takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_lease_calls_are_bounded_by_the_renew_deadline() {
    let env = Env::new().await;
    let Some(standin) = faults(&env) else { return };
    let mut c = env.start_controller(&["--leader-election=true"]).await;
    c.process
        .wait_for_log("became the leader", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    standin.set_faults(Faults {
        latency_ms: 20_000,
        ..Default::default()
    });
    let start = Instant::now();
    eventually(
        "the leader to step down",
        Duration::from_secs(16),
        || async { (c.metric("sealed_secrets_controller_leader").await == 0.0).then_some(()) },
    )
    .await;
    eprintln!("stepped down {:?} after the API hung", start.elapsed());
    standin.set_faults(Faults::default());
    c.process
        .wait_for_log("stepping down", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
}

/// The key list at start-up fails (every API call answers 500 for a while); the
/// controller retries with backoff instead of exiting, and serves once the API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_survives_api_errors() {
    let env = Env::new().await;
    let Some(standin) = faults(&env) else { return };
    standin.set_faults(Faults {
        error500_fraction: 1.0,
        ..Default::default()
    });
    let mut c = env.spawn_controller(&[]);
    c.process
        .wait_for_log("cannot load the keys; retrying", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        c.process.is_running(),
        "exited on an API error at start:\n{}",
        c.process.log()
    );
    standin.set_faults(Faults::default());
    // The HTTP servers start once the keys are loaded.
    eventually("the controller to listen", TIMEOUT, || async {
        tokio::net::TcpStream::connect(&c.http)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    eventually("a certificate after the API recovered", TIMEOUT, || async {
        c.cert().await
    })
    .await;
}

/// A key size the generator cannot produce stops the controller at start with a
/// message naming the flag, instead of retrying generation for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_key_size_is_a_startup_error() {
    let env = Env::new().await;
    let http = format!("127.0.0.1:{}", harness::cluster::free_port().unwrap());
    let metrics = format!("127.0.0.1:{}", harness::cluster::free_port().unwrap());
    let mut cmd = std::process::Command::new(controller_binary());
    cmd.env("KUBECONFIG", env.cluster.kubeconfig())
        .env("POD_NAMESPACE", env.ctrl())
        .args(["--key-size", "1000", "--leader-election=false"])
        .args(["--listen-addr", &http, "--listen-metrics-addr", &metrics]);
    let mut p = harness::cluster::Process::spawn(cmd, env.cluster.temp_dir()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while p.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !p.is_running(),
        "still running with --key-size 1000:\n{}",
        p.log()
    );
    let status = p.stop().unwrap();
    assert!(!status.success());
    assert!(
        p.log()
            .contains("invalid --key-size: 1000 bits cannot be generated"),
        "{}",
        p.log()
    );
    assert!(env.key_secrets().await.is_empty());
}

/// An API server that refuses to stream a watch's initial events (before Kubernetes 1.27, or
/// with the WatchList feature off) gets paged lists instead: the controller still serves the
/// SealedSecrets there before it started, and its Secret watch still reports deletions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_lists_come_in_pages_where_the_api_server_does_not_stream_them() {
    let env = Env::new().await;
    let Some(standin) = faults(&env) else { return };
    standin.set_faults(Faults {
        refuse_streaming_lists: true,
        ..Default::default()
    });
    let mut first = env.start_controller(&[]).await;
    let key = env.served_key(&first).await;
    first.process.stop();
    let ns = env.ns().to_owned();
    for i in 0..3 {
        env.create_ss(&seal(&ns, &format!("s{i}"), &[("a", "b")], &key, json!({})))
            .await;
    }
    let mut c = env.start_controller(&[]).await;
    c.process
        .wait_for_log("first_lists=pages", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.process.log()));
    for i in 0..3 {
        env.wait_secret(&ns, &format!("s{i}")).await;
    }
    let old = env.wait_secret(&ns, "s1").await.metadata.uid;
    env.secrets(&ns)
        .delete("s1", &Default::default())
        .await
        .expect("delete Secret s1");
    let api = env.secrets(&ns);
    eventually("Secret s1 to be produced again", TIMEOUT, || {
        let api = api.clone();
        let old = old.clone();
        async move {
            let s = api.get_opt("s1").await.ok()??;
            (s.metadata.uid != old).then_some(())
        }
    })
    .await;
    assert!(!c.process.log().contains("first_lists=stream"));
}
