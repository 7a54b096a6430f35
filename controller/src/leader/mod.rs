//! Lease-based leader election (`coordination.k8s.io/v1`), so that `replicas: 2+` works
//! (upstream supports one replica only, §4.9/§9.4). Only the leader reconciles and renews
//! keys; every replica serves the certificate and verify and follows keys via the watcher.
//!
//! The algorithm is client-go's: a candidate takes the Lease when its record has not changed
//! for the lease duration *recorded in the Lease* (the holder's promise), *as observed on the
//! candidate's own clock* (so clock skew between nodes does not matter); the leader renews
//! every retry period and, like client-go's renew loop, a failed renewal (a conflict, an API
//! error, a call that timed out) is retried every retry period until the renew deadline has
//! passed since the last successful renewal; only then, or when another replica visibly holds
//! the Lease, does it step down. Every Lease call is bounded by the renew deadline, so a hung
//! API connection cannot keep a leader that can no longer renew.
//!
//! - [`election`]: the algorithm, the [`Fence`], the release; [`flags`]: `--leader-election*`.

pub mod election;
pub mod flags;

pub use election::{
    ElectionConfig, Fence, NotLeading, identity, keeps_leading, may_acquire, recorded_duration,
    release, run,
};
pub use flags::LeaderArgs;
