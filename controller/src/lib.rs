//! The sealed-secrets controller as a library; `main.rs` only parses arguments and calls
//! [`run`].
//!
//! - [`config`]: every flag (§4.1 plus ours) and its `SEALED_SECRETS_*` variable.
//! - [`keys`]: key Secrets, generation, renewal, the newest key, the key watcher.
//! - [`reconcile`]: SealedSecret → Secret, ownership, status, events, the source digest.
//! - [`server`] and [`ratelimit`]: `/healthz`, `/v1/cert.pem`, `/v1/verify`, `/v1/rotate`.
//! - [`metrics`]: upstream's metrics plus ours; [`telemetry`]: logs.
//! - [`leader`]: Lease leader election; [`certmap`]: the certificate ConfigMap.
//!
//! Startup follows upstream (§4.3): load keys, (as leader) generate one if there is none or
//! the newest is older than the cutoff, schedule renewal, SIGUSR1 renews now, start the
//! controllers and the HTTP servers, stop on SIGTERM. Beyond upstream, the leader also
//! answers `kubeseal keys rotate` ([`keys::ROTATE_REQUEST_ANNOTATION`]).

pub mod certmap;
pub mod config;
pub mod events;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod ratelimit;
pub mod reconcile;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod telemetry;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use tokio::task::JoinSet;

use crate::config::env;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::reconcile::Context;
use crate::runtime::{Leadership, Signals, Tasks};
use crate::settings::Settings;

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
    #[error("failed to install the {0} signal handler")]
    Signal(&'static str, #[source] std::io::Error),
}

/// Builds the client and finds "my namespace": `POD_NAMESPACE`, else the serviceaccount
/// file, else the kubeconfig context's namespace, else `default`.
pub async fn client_and_namespace(
    kubeconfig: Option<&std::path::Path>,
) -> Result<(kube::Client, String), RunError> {
    let kube_config = match kubeconfig {
        Some(path) => {
            let err = |source: Box<dyn std::error::Error + Send + Sync>| RunError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(Box::new(e)))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| err(Box::new(e)))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::ClientConfig(Box::new(e)))?,
    };
    let namespace = std::env::var(env::POD_NAMESPACE)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string(config::SERVICEACCOUNT_NAMESPACE_FILE)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| kube_config.default_namespace.clone());
    let namespace = if namespace.is_empty() {
        "default".to_owned()
    } else {
        namespace
    };
    let client =
        kube::Client::try_from(kube_config).map_err(|e| RunError::ClientConfig(Box::new(e)))?;
    Ok((client, namespace))
}

/// Which namespaces to run controllers for (`None` = all), per `--all-namespaces` and
/// `--additional-namespaces` (§4.1, §4.5). Missing additional namespaces are logged and
/// skipped.
async fn watched_namespaces(
    scope: &settings::WatchScope,
    client: &kube::Client,
    own: &str,
) -> Vec<Option<String>> {
    let extra = &scope.additional;
    if extra.is_empty() {
        return if scope.all {
            vec![None]
        } else {
            vec![Some(own.to_owned())]
        };
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let mut out = vec![Some(own.to_owned())];
    for ns in extra {
        if ns == own {
            continue;
        }
        match api.get_opt(ns).await {
            Ok(Some(_)) => out.push(Some(ns.clone())),
            Ok(None) => {
                tracing::error!(namespace = %ns, "additional namespace does not exist; skipping it")
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "cannot check additional namespace; watching it anyway");
                out.push(Some(ns.clone()));
            }
        }
    }
    out
}

/// Runs the controller until SIGTERM or SIGINT (§4.3).
pub async fn run(settings: Settings) -> Result<(), RunError> {
    settings.notices.iter().for_each(settings::Notice::log);
    let (client, namespace) = client_and_namespace(settings.kubeconfig.as_deref()).await?;
    tracing::info!(version = config::VERSION, commit = config::GIT_COMMIT, %namespace, "starting sealed-secrets controller");
    let mut signals = Signals::install()?;
    let metrics = Arc::new(Metrics::new());

    // §4.3 step 1: the keys, before anything is served.
    let keys = Keys::new(settings.keys.for_namespace(&namespace), metrics.clone());
    keys.initial_load_with_retry(&client).await;
    tracing::info!(keys = keys.snapshot().keys.len(), "loaded keys");

    // Every replica: the key watcher, SIGUSR1, both HTTP servers, the election.
    let mut tasks = Tasks::new("replica");
    tasks.spawn_until_stopped(keys.clone().watch(client.clone()));
    signals.renew_on_usr1(&mut tasks, keys.clone(), client.clone());
    for listener in server::listen(&settings.http, keys.clone(), metrics.clone()).await? {
        tasks.spawn_draining(|stop| listener.serve(stop.requested()));
    }
    let lead = Leadership::start(
        settings.leader_election.as_ref(),
        &namespace,
        &client,
        &metrics,
        &mut tasks,
    );

    // The leader: key at startup, renewal, rotation requests, reconcilers, cert ConfigMap.
    let leader_work = LeaderWork {
        ctx: Context::new(
            client.clone(),
            keys.clone(),
            metrics.clone(),
            events::Recorder::new(client.clone(), lead.identity().to_owned()),
            settings.reconcile.clone(),
        ),
        scopes: watched_namespaces(&settings.namespaces, &client, &namespace).await,
        cert_configmap: settings.cert_configmap.clone(),
        renew_period: settings.keys.renew_period,
        cutoff: settings.keys.cutoff,
        namespace,
    };
    lead.lead_until_terminated(&mut signals, || leader_work.start())
        .await;
    tasks.drain().await;
    Ok(())
}

/// What the leader runs, started each time this replica becomes leader.
struct LeaderWork {
    ctx: Arc<Context>,
    scopes: Vec<Option<String>>,
    cert_configmap: Option<String>,
    renew_period: Duration,
    cutoff: Option<SystemTime>,
    namespace: String,
}

impl LeaderWork {
    fn start(&self) -> Tasks {
        let mut tasks = Tasks::new("leader");
        let ctx = self.ctx.clone();
        let (keys, client) = (ctx.keys.clone(), ctx.client.clone());
        let (cutoff, period, scopes) = (self.cutoff, self.renew_period, self.scopes.clone());
        tasks.spawn_draining(|stop| async move {
            // §4.3 step 3: a key before anything else when there is none or it is too old.
            let newest = keys.snapshot().newest().map(|k| k.order_time);
            if keys::needs_key_at_startup(newest, cutoff) {
                tokio::select! {
                    () = generate_until_done(&keys, &client) => {}
                    () = stop.clone().requested() => return,
                }
            }
            let mut inner = JoinSet::new();
            inner.spawn(stop.clone().ending(keys::renewal_loop(
                keys.clone(),
                client.clone(),
                period,
            )));
            inner.spawn(
                stop.clone()
                    .ending(keys::rotation_loop(keys.clone(), client.clone())),
            );
            for scope in scopes {
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

/// Generates a key, retrying every 5 s until it works.
async fn generate_until_done(keys: &Keys, client: &kube::Client) {
    loop {
        match keys.generate(client).await {
            Ok(fp) => {
                tracing::info!(fingerprint = %fp, "generated a key at startup");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key generation failed; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
