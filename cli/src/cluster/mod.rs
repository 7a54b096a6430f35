//! Everything that talks to the cluster: building a kube-rs client from the kubeconfig plus
//! kubectl-style overrides, and reaching the controller through the API server's service proxy
//! exactly as upstream does (§6.2). Which certificate to fetch (the ConfigMap or the
//! controller's) is `crate::certs`'s decision.
//!
//! One module per concern, so each reads on its own:
//! - `config`: flags and kubeconfig into a kube-rs `Config` (no network);
//! - `client`: the client of one run, HTTP logging, retries and the operation timeout;
//! - `failure`: kube-rs errors into user-facing words and hints (naming the API server);
//! - `controller`: the controller's Service through the API server's service proxy.
//!
//! Callers use the re-exports below (`cluster::client`, `cluster::Controller`, ...). Imports
//! run one way: this module uses the flag structs (`cli`), `error` and `printer`; none of
//! them uses it, and inside, `failure` is the leaf that `config` and `client` build on.

mod client;
mod config;
mod controller;
mod failure;

pub use client::{HttpLog, bounded, client, log_http, parse_verbosity, retrying, worth_retrying};
pub use config::{config, default_namespace, parse_timeout};
pub use controller::{Controller, ProxyResponse, call_path};
pub use failure::{api_error, describe, reason_of, server};
