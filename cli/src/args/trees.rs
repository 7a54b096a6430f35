//! `audit`, `scan` and `reencrypt`: the subcommands that walk files and directories.

use std::path::PathBuf;

use clap::Args;

use super::keys::DecryptArgs;
use crate::env;

/// `kubeseal audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The key to trace: a fingerprint (SHA256:...), a certificate file, a post-quantum
    /// recipient (age1pq1...), or a private key file (a PEM key, a key Secret with its
    /// age.key, an age identity file; then every value is also trial-decrypted, which finds
    /// SealedSecrets without our hint). Without --key: the migration inventory, how many
    /// values of each object are RSA-only or post-quantum and which key each uses (exits 3
    /// while any RSA-only value remains).
    #[arg(long, value_name = "FINGERPRINT|CERT|RECIPIENT|PRIVATE_KEY")]
    pub key: Option<String>,
    #[command(flatten)]
    pub key_backup: DecryptArgs,
    /// Files or directories to search.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
}

/// `kubeseal scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Fail (exit 1) when any file could not be read or parsed completely (templates,
    /// non-UTF-8 files, broken documents); they are still scanned as text either way.
    #[arg(long)]
    pub strict: bool,
    /// Skip hidden directories (names starting with `.`). By default they are scanned
    /// (`.github/`, `.argocd/` hold manifests too); `.git` is always skipped.
    #[arg(long = "skip-hidden")]
    pub skip_hidden: bool,
}

/// `kubeseal reencrypt`.
#[derive(Debug, Args)]
pub struct ReencryptArgs {
    /// Private key(s) that open the current SealedSecrets (same formats as
    /// --recovery-private-key, encrypted key backups included; comma list or repeated).
    #[arg(long = "recovery-private-key", env = env::RECOVERY_PRIVATE_KEY, value_delimiter = ',', required = true, value_name = "FILE")]
    pub recovery_private_key: Vec<String>,
    /// New certificate to seal for (file or URL); given more than once, the last one is
    /// used, as everywhere else.
    // `Append` only to notice a repetition (see the top-level --cert); `cert_values.last()`
    // is used.
    #[arg(long = "cert", value_name = "FILE|URL", action = clap::ArgAction::Append,
          required_unless_present_any = ["recipient_cert", "recipients_file"])]
    pub cert_values: Vec<String>,
    /// Also seal for this certificate (file, URL, or directory of .pem/.crt/.cer files);
    /// repeat it once per cluster (multi-recipient format, see the top-level flag).
    #[arg(long = "recipient-cert", value_name = "FILE|URL|DIR")]
    pub recipient_cert: Vec<String>,
    /// Upgrade to the post-quantum format: re-seal every value for the age recipients
    /// (age1pq1..., one line per cluster) of this file, e.g. from `kubeseal
    /// --fetch-recipient`; repeatable. Objects whose values are all post-quantum for exactly
    /// these recipients are left as they are.
    #[arg(long = "recipients-file", value_name = "FILE", conflicts_with_all = ["cert_values", "recipient_cert"])]
    pub recipients_file: Vec<PathBuf>,
    /// Spelled-out form of the upgrade: requires --recipients-file (offline, no cluster).
    #[arg(long = "post-quantum", requires = "recipients_file")]
    pub post_quantum: bool,
    /// Allow a plain http:// --cert URL (warned about; see the top-level flag).
    #[arg(long = "allow-insecure-cert-url", env = env::ALLOW_INSECURE_CERT_URL)]
    pub allow_insecure_cert_url: bool,
    /// Report what would change without writing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    #[command(flatten)]
    pub key_backup: DecryptArgs,
    /// Files or directories holding SealedSecrets.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
}
