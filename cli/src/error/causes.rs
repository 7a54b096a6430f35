//! The causes a [`CliError`](super::CliError) carries that are types of their own: why a
//! backup passphrase is unusable, and I/O errors printed the way Go prints them (upstream's
//! scripts match on that text).

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
