//! Reconciling SealedSecrets into Secrets (§4.5-4.9).
//!
//! The decisions are pure functions ([`decide`]: ownership and write mode, merge vs
//! overwrite, semantic equality, immutable targets, status transitions, source digest),
//! unit-tested without I/O; [`reconcile`] strings them together with API calls
//! ([`apply`]), and [`run`] wires watches into kube-runtime's `applier` ([`watch`]).
//!
//! Beyond upstream: a produced Secret records `sealed-secrets-rs.dev/source-digest`; when it
//! matches, the SealedSecret is not decrypted again (ownership, labels, annotations and type
//! are still enforced). Secrets are watched metadata-only, and only their deletions are used.
//!
//! - [`decide`]: the pure decisions.
//! - [`apply`]: one reconcile's API calls, status, Events, metrics, retries.
//! - [`key_order`]: which keys to try first for values that do not name their key (pure).
//! - [`watch`]: the watches and the queue that drive reconciles.

pub mod apply;
pub mod decide;
pub mod key_order;
pub mod watch;

pub use apply::*;
pub use decide::*;
pub use watch::run;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod tests;
