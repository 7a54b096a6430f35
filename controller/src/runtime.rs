//! The process around the controller: signals, leadership, and the tasks it runs.
//!
//! Tasks are grouped in [`Tasks`]. Stopping a group is a drain, not an abort: every task gets
//! a [`Stop`] and finishes what it is doing (the reconciler lets running reconciles end,
//! the HTTP servers answer the requests they have), and only a task still running after
//! [`GRACE`] is aborted. Loops that only wait between pieces of work (watches, timers) are
//! spawned with [`Tasks::spawn_until_stopped`], which ends them at their next wait.
//!
//! Leadership ([`Leadership`]) decides when the leader's group runs: started when this
//! replica becomes leader, drained when it stops being leader and at shutdown (§4.3:
//! SIGTERM or SIGINT stops the controller; SIGUSR1 renews the key now).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::RunError;
use crate::keys::Keys;
use crate::leader::{self, ElectionConfig, LeaderArgs};
use crate::metrics::SharedMetrics;

/// How long a stopped group may take to finish before what is left is aborted. Below the
/// Kubernetes default termination grace period (30 s), so a drained pod still exits by
/// itself.
pub const GRACE: Duration = Duration::from_secs(5);

/// Resolves when the group it came from is told to stop. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Waits for the stop request.
    pub async fn requested(mut self) {
        // An error means the group is gone: that is a stop too.
        let _ = self.0.wait_for(|v| *v).await;
    }

    /// Whether the stop has been requested (for loops that check between pieces of work).
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Runs `task` until it ends or the stop is requested, whichever comes first: for loops
    /// that only wait between pieces of work.
    pub async fn ending(self, task: impl Future<Output = ()>) {
        tokio::select! {
            () = task => {}
            () = self.requested() => {}
        }
    }
}

/// A group of tasks that is stopped as one.
#[derive(Debug)]
pub struct Tasks {
    name: &'static str,
    stop: watch::Sender<bool>,
    set: JoinSet<()>,
}

impl Tasks {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            stop: watch::channel(false).0,
            set: JoinSet::new(),
        }
    }

    /// The signal this group's tasks get when it stops.
    pub fn stop(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Spawns a task that watches its [`Stop`] itself and returns once its work is done.
    pub fn spawn_draining<F>(&mut self, task: impl FnOnce(Stop) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fut = task(self.stop());
        self.set.spawn(fut);
    }

    /// Spawns a task that runs until the group stops; it is ended at its next await point,
    /// which for the loops spawned this way is a wait for the next event or timer.
    pub fn spawn_until_stopped(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.set.spawn(self.stop().ending(task));
    }

    /// Tells every task to stop and waits up to [`GRACE`] for them; aborts the rest.
    pub async fn drain(mut self) {
        let _ = self.stop.send(true);
        let all = async { while self.set.join_next().await.is_some() {} };
        if tokio::time::timeout(GRACE, all).await.is_err() {
            tracing::warn!(
                group = self.name,
                left = self.set.len(),
                "tasks did not finish in time; aborting them"
            );
            self.set.abort_all();
            while self.set.join_next().await.is_some() {}
        }
    }
}

/// The signals the process reacts to, installed once at start-up.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    usr1: Option<Signal>,
}

impl Signals {
    pub fn install() -> Result<Self, RunError> {
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(|e| RunError::Signal("SIGTERM", e))?,
            usr1: Some(
                signal(SignalKind::user_defined1()).map_err(|e| RunError::Signal("SIGUSR1", e))?,
            ),
        })
    }

    /// SIGTERM or SIGINT.
    async fn terminated(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }

    /// SIGUSR1 generates a new key now, on whichever replica receives it (§4.3 step 5).
    /// Spawned into `tasks`; only the first call has the signal to hand over.
    pub fn renew_on_usr1(&mut self, tasks: &mut Tasks, keys: Arc<Keys>, client: kube::Client) {
        let Some(mut usr1) = self.usr1.take() else {
            return;
        };
        tasks.spawn_draining(|stop| async move {
            // Only the wait for the signal is interrupted: a renewal under way finishes.
            loop {
                tokio::select! {
                    r = usr1.recv() => if r.is_none() { return },
                    () = stop.clone().requested() => return,
                }
                tracing::info!("SIGUSR1 received: generating a new key");
                // An operator's explicit request to this process, leader or not, as upstream.
                match keys.generate(&client, &crate::leader::Fence::open()).await {
                    Ok(fp) => tracing::info!(fingerprint = %fp, "key renewed on request"),
                    Err(e) => {
                        tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key generation failed")
                    }
                }
            }
        });
    }
}

