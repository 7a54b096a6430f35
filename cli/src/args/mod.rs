//! The command line, as clap derive types. Doc comments are the help text.
//!
//! The top-level flags are upstream kubeseal's (§6.1), with the same names, shorthands,
//! defaults and `SEALED_SECRETS_*` variables (named in [`crate::env`]); our additions are the
//! subcommands (`keys`, `audit`, `scan`, `reencrypt`, `completion`, `man`) and a few flags
//! marked "(ours)".
//!
//! Here: the top level (upstream's flags, in [`SealArgs`] and [`CertArgs`]) and [`Command`];
//! `connection` holds kubectl's cluster flags, `keys` the `keys` subcommands and the key-file
//! option groups, `trees` the subcommands that walk files.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::env;

mod connection;
mod keys;
mod trees;

pub use connection::KubeArgs;
pub use keys::{ControllerArgs, ConvertArgs, DecryptArgs, EncryptArgs, KeysCommand};
pub use trees::{AuditArgs, ReencryptArgs, ScanArgs};

/// Version string shared by `--version`: upstream prints `kubeseal version: v0.27.1` (its
/// integration test matches `^kubeseal version: (vX.Y.Z|<commit>)`), and our controller
/// prints `controller version: v...` too.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Encrypt a Kubernetes Secret into a SealedSecret only the controller can decrypt.
///
/// Reads a Secret (JSON or YAML, several documents allowed) from stdin or -f and writes the
/// SealedSecret to stdout or -w. Without --cert the certificate is fetched from the controller
/// through the API server's service proxy.
#[derive(Debug, Parser)]
#[command(
    name = "kubeseal",
    version = VERSION,
    disable_version_flag = true,
    // Go's pflag lets a later occurrence of a flag replace an earlier one, and scripts rely on
    // it (upstream's own integration suite appends `--kubeconfig`, `-n` and `--cert` again
    // and again). clap would refuse the repetition; this makes every single-valued flag of
    // every subcommand take its last value. Flags that upstream accumulates (`--from-file`,
    // `--recovery-private-key`, `--as-group`) and ours that are lists keep `Append`.
    args_override_self = true,
    after_help = "Environment: every flag can also be set as SEALED_SECRETS_<FLAG> (e.g. SEALED_SECRETS_CERT); the flag wins. A flag given twice takes its last value, as upstream's do (--from-file, --recovery-private-key, --as-group and --recipient-cert add up instead)."
)]
pub struct Cli {
    /// Print the version and exit.
    #[arg(long, action = clap::ArgAction::SetTrue)]
    pub version: bool,

    /// Log level (klog's -v of upstream): 6 or more prints every HTTP call kubeseal makes, with
    /// its status and duration, on stderr (never headers or bodies).
    #[arg(short = 'v', long = "v", global = true, value_name = "LEVEL")]
    pub klog_verbosity: Option<String>,

    /// Upstream's klog `--vmodule`: accepted so existing scripts keep working, and ignored
    /// with a warning (use -v).
    #[arg(long = "vmodule", hide = true, global = true, value_name = "PATTERN")]
    pub klog_vmodule: Option<String>,

    /// Upstream's klog `--logtostderr`: accepted and ignored with a warning (kubeseal always
    /// logs to stderr).
    #[arg(
        long = "logtostderr",
        hide = true,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub klog_logtostderr: Option<String>,

    #[command(flatten)]
    pub seal: SealArgs,

    #[command(flatten)]
    pub cert: CertArgs,

    #[command(flatten)]
    pub kube: KubeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The upstream modes and their inputs and outputs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sealing")]
pub struct SealArgs {
    /// Output format for sealed secret: json or yaml (case-insensitive) [default: json;
    /// with --merge-into, the target file's format].
    #[arg(short = 'o', long = "format", env = env::FORMAT, value_name = "FORMAT")]
    pub format: Option<String>,

    /// Sealed-secret (output) file; written atomically and only on success. A .yaml/.yml
    /// extension selects YAML.
    #[arg(short = 'w', long = "sealed-secret-file", env = env::SEALED_SECRET_FILE, value_name = "FILE")]
    pub sealed_secret_file: Option<PathBuf>,

