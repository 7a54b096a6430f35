//! Task groups that stop as one. Stopping a group is a drain, not an abort: every task gets
//! a [`Stop`] and finishes what it is doing (the reconciler lets running reconciles end,
//! the HTTP servers answer the requests they have), and only a task still running after
//! [`GRACE`] is aborted. Loops that only wait between pieces of work (watches, timers) are
//! spawned with [`Tasks::spawn_until_stopped`], which ends them at their next wait.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
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