/// Whether this replica leads: a Lease election, or always with `--leader-election=false`.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    /// Without election the sender is kept here so that the receiver never reports it gone.
    _always: Option<watch::Sender<bool>>,
    election: Option<ElectionConfig>,
    /// The elector, stopped before the Lease is released so that it cannot renew it after.
    elector: Tasks,
    identity: String,
    client: kube::Client,
    fence: leader::Fence,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("leading", &*self.leading.borrow())
            .field("election", &self.election)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Starts the election, if configured.
    pub fn start(
        args: &LeaderArgs,
        namespace: &str,
        client: &kube::Client,
        metrics: &SharedMetrics,
    ) -> Self {
        let mut elector = Tasks::new("election");
        let identity = leader::identity();
        let election = args.election(namespace, &identity);
        let (tx, leading) = watch::channel(election.is_none());
        let fence = if election.is_some() {
            leader::Fence::elected()
        } else {
            leader::Fence::open()
        };
        let always = match &election {
            Some(e) => {
                elector.spawn_until_stopped(leader::run(
                    client.clone(),
                    e.clone(),
                    tx,
                    metrics.clone(),
                    fence.clone(),
                ));
                None
            }
            None => {
                metrics.leader.set(1);
                Some(tx)
            }
        };
        Self {
            leading,
            _always: always,
            election,
            elector,
            identity,
            client: client.clone(),
            fence,
        }
    }

    /// Checked by the leader's duties before each write ([`leader::Fence`]).
    pub fn fence(&self) -> leader::Fence {
        self.fence.clone()
    }

    /// This replica's name as leader candidate and Event reporter.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs the group `start` returns while this replica leads, until SIGTERM or SIGINT;
    /// drains it when leadership is lost and at the end, then stops the elector and gives up
    /// the Lease, so that another replica takes over without waiting for it to expire.
    pub async fn lead_until_terminated(
        mut self,
        signals: &mut Signals,
        mut start: impl FnMut() -> Tasks,
    ) {
        let mut group: Option<Tasks> = None;
        loop {
            let leading = *self.leading.borrow_and_update();
            if leading && group.is_none() {
                group = Some(start());
            } else if !leading && let Some(g) = group.take() {
                tracing::info!("not the leader: stopping reconciliation and renewal");
                g.drain().await;
            }
            tokio::select! {
                r = self.leading.changed() => {
                    if r.is_err() {
                        // The elector ended (it never does): stop rather than run unled.
                        tracing::error!("leader election stopped");
                        break;
                    }
                }
                () = signals.terminated() => break,
            }
        }
        tracing::info!("shutting down");
        if let Some(g) = group {
            g.drain().await;
        }
        self.elector.drain().await;
        if let Some(election) = &self.election {
            leader::release(self.client.clone(), election).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn drain_lets_work_under_way_finish_and_ends_waiting_loops() {
        let finished = Arc::new(AtomicBool::new(false));
        let mut tasks = Tasks::new("test");
        let flag = finished.clone();
        tasks.spawn_draining(|stop| async move {
            stop.requested().await;
            // Work that outlives the stop request, as a running reconcile does.
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tasks.spawn_until_stopped(std::future::pending());
        let started = std::time::Instant::now();
        tasks.drain().await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the draining task was cut short"
        );
        assert!(
            started.elapsed() < GRACE,
            "a waiting loop held up the drain"
        );
    }

    #[tokio::test]
    async fn stop_is_seen_by_loops_that_check_between_work() {
        let tasks = Tasks::new("test");
        let stop = tasks.stop();
        assert!(!stop.is_requested());
        stop.clone().ending(async {}).await;
        tasks.drain().await;
        assert!(stop.is_requested());
        // Once stopped, a wait ends at once.
        stop.ending(std::future::pending()).await;
    }
}