    /// Secret (input) file; stdin when absent or `-`.
    #[arg(short = 'f', long = "secret-file", env = env::SECRET_FILE, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// Allow a Secret with no data (and no stringData).
    #[arg(long, env = env::ALLOW_EMPTY_DATA)]
    pub allow_empty_data: bool,

    /// Scope of the sealed secret: strict, namespace-wide or cluster-wide. Strict keeps the
    /// input's scope annotations; the others rewrite them.
    #[arg(long, env = env::SCOPE, default_value = "strict", value_name = "SCOPE")]
    pub scope: String,

    /// Name of the secret (--raw); in normal sealing it overrides metadata.name of every input.
    #[arg(long, env = env::NAME, value_name = "NAME")]
    pub name: Option<String>,

    /// Encrypt one raw value (from --from-file or stdin) and print bare base64.
    #[arg(long, env = env::RAW)]
    pub raw: bool,

    /// (only with --raw) File holding the value; `key=path` is accepted, the key is ignored.
    #[arg(long = "from-file", env = env::FROM_FILE, value_name = "[KEY=]PATH")]
    pub from_file: Vec<String>,

    /// Seal the Secret on stdin and merge its items into this SealedSecret file, in place
    /// (the target's namespace, name and scope are kept).
    #[arg(long = "merge-into", env = env::MERGE_INTO, value_name = "FILE")]
    pub merge_into: Option<PathBuf>,

    /// Check that the SealedSecret(s) can be decrypted by the controller; with --cert, check
    /// their structure offline instead (ours).
    #[arg(long, env = env::VALIDATE)]
    pub validate: bool,

    /// Re-encrypt the given SealedSecret(s) with the controller's newest key (server side).
    #[arg(long = "re-encrypt", visible_alias = "rotate", env = env::RE_ENCRYPT)]
    pub re_encrypt: bool,

    /// Decrypt a SealedSecret offline with --recovery-private-key and print the Secret.
    #[arg(long = "recovery-unseal", env = env::RECOVERY_UNSEAL)]
    pub recovery_unseal: bool,

    /// Private key file(s) for --recovery-unseal: PEM, Secret(s) / a v1.List of Secrets with
    /// data["tls.key"], or an encrypted backup from `kubeseal keys backup`; comma list or
    /// repeated.
    #[arg(long = "recovery-private-key", env = env::RECOVERY_PRIVATE_KEY, value_delimiter = ',', value_name = "FILE")]
    pub recovery_private_key: Vec<String>,

    /// Opening an encrypted key backup given as --recovery-private-key (ours).
    #[command(flatten)]
    pub key_backup: DecryptArgs,

    /// Let --recovery-unseal open, and offline --validate pass, multi-recipient values of
    /// version 1, which have no key commitment and may open to a different value for each
    /// recipient (ours; refused by default, like the controller does).
    #[arg(long = "accept-multi-recipient-v1", env = env::ACCEPT_MULTI_RECIPIENT_V1)]
    pub accept_multi_recipient_v1: bool,
}

/// Where the sealing certificate comes from.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Certificate")]
pub struct CertArgs {
    /// Certificate / public key file or URL (http://, https://, file://). Given more than
    /// once, the last one is used, as upstream (to seal for several clusters, see
    /// --recipient-cert).
    // `Append` rather than pflag's overriding `Set` only so that a repeated --cert can be
    // noticed and explained (it used to add a recipient); [`CertArgs::cert`] keeps the last.
    #[arg(long = "cert", env = env::CERT, value_name = "FILE|URL", action = clap::ArgAction::Append)]
    pub cert_values: Vec<String>,

    /// Seal for several clusters at once (ours): a certificate file or URL, or a directory of
    /// .pem/.crt/.cer files. Repeat it once per certificate; it adds to --cert. Two or more
    /// certificates produce the multi-recipient format, which upstream's controller cannot
    /// open.
    #[arg(long = "recipient-cert", env = env::RECIPIENT_CERT, value_name = "FILE|URL|DIR")]
    pub recipient_cert: Vec<String>,

    /// Allow a plain http:// --cert URL (ours). Without TLS anyone on the network path can
    /// swap the certificate, so this is refused unless asked for, and warned about each time.
    #[arg(long = "allow-insecure-cert-url", env = env::ALLOW_INSECURE_CERT_URL)]
    pub allow_insecure_cert_url: bool,

