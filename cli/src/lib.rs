//! `kubeseal`: upstream-compatible sealing (§6) plus our operator subcommands.
//!
//! `main.rs` only parses arguments and calls [`run`]; every mode lives here or in a module so
//! tests can drive it. The SealedSecret logic itself (parsing, sealing, merging, unsealing,
//! output shapes) is the `sealed_secrets_api` crate's; this crate adds flags, files, the
//! cluster, and reporting.
//!
//! Modes are picked in upstream's order: `--version`, `--fetch-cert`, `--validate`,
//! `--re-encrypt`, `--recovery-unseal`, `--raw`, `--merge-into`, else seal.
//!
//! Output discipline: data goes to stdout only through [`io::write_stdout`], every human
//! message to stderr only through [`printer::Printer`]; the print macros are denied so a stray
//! `eprintln!` cannot bypass the verbosity and colour decisions.

#![deny(clippy::print_stdout, clippy::print_stderr)]

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
pub mod outcome;
pub mod printer;
pub mod reencrypt;
pub mod runtime;
pub mod scan;
pub mod validate;

pub use cli::{Cli, Command};
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
            printer().status(format_args!(
                "wrote {} man pages into `{}`",
                pages.len(),
                dir.display()
            ));
        }
    }
    Ok(Outcome::Success)
}
