//! Connecting to the cluster: the client, "my namespace", and the namespaces to watch.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use crate::RunError;
use crate::config::{self, env};
use crate::settings::WatchScope;

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
pub async fn watched_namespaces(
    scope: &WatchScope,
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
