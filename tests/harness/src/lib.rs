//! End-to-end harness for sealed-secrets-rs: what the e2e suites of every package use.
//!
//! - [`cluster`]: a cluster (the stand-in or a real one), namespaces, project binaries as
//!   processes, state dumps on failure.
//! - [`tools`]: what the rest builds on (errors, binaries, kubectl/helm, ports, processes);
//!   all re-exported by [`cluster`].
//! - [`control_plane`]: the real-cluster backend (`SEALED_SECRETS_E2E_CLUSTER=real`).
//! - [`failure`]: the failure message repeated after a state dump (CI logs keep the tail).
//! - [`faultproxy`]: fault injection (500s, 429s, 409s, watch cuts) in front of any API
//!   server, the real kube-apiserver included.
//! - [`hostile`]: hostile HTTP clients (pipelining non-readers, slow-loris headers, slow
//!   bodies) and a `/healthz` probe, for the HTTP server's hardening tests.
//! - [`hostile_templates`]: template attacks (the line-number oracle) and the peak RSS that
//!   hostile-template tests are judged by.
//! - [`kms`]: `local-kms`, the AWS KMS API emulator the key-wrapping tests run against.
//! - [`upstream`]: upstream Sealed Secrets' own binaries, run in-cluster style, and upstream's
//!   own RBAC, for the upstream-peer tests.
//! - [`wait`]: [`wait::eventually`] and friends, the one way suites wait for what another
//!   process writes, and [`wait::metric_sum`].
//! - [`standin`] and [`kubeconfig`]: re-exported from the `kube-standin` crate
//!   (`tests/standin`), the loopback Kubernetes API stand-in, so that suites need one
//!   dependency.

pub mod cluster;
pub mod control_plane;
pub mod failure;
pub mod faultproxy;
pub mod hostile;
pub mod hostile_templates;
pub mod kms;
pub mod tools;
pub mod upstream;
pub mod wait;

pub use kube_standin as standin;
pub use kube_standin::kubeconfig;
