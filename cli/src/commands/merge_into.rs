//! `--merge-into F`: seal the input Secret(s) for F's namespace, name and scope and rewrite F
//! in place. Post-quantum items may join RSA ones: each value carries its own format.

use std::path::Path;
use std::str::FromStr;

use sealed_secrets_api::output::{self, OutputFormat};
use sealed_secrets_api::{SealingError, merge_into, parse_secrets};

use super::upstream_io::{SealKeys, read_one_sealed};
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::error::{CliError, Result};
use crate::io::{self, FileMode};

/// Merges the sealed input into `target`; an input without data leaves it untouched.
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs, target: &Path) -> Result<()> {
    let (mut sealed, file_format) = read_one_sealed(target)?;
    let format = match &seal.format {
        Some(f) => OutputFormat::from_str(f)?,
        None => file_format,
    };
    let keys = SealKeys::load(cert, kube)?;
    let input = io::read_input(seal.secret_file.as_deref())?;
    let secrets = parse_secrets(&input).map_err(|source| CliError::Manifest {
        context: "cannot read the Secret to merge".to_owned(),
        source,
    })?;
    if secrets.is_empty() {
        return Err(SealingError::NoSecrets.into());
    }
    // Nothing to merge: the target is left exactly as it is (not even re-rendered), and
    // without --allow-empty-data that is upstream's empty-data error.
    if secrets.iter().all(|s| s.data.is_empty()) {
        if !seal.allow_empty_data {
            return Err(SealingError::EmptyData.into());
        }
        crate::printer().note(format_args!(
            "the input Secret has no data; `{}` is left unchanged",
            target.display()
        ));
        return Ok(());
    }
    keys.with(|r| merge_into(&mut sealed, secrets, r))?;
    let text = output::sealed_secret(&sealed, format)?;
    io::write_atomic(target, text.as_bytes(), FileMode::Public)
}
