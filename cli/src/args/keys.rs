//! The `keys` subcommands and the key-file option groups they share with the upstream
//! modes (`--recovery-private-key` backups) and `audit`/`reencrypt`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sealed_secrets_kms::settings::KeyWrapArgs;

use super::connection::KubeArgs;
use crate::env;

/// Controller connection for the `keys` subcommands.
#[derive(Debug, Args, Clone)]
pub struct ControllerArgs {
    /// Name of the sealed-secrets controller Service.
    #[arg(long = "controller-name", env = env::CONTROLLER_NAME, default_value = "sealed-secrets-controller", value_name = "NAME")]
    pub controller_name: String,

    /// Namespace of the sealed-secrets controller (where the key Secrets live).
    #[arg(long = "controller-namespace", env = env::CONTROLLER_NAMESPACE, default_value = "kube-system", value_name = "NAMESPACE")]
    pub controller_namespace: String,
}

/// How `keys backup` protects its file (age: a passphrase by default, or X25519 recipients).
#[derive(Debug, Args, Clone, Default)]
pub struct EncryptArgs {
    /// Read the passphrase from this file (first line) instead of
    /// $SEALED_SECRETS_BACKUP_PASSPHRASE or a prompt on the terminal.
    #[arg(long = "passphrase-file", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Encrypt to this age recipient (age1...) instead of a passphrase; repeatable.
    #[arg(long = "recipient", short = 'r', value_name = "AGE_RECIPIENT")]
    pub recipient: Vec<String>,
}

/// How to open an encrypted key backup (made by `kubeseal keys backup`), wherever a private
/// key file is read.
#[derive(Debug, Args, Clone, Default)]
pub struct DecryptArgs {
    /// Passphrase of an encrypted key backup, from this file (first line) instead of
    /// $SEALED_SECRETS_BACKUP_PASSPHRASE or a prompt on the terminal.
    #[arg(long = "passphrase-file", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// age identity file (AGE-SECRET-KEY-1...) for a key backup made with --recipient;
    /// repeatable.
    #[arg(long = "identity", value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

/// What `keys wrap` and `keys unwrap` take: the controller's `--key-wrap-*` flags, and which
/// key Secrets.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
    #[command(flatten)]
    pub wrap: KeyWrapArgs,
    /// Key Secrets to convert (default: every key Secret this command converts).
    #[arg(value_name = "SECRET")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `kubeseal keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the controller's keys: fingerprint, created, not-after, active, SealedSecrets
    /// that still need each (OBJECTS), values opened.
    List {
        #[command(flatten)]
        controller: ControllerArgs,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Ask the controller for a new sealing key now, and wait until it exists.
    Rotate {
        #[command(flatten)]
        controller: ControllerArgs,
        /// How long to wait for the new key: a duration like every other (30s, 2m, 1m30s; a
        /// bare number is seconds).
        #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
        timeout: std::time::Duration,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Save every key Secret to a file, encrypted with a passphrase unless
    /// --insecure-plaintext (the file is created owner-only, atomically).
    Backup {
        #[command(flatten)]
        controller: ControllerArgs,
        /// Output file (never overwritten unless --force).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Write the keys unencrypted (a v1.List of Secrets, usable as --recovery-private-key).
        #[arg(long = "insecure-plaintext")]
        insecure_plaintext: bool,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
        /// Also write the keys' post-quantum identities to this file as a stock age identity
        /// file (AGE-SECRET-KEY-PQ-1... lines, unencrypted, owner-only; never overwritten
        /// unless --force): `age -d -i FILE` opens post-quantum values with it, no kubeseal
        /// needed.
        #[arg(long = "age-identities", value_name = "FILE")]
        age_identities: Option<PathBuf>,
        #[command(flatten)]
        crypt: EncryptArgs,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Recreate the key Secrets of a backup; keys already present are left alone, and a
    /// Secret of the same name holding a different key is never overwritten.
    ///
    /// Lists the keys (fingerprint, validity) and asks for confirmation first; refuses
    /// certificates dated in the future. Restored keys carry only the active label and the
    /// sealed-secrets-rs.dev/restored-at annotation.
    Restore {
        #[command(flatten)]
        controller: ControllerArgs,
        /// Backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Accept an unencrypted backup (refused by default: nothing shows who wrote its keys).
        #[arg(long = "insecure-plaintext")]
        insecure_plaintext: bool,
        /// Restore without asking (required without a terminal); check the fingerprints first.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        crypt: DecryptArgs,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Delete a key Secret once no SealedSecret in the cluster needs its key.
    ///
    /// Refuses the newest active key, and any key a SealedSecret still needs: by the keys its
    /// status records, or, without a current record, by trying the key on its values (needs
    /// `list sealedsecrets` cluster-wide). Back up the keys first; asks for confirmation.
    Retire {
        #[command(flatten)]
        controller: ControllerArgs,
        /// The key: its fingerprint (either one, as `keys list` shows) or its Secret's name.
        #[arg(value_name = "KEY")]
        key: String,
        /// Retire without asking (required without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Wrap existing plain key Secrets with a key management service (docs/security.md,
    /// "Tier 2: key Secrets wrapped by a KMS"). Upstream's controller, and ours without
    /// --key-wrap-backend, cannot read wrapped keys.
    ///
    /// Each key is wrapped, unwrapped again and compared before anything is written; the
    /// wrapped key is written as a new Secret (a Secret's type cannot change in place), then
    /// the plain one is deleted only if it is still the version that was read. Credentials come
    /// from the AWS_* variables or files, a PKCS#11 PIN from --key-wrap-pkcs11-pin-file.
    Wrap(ConvertArgs),
    /// Unwrap wrapped key Secrets back into plain ones (`tls.key`, as upstream stores it): the
    /// private keys then sit in etcd in the clear. Checked and written as `keys wrap` does.
    Unwrap(ConvertArgs),
    /// Prove a backup opens every SealedSecret in the given trees (offline).
    VerifyBackup {
        /// Backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Files or directories holding SealedSecrets.
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        crypt: DecryptArgs,
    },
}

/// A positive duration: `30s`, `2m`, `1m30s`, `500ms`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match sealed_secrets_api::duration::parse_kubectl(s) {
        Ok(Some(d)) => Ok(d),
        _ => Err(format!(
            "`{s}` is not a duration: expected e.g. 30s, 2m, 1m30s (a bare number is seconds)"
        )),
    }
}
