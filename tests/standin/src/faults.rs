//! Fault injection, configured per run (flags/env of the binary, [`super::Config`]) and
//! changeable at runtime (`PUT /standin/v1/faults`, [`super::Handle::set_faults`]).

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

/// Which faults to inject. Fractions are probabilities in `[0, 1]` drawn per request.
/// Faults apply to resource requests (`/api/v1/...`, `/apis/<g>/<v>/...`), not to discovery
/// or the admin API, so clients can still find out what the server serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Fraction of resource requests answered `500 InternalError`.
    pub error500_fraction: f64,
    /// Fraction of resource requests answered `429 TooManyRequests` with `Retry-After: 1`.
    pub error429_fraction: f64,
    /// Fraction of updates and patches answered `409 Conflict`.
    pub conflict_fraction: f64,
    /// Latency added to every request except the admin API, in milliseconds.
    pub latency_ms: u64,
    /// Cut every watch stream this many seconds after it starts (0: never).
    pub watch_cut_seconds: u64,
    /// Refuse watches that ask for their initial events (`sendInitialEvents`), as an API
    /// server without the WatchList feature does (422 Invalid), so that clients list in pages.
    pub refuse_streaming_lists: bool,
}

/// What the dice say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    None,
    Error500,
    Error429,
    Conflict,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub faults: Faults,
    rng: StdRng,
}

impl FaultState {
    pub fn new(faults: Faults, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Self { faults, rng }
    }

    pub fn roll(&mut self, is_update: bool) -> Injected {
        let f = &self.faults;
        let (p500, p429, p409) = (
            f.error500_fraction,
            f.error429_fraction,
            f.conflict_fraction,
        );
        if p500 > 0.0 && self.rng.random_bool(p500.clamp(0.0, 1.0)) {
            return Injected::Error500;
        }
        if p429 > 0.0 && self.rng.random_bool(p429.clamp(0.0, 1.0)) {
            return Injected::Error429;
        }
        if is_update && p409 > 0.0 && self.rng.random_bool(p409.clamp(0.0, 1.0)) {
            return Injected::Conflict;
        }
        Injected::None
    }
}
