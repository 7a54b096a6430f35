//! `kubeseal`: upstream-compatible sealing (§6) plus our operator subcommands.
//!
//! `main.rs` only parses arguments and calls [`run`]; every command lives in [`commands`] (one
//! file each) so tests can drive it. The SealedSecret logic itself (parsing, sealing, merging, unsealing,
//! output shapes) is the `sealed_secrets_api` crate's; this crate adds flags, files, the
//! cluster, and reporting.
//!
//! Modes are picked in upstream's order: `--version` (here), then [`commands::run`]:
//! `--fetch-cert`, `--fetch-recipient`, `--validate`, `--re-encrypt`, `--recovery-unseal`, `--raw`, `--merge-into`,
//! else seal.
//!
//! Output discipline: data goes to stdout only through [`io::write_stdout`], every human
//! message to stderr only through [`printer::Printer`]; the print macros are denied so a stray
//! `eprintln!` cannot bypass the verbosity and colour decisions.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod args;
pub mod async_runtime;
pub mod backup_encryption;
pub mod certs;
pub mod cluster;
pub mod commands;
pub mod documents;
pub mod env;
pub mod error;
pub mod http;
pub mod io;
pub mod keyfiles;
pub mod outcome;
pub mod pq_recipients;
pub mod printer;

pub use args::{Cli, Command};
pub use error::{CliError, Result};
pub use outcome::{Outcome, exit};
pub use printer::printer;

/// Runs one invocation.
pub fn run(cli: Cli) -> Result<Outcome> {
    let verbosity = match &cli.klog_verbosity {
        Some(v) => cluster::parse_verbosity(v)?,
        None => 0,
    };
    let out = printer::init(verbosity);
    // Upstream's klog flags: accepted (scripts pass them), but there is no klog here.
    if cli.klog_vmodule.is_some() {
        out.warn("--vmodule is ignored (no per-module logging here); use -v LEVEL");
    }
    if cli.klog_logtostderr.is_some() {
        out.warn("--logtostderr is ignored: kubeseal always logs to stderr");
    }
    if cli.version {
        io::write_stdout(format!("kubeseal version: {}\n", args::VERSION).as_bytes())?;
        return Ok(Outcome::Success);
    }
    commands::run(cli.command, &cli.seal, &cli.cert, &cli.kube)
}
