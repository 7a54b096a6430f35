//! `kubeseal completion SHELL`: the shell completion script, generated from the clap
//! definition.

use crate::Outcome;
use crate::args;
use crate::error::Result;
use crate::io;

/// Prints the script for `shell` on stdout.
pub fn run(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut args::command(), "kubeseal", &mut buf);
    io::write_stdout(&buf)?;
    Ok(Outcome::Success)
}
