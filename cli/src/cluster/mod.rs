//! Everything that talks to the cluster: building a kube-rs client from the kubeconfig plus
//! kubectl-style overrides, and reaching the controller through the API server's service proxy
//! exactly as upstream does (§6.2), or its cert ConfigMap (ours).
//!
//! One module per concern, so each reads on its own:
//! - `config`: flags and kubeconfig into a kube-rs `Config` (no network);
//! - `client`: the client of one run, HTTP logging, retries and the operation timeout;
//! - `failure`: kube-rs errors into user-facing words and hints;
//! - `controller`: the controller's Service through the proxy, and fetching its certificate.
//!
//! Callers use the re-exports below (`cluster::client`, `cluster::Controller`, ...).

mod client;
mod config;
mod controller;
mod failure;

pub use client::{
    HttpLog, bounded, client, log_http, parse_verbosity, retrying, server, worth_retrying,
};
pub use config::{config, default_namespace, parse_timeout};
pub(crate) use controller::OFFLINE_HINT;
pub use controller::{Controller, ProxyResponse, call_path, fetch_cert};
pub use failure::{Failure, api_error, describe, reason_of};
