//! Kubernetes API stand-in and end-to-end harness for sealed-secrets-rs.
//!
//! - [`standin`]: an in-memory Kubernetes API server on loopback, faithful enough for kube-rs
//!   and kubectl (also the `kube-standin` binary).
//! - [`harness`]: what e2e tests use: a cluster (stand-in or a real one), namespaces,
//!   project binaries as processes, state dumps on failure.
//! - [`control_plane`]: the real-cluster backend (`SEALED_SECRETS_E2E_CLUSTER=real`).
//! - [`kubeconfig`]: kubeconfig files for the stand-in.
//! - [`upstream`]: upstream Sealed Secrets' own binaries, run in-cluster style, and upstream's
//!   own RBAC, for the upstream-peer tests.

pub mod control_plane;
pub mod harness;
pub mod kubeconfig;
pub mod standin;
pub mod upstream;
