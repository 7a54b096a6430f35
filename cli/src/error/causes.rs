//! The causes a [`CliError`](super::CliError) carries that are types of their own: why a
//! backup passphrase is unusable, I/O errors printed the way Go prints them (upstream's
//! scripts match on that text), and what a failed Kubernetes call means. Plain values, so the
//! error type depends on no other module of the crate.

use std::fmt;
use std::io;
use std::path::Path;

/// Why a backup passphrase is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// `--passphrase-file` is not UTF-8.
    #[error("the passphrase file is not UTF-8")]
    NotUtf8,
    /// The confirmation differs.
    #[error("the passphrases do not match")]
    Mismatch,
    /// The passphrase is empty.
    #[error("the backup passphrase is empty")]
    Empty,
    /// A new backup's passphrase is below the minimum strength.
    #[error(
        "the backup passphrase is too weak: it needs at least {min_chars} characters, {min_distinct} of them different"
    )]
    Weak {
        /// Minimum number of characters.
        min_chars: usize,
        /// Minimum number of distinct characters.
        min_distinct: usize,
    },
    /// No terminal to ask on.
    #[error("a passphrase is needed, but it cannot be asked for: no terminal is available ({0})")]
    NoTerminal(GoIoError),
}

/// `` `path` ``, or "stdin" for `-`.
pub(super) fn quote_path(p: &Path) -> String {
    if p.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        format!("`{}`", p.display())
    }
}

/// An `io::Error` displayed like Go's (`open x: no such file or directory`): upstream's
/// integration test matches `error:.*no such file or directory`, lower case.
#[derive(Debug)]
pub struct GoIoError(pub io::Error);

impl fmt::Display for GoIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0.kind() {
            io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            io::ErrorKind::IsADirectory => "is a directory".to_owned(),
            io::ErrorKind::AlreadyExists => "file exists".to_owned(),
            _ => {
                let s = self.0.to_string();
                // "Broken pipe (os error 32)" -> "broken pipe (os error 32)"
                let mut c = s.chars();
                match c.next() {
                    Some(first) => first.to_lowercase().chain(c).collect(),
                    None => s,
                }
            }
        };
        f.write_str(&text)
    }
}

impl std::error::Error for GoIoError {}

/// What a failed Kubernetes call means for the user, in words (kube's own `Display` of an API
/// error includes the `Debug` of the whole Status). Built by `cluster::describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The API server answered with an error status.
    Api {
        /// HTTP code.
        code: u16,
        /// Its reason, e.g. `NotFound`.
        reason: String,
        /// Its message.
        message: String,
    },
    /// The API server could not be reached (connection, TLS, timeout).
    Unreachable {
        /// Its URL, as the client was configured.
        server: String,
        /// The innermost cause, in words.
        cause: String,
    },
    /// Anything else (credentials, configuration).
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api {
                code,
                reason,
                message,
            } => {
                if reason.is_empty() {
                    write!(f, "{message} (HTTP {code})")
                } else {
                    write!(f, "{message} ({reason}, HTTP {code})")
                }
            }
            Failure::Unreachable { server, cause } => write!(
                f,
                "cannot reach the Kubernetes API server at {server}: {cause}"
            ),
            Failure::Other(m) => f.write_str(m),
        }
    }
}
