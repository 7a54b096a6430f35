//! The `kubeseal` binary: parse arguments, call [`kubeseal::run`], print errors.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use kubeseal::{Cli, CliError, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match kubeseal::run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(kubeseal::exit::FINDINGS),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// `error: <msg>: <cause>: ...` then `hint: ...`, on stderr; red/yellow only on a terminal
/// without `NO_COLOR`.
fn report(e: &CliError) {
    let color = kubeseal::io::color_stderr();
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
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{red}error:{reset} {msg}");
    if let Some(hint) = e.hint() {
        let _ = writeln!(err, "{yellow}hint:{reset} {hint}");
    }
}

/// clap's own errors: `--help` and friends print to stdout and exit 0; every usage error
/// (unknown flag, missing value, bad value) exits 1 like upstream's (clap's default is 2,
/// which our scheme keeps for unexpected failures, see `kubeseal::exit`).
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::from(kubeseal::exit::ERROR),
    }
}
