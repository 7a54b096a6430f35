//! The process around the controller: signals and leadership.
//!
//! Leadership ([`Leadership`]) decides when the leader's group of [`Tasks`] runs: started
//! when this replica becomes leader, drained when it stops being leader and at shutdown
//! (§4.3: SIGTERM or SIGINT stops the controller; SIGUSR1 renews the key now).

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::RunError;
use crate::keys::Keys;
use crate::leader::{self, ElectionConfig, LeaderArgs};
use crate::metrics::SharedMetrics;
use crate::tasks::Tasks;

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
    pub(crate) async fn terminated(&mut self) {
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
