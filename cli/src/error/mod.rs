//! kubeseal's error type. Every variant names what failed; causes are `#[source]`s that
//! `main` prints after a `: `. [`CliError::hint`] gives the `hint:` line, and
//! [`CliError::exit_code`] the status (1 for what the user can fix, 2 for the unexpected).
//!
//! The enum lives here; its shorthand constructors are `constructors.rs`, how an error is
//! reported (hint, exit code) is `report.rs`, the cause types it carries are `causes.rs`, and
//! the phrases messages and hints share are `wording.rs`.

mod causes;
mod constructors;
mod report;
mod wording;

use std::path::PathBuf;

use sealed_secrets_api::{ManifestError, OutputError, SealingError, UnsealError};
use sealed_secrets_crypto::{
    CertError, KeyError, ParseFingerprintError, ParseScopeError, PqKeyError,
};

use causes::quote_path;
pub use causes::{Failure, GoIoError, PassphraseError};
pub(crate) use wording::OFFLINE_HINT;
use wording::{items_in_parens, keys_tried};

/// Everything kubeseal can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    // ---- Flags and their combinations --------------------------------------------------
    /// A flag's value cannot be parsed.
    #[error("invalid {flag} `{value}`: {reason}")]
    InvalidFlag {
        /// The flag as typed, e.g. `--request-timeout`.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What was expected, or the parser's complaint.
        reason: String,
    },
    /// `flag` only works together with `needs`.
    #[error("{flag} requires {needs}")]
    FlagRequires {
        /// The flag given.
        flag: &'static str,
        /// The flag it needs.
        needs: &'static str,
    },
    /// Two flags that cannot be combined.
    #[error("{0} and {1} are mutually exclusive")]
    FlagsExclusive(&'static str, &'static str),
    /// `--raw` seals one value, so it takes one `--from-file` (upstream's message, §6.4).
    #[error("must provide only one --from-file when encrypting a single item with --raw")]
    RawTakesOneFile,
    /// `--scope` is none of the three scopes.
    #[error(transparent)]
    Scope(#[from] ParseScopeError),
    /// A `SHA256:` fingerprint argument is malformed.
    #[error(transparent)]
    Fingerprint(#[from] ParseFingerprintError),
    /// An output file exists and no `--force` was given.
    #[error("refusing to overwrite `{}`", .path.display())]
    WouldOverwrite {
        /// The existing file.
        path: PathBuf,
    },

    // ---- Backup passphrases -------------------------------------------------------------
    /// The passphrase could not be obtained or is unusable.
    #[error("{0}")]
    Passphrase(PassphraseError),

    // ---- Input files --------------------------------------------------------------------
    /// A `--merge-into` target holds no or several SealedSecrets.
    #[error("`{}` must hold exactly one SealedSecret, found {found}", .path.display())]
    NotOneSealedSecret {
        /// The target file.
        path: PathBuf,
        /// How many it holds.
        found: usize,
    },
    /// `--validate`/`--re-encrypt` input holds no SealedSecret (upstream's message).
    #[error("no SealedSecret found in the input. Ensure the input is valid and UTF-8 encoded")]
    NoSealedSecret,
    /// A private-key file is not valid PEM.
    #[error("failed to read private key from `{}`: {cause}", .path.display())]
    KeyPem {
        /// The key file.
        path: PathBuf,
        /// The PEM parser's error (in the message, as upstream prints it; not a `source`, so
        /// the report does not chain the PEM crate's inner causes after it).
        cause: pem::PemError,
    },
    /// A private-key file holds no key.
    #[error("no private key in `{}`{}", .path.display(), .why)]
    NoPrivateKey {
        /// The key file.
        path: PathBuf,
        /// What the file held instead (starts with the separator).
        why: &'static str,
    },
    /// A Secret in a key file has no `tls.key` (skipping it would hide a damaged backup).
    /// Upstream's sentence first (its typo `tls.data` included, so a grep for it finds
    /// ours), then which Secret of which file.
    #[error("secret must contain a 'tls.data' key: `{}`: Secret {index}{name} has no data[\"tls.key\"] (the private key)", .path.display())]
    SecretWithoutKey {
        /// The key file.
        path: PathBuf,
        /// 1-based position of the Secret in the file.
        index: usize,
        /// ` (`name`)` when the Secret has a name, else empty.
        name: String,
    },
    /// `--recovery-unseal`: no private key opened the SealedSecret. Upstream's sentence,
    /// `no key could decrypt secret (<items>)`, comes first because people (and upstream's
    /// integration suite) match on it; which object and how many keys were tried follow.
    /// Item names are the SealedSecret's own keys, not values.
    #[error("no key could decrypt secret{}: SealedSecret `{object}`, {}", items_in_parens(.items), keys_tried(*.keys))]
    NoKeyCouldDecrypt {
        /// `namespace/name`.
        object: String,
        /// The items that did not open (empty for the deprecated whole-Secret `data`, which
        /// upstream reports without a list).
        items: Vec<String>,
        /// How many private keys were tried.
        keys: usize,
    },
    /// `audit` was given a file with several private keys.
    #[error("`{arg}` holds {count} private keys; audit one key at a time")]
    AuditOneKey {
        /// The `--key` argument.
        arg: String,
        /// How many keys it holds.
        count: usize,
    },

    // ---- Certificates -------------------------------------------------------------------
    /// `--cert` names a URL scheme other than file/http/https.
    #[error(
        "unsupported URL scheme `{scheme}` in --cert (use a file, file://, http:// or https://)"
    )]
    CertScheme {
        /// The scheme given.
        scheme: String,
    },
    /// `--cert http://...` without `--allow-insecure-cert-url`.
    #[error(
        "refusing to fetch the certificate over plain HTTP from `{url}`: anyone on the network path could replace it with their own"
    )]
    PlainHttpCert {
        /// The URL.
        url: String,
    },
    /// A `--recipient-cert` directory without certificate files.
    #[error("no .pem, .crt or .cer file in certificate directory `{}`", .dir.display())]
    EmptyCertDir {
        /// The directory.
        dir: PathBuf,
    },
    /// The cert ConfigMap exists but has no `cert.pem`.
    #[error("ConfigMap `{namespace}/{name}` has no `cert.pem`")]
    ConfigMapWithoutCert {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A fetched certificate is larger than any real certificate.
    #[error(
        "cannot fetch certificate: the one from {from} is {size} bytes, over the limit of {limit} bytes for a certificate"
    )]
    CertTooLarge {
        /// Where it came from.
        from: String,
        /// Its size.
        size: usize,
        /// [`crate::certs::MAX_CERT_BYTES`].
        limit: usize,
    },

    // ---- Post-quantum recipients and identities -----------------------------------------
    /// A post-quantum recipient (`age1pq1…`) that does not parse.
    #[error("invalid post-quantum recipient in {from}")]
    PqRecipient {
        /// Where: a file and line, the controller, a ConfigMap.
        from: String,
        /// Why (Bech32, type, length; never the key string itself).
        #[source]
        source: PqKeyError,
    },
    /// No post-quantum recipient where one was looked for.
    #[error("no post-quantum recipient in {from}")]
    NoPqRecipient {
        /// Where.
        from: String,
    },
    /// The cluster answered several recipients where its newest key's one was expected.
    #[error("expected one post-quantum recipient from {from}, found {count}")]
    PqRecipientCount {
        /// Where.
        from: String,
        /// How many.
        count: usize,
    },
    /// A recipients file or answer larger than any real one.
    #[error(
        "post-quantum recipients from {from} are {size} bytes, over the limit of {limit} bytes"
    )]
    PqRecipientsTooLarge {
        /// Where they came from.
        from: String,
        /// Their size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An age identity (`AGE-SECRET-KEY-PQ-1…`) that does not parse.
    #[error("invalid post-quantum identity in {from}")]
    PqIdentity {
        /// Where: a file and line, or a key Secret's `age.key`.
        from: String,
        /// Why (never the identity string itself).
        #[source]
        source: PqKeyError,
    },
    /// `keys backup --age-identities`: no key Secret holds a post-quantum identity.
    #[error(
        "no key Secret in namespace `{namespace}` holds a post-quantum identity (data[\"age.key\"]); nothing was written"
    )]
    NoPqIdentity {
        /// The controller namespace.
        namespace: String,
    },
    /// `--re-encrypt`: the controller answered RSA values for items the input held as
    /// post-quantum values; writing that would silently undo the upgrade.
    #[error(
        "cannot re-encrypt secret: the controller answered RSA values for post-quantum item(s) {items} of SealedSecret `{object}` (nothing was written)"
    )]
    PqDowngrade {
        /// `namespace/name`.
        object: String,
        /// The items, quoted and comma-separated.
        items: String,
    },

    // ---- The cluster and the controller -------------------------------------------------
    /// The kubeconfig could not be loaded.
    #[error("cannot load kubeconfig{}: {cause}", .path.as_deref().map(|p| format!(" `{}`", p.display())).unwrap_or_default())]
    Kubeconfig {
        /// `--kubeconfig`, when given.
        path: Option<PathBuf>,
        /// The innermost cause, first line.
        cause: String,
    },
    /// kube-rs could not build a client from the configuration.
    #[error("cannot create Kubernetes client: {0}")]
    Client(Failure),
    /// A Kubernetes API call failed.
    #[error("{context}: {failure}")]
    Api {
        /// What was attempted.
        context: String,
        /// What the API server (or the connection) said.
        failure: Failure,
    },
    /// `--request-timeout` elapsed before the operation finished.
    #[error("{what}: no result within {limit} (--request-timeout bounds the whole operation)")]
    Timeout {
        /// The operation.
        what: String,
        /// `--request-timeout` as given.
        limit: String,
    },
    /// The controller's Service does not exist (upstream's message, §6.2).
    #[error(
        "cannot get sealed secret service: {message}. Please, use the flag --controller-name and --controller-namespace to set up the name and namespace of the sealed secrets controller"
    )]
    ServiceNotFound {
        /// The API server's message.
        message: String,
    },
    /// The controller answered with an error status.
    #[error("{action}: {reason} (HTTP {status})")]
    ControllerStatus {
        /// Upstream's prefix, e.g. "cannot fetch certificate".
        action: &'static str,
        /// The Status message, or the body.
        reason: String,
        /// The HTTP status.
        status: u16,
    },
    /// The controller cannot decrypt the SealedSecret (409 on `/v1/verify`, upstream's text).
    #[error("unable to decrypt sealed secret: {name}")]
    NotDecryptable {
        /// The SealedSecret's name.
        name: String,
    },
    /// The controller cannot re-encrypt the SealedSecret (409 on `/v1/rotate`, upstream's text).
    #[error("unable to rotate secret")]
    RotateRefused,
    /// The controller's answer to `/v1/rotate` is not a SealedSecret.
    #[error("cannot re-encrypt secret: invalid answer from the controller")]
    ControllerAnswer(#[source] serde_json::Error),
    /// No active sealing key Secret in the controller namespace.
    #[error("no active key Secret in namespace `{namespace}`")]
    NoActiveKey {
        /// The controller namespace.
        namespace: String,
    },
    /// `keys rotate` waited in vain for the controller's new key.
    #[error("the controller created no new key within {waited}")]
    RotateTimeout {
        /// The timeout, human-readable.
        waited: String,
    },
    /// `keys wrap` / `keys unwrap`: the backend flags cannot be used.
    #[error("cannot set up the key-wrapping backend")]
    KeyWrapSetup(#[source] Box<sealed_secrets_kms::settings::WrapConfigError>),
    /// `keys wrap` / `keys unwrap`: the service refused or failed; nothing was written.
    #[error("cannot {op} the key of key Secret `{namespace}/{name}`; nothing was changed")]
    KeyWrapCall {
        /// `wrap` or `unwrap`.
        op: &'static str,
        /// The controller namespace.
        namespace: String,
        /// The key Secret.
        name: String,
        /// What the service said (never key material). Boxed: the service's errors are large.
        #[source]
        source: Box<sealed_secrets_kms::WrapError>,
    },
    /// `keys wrap` / `keys unwrap`: a key Secret that cannot be converted, or a conversion that
    /// did not round-trip; nothing was written.
    #[error("cannot convert key Secret `{namespace}/{name}`: {problem}; nothing was changed")]
    KeyConvert {
        /// The controller namespace.
        namespace: String,
        /// The key Secret.
        name: String,
        /// Why (never key material).
        problem: String,
    },
    /// A command that needs the private key found it wrapped by a KMS (or held in a token).
    #[error("{what}: key Secret `{name}` {held}")]
    KeyNotHere {
        /// What could not be done.
        what: String,
        /// The key Secret.
        name: String,
        /// Where the key is: "is wrapped by a KMS" / "is held in a PKCS#11 token".
        held: String,
    },
    /// `keys restore` would replace a Secret holding another key.
    #[error(
        "Secret `{namespace}/{name}` exists and holds a different key; refusing to overwrite it"
    )]
    KeyConflict {
        /// The controller namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },

    // ---- Checks over many SealedSecrets (each problem already listed on stderr) ----------
    /// `--validate` with `--cert` found problems; the last one is in the message.
    #[error("unable to validate sealed secret offline: {last}")]
    OfflineInvalid {
        /// The last problem found.
        last: String,
    },
    /// `keys verify-backup`: the backup cannot open some SealedSecrets.
    #[error("the backup cannot open {count} SealedSecret(s) (listed above)")]
    BackupIncomplete {
        /// How many.
        count: usize,
    },
    /// `reencrypt`: some SealedSecrets could not be re-encrypted.
    #[error("{count} SealedSecret(s) could not be re-encrypted (their files were left untouched)")]
    ReencryptFailed {
        /// How many.
        count: usize,
    },
    /// One file could not be re-encrypted ([`crate::commands::reencrypt::rewrite_file`]).
    #[error("{}", .problems.join("; "))]
    ReencryptFile {
        /// Every problem found in the file.
        problems: Vec<String>,
    },
    /// `audit`: some values' headers do not parse.
    #[error("{count} sealed value(s) could not be read (listed above)")]
    AuditUnreadable {
        /// How many.
        count: usize,
    },
    /// `scan --strict`: some files could not be parsed completely.
    #[error("--strict: {count} file(s) could not be parsed completely (listed above)")]
    StrictUnparsed {
        /// How many.
        count: usize,
    },
    /// Reading or writing a file or stream.
    #[error("{action} {}", quote_path(.path))]
    Io {
        /// "failed to read", "failed to write", ...
        action: &'static str,
        /// The file (`-` for stdin/stdout).
        path: PathBuf,
        /// The I/O error, printed Go-style ("no such file or directory").
        #[source]
        source: GoIoError,
    },
    /// A manifest could not be read.
    #[error("{context}")]
    Manifest {
        /// Which input.
        context: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// Sealing failed (upstream's messages come from the api crate).
    #[error(transparent)]
    Seal(#[from] SealingError),
    /// Unsealing or decrypting failed.
    #[error(transparent)]
    Unseal(#[from] UnsealError),
    /// Writing JSON/YAML failed, or the output format is unknown.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A certificate could not be used (upstream's messages, §1.7).
    #[error("{context}")]
    Cert {
        /// Which certificate.
        context: String,
        /// Why.
        #[source]
        source: CertError,
    },
    /// A private key could not be read.
    #[error("failed to read private key from {}", quote_path(.path))]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// Talking to the cluster failed.
    #[error("{context}")]
    Kube {
        /// What was attempted.
        context: String,
        /// kube-rs's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An HTTP fetch (`--cert https://...`) failed.
    #[error("cannot fetch certificate from `{url}`: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Status or transport error.
        message: String,
    },
    /// A key backup could not be encrypted (age's error, in words).
    #[error("cannot encrypt the backup: {cause}")]
    BackupEncrypt {
        /// What age reported.
        cause: String,
    },
    /// A key backup could not be decrypted (wrong passphrase or identity, damaged file).
    #[error("cannot decrypt backup `{}`: {cause}", .path.display())]
    BackupDecrypt {
        /// The backup file.
        path: PathBuf,
        /// What age reported.
        cause: String,
    },
    /// A decrypted backup holds something that is not a Secret.
    #[error("backup `{}` holds an invalid Secret: {cause}", .path.display())]
    BackupInvalidSecret {
        /// The backup file.
        path: PathBuf,
        /// The decoding error.
        cause: serde_json::Error,
    },
    /// A Secret in a backup has no `tls.key`.
    #[error("backup `{}`: Secret {index}{name} has no data[\"tls.key\"] (the private key)", .path.display())]
    BackupSecretWithoutKey {
        /// The backup file.
        path: PathBuf,
        /// 1-based position of the Secret in the backup.
        index: usize,
        /// ` (`name`)` when the Secret has a name, else empty.
        name: String,
    },
    /// A backup with no key Secret at all.
    #[error("backup `{}` holds no key Secret (no data[\"tls.key\"])", .path.display())]
    BackupWithoutKeys {
        /// The backup file.
        path: PathBuf,
    },
    /// A key Secret in a backup whose `tls.key` is not a usable private key.
    #[error("key Secret `{name}` in the backup has an unreadable tls.key")]
    BackupUnreadableKey {
        /// The Secret's name.
        name: String,
    },
    /// `keys restore` of an unencrypted backup without `--insecure-plaintext`.
    #[error("refusing to restore `{}`: it is not encrypted (anyone who could write the file chose its keys)", .path.display())]
    BackupPlaintext {
        /// The backup file.
        path: PathBuf,
    },
    /// A key Secret in a backup whose `tls.crt` is missing, unreadable, or for another key.
    #[error("key Secret `{name}` in the backup: {problem}")]
    BackupBadCertificate {
        /// The Secret's name.
        name: String,
        /// What is wrong with its certificate.
        problem: &'static str,
    },
    /// A key whose certificate starts in the future: restored, it would become the newest key
    /// and take every new seal until the next renewal.
    #[error(
        "key Secret `{name}` in the backup has a certificate valid only from {not_before}, in the future: refusing to restore it"
    )]
    BackupFutureKey {
        /// The Secret's name.
        name: String,
        /// NotBefore, RFC 3339.
        not_before: String,
    },
    /// `keys restore` without a terminal to confirm on and without `--yes`.
    #[error("restoring keys needs a confirmation: no terminal to ask on, and no --yes")]
    RestoreNotConfirmed,
    /// The operator answered no.
    #[error("restore cancelled: nothing was written")]
    RestoreDeclined,
    /// `keys retire`: no key Secret has this fingerprint or name.
    #[error("no key Secret in namespace `{namespace}` has fingerprint or name `{key}`")]
    KeyNotFound {
        /// The argument.
        key: String,
        /// The controller namespace.
        namespace: String,
    },
    /// `keys retire`: several key Secrets hold this key.
    #[error("key `{key}` is held by several Secrets ({secrets}): name the Secret to retire")]
    KeyAmbiguous {
        /// The argument.
        key: String,
        /// Their names, comma-separated.
        secrets: String,
    },
    /// `keys retire` of a Secret whose private key cannot be read: what it opens cannot be
    /// checked.
    #[error(
        "cannot read the private key of Secret `{name}`: refusing to retire what cannot be checked"
    )]
    RetireUnreadable {
        /// The Secret's name.
        name: String,
    },
    /// `keys retire` of the key new SealedSecrets are sealed to.
    #[error(
        "key {key} is the controller's newest active key (new SealedSecrets are sealed to it): refusing to retire it"
    )]
    RetireNewest {
        /// Its fingerprint.
        key: String,
    },
    /// `keys retire` of a key that SealedSecrets in the cluster still need.
    #[error(
        "{count} SealedSecret(s) in the cluster still need key {key} (listed above): refusing to retire it"
    )]
    KeyInUse {
        /// Its fingerprint.
        key: String,
        /// How many objects.
        count: usize,
    },
    /// `keys retire` without a terminal to confirm on and without `--yes`.
    #[error("retiring a key needs a confirmation: no terminal to ask on, and no --yes")]
    RetireNotConfirmed,
    /// The operator answered no.
    #[error("retire cancelled: nothing was deleted")]
    RetireDeclined,
    /// An error with a `hint:` the user can act on ([`CliError::unhinted`] gives the error
    /// itself, whose causes `main` prints).
    #[error("{error}")]
    Hinted {
        /// The error.
        error: Box<CliError>,
        /// What to do.
        hint: String,
    },
    /// A bug or an environment problem, not the user's input.
    #[error("{0}")]
    Internal(String),
}

/// Result alias.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
