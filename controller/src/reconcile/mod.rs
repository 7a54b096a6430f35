//! Reconciling SealedSecrets into Secrets (§4.5-4.9).
//!
//! A pass is decided by pure functions: [`plan::secret_write`] (the Secret write) and
//! [`plan::plan`] (status, condition, Event, requeue), built on the decisions of [`decide`]
//! (ownership and write mode, merge vs overwrite, semantic equality, immutable targets,
//! status transitions, source digest), all unit-tested without I/O. [`reconcile`] is the
//! shell that reads, unseals and carries the plan out ([`apply`]), and [`run`] wires
//! watches into the reconcile queue ([`watch`], [`runner`], [`queue`]).
//!
//! Beyond upstream: the SealedSecret's `status.sourceDigest` records what its Secret was
//! produced from; when it matches, the SealedSecret is not decrypted again (ownership, labels,
//! annotations and type are still enforced; docs/design.md, "Source digest"). SealedSecrets
//! and Secrets are watched metadata-only (docs/design.md, "What the controller keeps"); a
//! reconcile reads the whole SealedSecret, and only deletions of Secrets are used.
//!
//! - [`plan`]: what one pass does; [`decide`]: the decisions it is made of (pure).
//! - [`apply`]: the shell: one reconcile's API calls, status, Events, metrics, retries.
//! - [`sharded`]: a shard member's selector hooks and drain acknowledgement (`--sharding`).
//! - [`deleted`]: what a deleted SealedSecret leaves to do; [`context`]: what reconciles share; [`error`]: why one failed; [`flags`]: the flags.
//! - [`key_order`]: which keys to try first for values that do not name their key (pure).
//! - [`queue`]: which requested reconcile starts next, fair between namespaces (pure);
//!   [`runner`]: the loop that runs them; [`cpugate`]: one decryption per core and class at
//!   a time, the next one chosen fairly between namespaces, a backlog's at lower priority.
//! - [`watch`]: the watches that drive reconciles; [`cache`]: what the SealedSecret watch
//!   keeps of each object (its name and a hash of its version); [`warm`]: the start-up check that
//!   leaves SealedSecrets already in sync out of the queue (docs/design.md, "Restarts");
//!   [`initial_list`]: whether the watches' first lists come as a stream or in pages;
//!   [`reads`]: a reconcile's reads, from the API server's watch cache, no older than what
//!   the watches reported.

pub mod apply;
mod cache;
pub mod context;
pub mod cpugate;
pub mod decide;
pub mod deleted;
pub mod error;
pub mod flags;
pub mod initial_list;
pub mod key_order;
mod lean_meta;
pub mod plan;
pub mod queue;
mod reads;
mod runner;
pub mod sharded;
mod spec_hash;
pub mod warm;
pub mod watch;

pub use apply::{error_policy, reconcile, reconcile_cached};
pub use context::Context;
pub use decide::{
    IMMUTABLE_MESSAGE, SERVICE_ACCOUNT_TOKEN_TYPE, Unmanaged, WriteMode, cached_metadata,
    desired_metadata_only, differs, digest_matches, finish_desired, is_controlled_by,
    legacy_digest_matches, legacy_source_digest, merge, next_status, old_gc_deletes,
    recreate_target, refused_type, retry_backoff, reusable, source_digest, start_secret_facts,
    too_large, violates_immutable, write_mode,
};
pub use error::ReconcileError;
pub use flags::{DEFAULT_MAX_SEALED_SECRET_SIZE, ReconcileArgs};
pub use plan::{Plan, SecretWrite, StartFacts, Written, plan, secret_write, unchanged_at_start};
pub use watch::run;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;
