//! API faults: errors, conflicts and cut watches injected by a fault proxy between the
//! controller and either backend, and the API server itself going away mid-run.

use std::time::{Duration, Instant};

use harness::faultproxy::{FaultProxy, FaultSpec, FaultStats};

use crate::check;
use crate::*;

/// How long faults stay on at least: two watch cuts at 5 s, whatever N.
const FAULTS_AT_LEAST: Duration = Duration::from_secs(12);

fn faults_cell(s: &FaultStats) -> String {
    format!(
        "{} 500, {} 429, {} 409, {} watch cuts / {} requests",
        s.error500, s.error429, s.conflict409, s.watch_cuts, s.resource_requests
    )
}

/// A cold start of N SealedSecrets through 5% 500s, 1% 429s, 10% 409s on updates and watch
/// streams cut every 5 s (the controller talks to the API through the proxy; the checker
/// does not). Everything converges, stays converged while the faults go on past two watch
/// cuts, and every Secret is created exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_during_cold_start() {
    let n = n_objects();
    let mut env = Env::new().await;
    let mut row = Row::new("faults", &env.cluster, n);
    let key = env.put_key().await;
    let keys_before = check::key_set(&env.client, env.ctrl()).await.unwrap();
    let w = env.workload(n, &key).await;
    env.create_all(&w.sealed).await;
    let spec = FaultSpec {
        error500: 0.05,
        error429: 0.01,
        conflict409_on_update: 0.10,
        watch_cut: Some(Duration::from_secs(5)),
        seed: 14,
    };
    let proxy = FaultProxy::start(env.cluster.kubeconfig(), spec, env.cluster.temp_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let c = env.spawn_single(proxy.kubeconfig());
    let took = env.check(&w, &keys_before, 0).await;
    let converged = started.elapsed();
    // Faults go on: a cut watch relists, a reconcile hits a 500; nothing may come undone.
    tokio::time::sleep(FAULTS_AT_LEAST.saturating_sub(started.elapsed())).await;
    env.check(&w, &keys_before, 0).await;
    let stats = proxy.stats();
    proxy.set_spec(FaultSpec::default());
    row.faults = faults_cell(&stats);
    println!(
        "converged {converged:?} after the start ({took:?} of checking) under faults: {stats:?}"
    );
    let target = w.owned_in(&w.sealed);
    let log = c.process.log();
    let created = log.matches("\"created Secret\"").count();
    let updated = log.matches("\"updated Secret\"").count();
    assert_eq!(
        updated, 0,
        "a Secret was written again (relists after watch cuts must find nothing to change)"
    );
    assert_eq!(
        created, target,
        "every Secret created exactly once (an injected fault never reaches the API server)"
    );
    assert!(
        stats.error500 > 0 && stats.conflict409 > 0 && stats.watch_cuts > 0,
        "the faults did not hit (the scenario proves nothing): {stats:?}"
    );
}

/// The API server goes away for 3 s once a third of the Secrets exist: on the real control
/// plane kube-apiserver itself is stopped and started again (etcd keeps the objects; every
/// connection and watch is cut); on the stand-in, which cannot restart, the fault proxy
/// closes its port and drops every connection for as long. Everything converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart() {
    let n = n_objects();
    let mut env = Env::new().await;
    let mut row = Row::new("api-server-restart", &env.cluster, n);
    let key = env.put_key().await;
    let keys_before = check::key_set(&env.client, env.ctrl()).await.unwrap();
    let w = env.workload(n, &key).await;
    env.create_all(&w.sealed).await;
    let target = w.owned_in(&w.sealed);
    let down_for = Duration::from_secs(3);
    let real = !env.cluster.is_standin();
    // The real backend: the controller talks to kube-apiserver directly (its own TLS
    // reconnects are part of the test); the stand-in: through a proxy that can go away.
    let proxy = if real {
        None
    } else {
        Some(
            FaultProxy::start(
                env.cluster.kubeconfig(),
                FaultSpec::default(),
                env.cluster.temp_dir(),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    let kubeconfig = proxy.as_ref().map_or_else(
        || env.cluster.kubeconfig().to_path_buf(),
        |p| p.kubeconfig().to_path_buf(),
    );
    let _c = env.spawn_single(&kubeconfig);
    let at = env.wait_owned(target / 3, converge_timeout(n)).await;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| match &proxy {
        None => env.cluster.restart_api_server(down_for),
        Some(p) => p.outage(down_for),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let back = restarted.elapsed();
    assert!(
        at < target,
        "the controller had finished ({at}/{target}) before the API server went away: \
         the scenario proves nothing at this N; raise {N_ENV}"
    );
    env.check(&w, &keys_before, 0).await;
    println!(
        "API server away at {at}/{target} Secrets, back after {back:?}; converged {:?} after it went away",
        restarted.elapsed()
    );
    row.restarts = if real {
        format!("kube-apiserver restart ({}s down)", down_for.as_secs())
    } else {
        format!("API outage via proxy ({}s)", down_for.as_secs())
    };
}
