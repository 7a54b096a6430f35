//! `kubeseal keys ...`: the operator side. Keys are the controller's `kubernetes.io/tls`
//! Secrets in its namespace labelled `sealedsecrets.bitnami.com/sealed-secrets-key` (§4.2),
//! plus the legacy Secret named `sealed-secrets-key`.
//!
//! This module only dispatches; each subcommand has its file (`list`, `rotate`, `backup`,
//! `restore`, `retire`, `verify_backup`), `secrets` reads the key Secrets they all start from,
//! `usage` which keys the cluster's SealedSecrets need, and `backup_file` reads a backup back
//! for `restore`.

mod backup;
mod backup_file;
mod convert;
mod list;
mod restore;
mod retire;
mod rotate;
mod secrets;
mod usage;
mod verify_backup;

use crate::args::{KeysCommand, KubeArgs};
use crate::error::Result;
use crate::{Outcome, cluster};

pub use list::parse_usage;

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand, outer: &KubeArgs) -> Result<Outcome> {
    match cmd {
        KeysCommand::List { controller, kube } => {
            let kube = &kube.or(outer);
            crate::async_runtime::block_on(cluster::bounded(
                kube,
                "cannot list keys",
                list::list(&controller, kube),
            ))?
        }
        KeysCommand::Rotate {
            controller,
            timeout,
            kube,
        } => crate::async_runtime::block_on(rotate::rotate(&controller, &kube.or(outer), timeout))?,
        KeysCommand::Backup {
            controller,
            output,
            insecure_plaintext,
            force,
            age_identities,
            crypt,
            kube,
        } => backup::backup(
            &controller,
            &kube.or(outer),
            backup::Outputs {
                backup: output,
                age_identities,
            },
            insecure_plaintext,
            force,
            &crypt,
        ),
        KeysCommand::Restore {
            controller,
            file,
            insecure_plaintext,
            yes,
            crypt,
            kube,
        } => {
            let kube = &kube.or(outer);
            // Everything the backup file alone can refuse is refused before the cluster is
            // contacted (and so before anything is written to it).
            let secrets = backup_file::read_backup(&file, &crypt, insecure_plaintext)?;
            let keys = restore::check_keys(&secrets, std::time::SystemTime::now())?;
            let confirm = if yes {
                restore::Confirm::Given
            } else {
                restore::Confirm::Ask
            };
            crate::async_runtime::block_on(cluster::bounded(
                kube,
                "cannot restore keys",
                restore::restore(&controller, kube, keys, confirm),
            ))?
        }
        KeysCommand::Retire {
            controller,
            key,
            yes,
            kube,
        } => {
            let kube = &kube.or(outer);
            let confirm = if yes {
                restore::Confirm::Given
            } else {
                restore::Confirm::Ask
            };
            crate::async_runtime::block_on(cluster::bounded(
                kube,
                "cannot retire key",
                retire::retire(&controller, kube, &key, confirm),
            ))?
        }
        KeysCommand::Wrap(args) => convert_keys(args, outer, convert::Direction::Wrap),
        KeysCommand::Unwrap(args) => convert_keys(args, outer, convert::Direction::Unwrap),
        KeysCommand::VerifyBackup { file, dirs, crypt } => {
            verify_backup::verify_backup(&file, &dirs, &crypt)
        }
    }
}

fn convert_keys(
    args: crate::args::ConvertArgs,
    outer: &KubeArgs,
    direction: convert::Direction,
) -> Result<Outcome> {
    let kube = &args.kube.or(outer);
    crate::async_runtime::block_on(cluster::bounded(
        kube,
        "cannot convert keys",
        convert::run(&args.controller, kube, &args.wrap, &args.names, direction),
    ))?
}
