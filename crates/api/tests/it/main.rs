//! Integration tests for sealed-secrets-api (one binary, so the heavy dependencies link once).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns: a panic is the failure report"
)]

mod common;
mod crd;
mod golden;
mod manifest;
mod seal_manifests;
mod seal_unseal;
mod template_budget;
mod unseal_cost;