    /// Print the certificate (from the controller, or from --cert) and exit.
    #[arg(long = "fetch-cert", env = env::FETCH_CERT)]
    pub fetch_cert: bool,

    /// Read the certificate from the controller's cert ConfigMap instead of the service proxy
    /// (ours; needs only `get configmaps`).
    #[arg(long = "cert-from-configmap", env = env::CERT_FROM_CONFIGMAP)]
    pub cert_from_configmap: bool,

    /// Name of the controller's cert ConfigMap (ours).
    #[arg(long = "cert-configmap", env = env::CERT_CONFIGMAP, default_value = "sealed-secrets-cert", value_name = "NAME")]
    pub cert_configmap: String,

    /// Name of the sealed-secrets controller Service.
    #[arg(long = "controller-name", env = env::CONTROLLER_NAME, default_value = "sealed-secrets-controller", value_name = "NAME")]
    pub controller_name: String,

    /// Namespace of the sealed-secrets controller.
    #[arg(long = "controller-namespace", env = env::CONTROLLER_NAMESPACE, default_value = "kube-system", value_name = "NAMESPACE")]
    pub controller_namespace: String,

    /// Seal in the post-quantum format (ours): each value an age file for the cluster's
    /// recipient (ML-KEM-768 + X25519), fetched like the certificate, or for
    /// --recipients-file. Upstream controllers cannot open it. Not combinable with --cert
    /// or --recipient-cert; SEALED_SECRETS_POST_QUANTUM=true makes it the default.
    #[arg(
        long = "post-quantum",
        env = env::POST_QUANTUM,
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL",
        help_heading = "Post-quantum"
    )]
    pub post_quantum: bool,

    /// Seal post-quantum, offline, for the recipients in this age recipients file (ours):
    /// `age1pq1...` lines, `#` comments; one line per cluster (multi-cluster sealing).
    /// Implies --post-quantum; repeatable.
    #[arg(long = "recipients-file", env = env::RECIPIENTS_FILE, value_name = "FILE", help_heading = "Post-quantum")]
    pub recipients_file: Vec<PathBuf>,

    /// Print the post-quantum recipient (from the controller, the ConfigMap with
    /// --cert-from-configmap, or --recipients-file) and exit (ours).
    #[arg(long = "fetch-recipient", env = env::FETCH_RECIPIENT, help_heading = "Post-quantum")]
    pub fetch_recipient: bool,
}

impl CertArgs {
    /// The `--cert` in effect: the last one given (pflag's rule, as upstream).
    pub fn cert(&self) -> Option<&str> {
        self.cert_values.last().map(String::as_str)
    }

    /// Whether the certificate(s) come from flags rather than from the cluster.
    pub fn given(&self) -> bool {
        !self.cert_values.is_empty() || !self.recipient_cert.is_empty()
    }
}

/// Subcommands (all ours).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Operate on the controller's sealing keys (list, rotate, backup, restore, verify-backup).
    #[command(subcommand)]
    Keys(Box<KeysCommand>),
    /// List SealedSecrets in the given trees that were sealed with a key (compromise
    /// tracing, --key); without --key, count each object's RSA-only and post-quantum values
    /// and their keys (migration inventory). Exits 3 when any is found (an RSA-only value
    /// for the inventory), 0 when none, 1 on error.
    Audit(AuditArgs),
    /// Find unsealed Secret manifests (YAML or JSON) in files and trees; exits 3 when any is
    /// found, 0 when none, 1 on error. Meant for pre-commit hooks and CI.
    Scan(ScanArgs),
    /// Re-seal every SealedSecret in the given trees for a new certificate, offline, in place.
    Reencrypt(ReencryptArgs),
    /// Print a shell completion script.
    Completion {
        /// Target shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write kubeseal.1, kubeseal-keys.1, kubeseal-keys-list.1, ... into this directory
        /// instead of printing the top page.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Builds the clap command (for completions, the man page and tests).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn env_names_follow_upstream_rule() {
        for var in crate::env::ALL {
            let flag = var.trim_start_matches("SEALED_SECRETS_");
            assert!(
                // Digits too, as in the controller's SEALED_SECRETS_ACCEPT_DEPRECATED_V1_DATA.
                flag.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{var}"
            );
        }
    }
}
