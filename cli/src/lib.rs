//! `kubeseal`: upstream-compatible sealing (§6) plus our operator subcommands.
//!
//! `main.rs` only parses arguments and calls [`run`]; every mode lives here or in a module so
//! tests can drive it. The SealedSecret logic itself (parsing, sealing, merging, unsealing,
//! output shapes) is the `sealed_secrets_api` crate's; this crate adds flags, files, the
//! cluster, and reporting.
//!
//! Modes are picked in upstream's order: `--version`, `--fetch-cert`, `--validate`,
//! `--re-encrypt`, `--recovery-unseal`, `--raw`, `--merge-into`, else seal.

pub mod audit;
pub mod backup;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod docs;
pub mod env;
pub mod error;
pub mod http;
pub mod io;
pub mod keyfiles;
pub mod keys;
pub mod modes;
pub mod reencrypt;
pub mod scan;
pub mod validate;

use std::future::Future;

pub use cli::{Cli, Command};
pub use error::{CliError, Result};

/// How a successful run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1 without an error message: `scan`/`audit` found something (already reported).
    Findings,
}

/// Runs one invocation.
pub fn run(cli: Cli) -> Result<Outcome> {
    if cli.version {
        io::write_stdout(format!("kubeseal version: {}\n", cli::VERSION).as_bytes())?;
        return Ok(Outcome::Success);
    }
    match cli.command {
        None => modes::run_upstream(&cli.seal, &cli.cert, &cli.kube).map(|()| Outcome::Success),
        Some(Command::Keys(cmd)) => keys::run(cmd, &cli.kube),
        Some(Command::Audit(args)) => audit::run(&args),
        Some(Command::Scan(args)) => scan::run(&args),
        Some(Command::Reencrypt(args)) => reencrypt::run(&args),
        Some(Command::Completion { shell }) => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cli::command(), "kubeseal", &mut buf);
            io::write_stdout(&buf)?;
            Ok(Outcome::Success)
        }
        Some(Command::Man) => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cli::command())
                .render(&mut buf)
                .map_err(|e| CliError::Internal(format!("cannot render the man page: {e}")))?;
            io::write_stdout(&buf)?;
            Ok(Outcome::Success)
        }
    }
}

/// Runs a future on a fresh single-threaded runtime. Only the cluster and URL paths need
/// one, so offline runs never start tokio.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(fut))
}
