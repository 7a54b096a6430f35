//! Every environment fallback of kubeseal, in one place.
//!
//! Upstream binds every pflag to `SEALED_SECRETS_<FLAG upper-cased, '-' -> '_'>` (§0 item 10,
//! §6.1), the kubectl-style override flags included; the flag wins over the variable. clap
//! reads these through `#[arg(env = ...)]`, so `--help` lists them too. `KUBECONFIG` is
//! honoured separately by kube-rs's kubeconfig loading, as client-go does.

/// Declares one constant per flag: `NAME = "flag-name"` gives `SEALED_SECRETS_FLAG_NAME`.
macro_rules! env_vars {
    ($($(#[$doc:meta])* $name:ident = $var:literal;)*) => {
        $( $(#[$doc])* pub const $name: &str = concat!("SEALED_SECRETS_", $var); )*
        /// All variables, for tests checking the naming rule.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

env_vars! {
    /// `--cert`.
    CERT = "CERT";
    /// `--recipient-cert` (ours): one more certificate to seal for.
    RECIPIENT_CERT = "RECIPIENT_CERT";
    /// `--post-quantum` (ours): `true` makes post-quantum sealing a team's default.
    POST_QUANTUM = "POST_QUANTUM";
    /// `--recipients-file` (ours): an age recipients file to seal post-quantum for, offline.
    RECIPIENTS_FILE = "RECIPIENTS_FILE";
    /// `--fetch-recipient` (ours).
    FETCH_RECIPIENT = "FETCH_RECIPIENT";
    /// `--allow-insecure-cert-url` (ours).
    ALLOW_INSECURE_CERT_URL = "ALLOW_INSECURE_CERT_URL";
    /// `--cert-from-configmap` (ours).
    CERT_FROM_CONFIGMAP = "CERT_FROM_CONFIGMAP";
    /// `--cert-configmap` (ours): name of the cert ConfigMap.
    CERT_CONFIGMAP = "CERT_CONFIGMAP";
    /// `--controller-name`.
    CONTROLLER_NAME = "CONTROLLER_NAME";
    /// `--controller-namespace`.
    CONTROLLER_NAMESPACE = "CONTROLLER_NAMESPACE";
    /// `-o/--format`.
    FORMAT = "FORMAT";
    /// `-w/--sealed-secret-file`.
    SEALED_SECRET_FILE = "SEALED_SECRET_FILE";
    /// `-f/--secret-file`.
    SECRET_FILE = "SECRET_FILE";
    /// `--fetch-cert`.
    FETCH_CERT = "FETCH_CERT";
    /// `--allow-empty-data`.
    ALLOW_EMPTY_DATA = "ALLOW_EMPTY_DATA";
    /// `--validate`.
    VALIDATE = "VALIDATE";
    /// `--merge-into`.
    MERGE_INTO = "MERGE_INTO";
    /// `--raw`.
    RAW = "RAW";
    /// `--name`.
    NAME = "NAME";
    /// `--from-file`.
    FROM_FILE = "FROM_FILE";
    /// `--scope`.
    SCOPE = "SCOPE";
    /// `--re-encrypt`.
    RE_ENCRYPT = "RE_ENCRYPT";
    /// `--recovery-unseal`.
    RECOVERY_UNSEAL = "RECOVERY_UNSEAL";
    /// `--recovery-private-key`.
    RECOVERY_PRIVATE_KEY = "RECOVERY_PRIVATE_KEY";
    /// `--accept-multi-recipient-v1` (ours).
    ACCEPT_MULTI_RECIPIENT_V1 = "ACCEPT_MULTI_RECIPIENT_V1";
    /// `--kubeconfig`.
    KUBECONFIG = "KUBECONFIG";
    /// `-n/--namespace`.
    NAMESPACE = "NAMESPACE";
    /// `--context`.
    CONTEXT = "CONTEXT";
    /// `--cluster`.
    CLUSTER = "CLUSTER";
    /// `--user`.
    USER = "USER";
    /// `-s/--server`.
    SERVER = "SERVER";
    /// `--certificate-authority`.
    CERTIFICATE_AUTHORITY = "CERTIFICATE_AUTHORITY";
    /// `--insecure-skip-tls-verify`.
    INSECURE_SKIP_TLS_VERIFY = "INSECURE_SKIP_TLS_VERIFY";
    /// `--tls-server-name`.
    TLS_SERVER_NAME = "TLS_SERVER_NAME";
    /// `--client-certificate`.
    CLIENT_CERTIFICATE = "CLIENT_CERTIFICATE";
    /// `--client-key`.
    CLIENT_KEY = "CLIENT_KEY";
    /// `--token`.
    TOKEN = "TOKEN";
    /// `--as`.
    AS = "AS";
    /// `--as-group`.
    AS_GROUP = "AS_GROUP";
    /// `--as-uid`.
    AS_UID = "AS_UID";
    /// `--username`.
    USERNAME = "USERNAME";
    /// `--password`.
    PASSWORD = "PASSWORD";
    /// `--request-timeout`.
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT";
    /// `--proxy-url`.
    PROXY_URL = "PROXY_URL";
    /// `--disable-compression`.
    DISABLE_COMPRESSION = "DISABLE_COMPRESSION";
    /// Passphrase of `kubeseal keys backup/restore/verify-backup` (ours; no flag, so it
    /// never shows in `ps`).
    BACKUP_PASSPHRASE = "BACKUP_PASSPHRASE";
}

/// Honoured for colour, as <https://no-color.org> asks.
pub const NO_COLOR: &str = "NO_COLOR";
