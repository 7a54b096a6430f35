//! kubeseal's error type. Every variant names what failed; causes are `#[source]`s that
//! `main` prints after a `: `. [`CliError::hint`] gives the `hint:` line, and
//! [`CliError::exit_code`] the status (1 for what the user can fix, 2 for the unexpected).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sealed_secrets_api::{ManifestError, OutputError, SealingError, UnsealError};
use sealed_secrets_crypto::{CertError, KeyError};

use crate::exit;

/// Everything kubeseal can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A message of its own, usually upstream's exact text (§6.4).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file or stream.
    #[error("{action} {}", quote_path(.path))]
    Io {
        /// "failed to read", "failed to write", ...
        action: &'static str,
        /// The file (`-` for stdin/stdout).
        path: PathBuf,
        /// The I/O error, printed Go-style ("no such file or directory").
        #[source]
        source: GoIoError,
    },
    /// A manifest could not be read.
    #[error("{context}")]
    Manifest {
        /// Which input.
        context: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// Sealing failed (upstream's messages come from the api crate).
    #[error(transparent)]
    Seal(#[from] SealingError),
    /// Unsealing or decrypting failed.
    #[error(transparent)]
    Unseal(#[from] UnsealError),
    /// Writing JSON/YAML failed, or the output format is unknown.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A certificate could not be used (upstream's messages, §1.7).
    #[error("{context}")]
    Cert {
        /// Which certificate.
        context: String,
        /// Why.
        #[source]
        source: CertError,
    },
    /// A private key could not be read.
    #[error("failed to read private key from {}", quote_path(.path))]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// Talking to the cluster failed.
    #[error("{context}")]
    Kube {
        /// What was attempted.
        context: String,
        /// kube-rs's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An HTTP fetch (`--cert https://...`) failed.
    #[error("cannot fetch certificate from `{url}`: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Status or transport error.
        message: String,
    },
    /// The backup file could not be opened or written.
    #[error("{0}")]
    Backup(String),
    /// An error with a `hint:` the user can act on ([`CliError::unhinted`] gives the error
    /// itself, whose causes `main` prints).
    #[error("{error}")]
    Hinted {
        /// The error.
        error: Box<CliError>,
        /// What to do.
        hint: String,
    },
    /// A bug or an environment problem, not the user's input.
    #[error("{0}")]
    Internal(String),
}

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

    /// The `hint:` line(s), if any.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Hinted { hint, .. } => Some(hint.clone()),
            CliError::Unseal(e) if e.is_no_key() => Some(
                "pass the private key(s) that sealed it with --recovery-private-key \
                 (e.g. a backup from `kubeseal keys backup`)"
                    .to_owned(),
            ),
            CliError::Seal(SealingError::NamespaceMismatch { .. }) => {
                Some("drop -n/--namespace, or change metadata.namespace in the input".to_owned())
            }
            CliError::Seal(SealingError::EmptyData) => None,
            _ => None,
        }
    }

    /// The error without its hint wrapper(s).
    pub fn unhinted(&self) -> &CliError {
        match self {
            CliError::Hinted { error, .. } => error.unhinted(),
            other => other,
        }
    }

    /// True when this is a closed stdout (the reader went away): exit quietly.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            CliError::Io { source, .. } => source.0.kind() == io::ErrorKind::BrokenPipe,
            CliError::Hinted { error, .. } => error.is_broken_pipe(),
            _ => false,
        }
    }

    /// [`exit::ERROR`] for what the user can fix, [`exit::INTERNAL`] for the unexpected.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Internal(_) | CliError::Output(OutputError::Yaml(_)) => exit::INTERNAL,
            CliError::Output(OutputError::Json(_)) => exit::INTERNAL,
            CliError::Hinted { error, .. } => error.exit_code(),
            _ => exit::ERROR,
        }
    }
}

/// `` `path` ``, or "stdin" for `-`.
fn quote_path(p: &Path) -> String {
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

/// Result alias.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
