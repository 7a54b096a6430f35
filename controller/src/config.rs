//! Command-line configuration: every flag of upstream's controller (§4.1) with its default,
//! plus the project's own (docs/design.md). Each flag also reads `SEALED_SECRETS_<FLAG>` (the
//! flag wins), exactly like upstream's pflag/env binding; the names are all in [`env`](mod@env).
//!
//! Booleans take pflag's forms (`--flag`, `--flag=true`, `--flag=false`, and Go's
//! `strconv.ParseBool` spellings); durations take Go syntax (`720h0m0s`, `1h30m`, `500ms`)
//! and days (`30d`), which upstream lacks (§9.1).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{ArgAction, Parser, ValueEnum};

/// Environment variables read by the controller, in one place.
pub mod env {
    pub const KEY_PREFIX: &str = "SEALED_SECRETS_KEY_PREFIX";
    pub const KEY_SIZE: &str = "SEALED_SECRETS_KEY_SIZE";
    pub const KEY_TTL: &str = "SEALED_SECRETS_KEY_TTL";
    pub const MY_CN: &str = "SEALED_SECRETS_MY_CN";
    pub const KEY_RENEW_PERIOD: &str = "SEALED_SECRETS_KEY_RENEW_PERIOD";
    pub const ROTATE_PERIOD: &str = "SEALED_SECRETS_ROTATE_PERIOD";
    pub const KEY_ORDER_PRIORITY: &str = "SEALED_SECRETS_KEY_ORDER_PRIORITY";
    pub const KEY_CUTOFF_TIME: &str = "SEALED_SECRETS_KEY_CUTOFF_TIME";
    pub const ACCEPT_DEPRECATED_V1_DATA: &str = "SEALED_SECRETS_ACCEPT_DEPRECATED_V1_DATA";
    pub const ALL_NAMESPACES: &str = "SEALED_SECRETS_ALL_NAMESPACES";
    pub const ADDITIONAL_NAMESPACES: &str = "SEALED_SECRETS_ADDITIONAL_NAMESPACES";
    pub const LABEL_SELECTOR: &str = "SEALED_SECRETS_LABEL_SELECTOR";
    pub const RATE_LIMIT: &str = "SEALED_SECRETS_RATE_LIMIT";
    pub const RATE_LIMIT_BURST: &str = "SEALED_SECRETS_RATE_LIMIT_BURST";
    pub const PRIVATEKEY_ANNOTATIONS: &str = "SEALED_SECRETS_PRIVATEKEY_ANNOTATIONS";
    pub const PRIVATEKEY_LABELS: &str = "SEALED_SECRETS_PRIVATEKEY_LABELS";
    pub const OLD_GC_BEHAVIOR: &str = "SEALED_SECRETS_OLD_GC_BEHAVIOR";
    pub const UPDATE_STATUS: &str = "SEALED_SECRETS_UPDATE_STATUS";
    pub const WATCH_FOR_SECRETS: &str = "SEALED_SECRETS_WATCH_FOR_SECRETS";
    pub const SKIP_RECREATE: &str = "SEALED_SECRETS_SKIP_RECREATE";
    pub const MAX_UNSEAL_RETRIES: &str = "SEALED_SECRETS_MAX_UNSEAL_RETRIES";
    pub const KUBECLIENT_QPS: &str = "SEALED_SECRETS_KUBECLIENT_QPS";
    pub const KUBECLIENT_BURST: &str = "SEALED_SECRETS_KUBECLIENT_BURST";
    pub const LOG_INFO_STDOUT: &str = "SEALED_SECRETS_LOG_INFO_STDOUT";
    pub const LOG_LEVEL: &str = "SEALED_SECRETS_LOG_LEVEL";
    pub const LOG_FORMAT: &str = "SEALED_SECRETS_LOG_FORMAT";
    pub const LISTEN_ADDR: &str = "SEALED_SECRETS_LISTEN_ADDR";
    pub const LISTEN_METRICS_ADDR: &str = "SEALED_SECRETS_LISTEN_METRICS_ADDR";
    pub const READ_TIMEOUT: &str = "SEALED_SECRETS_READ_TIMEOUT";
    pub const WRITE_TIMEOUT: &str = "SEALED_SECRETS_WRITE_TIMEOUT";
    pub const KUBECONFIG: &str = "SEALED_SECRETS_KUBECONFIG";
    pub const CERT_CONFIGMAP: &str = "SEALED_SECRETS_CERT_CONFIGMAP";
    pub const LEADER_ELECTION: &str = "SEALED_SECRETS_LEADER_ELECTION";
    pub const LEADER_ELECTION_LEASE_NAME: &str = "SEALED_SECRETS_LEADER_ELECTION_LEASE_NAME";
    pub const LEADER_ELECTION_LEASE_DURATION: &str =
        "SEALED_SECRETS_LEADER_ELECTION_LEASE_DURATION";
    pub const CONCURRENCY: &str = "SEALED_SECRETS_CONCURRENCY";
    pub const READ_HEADER_TIMEOUT: &str = "SEALED_SECRETS_READ_HEADER_TIMEOUT";
    pub const MAX_CONNECTIONS: &str = "SEALED_SECRETS_MAX_CONNECTIONS";
    pub const MAX_CONNECTIONS_PER_CLIENT: &str = "SEALED_SECRETS_MAX_CONNECTIONS_PER_CLIENT";
    pub const WRITE_STALL_TIMEOUT: &str = "SEALED_SECRETS_WRITE_STALL_TIMEOUT";
    pub const READ_BODY_TIMEOUT: &str = "SEALED_SECRETS_READ_BODY_TIMEOUT";
    pub const TRUSTED_PROXIES: &str = "SEALED_SECRETS_TRUSTED_PROXIES";
    pub const ROTATE_RATE_LIMIT: &str = "SEALED_SECRETS_ROTATE_RATE_LIMIT";
    pub const ROTATE_RATE_LIMIT_BURST: &str = "SEALED_SECRETS_ROTATE_RATE_LIMIT_BURST";
    pub const HTTP_ACCEPT_DEPRECATED_V1_DATA: &str =
        "SEALED_SECRETS_HTTP_ACCEPT_DEPRECATED_V1_DATA";
    pub const ACCEPT_MULTI_RECIPIENT_V1: &str = "SEALED_SECRETS_ACCEPT_MULTI_RECIPIENT_V1";
    pub const ALLOW_SERVICE_ACCOUNT_TOKEN_SECRETS: &str =
        "SEALED_SECRETS_ALLOW_SERVICE_ACCOUNT_TOKEN_SECRETS";
    pub const MAX_SEALED_SECRET_SIZE: &str = "SEALED_SECRETS_MAX_SEALED_SECRET_SIZE";

