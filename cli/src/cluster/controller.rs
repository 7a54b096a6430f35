//! The controller, reached the way upstream reaches it (§6.2): its Service through the API
//! server's service proxy. Everything here is one request/answer exchange; the answers'
//! meaning (409 on verify, a certificate too large, ...) is the callers'.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

use super::client::{ATTEMPTS, client, retrying, worth_retrying};
use super::failure::{api_error, describe};
use crate::args::KubeArgs;
use crate::error::{CliError, Failure, OFFLINE_HINT, Result};

/// The controller's Service, reached through the API server proxy (§6.2).
#[derive(Clone)]
pub struct Controller {
    client: kube::Client,
    namespace: String,
    name: String,
    port: String,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A response from the controller: status and body.
#[derive(Debug)]
pub struct ProxyResponse {
    /// HTTP status as seen through the proxy.
    pub status: http::StatusCode,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Controller {
    /// Looks up the Service and its first port's name, as upstream does.
    pub async fn connect(kube: &KubeArgs, namespace: &str, name: &str) -> Result<Controller> {
        let client = client(kube).await?;
        Self::with_client(client, namespace, name).await
    }

    /// Same, with an existing client.
    pub async fn with_client(
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Controller> {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let svc = retrying(|| services.get(name))
            .await
            .map_err(|e| match describe(&e) {
                // Upstream's message, for what the flags can fix.
                Failure::Api {
                    code: 404, message, ..
                } => CliError::ServiceNotFound { message },
                _ => api_error(
                    format!("cannot get sealed secret service `{namespace}/{name}`"),
                    &e,
                    Some(OFFLINE_HINT),
                ),
            })?;
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.into_iter().next())
            .and_then(|p| p.name)
            .unwrap_or_default();
        Ok(Controller {
            client,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
        })
    }

    /// `/api/v1/namespaces/<ns>/services/http:<name>:<port>/proxy<path>`.
    pub fn proxy_path(&self, path: &str) -> String {
        format!(
            "/api/v1/namespaces/{}/services/http:{}:{}/proxy{}",
            self.namespace, self.name, self.port, path
        )
    }

    /// One request through the proxy; any status is returned (callers map 409 etc.).
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<ProxyResponse> {
        call_path(&self.client, method, &self.proxy_path(path), body).await
    }
}

/// A raw request to the API server; any status is returned.
pub async fn call_path(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<ProxyResponse> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let mut req = http::Request::builder().method(method.clone()).uri(path);
        if method == http::Method::GET {
            req = req.header(http::header::ACCEPT, "application/x-pem-file, */*");
        } else {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(kube::client::Body::from(body.clone()))
            .map_err(|e| CliError::Internal(format!("cannot build request: {e}")))?;
        let resp = client
            .send(req)
            .await
            .map_err(|e| api_error(format!("cannot call {path}"), &e, Some(OFFLINE_HINT)))?;
        let status = resp.status();
        if attempt < ATTEMPTS && worth_retrying(status.as_u16()) {
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
            continue;
        }
        let body = resp
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| api_error(format!("cannot read the answer of {path}"), &e, None))?;
        return Ok(ProxyResponse {
            status,
            body: body.to_vec(),
        });
    }
}
