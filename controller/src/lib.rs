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
pub mod server;
pub mod telemetry;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use sealed_secrets_api::UnsealOptions;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, KeyOrderPriority, env};
use crate::keys::{KeySettings, Keys};
use crate::metrics::Metrics;
use crate::reconcile::{Context, ReconcileSettings};

/// Why the controller could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
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
pub async fn client_and_namespace(cfg: &Config) -> Result<(kube::Client, String), RunError> {
    let kube_config = match &cfg.kubeconfig {
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
async fn watched_namespaces(cfg: &Config, client: &kube::Client, own: &str) -> Vec<Option<String>> {
    let extra = cfg.additional_namespaces();
    if extra.is_empty() {
        return if cfg.all_namespaces {
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
        match api.get_opt(&ns).await {
            Ok(Some(_)) => out.push(Some(ns)),
            Ok(None) => {
                tracing::error!(namespace = %ns, "additional namespace does not exist; skipping it")
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "cannot check additional namespace; watching it anyway");
                out.push(Some(ns));
            }
        }
    }
    out
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), RunError> {
    cfg.validate()?;
    let (client, namespace) = client_and_namespace(&cfg).await?;
    tracing::info!(version = config::VERSION, commit = config::GIT_COMMIT, %namespace, "starting sealed-secrets controller");

    let (priority, valid) = KeyOrderPriority::parse_lenient(&cfg.key_order_priority);
    if !valid {
        tracing::error!(value = %cfg.key_order_priority, "invalid --key-order-priority; using CertNotBefore");
    }
    let metrics = Arc::new(Metrics::new());
    let settings = KeySettings {
        namespace: namespace.clone(),
        prefix: cfg.key_prefix.clone(),
        bits: cfg.key_size,
        ttl: cfg.key_ttl.0,
        common_name: cfg.my_cn.clone(),
        priority,
        labels: config::parse_key_values(&cfg.privatekey_labels).unwrap_or_default(),
        annotations: config::parse_key_values(&cfg.privatekey_annotations).unwrap_or_default(),
    };
    let keys = Keys::new(settings, metrics.clone());
    keys.initial_load_with_retry(&client).await;
    tracing::info!(keys = keys.snapshot().keys.len(), "loaded keys");

    let mut background = JoinSet::new();
    background.spawn(keys.clone().watch(client.clone()));

    // SIGUSR1 renews the key now (§4.3 step 5), on whichever replica receives it.
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(|e| RunError::Signal("SIGUSR1", e))?;
    {
        let keys = keys.clone();
        let client = client.clone();
        background.spawn(async move {
            while usr1.recv().await.is_some() {
                tracing::info!("SIGUSR1 received: generating a new key");
                match keys.generate(&client).await {
                    Ok(fp) => tracing::info!(fingerprint = %fp, "key renewed on request"),
                    Err(e) => tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key generation failed"),
                }
            }
        });
    }

    // HTTP servers on every replica.
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let state = Arc::new(server::ServerState {
        keys: keys.clone(),
        metrics: metrics.clone(),
        limiter: Mutex::new(ratelimit::Gcra::new(cfg.rate_limit, cfg.rate_limit_burst)),
        rotate_limiter: Mutex::new(ratelimit::Gcra::new(
            cfg.rotate_rate_limit,
            cfg.rotate_rate_limit_burst,
        )),
        trusted_proxies: cfg.trusted_proxies.0.clone(),
        rsa_permits: Arc::new(tokio::sync::Semaphore::new(
            server::ServerState::default_rsa_permits(),
        )),
        unseal: UnsealOptions {
            accept_deprecated_v1_data: cfg.accept_deprecated_v1_data
                && cfg.http_accept_deprecated_v1_data,
        },
        timeout: cfg.read_timeout.0 + cfg.write_timeout.0,
    });
    let main_listener = tokio::net::TcpListener::bind(cfg.listen_addr)
        .await
        .map_err(|source| server::BindError {
            addr: cfg.listen_addr,
            source,
        })?;
    let metrics_listener = tokio::net::TcpListener::bind(cfg.listen_metrics_addr)
        .await
        .map_err(|source| server::BindError {
            addr: cfg.listen_metrics_addr,
            source,
        })?;
    let limits = server::ConnLimits {
        header_read_timeout: cfg.read_header_timeout.0,
        max_connections: cfg.max_connections,
    };
    for (listener, router) in [
        (main_listener, server::router(state.clone())),
        (metrics_listener, server::metrics_router(state.clone())),
    ] {
        let stop = shutdown(stop_rx.clone());
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "HTTP server listening");
        background.spawn(server::serve(listener, router, limits, stop));
    }

    // Leadership.
    let (leader_tx, mut leader_rx) = watch::channel(!cfg.leader_election);
    let election = leader::ElectionConfig {
        namespace: namespace.clone(),
        lease_name: cfg.leader_election_lease_name.clone(),
        identity: leader::identity(),
        lease_duration: cfg.leader_election_lease_duration.0,
        renew_deadline: Duration::from_secs(10).min(cfg.leader_election_lease_duration.0),
        retry_period: Duration::from_secs(2),
    };
    // Without election the sender is kept here so that `changed()` below never fails.
    let _leader_tx = if cfg.leader_election {
        background.spawn(leader::run(
            client.clone(),
            election.clone(),
            leader_tx,
            metrics.clone(),
        ));
        None
    } else {
        metrics.leader.set(1);
        Some(leader_tx)
    };

    let ctx = Context::new(
        client.clone(),
        keys.clone(),
        metrics.clone(),
        events::Recorder::new(client.clone(), election.identity.clone()),
        ReconcileSettings {
            update_status: cfg.update_status,
            old_gc_behavior: cfg.old_gc_behavior,
            accept_deprecated_v1_data: cfg.accept_deprecated_v1_data,
            max_unseal_retries: cfg.max_unseal_retries,
            skip_recreate: cfg.skip_recreate,
            label_selector: cfg.label_selector.clone(),
            concurrency: cfg.concurrency.max(1),
            allow_service_account_tokens: cfg.allow_service_account_token_secrets,
        },
    );
    let scopes = watched_namespaces(&cfg, &client, &namespace).await;
    if cfg.kubeclient_qps != 5.0 || cfg.kubeclient_burst != 10 {
        tracing::warn!(
            "--kubeclient-qps/--kubeclient-burst are accepted but not enforced: kube-rs has no client-side rate limiter"
        );
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| RunError::Signal("SIGTERM", e))?;
    let mut leader_tasks: Option<JoinSet<()>> = None;
    loop {
        let leading = *leader_rx.borrow_and_update();
        if leading && leader_tasks.is_none() {
            leader_tasks = Some(start_leader_tasks(
                &cfg, &client, &namespace, &keys, &ctx, &scopes,
            ));
        } else if !leading && let Some(mut t) = leader_tasks.take() {
            tracing::info!("not the leader: stopping reconciliation and renewal");
            t.abort_all();
        }
        tokio::select! {
            r = leader_rx.changed() => {
                if r.is_err() {
                    // The elector ended (it never does): stop rather than run unled.
                    tracing::error!("leader election stopped");
                    break;
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down");
    if let Some(mut t) = leader_tasks.take() {
        t.abort_all();
    }
    if cfg.leader_election {
        leader::release(client.clone(), &election).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        background.abort_all();
        while background.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

fn start_leader_tasks(
    cfg: &Config,
    client: &kube::Client,
    namespace: &str,
    keys: &Arc<Keys>,
    ctx: &Arc<Context>,
    scopes: &[Option<String>],
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    let cutoff = cfg.cutoff().ok().flatten();
    let period = cfg.renew_period();
    {
        let keys = keys.clone();
        let client = client.clone();
        let ctx = ctx.clone();
        let scopes = scopes.to_vec();
        set.spawn(async move {
            // §4.3 step 3: a key before anything else when there is none or it is too old.
            let newest = keys.snapshot().newest().map(|k| k.order_time);
            if keys::needs_key_at_startup(newest, cutoff) {
                loop {
                    match keys.generate(&client).await {
                        Ok(fp) => {
                            tracing::info!(fingerprint = %fp, "generated a key at startup");
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key generation failed; retrying in 5s");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            }
            let mut inner = JoinSet::new();
            inner.spawn(keys::renewal_loop(keys.clone(), client.clone(), period));
            inner.spawn(keys::rotation_loop(keys.clone(), client.clone()));
            for scope in scopes {
                tracing::info!(namespace = scope.as_deref().unwrap_or("*"), "starting SealedSecret controller");
                inner.spawn(reconcile::run(ctx.clone(), scope));
            }
            while inner.join_next().await.is_some() {}
        });
    }
    if !cfg.cert_configmap.is_empty() {
        set.spawn(certmap::run(
            client.clone(),
            namespace.to_owned(),
            cfg.cert_configmap.clone(),
            keys.clone(),
        ));
    }
    set
}
