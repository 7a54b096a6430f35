//! The `kubeseal` binary: parse arguments, call [`kubeseal::run`], print errors.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use kubeseal::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match kubeseal::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            kubeseal::printer().error(&e);
            ExitCode::from(e.exit_code())
        }
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
