//! The command line, as clap derive types. Doc comments are the help text.
//!
//! The top-level flags are upstream kubeseal's (§6.1), with the same names, shorthands,
//! defaults and `SEALED_SECRETS_*` variables (named in [`crate::env`]); our additions are the
//! subcommands (`keys`, `audit`, `scan`, `reencrypt`, `completion`, `man`) and a few flags
//! marked "(ours)".

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::env;

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

/// kubectl-style connection flags (client-go's `RecommendedConfigOverrideFlags("")`).
///
/// Not global: only the upstream modes and the `keys` subcommands talk to a cluster, so only
/// they list these 20 flags (they are flattened into each `keys` subcommand, and values given
/// before the subcommand still apply, see [`KubeArgs::or`]).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Cluster connection")]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = env::KUBECONFIG, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// If present, the namespace scope for this request.
    #[arg(short = 'n', long, env = env::NAMESPACE, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The name of the kubeconfig context to use.
    #[arg(long, env = env::CONTEXT, value_name = "NAME")]
    pub context: Option<String>,

    /// The name of the kubeconfig cluster to use.
    #[arg(long, env = env::CLUSTER, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use.
    #[arg(long, env = env::USER, value_name = "NAME")]
    pub user: Option<String>,

    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, env = env::SERVER, value_name = "URL")]
    pub server: Option<String>,

    /// Path to a cert file for the certificate authority.
    #[arg(long = "certificate-authority", env = env::CERTIFICATE_AUTHORITY, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,

    /// If true, the server's certificate will not be checked for validity (insecure).
    #[arg(long = "insecure-skip-tls-verify", env = env::INSECURE_SKIP_TLS_VERIFY)]
    pub insecure_skip_tls_verify: bool,

    /// Server name to use for server certificate validation.
    #[arg(long = "tls-server-name", env = env::TLS_SERVER_NAME, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Path to a client certificate file for TLS.
    #[arg(long = "client-certificate", env = env::CLIENT_CERTIFICATE, value_name = "FILE")]
    pub client_certificate: Option<PathBuf>,

    /// Path to a client key file for TLS.
    #[arg(long = "client-key", env = env::CLIENT_KEY, value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Bearer token for authentication to the API server.
    #[arg(long, env = env::TOKEN, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Username to impersonate for the operation.
    #[arg(long = "as", env = env::AS, value_name = "USER")]
    pub as_user: Option<String>,

    /// Group to impersonate for the operation (repeatable).
    #[arg(long = "as-group", env = env::AS_GROUP, value_name = "GROUP")]
    pub as_group: Vec<String>,

    /// UID to impersonate for the operation.
    #[arg(long = "as-uid", env = env::AS_UID, value_name = "UID")]
    pub as_uid: Option<String>,

    /// Username for basic authentication to the API server.
    #[arg(long, env = env::USERNAME, value_name = "USER")]
    pub username: Option<String>,

    /// Password for basic authentication to the API server.
    #[arg(long, env = env::PASSWORD, value_name = "PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// How long to wait for a single server request, e.g. 30s, 1m, 500ms ("0" = no timeout).
    #[arg(long = "request-timeout", env = env::REQUEST_TIMEOUT, default_value = "0", value_name = "DURATION")]
    pub request_timeout: String,

    /// Proxy URL to reach the API server.
    #[arg(long = "proxy-url", env = env::PROXY_URL, value_name = "URL")]
    pub proxy_url: Option<String>,

    /// Disable response compression for requests to the server.
    #[arg(long = "disable-compression", env = env::DISABLE_COMPRESSION)]
    pub disable_compression: bool,
}

impl KubeArgs {
    /// These flags, each falling back to `outer`'s (`kubeseal --context x keys list` and
    /// `kubeseal keys list --context x` mean the same).
    pub fn or(self, outer: &KubeArgs) -> KubeArgs {
        let o = outer.clone();
        KubeArgs {
            kubeconfig: self.kubeconfig.or(o.kubeconfig),
            namespace: self.namespace.or(o.namespace),
            context: self.context.or(o.context),
            cluster: self.cluster.or(o.cluster),
            user: self.user.or(o.user),
            server: self.server.or(o.server),
            certificate_authority: self.certificate_authority.or(o.certificate_authority),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify || o.insecure_skip_tls_verify,
            tls_server_name: self.tls_server_name.or(o.tls_server_name),
            client_certificate: self.client_certificate.or(o.client_certificate),
            client_key: self.client_key.or(o.client_key),
            token: self.token.or(o.token),
            as_user: self.as_user.or(o.as_user),
            as_group: if self.as_group.is_empty() {
                o.as_group
            } else {
                self.as_group
            },
            as_uid: self.as_uid.or(o.as_uid),
            username: self.username.or(o.username),
            password: self.password.or(o.password),
            request_timeout: if self.request_timeout == "0" {
                o.request_timeout
            } else {
                self.request_timeout
            },
            proxy_url: self.proxy_url.or(o.proxy_url),
            disable_compression: self.disable_compression || o.disable_compression,
        }
    }
}

/// Subcommands (all ours).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Operate on the controller's sealing keys (list, rotate, backup, restore, verify-backup).
    #[command(subcommand)]
    Keys(Box<KeysCommand>),
    /// List SealedSecrets in the given trees that were sealed with a key (compromise
    /// tracing). Exits 3 when any is found, 0 when none, 1 on error.
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

/// `kubeseal keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the controller's keys: fingerprint, created, not-after, active, values opened.
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

/// `kubeseal audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The key: a fingerprint (SHA256:...), a certificate file, or a private key file (then
    /// every value is also trial-decrypted, which finds SealedSecrets without our hint).
    #[arg(long, value_name = "FINGERPRINT|CERT|PRIVATE_KEY")]
    pub key: String,
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
          required_unless_present = "recipient_cert")]
    pub cert_values: Vec<String>,
    /// Also seal for this certificate (file, URL, or directory of .pem/.crt/.cer files);
    /// repeat it once per cluster (multi-recipient format, see the top-level flag).
    #[arg(long = "recipient-cert", value_name = "FILE|URL|DIR")]
    pub recipient_cert: Vec<String>,
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

/// A positive duration: `30s`, `2m`, `1m30s`, `500ms`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match sealed_secrets_api::duration::parse_kubectl(s) {
        Ok(Some(d)) => Ok(d),
        _ => Err(format!(
            "`{s}` is not a duration: expected e.g. 30s, 2m, 1m30s (a bare number is seconds)"
        )),
    }
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
