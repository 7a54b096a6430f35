//! The sealed-secrets controller as a library; `main.rs` only parses arguments and calls
//! [`run`].
//!
//! - [`config`]: the command line: every concern's flags (§4.1 plus ours), flattened, each
//!   with its `SEALED_SECRETS_*` variable ([`env`]); [`flags`]: the shared value parsers.
//! - [`keys`]: key Secrets, generation, renewal, the newest key, the key watcher.
//! - [`reconcile`]: SealedSecret → Secret, ownership, status, events, the source digest.
//! - [`server`] and [`ratelimit`]: `/healthz`, `/v1/cert.pem`, `/v1/verify`, `/v1/rotate`.
//! - [`metrics`]: upstream's metrics plus ours; [`telemetry`]: logs.
//! - [`leader`]: Lease leader election; [`shard`]: active-active shards (`--sharding`);
//!   [`certmap`]: the certificate ConfigMap.
//! - [`cluster`]: client and namespaces; [`runtime`]: signals, leadership, draining task
//!   groups ([`tasks`]); [`duties`]: what the leader runs; [`version`]: what the binary was built from.
//!
//! Startup follows upstream (§4.3): load keys, (as leader) generate one if there is none or
//! the newest is older than the cutoff, schedule renewal, SIGUSR1 renews now, start the
//! controllers and the HTTP servers, stop on SIGTERM. Beyond upstream, the leader also
//! answers `kubeseal keys rotate` ([`sealed_secrets_api::annotations::ROTATE_REQUEST`]).

pub mod allocator;
pub mod certmap;
pub mod cluster;
pub mod config;
pub mod duties;
pub mod env;
pub mod events;
pub mod flags;
pub mod format_census;
pub mod keys;
pub mod keywrap;
pub mod leader;
pub mod metrics;
pub mod ratelimit;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod tasks;
pub mod telemetry;
pub mod tokenkeys;
pub mod version;

use std::sync::Arc;

use crate::config::Config;
use crate::duties::LeaderDuties;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::runtime::{Leadership, Signals};
use crate::tasks::Tasks;

/// Why the controller could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("failed to load the kubeconfig `{path}`")]
    Kubeconfig {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "failed to configure the Kubernetes client (in cluster, or set KUBECONFIG / --kubeconfig)"
    )]
    ClientConfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Bind(#[from] server::BindError),
    #[error(transparent)]
    KeyWrap(#[from] keywrap::WrapConfigError),
    #[error(transparent)]
    KeyBackend(#[from] tokenkeys::KeyBackendConfigError),
    #[error("failed to install the {0} signal handler")]
    Signal(&'static str, #[source] std::io::Error),
}

/// Runs the controller until SIGTERM or SIGINT (§4.3).
pub async fn run(cfg: Config) -> Result<(), RunError> {
    cfg.log_notices();
    let (client, namespace) =
        cluster::client_and_namespace(cfg.cluster.kubeconfig.as_deref()).await?;
    tracing::info!(version = version::VERSION, commit = version::GIT_COMMIT, %namespace, "starting sealed-secrets controller");
    let mut signals = Signals::install()?;
    let metrics = Arc::new(Metrics::new());

    // §4.3 step 1: the keys, before anything is served.
    let keys = Keys::new(cfg.keys.clone(), namespace.clone(), metrics.clone());
    keys.accept_multi_v1(cfg.keys.accept_multi_v1);
    if cfg.keys.accept_multi_v1 {
        tracing::warn!(
            "--accept-multi-recipient-v1: multi-recipient version-1 values (no key commitment) are opened; reseal them and turn this off"
        );
    }
    let key_wrap = Arc::new(keywrap::KeyWrap::new(
        cfg.key_wrap.build()?,
        cfg.key_wrap.cluster.clone(),
        namespace.clone(),
        Some(client.clone()),
    ));
    if let Some(w) = key_wrap.wrapper() {
        tracing::info!(backend = %w.describe(), cluster = %cfg.key_wrap.cluster, "private keys are wrapped");
    }
    keys.set_key_wrap(key_wrap.clone());
    let token_keys = Arc::new(tokenkeys::TokenKeys::new(
        &cfg.token_keys,
        namespace.clone(),
        Some(client.clone()),
    )?);
    // A token that does not open is reported and retried (tokenkeys::TokenKeys::retry_loop):
    // the keys held in memory keep working and /healthz stays up.
    token_keys.connect().await;
    keys.set_token_keys(token_keys.clone());
    keys.initial_load_with_retry(&client).await;
    tracing::info!(keys = keys.snapshot().keys.len(), "loaded keys");

    // Every replica: the key watcher, SIGUSR1, both HTTP servers, the election.
    let mut tasks = Tasks::new("replica");
    tasks.spawn_until_stopped(keys.clone().watch(client.clone()));
    signals.renew_on_usr1(&mut tasks, keys.clone(), client.clone());
    let unseal = cfg
        .server
        .unseal_options(cfg.reconcile.accept_deprecated_v1_data);
    for listener in server::listen(&cfg.server, unseal, keys.clone(), metrics.clone()).await? {
        tasks.spawn_draining(|stop| listener.serve(stop.requested()));
    }
    tasks.spawn_until_stopped(key_wrap.clone().retry_loop(keys.clone()));
    tasks.spawn_until_stopped(token_keys.clone().retry_loop(keys.clone()));
    // Wrapped keys waiting for the key management service: no leader duties (key generation,
    // unsealing) until they open, so an outage at start neither adds a key nor marks values
    // sealed to a waiting key as failed. /healthz and /readyz answer meanwhile.
    if key_wrap.unusable().values().any(|u| u.transient) {
        tracing::warn!("waiting for wrapped keys to unwrap before leading");
        tokio::select! {
            () = key_wrap.settled() => {}
            () = signals.terminated() => {
                tracing::info!("shutting down");
                tasks.drain().await;
                return Ok(());
            }
        }
    }
    let lead = Leadership::start(&cfg.leader, &namespace, &client, &metrics);

    // With `--sharding`, every replica is a shard member and reconciles its own objects.
    if cfg.shard.enabled
        && let Some(election) = cfg.leader.election(&namespace, lead.identity())
    {
        let parts = shard::member::MemberParts {
            client: client.clone(),
            keys: keys.clone(),
            metrics: metrics.clone(),
            settings: cfg.reconcile.clone(),
            election,
            ring: cfg.shard.ring(&cfg.leader),
            scopes: cluster::watched_namespaces(&cfg.cluster, &client, &namespace).await,
        };
        tasks.spawn_draining(|stop| shard::member::run(parts, stop));
    }

    // The leader: key at startup, renewal, rotation requests, reconcilers, cert ConfigMap.
    let duties = LeaderDuties::new(
        &cfg,
        &client,
        &keys,
        &metrics,
        lead.identity(),
        lead.fence(),
        namespace,
    )
    .await;
    lead.lead_until_terminated(&mut signals, || duties.start())
        .await;
    tasks.drain().await;
    Ok(())
}
