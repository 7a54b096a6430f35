//! The one place human-facing output is written: every warning, note, status line, progress
//! line, HTTP log line and the final `error:`/`hint:` report goes through [`Printer`], which
//! decides once per process how verbose to be and whether stderr gets colour (as uv's printer
//! does). Data (sealed manifests, certificates, listings) never goes here: it goes to stdout
//! through [`crate::io::write_stdout`].
//!
//! The printer is process-wide (set once by [`init`] in [`crate::run`]) rather than passed
//! down, because some output is produced where no arguments reach: the `-v` HTTP log is
//! written from a tower layer inside kube's client.
//!
//! Writes go to a locked stderr and ignore write errors: a closed stderr must not turn a
//! successful run into a failure or a panic (`eprintln!` would panic), and there is nowhere
//! left to report it anyway.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use crate::error::CliError;

/// The `-v` level at which HTTP calls are printed, as kubectl's `-v=6`.
pub const HTTP_LOG_LEVEL: u8 = 6;

static PRINTER: OnceLock<Printer> = OnceLock::new();

/// How human output looks for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printer {
    /// klog-style `-v` level: [`HTTP_LOG_LEVEL`] and above log every HTTP call.
    verbosity: u8,
    /// Colour the `error:`/`hint:` prefixes.
    color: bool,
    /// Draw the in-place progress line (stderr is a terminal).
    progress: bool,
}

/// Sets the process's printer from `-v` and the environment; the first call wins (later calls
/// return the printer already set, so a library user that called [`printer`] first keeps the
/// defaults it saw).
pub fn init(verbosity: u8) -> &'static Printer {
    PRINTER.get_or_init(|| Printer::from_env(verbosity))
}

/// The process's printer (defaults from the environment, `-v 0`, when [`init`] was not
/// called, e.g. by tests driving the library).
pub fn printer() -> &'static Printer {
    PRINTER.get_or_init(|| Printer::from_env(0))
}

impl Printer {
    /// Decides colour and progress once: colour only on a terminal without a non-empty
    /// `NO_COLOR` (<https://no-color.org>); progress only on a terminal.
    pub fn from_env(verbosity: u8) -> Printer {
        Printer::decide(
            verbosity,
            std::io::stderr().is_terminal(),
            std::env::var_os(crate::env::NO_COLOR).as_deref(),
        )
    }

    /// The decision of [`Printer::from_env`], pure: colour needs a terminal and no non-empty
    /// `NO_COLOR` (an empty one does not count, as no-color.org says); progress needs a
    /// terminal.
    pub fn decide(verbosity: u8, stderr_tty: bool, no_color: Option<&std::ffi::OsStr>) -> Printer {
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        Printer::new(verbosity, stderr_tty && !no_color, stderr_tty)
    }

    /// A printer with explicit settings (tests).
    pub fn new(verbosity: u8, color: bool, progress: bool) -> Printer {
        Printer {
            verbosity,
            color,
            progress,
        }
    }

    /// The `-v` level.
    pub fn verbosity(&self) -> u8 {
        self.verbosity
    }

    /// `warning: <msg>`: something the user asked for is ignored or risky.
    pub fn warn(&self, msg: impl Display) {
        write_stderr(&format!("warning: {msg}\n"));
    }

    /// `note: <msg>`: extra information about a result.
    pub fn note(&self, msg: impl Display) {
        write_stderr(&format!("note: {msg}\n"));
    }

    /// A plain status line (what was done, a summary).
    pub fn status(&self, msg: impl Display) {
        write_stderr(&format!("{msg}\n"));
    }

    /// A line printed only at `-v level` or above.
    pub fn verbose(&self, level: u8, msg: impl Display) {
        if self.verbosity >= level {
            write_stderr(&format!("{msg}\n"));
        }
    }

    /// Whether [`Printer::progress`] draws anything (stderr is a terminal).
    pub fn shows_progress(&self) -> bool {
        self.progress
    }

    /// Replaces the current terminal line with `msg` (no newline); nothing off a terminal.
    pub fn progress(&self, msg: impl Display) {
        if self.progress {
            write_stderr(&format!("\r\x1b[2K{msg}"));
        }
    }

    /// Ends the progress line so the next message starts on a fresh line; nothing off a
    /// terminal.
    pub fn end_progress(&self) {
        if self.progress {
            write_stderr("\n");
        }
    }

    /// The final report of a failed run: `error: <msg>: <cause>: ...` then `hint: ...`.
    pub fn error(&self, e: &CliError) {
        write_stderr(&error_report(e, self.color));
    }
}

/// The text of [`Printer::error`]: the error and its chain of causes on one line (a cause
/// whose text the message already ends with is not repeated), then the hint if any; the
/// prefixes bold red/yellow when `color`.
pub fn error_report(e: &CliError, color: bool) -> String {
    let (red, yellow, reset) = if color {
        ("\x1b[1;31m", "\x1b[1;33m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let base = e.unhinted();
    let mut msg = base.to_string();
    let mut cur = std::error::Error::source(base);
    while let Some(c) = cur {
        let text = c.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cur = c.source();
    }
    let mut out = format!("{red}error:{reset} {msg}\n");
    if let Some(hint) = e.hint() {
        out.push_str(&format!("{yellow}hint:{reset} {hint}\n"));
    }
    out
}

fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn error_report_chains_causes_and_hint() {
        let e = CliError::io(
            "failed to read",
            Path::new("x.yaml"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
        .with_hint("check the path");
        assert_eq!(
            error_report(&e, false),
            "error: failed to read `x.yaml`: no such file or directory\nhint: check the path\n"
        );
    }

    #[test]
    fn error_report_colours_only_the_prefixes() {
        let e = CliError::Internal("boom".to_owned()).with_hint("retry");
        assert_eq!(
            error_report(&e, true),
            "\x1b[1;31merror:\x1b[0m boom\n\x1b[1;33mhint:\x1b[0m retry\n"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert_eq!(Printer::decide(0, true, None), Printer::new(0, true, true));
        assert_eq!(
            Printer::decide(0, true, Some(OsStr::new("1"))),
            Printer::new(0, false, true)
        );
        assert_eq!(
            Printer::decide(0, true, Some(OsStr::new(""))),
            Printer::new(0, true, true)
        );
        assert_eq!(
            Printer::decide(6, false, None),
            Printer::new(6, false, false)
        );
    }

    #[test]
    fn verbosity_is_kept() {
        assert_eq!(Printer::new(7, false, false).verbosity(), 7);
        assert!(!Printer::new(0, true, false).shows_progress());
    }
}
