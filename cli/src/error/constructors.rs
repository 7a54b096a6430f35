//! Shorthand constructors for the variants built in many places.

use std::io;
use std::path::Path;

use super::CliError;
use super::causes::GoIoError;

impl CliError {
    /// Attaches a `hint:` line.
    pub fn with_hint(self, hint: impl Into<String>) -> CliError {
        CliError::Hinted {
            error: Box::new(self),
            hint: hint.into(),
        }
    }

    /// Shorthand for an I/O failure on `path`.
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> CliError {
        CliError::Io {
            action,
            path: path.to_owned(),
            source: GoIoError(source),
        }
    }

    /// Shorthand for a cluster failure.
    pub fn kube(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> CliError {
        CliError::Kube {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
