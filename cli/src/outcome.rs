//! How a successful run ends, and the exit statuses every mode shares.

/// The exit statuses, one scheme for every mode (documented in `cli/README.md`).
///
/// Upstream kubeseal exits 1 on every error, usage errors included; scripts rely on that, so
/// 1 stays "it failed". The checks (`scan`, `audit`) need a status that is neither success
/// nor failure, so a CI step can tell "found something" from "could not look": 3, as no
/// upstream mode uses it.
pub mod exit {
    /// Success; for `scan`/`audit`: nothing found.
    pub const SUCCESS: u8 = 0;
    /// An error the user can act on: bad flag or value, bad input, unreachable cluster, a
    /// refused operation (upstream's only error status).
    pub const ERROR: u8 = 1;
    /// An unexpected failure (a bug, or the environment: cannot start the runtime, cannot
    /// serialise output).
    pub const INTERNAL: u8 = 2;
    /// `scan` found an unsealed Secret, `audit` found SealedSecrets sealed with the key.
    pub const FINDINGS: u8 = 3;
}

/// How a successful run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// [`exit::FINDINGS`] without an error message: `scan`/`audit` found something (already
    /// reported).
    Findings,
}

impl Outcome {
    /// The process exit status.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => exit::SUCCESS,
            Outcome::Findings => exit::FINDINGS,
        }
    }
}
