//! End-to-end tests: the real `sealed-secrets-controller` binary against the API stand-in
//! (or the real cluster named by `SEALED_SECRETS_E2E_KUBECONFIG`), covering upstream's
//! controller integration scenarios (§8.1) and the project's additions.

// Helpers outside #[test] functions fail loudly on purpose (clippy.toml's test allowance
// only covers the test functions themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod cold_start;
mod common;
mod fairness;
mod faults;
mod flags;
mod hardening;
mod hostile_http;
mod hostile_templates;
mod http_endpoints;
mod key_usage;
mod key_wrap;
mod keys;
mod multi_v1;
mod post_quantum;
mod pq_clusters;
mod scenarios;
mod shards;
mod token_keys;
mod unseal;