    /// The controller's namespace (key namespace, watched namespace), set by the Deployment.
    pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
    /// Leader-election identity, set by the Deployment from `metadata.name`.
    pub const POD_NAME: &str = "POD_NAME";
    /// Standard kubeconfig variable, honoured through kube's config inference.
    pub const KUBECONFIG_STD: &str = "KUBECONFIG";
}

/// The serviceaccount namespace file of an in-cluster pod (upstream's fallback after
/// `POD_NAMESPACE`).
pub const SERVICEACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How the "newest" key is chosen (§4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyOrderPriority {
    /// The certificate's NotBefore (upstream default).
    #[default]
    CertNotBefore,
    /// The key Secret's creationTimestamp.
    SecretCreationTimestamp,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A Go-style duration that also accepts days (`30d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl std::str::FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(GoDuration)
    }
}

/// Parses Go's `time.ParseDuration` syntax plus a `d` (24h) unit: `0`, `720h0m0s`, `1.5h`,
/// `300ms`, `30d` ([`sealed_secrets_api::duration`]).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    sealed_secrets_api::duration::parse_go_or_days(s).map_err(|_| {
        format!("invalid duration {s:?} (use Go syntax such as 720h0m0s, 30m, or days: 30d)")
    })
}

/// Go's `strconv.ParseBool`, which pflag uses for `--flag=<value>`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
}

/// Go's listen address: `:8080` means every interface.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    if let Ok(a) = full.parse() {
        return Ok(a);
    }
    // `localhost:8080` and other host names.
    use std::net::ToSocketAddrs as _;
    full.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| format!("invalid listen address {s:?} (expected HOST:PORT or :PORT)"))
}

/// `--key-cutoff-time`: RFC1123Z as `date -R` prints it (`Mon, 02 Jan 2006 15:04:05 -0700`).
pub fn parse_cutoff(s: &str) -> Result<SystemTime, String> {
    let zdt = jiff::fmt::rfc2822::parse(s.trim()).map_err(|e| {
        format!("invalid --key-cutoff-time {s:?} (expected RFC1123Z, e.g. `date -R`): {e}")
    })?;
    Ok(SystemTime::from(zdt.timestamp()))
}

/// `k=v,k2=v2` for `--privatekey-labels`/`--privatekey-annotations`. Upstream panics on an
/// item without `=` (#1386); here it is a configuration error at startup.
pub fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("invalid item {item:?}: expected key=value"))
        })
        .collect()
}

/// Default of `--max-sealed-secret-size`: 1.5 MiB, etcd's default request limit, so that
/// every SealedSecret a default cluster can store is processed, including one that seals a
/// Secret of Kubernetes' full 1 MiB (base64 makes it about 1.4 MB).
pub const DEFAULT_MAX_SEALED_SECRET_SIZE: u64 = 1536 * 1024;

/// The controller that unseals SealedSecrets into Secrets, serves its certificate and
/// verifies/rotates SealedSecrets over HTTP.
#[derive(Debug, Clone, Parser)]
// pflag lets a later flag override an earlier one; so does `args_override_self`.
#[command(
    name = "sealed-secrets-controller",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Config {
    /// Prefix used to name keys (generateName of new key Secrets, and name of the legacy key Secret).
    #[arg(long, env = env::KEY_PREFIX, default_value = "sealed-secrets-key")]
    pub key_prefix: String,

    /// Size of encryption key (RSA modulus bits).
    #[arg(long, env = env::KEY_SIZE, default_value_t = 4096)]
    pub key_size: usize,

    /// Duration that certificate is valid for.
    #[arg(long, env = env::KEY_TTL, default_value = "87600h0m0s")]
    pub key_ttl: GoDuration,

    /// Common name to be used as issuer/subject DN in generated certificate.
    #[arg(long, env = env::MY_CN, default_value = "")]
    pub my_cn: String,

    /// New key generation period (automatic rotation disabled if 0) [default: 720h0m0s]
    // No clap default: an unset flag falls back to the deprecated --rotate-period first.
    #[arg(long, env = env::KEY_RENEW_PERIOD)]
    pub key_renew_period: Option<GoDuration>,

    /// New key generation period (deprecated alias of --key-renew-period).
    #[arg(long, env = env::ROTATE_PERIOD, hide = true)]
    pub rotate_period: Option<GoDuration>,

    /// Ordering of keys based on NotBefore certificate attribute or secret creation timestamp
    /// (CertNotBefore or SecretCreationTimestamp).
    #[arg(long, env = env::KEY_ORDER_PRIORITY, default_value = "CertNotBefore")]
    pub key_order_priority: String,

    /// Create a new key if latest one is older than this cutoff time. RFC1123Z format (`date -R`).
    #[arg(long, env = env::KEY_CUTOFF_TIME, default_value = "")]
    pub key_cutoff_time: String,

    /// Accept deprecated 'data' field (whole-Secret v1 format).
    #[arg(long, env = env::ACCEPT_DEPRECATED_V1_DATA, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub accept_deprecated_v1_data: bool,

    /// Scan all namespaces or only the current namespace.
    #[arg(long, env = env::ALL_NAMESPACES, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub all_namespaces: bool,

    /// Comma-separated list of additional namespaces to be watched.
    #[arg(long, env = env::ADDITIONAL_NAMESPACES, default_value = "")]
    pub additional_namespaces: String,

    /// Label selector which can be used to filter sealed secrets (and the Secrets watched for recreation).
    #[arg(long, env = env::LABEL_SELECTOR, default_value = "")]
    pub label_selector: String,

    /// Number of allowed sustained request per second for verify endpoint.
    #[arg(long, env = env::RATE_LIMIT, default_value_t = 2)]
    pub rate_limit: u32,

    /// Number of requests allowed to exceed the rate limit per second for verify endpoint.
    #[arg(long, env = env::RATE_LIMIT_BURST, default_value_t = 2)]
    pub rate_limit_burst: u32,

    /// Comma-separated k=v annotations added to newly generated key Secrets.
    #[arg(long, env = env::PRIVATEKEY_ANNOTATIONS, default_value = "")]
    pub privatekey_annotations: String,

    /// Comma-separated k=v labels added to newly generated key Secrets.
    #[arg(long, env = env::PRIVATEKEY_LABELS, default_value = "")]
    pub privatekey_labels: String,

    /// Delete the Secret explicitly when its SealedSecret is deleted (instead of ownerRef GC).
    #[arg(long, env = env::OLD_GC_BEHAVIOR, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub old_gc_behavior: bool,

    /// Write the SealedSecret status subresource.
    #[arg(long, env = env::UPDATE_STATUS, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub update_status: bool,

    /// Accepted for compatibility: key Secrets are always watched (added, removed and
    /// relabelled keys are picked up without restart).
    #[arg(long, env = env::WATCH_FOR_SECRETS, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub watch_for_secrets: bool,

    /// Do not watch Secrets, so deleted Secrets are not recreated (needs fewer RBAC rights).
    #[arg(long, env = env::SKIP_RECREATE, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub skip_recreate: bool,

    /// Max unseal retries before giving up on a SealedSecret (until its next change);
    /// transient API failures (429, 5xx, connection errors) are retried without counting.
    #[arg(long, env = env::MAX_UNSEAL_RETRIES, default_value_t = 5)]
    pub max_unseal_retries: u32,

    /// Kubernetes client QPS (negative disables the limiter).
    #[arg(long, env = env::KUBECLIENT_QPS, default_value_t = 5.0, allow_negative_numbers = true)]
    pub kubeclient_qps: f64,

    /// Kubernetes client burst.
    #[arg(long, env = env::KUBECLIENT_BURST, default_value_t = 10)]
    pub kubeclient_burst: u32,

    /// INFO and below go to stdout, WARN and ERROR to stderr; otherwise everything goes to stderr.
    #[arg(long, env = env::LOG_INFO_STDOUT, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub log_info_stdout: bool,

    /// Log level (DEBUG, INFO, WARN, ERROR).
    #[arg(long, env = env::LOG_LEVEL, default_value = "INFO")]
    pub log_level: String,

    /// Log format (text or json).
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value = "text", ignore_case = true)]
    pub log_format: LogFormat,

    /// HTTP listen address (`:8080` listens on every interface).
    #[arg(long, env = env::LISTEN_ADDR, default_value = ":8080", value_parser = parse_listen_addr)]
    pub listen_addr: SocketAddr,

    /// HTTP metrics listen address.
    #[arg(long, env = env::LISTEN_METRICS_ADDR, default_value = ":8081", value_parser = parse_listen_addr)]
    pub listen_metrics_addr: SocketAddr,

    /// HTTP request read timeout (both servers).
    #[arg(long, env = env::READ_TIMEOUT, default_value = "2m0s")]
    pub read_timeout: GoDuration,

    /// HTTP response write timeout (both servers).
    #[arg(long, env = env::WRITE_TIMEOUT, default_value = "2m0s")]
    pub write_timeout: GoDuration,

    /// Kubeconfig to use out of cluster (KUBECONFIG is honoured too; in-cluster config otherwise).
    #[arg(long, env = env::KUBECONFIG)]
    pub kubeconfig: Option<PathBuf>,

    /// ConfigMap in the controller namespace to publish the certificates to (empty disables).
    #[arg(long, env = env::CERT_CONFIGMAP, default_value = "sealed-secrets-cert")]
    pub cert_configmap: String,

    /// Elect a leader through a coordination.k8s.io Lease so that several replicas can run;
    /// only the leader unseals and renews keys.
    #[arg(long, env = env::LEADER_ELECTION, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader-election Lease in the controller namespace.
    #[arg(long, env = env::LEADER_ELECTION_LEASE_NAME, default_value = "sealed-secrets-controller")]
    pub leader_election_lease_name: String,

    /// How long a leader holds the Lease without renewing it before another replica takes over.
    #[arg(long, env = env::LEADER_ELECTION_LEASE_DURATION, default_value = "15s")]
    pub leader_election_lease_duration: GoDuration,

    /// SealedSecrets reconciled concurrently.
    #[arg(long, env = env::CONCURRENCY, default_value_t = 8)]
    pub concurrency: u16,

    /// Time a client has to send a request's headers on the HTTP server, counted from when the
    /// connection waits for a request; idle keep-alive connections are closed after it too.
    #[arg(long, env = env::READ_HEADER_TIMEOUT, default_value = "10s")]
    pub read_header_timeout: GoDuration,

    /// Connections the HTTP server holds open at once; beyond them a few connections are
    /// accepted for /healthz only, and further ones are closed.
    #[arg(long, env = env::MAX_CONNECTIONS, default_value_t = 512)]
    pub max_connections: usize,

    /// Connections one client address may hold open at once on each HTTP server; further
    /// ones are closed. Addresses in --trusted-proxies are exempt.
    #[arg(long, env = env::MAX_CONNECTIONS_PER_CLIENT, default_value_t = 64)]
    pub max_connections_per_client: usize,

    /// Time a response write may make no progress (the client does not read) before the
    /// HTTP server closes the connection.
    #[arg(long, env = env::WRITE_STALL_TIMEOUT, default_value = "10s")]
    pub write_stall_timeout: GoDuration,

    /// Time a client of /v1/verify or /v1/rotate has to send the whole request body, counted
    /// once the request has passed the rate limit; 408 and the connection closed after it.
    #[arg(long, env = env::READ_BODY_TIMEOUT, default_value = "10s")]
    pub read_body_timeout: GoDuration,

    /// Comma-separated addresses or CIDR blocks of proxies (e.g. the API servers of the
    /// service proxy) whose X-Forwarded-For header names the client for rate limiting; from
    /// any other peer the header is ignored.
    #[arg(long, env = env::TRUSTED_PROXIES, default_value = "")]
    pub trusted_proxies: crate::ratelimit::TrustedProxies,

    /// Let /v1/verify and /v1/rotate accept the deprecated whole-Secret 'data' field (only
    /// together with --accept-deprecated-v1-data). Off by default: rotate would return the
    /// decrypted Secret's metadata and verify would reveal whether a plaintext is JSON.
    #[arg(long, env = env::HTTP_ACCEPT_DEPRECATED_V1_DATA, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub http_accept_deprecated_v1_data: bool,

    /// Open multi-recipient values of version 1, which have no key commitment (a sealer can
    /// make one value open to different plaintexts in different clusters; crates/crypto/FORMAT.md
    /// §2.1). Off by default; turn on only for a migration window while such values are
    /// resealed (`kubeseal scan`/`audit` find them; metric multi_recipient_v1_values_total).
    #[arg(long, env = env::ACCEPT_MULTI_RECIPIENT_V1, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub accept_multi_recipient_v1: bool,

    /// Unseal SealedSecrets whose template asks for a Secret of type
    /// kubernetes.io/service-account-token. Off by default (unlike upstream): such a Secret
    /// gets a long-lived token of any ServiceAccount in the namespace, so whoever may create
    /// SealedSecrets would get tokens without any right on Secrets.
    #[arg(long, env = env::ALLOW_SERVICE_ACCOUNT_TOKEN_SECRETS, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub allow_service_account_token_secrets: bool,

    /// Largest SealedSecret (bytes of JSON, as the API server serves it) the controller
    /// processes; larger ones get Synced=False naming this limit. 0: no limit. The default,
    /// 1.5 MiB, is etcd's default request limit: every SealedSecret a default cluster stores.
    #[arg(long, env = env::MAX_SEALED_SECRET_SIZE, default_value_t = DEFAULT_MAX_SEALED_SECRET_SIZE)]
    pub max_sealed_secret_size: u64,

    /// Number of allowed sustained requests per second for the rotate endpoint, per client.
    #[arg(long, env = env::ROTATE_RATE_LIMIT, default_value_t = 10)]
    pub rotate_rate_limit: u32,

    /// Number of requests allowed to exceed the rotate rate limit per second, per client.
    #[arg(long, env = env::ROTATE_RATE_LIMIT_BURST, default_value_t = 20)]
    pub rotate_rate_limit_burst: u32,

    /// Print the version and exit.
    #[arg(long, action = ArgAction::SetTrue)]
    pub version: bool,
}

/// The version printed by `--version` (`controller version: v0.1.0`, upstream's format, §4.1)
/// and exported in `build_info{revision}`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// The git commit the binary was built from (`build.rs`; `unknown` without git), exported in
/// `build_info{commit}` and logged at start-up.
pub const GIT_COMMIT: &str = env!("SEALED_SECRETS_GIT_COMMIT");

/// Problems in the configuration found when it becomes [`crate::settings::Settings`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "invalid --key-prefix {0:?}: use only lowercase letters, digits and '-', at most 245 characters"
    )]
    KeyPrefix(String),
    #[error("invalid --{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    /// `--log-level`; the message names the flag already.
    #[error("{message}")]
    LogLevel { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> Config {
        let mut v = vec!["sealed-secrets-controller"];
        v.extend_from_slice(args);
        Config::try_parse_from(v).unwrap()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn key_renew_period_help_shows_its_default() {
        let help = Config::command().render_long_help().to_string();
        let line = help
            .lines()
            .skip_while(|l| !l.contains("--key-renew-period"))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(line.contains("[default: 720h0m0s]"), "{line}");
    }

    #[test]
    fn defaults_match_upstream() {
        let c = parse(&[]);
        assert_eq!(c.key_prefix, "sealed-secrets-key");
        assert_eq!(c.key_size, 4096);
        assert_eq!(c.key_ttl.0, Duration::from_secs(87600 * 3600));
        assert_eq!(c.key_renew_period, None);
        assert!(c.accept_deprecated_v1_data && c.all_namespaces && c.update_status);
        assert!(!c.old_gc_behavior && !c.skip_recreate && !c.watch_for_secrets);
        assert_eq!(
            (c.rate_limit, c.rate_limit_burst, c.max_unseal_retries),
            (2, 2, 5)
        );
        assert_eq!(c.listen_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.listen_metrics_addr, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(c.read_timeout.0, Duration::from_secs(120));
        assert!(c.leader_election);
        assert_eq!(c.cert_configmap, "sealed-secrets-cert");
    }

    #[test]
    fn deploy_manifest_args_parse() {
        let c = parse(&[
            "--update-status",
            "--key-prefix=sealed-secrets-key",
            "--listen-addr=:8080",
            "--listen-metrics-addr=:8081",
            "--leader-election=true",
            "--leader-election-lease-name=sealed-secrets-controller",
            "--cert-configmap=sealed-secrets-cert",
        ]);
        assert!(c.update_status && c.leader_election);
        let c = parse(&[
            "--update-status=false",
            "--leader-election=F",
            "--skip-recreate",
        ]);
        assert!(!c.update_status && !c.leader_election && c.skip_recreate);
    }

    #[test]
    fn repeated_flags_last_wins_like_pflag() {
        let c = parse(&[
            "--leader-election=false",
            "--leader-election=true",
            "--key-size=2048",
            "--key-size=3072",
        ]);
        assert!(c.leader_election);
        assert_eq!(c.key_size, 3072);
    }

    #[test]
    fn bool_flag_without_value_does_not_eat_next_argument() {
        let c = parse(&["--old-gc-behavior", "--key-size", "2048"]);
        assert!(c.old_gc_behavior);
        assert_eq!(c.key_size, 2048);
    }

    #[test]
    fn durations_in_go_syntax_and_days() {
        assert_eq!(
            parse_duration("720h0m0s").unwrap(),
            Duration::from_secs(720 * 3600)
        );
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in ["", "10", "h", "-1h", "1x", "1h-2m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cutoff_is_rfc1123z() {
        let t = parse_cutoff("Mon, 02 Jan 2006 15:04:05 -0700").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1136239445);
        assert!(parse_cutoff("yesterday").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_values("a=b, c=d=e").unwrap(),
            vec![("a".into(), "b".into()), ("c".into(), "d=e".into())]
        );
        assert!(parse_key_values("novalue").is_err());
        assert!(parse_key_values("=v").is_err());
    }
}
