//! Connecting to the cluster: the client, "my namespace", and the namespaces to watch.

use std::path::PathBuf;

use clap::{ArgAction, Args};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use crate::RunError;
use crate::env;
use crate::flags::{Names, parse_bool};

/// The serviceaccount namespace file of an in-cluster pod (upstream's fallback after
/// `POD_NAMESPACE`).
pub const SERVICEACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The client, and which namespaces to watch.
#[derive(Clone, Debug, Args)]
pub struct ClusterArgs {
    /// Scan all namespaces or only the current namespace.
    #[arg(long, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub all_namespaces: bool,

    /// Comma-separated list of additional namespaces to be watched.
    #[arg(long, default_value = "", value_parser = Names::parse)]
    pub additional_namespaces: Names,

    /// Kubernetes client QPS (negative disables the limiter).
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub kubeclient_qps: f64,

    /// Kubernetes client burst.
    #[arg(long, default_value_t = 10)]
    pub kubeclient_burst: u32,

    /// Kubeconfig to use out of cluster (KUBECONFIG is honoured too; in-cluster config otherwise).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl ClusterArgs {
    /// What start-up logs about these flags.
    pub fn log_notices(&self) {
        if self.kubeclient_qps != 5.0 || self.kubeclient_burst != 10 {
            tracing::warn!(
                "--kubeclient-qps/--kubeclient-burst are accepted but not enforced: kube-rs has no client-side rate limiter"
            );
        }
    }
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
            std::fs::read_to_string(SERVICEACCOUNT_NAMESPACE_FILE)
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
pub async fn watched_namespaces(
    scope: &ClusterArgs,
    client: &kube::Client,
    own: &str,
) -> Vec<Option<String>> {
    let extra = &scope.additional_namespaces.0;
    if extra.is_empty() {
        return if scope.all_namespaces {
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
