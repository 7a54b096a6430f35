//! One module per command, as uv does.
//!
//! Upstream's modes are picked by flags, in upstream's order (§6.3): `--fetch-cert`
//! ([`fetch_cert`]), `--validate` ([`validate`]), `--re-encrypt` ([`re_encrypt`]),
//! `--recovery-unseal` ([`recovery_unseal`]), `--raw` ([`raw`]), `--merge-into`
//! ([`merge_into`]), else [`seal`]; what they share (input, output, format) is `upstream_io`.
//! Our subcommands have a module each: [`keys`] (one file per `keys` subcommand), [`audit`],
//! [`scan`], [`reencrypt`], [`completion`], [`man`].
//!
//! This module only dispatches; no command module imports another or this one.

pub mod audit;
pub mod completion;
pub mod fetch_cert;
pub mod keys;
pub mod man;
pub mod merge_into;
pub mod raw;
pub mod re_encrypt;
pub mod recovery_unseal;
pub mod reencrypt;
pub mod scan;
pub mod seal;
mod upstream_io;
pub mod validate;

use crate::args::{CertArgs, Command, KubeArgs, SealArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, certs, printer};

/// Runs the subcommand, or the flag-selected upstream mode when there is none.
pub fn run(
    command: Option<Command>,
    seal: &SealArgs,
    cert: &CertArgs,
    kube: &KubeArgs,
) -> Result<Outcome> {
    match command {
        None => upstream(seal, cert, kube).map(|()| Outcome::Success),
        Some(Command::Keys(cmd)) => keys::run(*cmd, kube),
        Some(Command::Audit(args)) => audit::run(&args),
        Some(Command::Scan(args)) => scan::run(&args),
        Some(Command::Reencrypt(args)) => reencrypt::run(&args),
        Some(Command::Completion { shell }) => completion::run(shell),
        Some(Command::Man { dir }) => man::run(dir.as_deref()),
    }
}

/// Dispatches the flag-selected mode, in upstream's order.
fn upstream(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    if !seal.from_file.is_empty() && !seal.raw {
        return Err(CliError::FlagRequires {
            flag: "--from-file",
            needs: "--raw",
        });
    }
    if !seal.recovery_private_key.is_empty() && !seal.recovery_unseal {
        printer().warn("--recovery-private-key is only used with --recovery-unseal; ignoring it");
    }
    certs::note_repeated_cert(&cert.cert_values);
    // Validate -o up front so a typo fails before any work (upstream's message).
    upstream_io::output_format(seal, None)?;
    if cert.fetch_cert {
        return fetch_cert::run(seal, cert, kube);
    }
    if cert.fetch_recipient {
        return fetch_cert::run_recipient(seal, cert, kube);
    }
    if seal.validate {
        return validate::run(seal, cert, kube);
    }
    if seal.re_encrypt {
        return re_encrypt::run(seal, cert, kube);
    }
    if seal.recovery_unseal {
        return recovery_unseal::run(seal);
    }
    if seal.raw {
        return raw::run(seal, cert, kube);
    }
    if let Some(target) = &seal.merge_into {
        return merge_into::run(seal, cert, kube, target);
    }
    seal::run(seal, cert, kube)
}
