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

/// Runs one invocation.
pub fn run(cli: Cli) -> Result<Outcome> {
    if let Some(v) = &cli.klog_verbosity {
        cluster::set_verbosity(cluster::parse_verbosity(v)?);
    }
    // Upstream's klog flags: accepted (scripts pass them), but there is no klog here.
    if cli.klog_vmodule.is_some() {
        eprintln!("warning: --vmodule is ignored (no per-module logging here); use -v LEVEL");
    }
    if cli.klog_logtostderr.is_some() {
        eprintln!("warning: --logtostderr is ignored: kubeseal always logs to stderr");
    }
    if cli.version {
        io::write_stdout(format!("kubeseal version: {}\n", cli::VERSION).as_bytes())?;
        return Ok(Outcome::Success);
    }
    match cli.command {
        None => modes::run_upstream(&cli.seal, &cli.cert, &cli.kube).map(|()| Outcome::Success),
        Some(Command::Keys(cmd)) => keys::run(*cmd, &cli.kube),
        Some(Command::Audit(args)) => audit::run(&args),
        Some(Command::Scan(args)) => scan::run(&args),
        Some(Command::Reencrypt(args)) => reencrypt::run(&args),
        Some(Command::Completion { shell }) => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cli::command(), "kubeseal", &mut buf);
            io::write_stdout(&buf)?;
            Ok(Outcome::Success)
        }
        Some(Command::Man { dir }) => man(dir.as_deref()),
    }
}

/// `kubeseal man`: the top page on stdout, or every page (one per command, named like
/// `kubeseal-keys-list.1`, which the top page's SEE ALSO-style list refers to) into `dir`.
fn man(dir: Option<&std::path::Path>) -> Result<Outcome> {
    let fail = |e: std::io::Error| CliError::Internal(format!("cannot render the man page: {e}"));
    match dir {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cli::command())
                .render(&mut buf)
                .map_err(fail)?;
            io::write_stdout(&buf)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::io("failed to create directory", dir, e))?;
            clap_mangen::generate_to(cli::command(), dir)
                .map_err(|e| CliError::io("failed to write man pages into", dir, e))?;
            let mut pages: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| CliError::io("failed to read directory", dir, e))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("kubeseal") && n.ends_with(".1"))
                .collect();
            pages.sort();
            eprintln!("wrote {} man pages into `{}`", pages.len(), dir.display());
        }
    }
    Ok(Outcome::Success)
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
