//! The leader's duties (§4.3 steps 3-4 and beyond upstream): a key at start-up when there is
//! none or it is too old, scheduled renewal, rotation requests, one reconciler per watched
//! namespace, and the certificate ConfigMap. Started each time this replica becomes leader,
//! drained when it stops being leader.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use crate::certmap;
use crate::cluster::watched_namespaces;
use crate::config::Config;
use crate::events::Recorder;
use crate::keys::{self, Keys};
use crate::metrics::SharedMetrics;
use crate::reconcile::{self, Context};
use crate::tasks::{Stop, Tasks};

/// What the leader runs, started each time this replica becomes leader.
#[derive(Debug)]
pub struct LeaderDuties {
    ctx: Arc<Context>,
    scopes: Vec<Option<String>>,
    cert_configmap: Option<String>,
    renew_period: Duration,
    cutoff: Option<SystemTime>,
    namespace: String,
    /// With `--sharding`: the leader assigns objects to the members instead of reconciling.
    sharder: Option<crate::shard::sharder::Sharder>,
}

impl LeaderDuties {
    /// Everything the duties need, from the flags and the replica's shared parts;
    /// `identity` reports Events, `fence` guards every reconcile write, `namespace` is the
    /// controller's own.
    pub async fn new(
        cfg: &Config,
        client: &kube::Client,
        keys: &Arc<Keys>,
        metrics: &SharedMetrics,
        identity: &str,
        fence: crate::leader::Fence,
        namespace: String,
    ) -> Self {
        let recorder = Recorder::new(client.clone(), identity.to_owned());
        let ctx = Context::new(
            client.clone(),
            keys.clone(),
            metrics.clone(),
            recorder,
            cfg.reconcile.clone(),
            fence,
        );
        let scopes = watched_namespaces(&cfg.cluster, client, &namespace).await;
        let sharder = cfg.shard.enabled.then(|| crate::shard::sharder::Sharder {
            client: client.clone(),
            namespace: namespace.clone(),
            ring: cfg.shard.ring(&cfg.leader),
            scopes: scopes.clone(),
            label_selector: cfg.reconcile.label_selector.clone(),
            lease_duration: cfg.leader.lease_duration,
            period: Duration::from_secs(2),
            fence: ctx.fence.clone(),
            metrics: metrics.clone(),
        });
        Self {
            ctx,
            scopes,
            cert_configmap: cfg.cert_configmap.configmap().map(str::to_owned),
            renew_period: cfg.keys.renew_period(),
            cutoff: cfg.keys.cutoff.0,
            namespace,
            sharder,
        }
    }

    /// Starts the duties as one group.
    pub fn start(&self) -> Tasks {
        let mut tasks = Tasks::new("leader");
        let ctx = self.ctx.clone();
        let (keys, client, fence) = (ctx.keys.clone(), ctx.client.clone(), ctx.fence.clone());
        let (cutoff, period, scopes) = (self.cutoff, self.renew_period, self.scopes.clone());
        let sharder = self.sharder.clone();
        let sharder_off = sharder.is_none();
        tasks.spawn_draining(|stop| async move {
            // Key objects made outside the controller (`--key-pkcs11-adopt`) get their key
            // Secret first, so that an adopted key counts as the newest key if it is one.
            if !keys.token_keys().adopt_labels().is_empty()
                && let Err(e) = keys.adopt_token_keys(&client, &fence).await
            {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string),
                    "cannot adopt the key objects of the PKCS#11 token (--key-pkcs11-adopt)");
            }
            // §4.3 step 3: a key before anything else when there is none or it is too old.
            let newest = keys.snapshot().newest().map(|k| k.order_time);
            if keys::needs_key_at_startup(newest, cutoff)
                && !generate_until_done(&keys, &client, &fence, &stop).await
            {
                return;
            }
            let mut inner = JoinSet::new();
            inner.spawn(keys::renewal_loop(
                keys.clone(),
                client.clone(),
                period,
                fence.clone(),
                stop.clone(),
            ));
            inner.spawn(keys::rotation_loop(
                keys.clone(),
                client.clone(),
                fence.clone(),
                stop.clone(),
            ));
            if let Some(sharder) = sharder {
                // The members reconcile; the leader only assigns (crate::shard).
                inner.spawn(sharder.run(stop.clone()));
            }
            for scope in scopes.into_iter().filter(|_| sharder_off) {
                tracing::info!(
                    namespace = scope.as_deref().unwrap_or("*"),
                    "starting SealedSecret controller"
                );
                inner.spawn(reconcile::run(ctx.clone(), scope, stop.clone().requested()));
            }
            while inner.join_next().await.is_some() {}
        });
        if let Some(name) = &self.cert_configmap {
            tasks.spawn_until_stopped(certmap::run(
                self.ctx.client.clone(),
                self.namespace.clone(),
                name.clone(),
                self.ctx.keys.clone(),
            ));
        }
        tasks
    }
}

/// Generates a key, retrying every 5 s until it works; `false` when stopped first (only the
/// wait between attempts is interrupted).
async fn generate_until_done(
    keys: &Keys,
    client: &kube::Client,
    fence: &crate::leader::Fence,
    stop: &Stop,
) -> bool {
    while !stop.is_requested() {
        match keys.generate(client, fence).await {
            Ok(fp) => {
                tracing::info!(fingerprint = %fp, "generated a key at startup");
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key generation failed; retrying in 5s");
                stop.clone()
                    .ending(tokio::time::sleep(Duration::from_secs(5)))
                    .await;
            }
        }
    }
    false
}
