//! Reconciling SealedSecrets into Secrets (§4.5-4.9).
//!
//! The decisions are pure functions ([`decide`]: ownership and write mode, merge vs
//! overwrite, semantic equality, immutable targets, status transitions, source digest),
//! unit-tested without I/O; [`reconcile`] strings them together with API calls
//! ([`apply`]), and [`run`] wires watches into kube-runtime's `applier` ([`watch`]).
//!
//! Beyond upstream: the SealedSecret's `status.sourceDigest` records what its Secret was
//! produced from; when it matches, the SealedSecret is not decrypted again (ownership, labels,
//! annotations and type are still enforced; docs/design.md, "Source digest"). SealedSecrets
//! and Secrets are watched metadata-only (docs/design.md, "What the controller keeps"); a
//! reconcile reads the whole SealedSecret, and only deletions of Secrets are used.
//!
//! - [`decide`]: the pure decisions.
//! - [`apply`]: one reconcile's API calls, status, Events, metrics, retries.
//! - [`key_order`]: which keys to try first for values that do not name their key (pure).
//! - [`watch`]: the watches and the queue that drive reconciles.

pub mod apply;
pub mod decide;
pub mod flags;
pub mod key_order;
pub mod watch;

pub use apply::*;
pub use decide::*;
pub use flags::ReconcileArgs;
pub use watch::run;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod tests;
