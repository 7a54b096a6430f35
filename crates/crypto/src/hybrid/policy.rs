//! What a ring does with multi-recipient version-1 values, and how many it met.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::OpenError;

/// How many multi-recipient version-1 values rings sharing this tally met, by outcome
/// (the controller exports them as a metric for the migration window).
#[derive(Debug, Default)]
pub struct MultiV1Tally {
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl MultiV1Tally {
    /// Version-1 values opened (or tried) because the policy accepted them.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Version-1 values refused before any key was tried.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// What a [`KeyRing`] does with multi-recipient version-1 values, which have no key commitment
/// and so can open to a different plaintext for each recipient (`FORMAT.md` §2.1). The default
/// refuses them ([`OpenError::MultiV1Refused`], before any RSA work); accepting them is a
/// migration switch (controller `--accept-multi-recipient-v1`). Every version-1 value met is
/// counted in the policy's [`MultiV1Tally`], which clones of the policy share.
#[derive(Debug, Clone, Default)]
pub struct MultiV1Policy {
    accept: bool,
    tally: Arc<MultiV1Tally>,
}

impl MultiV1Policy {
    /// Refuse version 1 (the default), counting into `tally`.
    pub fn refuse(tally: Arc<MultiV1Tally>) -> MultiV1Policy {
        MultiV1Policy {
            accept: false,
            tally,
        }
    }

    /// Accept version 1 (a migration window), counting into `tally`.
    pub fn accept(tally: Arc<MultiV1Tally>) -> MultiV1Policy {
        MultiV1Policy {
            accept: true,
            tally,
        }
    }

    /// Whether version-1 values are opened.
    pub fn accepts(&self) -> bool {
        self.accept
    }

    /// The counts of version-1 values met.
    pub fn tally(&self) -> &Arc<MultiV1Tally> {
        &self.tally
    }

    /// Counts one version-1 value and says whether it may be opened.
    pub(super) fn admit(&self) -> Result<(), OpenError> {
        if self.accept {
            self.tally.accepted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            self.tally.refused.fetch_add(1, Ordering::Relaxed);
            Err(OpenError::MultiV1Refused)
        }
    }
}
