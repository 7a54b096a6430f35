//! `kubeseal man`: the man pages, generated from the clap definition.

use std::path::Path;

use crate::args;
use crate::error::{CliError, Result};
use crate::io;
use crate::{Outcome, printer};

/// `kubeseal man`: the top page on stdout, or every page (one per command, named like
/// `kubeseal-keys-list.1`, which the top page's SEE ALSO-style list refers to) into `dir`.
pub fn run(dir: Option<&Path>) -> Result<Outcome> {
    let fail = |e: std::io::Error| CliError::Internal(format!("cannot render the man page: {e}"));
    match dir {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(args::command())
                .render(&mut buf)
                .map_err(fail)?;
            io::write_stdout(&buf)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::io("failed to create directory", dir, e))?;
            clap_mangen::generate_to(args::command(), dir)
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
