//! Hostile HTTP clients during a cold start (docs/design.md "HTTP server limits"): waves of
//! 512 connections from 16 loopback addresses pipelining `GET /v1/cert.pem` and never
//! reading, 64 slow-loris header senders and 64 slow bodies, while the controller unseals
//! every object. `/healthz`, asked every 250 ms with the deployment's 1 s timeout, must never
//! miss as many probes in a row as the kubelet's `failureThreshold` (it would restart the
//! pod), the controller must not restart, and
//! the shared checks must pass (the HTTP server's work must leave the reconciler a core).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::hostile;

use crate::*;

/// Connections of one wave of pipelining non-readers, and how many come from one address.
const NON_READERS: usize = 512;
const PER_ADDRESS: usize = 32;
/// The attack lasts at least this long, even when the objects converge sooner.
const MIN_ATTACK: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_clients() {
    let nofile = hostile::raise_open_files(4096);
    assert!(
        nofile >= 1500,
        "RLIMIT_NOFILE {nofile}: too low for {NON_READERS} connections"
    );
    let n = n_objects();
    let mut env = Env::new().await;
    let mut row = Row::new("hostile-http", &env.cluster, n);
    let key = env.put_key().await;
    let keys_before = check::key_set(&env.client, env.ctrl()).await.unwrap();
    let w = env.workload(n, &key).await;
    let kubeconfig = env.cluster.kubeconfig().to_path_buf();
    let mut replica = env.spawn_single(&kubeconfig);
    let addr: std::net::SocketAddr = replica.http.parse().unwrap();
    eventually(
        "the controller to answer /healthz",
        Duration::from_secs(60),
        || hostile::probe(addr, Duration::from_secs(1)),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    // Waves of non-readers: each wave is held 3 s, then dropped and opened again, so that
    // the slots are taken again as soon as they are freed and the server answers up to 100
    // requests per connection each time (a flood of work, besides the held slots: the
    // reconciler must keep its core).
    let waves = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut waves = 0usize;
            let mut most = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let held = hostile::pipelining_non_readers(
                    addr,
                    NON_READERS,
                    PER_ADDRESS,
                    "/v1/cert.pem",
                    2000,
                )
                .await;
                most = most.max(held.len());
                waves += 1;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            (waves, most)
        })
    };
    let mut slow_headers = hostile::slow_headers(addr, 64, 600, Duration::from_secs(1));
    let mut slow_bodies = hostile::slow_bodies(addr, 64, 700, Duration::from_secs(1));
    // The prober stands for the kubelet, a separate process: it runs on a thread and runtime
    // of its own so that the attack's tasks in this process cannot delay its measurements.
    let probes = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("prober runtime");
            let mut tally = ProbeTally::default();
            while !stop.load(Ordering::Relaxed) {
                tally.record(rt.block_on(hostile::probe(addr, PROBE_TIMEOUT)));
                std::thread::sleep(Duration::from_millis(250));
            }
            tally
        })
    };
    let attack = Instant::now();

    env.create_all(&w.sealed).await;
    env.check(&w, &keys_before, 0).await;
    let converged = attack.elapsed();
    if let Some(rest) = MIN_ATTACK.checked_sub(converged) {
        tokio::time::sleep(rest).await;
    }
    stop.store(true, Ordering::Relaxed);
    let tally = probes.join().expect("prober thread");
    let (waves, most) = waves.await.unwrap();
    slow_headers.abort_all();
    slow_bodies.abort_all();
    assert!(
        replica.process.is_running(),
        "the controller exited under the attack:\n{}",
        replica.process.log()
    );
    let ProbeTally {
        ok,
        failed,
        worst,
        longest_miss_run,
        ..
    } = tally;
    row.faults = format!(
        "{waves} waves of {most} non-readers, 64 slow-loris, 64 slow bodies; /healthz {ok}/{} within 1 s (slowest {:.0} ms, longest run of misses {longest_miss_run})",
        ok + failed,
        worst.as_secs_f64() * 1000.0
    );
    println!(
        "converged {converged:?} into the attack; {waves} waves (up to {most} connections held \
         at once); /healthz answered {ok} probes, {failed} not within 1 s (longest run \
         {longest_miss_run}), slowest {worst:?}"
    );
    assert!(ok >= 10, "only {ok} probes answered");
    // The kubelet restarts the pod (liveness) or takes it out of the Service (readiness)
    // after `failureThreshold` misses in a row (deploy/base/deployment.yaml: 3, one probe
    // every 10 s). Probing every 250 ms is 40 times as strict; a single late answer on a
    // busy 2-core machine is not what the kubelet acts on, a starved endpoint is.
    assert!(
        longest_miss_run < KUBELET_FAILURE_THRESHOLD,
        "/healthz missed {longest_miss_run} probes in a row (of {} asked, {failed} missed): \
         the kubelet would restart the pod",
        ok + failed
    );
}

/// The deployment's probes: `timeoutSeconds: 1`, `failureThreshold: 3`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const KUBELET_FAILURE_THRESHOLD: usize = 3;

/// What the prober saw: answers within [`PROBE_TIMEOUT`], misses, and the longest run of
/// consecutive misses (what the kubelet acts on).
#[derive(Debug, Default)]
struct ProbeTally {
    ok: usize,
    failed: usize,
    worst: Duration,
    miss_run: usize,
    longest_miss_run: usize,
}

impl ProbeTally {
    fn record(&mut self, answer: Option<Duration>) {
        match answer {
            Some(took) => {
                self.ok += 1;
                self.worst = self.worst.max(took);
                self.miss_run = 0;
            }
            None => {
                self.failed += 1;
                self.miss_run += 1;
                self.longest_miss_run = self.longest_miss_run.max(self.miss_run);
            }
        }
    }
}
