//! Typed settings: the clap [`Config`] parsed once, at start-up, into the values each part of
//! the controller uses (parse, don't validate). Every problem with a flag is a
//! [`ConfigError`] here, before anything talks to the API server; nothing later parses a
//! flag again or falls back to a default on its own.
//!
//! The one deliberate fallback is upstream's: an unknown `--key-order-priority` is logged as
//! an error and `CertNotBefore` is used (§4.1). It is recorded as a [`Notice`] so that
//! [`crate::run`] logs it once the logger is up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sealed_secrets_api::UnsealOptions;
use tracing::Level;

use crate::config::{
    Config, ConfigError, KeyOrderPriority, LogFormat, parse_cutoff, parse_key_values,
};
use crate::keys::{KeySettings, SUPPORTED_KEY_SIZES};
use crate::ratelimit::TrustedProxies;
use crate::reconcile::ReconcileSettings;
use crate::server::ConnLimits;

/// `--key-renew-period`'s default, used when neither it nor `--rotate-period` is given.
pub const DEFAULT_RENEW_PERIOD: Duration = Duration::from_secs(720 * 3600);

/// Everything the controller was told to do, checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--kubeconfig` (else kube's inference: `KUBECONFIG`, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    pub log: LogSettings,
    pub keys: KeyFlags,
    pub reconcile: ReconcileSettings,
    pub http: HttpSettings,
    /// `None` with `--leader-election=false`: this replica always leads.
    pub leader_election: Option<LeaseSettings>,
    pub namespaces: WatchScope,
    /// `--cert-configmap`; `None` when empty (publishing disabled).
    pub cert_configmap: Option<String>,
    /// Things to log at start-up, once the logger is installed.
    pub notices: Vec<Notice>,
}

/// `--log-level`, `--log-format`, `--log-info-stdout`.
#[derive(Clone, Copy, Debug)]
pub struct LogSettings {
    pub level: Level,
    pub format: LogFormat,
    pub info_to_stdout: bool,
}

/// The key flags; [`KeyFlags::for_namespace`] completes them once the namespace is known.
#[derive(Clone, Debug)]
pub struct KeyFlags {
    pub prefix: String,
    pub bits: usize,
    pub ttl: Duration,
    pub common_name: String,
    pub priority: KeyOrderPriority,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// `--key-renew-period`, else the deprecated `--rotate-period`, else 30 days; zero
    /// disables renewal.
    pub renew_period: Duration,
    /// `--key-cutoff-time`.
    pub cutoff: Option<SystemTime>,
    /// `--accept-multi-recipient-v1`: the key rings open multi-recipient version-1 values.
    pub accept_multi_v1: bool,
}

impl KeyFlags {
    /// The key registry's settings for keys kept in `namespace`.
    pub fn for_namespace(&self, namespace: &str) -> KeySettings {
        KeySettings {
            namespace: namespace.to_owned(),
            prefix: self.prefix.clone(),
            bits: self.bits,
            ttl: self.ttl,
            common_name: self.common_name.clone(),
            priority: self.priority,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// The HTTP servers' flags.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// `--rate-limit`, `--rate-limit-burst` (verify).
    pub rate_limit: (u32, u32),
    /// `--rotate-rate-limit`, `--rotate-rate-limit-burst`.
    pub rotate_rate_limit: (u32, u32),
    pub trusted_proxies: TrustedProxies,
    /// What `/v1/verify` and `/v1/rotate` accept.
    pub unseal: UnsealOptions,
    /// Per-request timeout: `--read-timeout` plus `--write-timeout`.
    pub timeout: Duration,
    /// `--read-body-timeout`.
    pub body_read_timeout: Duration,
    pub limits: ConnLimits,
}

/// The leader-election Lease.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub duration: Duration,
}

/// Which namespaces to watch (`--all-namespaces`, `--additional-namespaces`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchScope {
    pub all: bool,
    /// Non-empty names, in flag order.
    pub additional: Vec<String>,
}

/// Something about the configuration worth a log line at start-up, not worth failing for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Upstream's fallback for an unknown `--key-order-priority` (§4.1).
    UnknownKeyOrderPriority(String),
    /// `--kubeclient-qps`/`--kubeclient-burst` changed: accepted, not enforced.
    ClientRateLimitIgnored,
}

impl Notice {
    /// Logs the notice at the level upstream uses for it.
    pub fn log(&self) {
        match self {
            Self::UnknownKeyOrderPriority(value) => {
                tracing::error!(%value, "invalid --key-order-priority; using CertNotBefore")
            }
            Self::ClientRateLimitIgnored => tracing::warn!(
                "--kubeclient-qps/--kubeclient-burst are accepted but not enforced: kube-rs has no client-side rate limiter"
            ),
        }
    }
}

fn invalid(flag: &'static str) -> impl Fn(String) -> ConfigError {
    move |message| ConfigError::Invalid { flag, message }
}

fn at_least_one<T: PartialEq + Default>(flag: &'static str, v: T) -> Result<T, ConfigError> {
    if v == T::default() {
        return Err(invalid(flag)("must be at least 1".into()));
    }
    Ok(v)
}

fn key_prefix(p: &str) -> Result<String, ConfigError> {
    // Upstream's rule: it becomes a generateName.
    let ok = !p.is_empty()
        && p.len() <= 245
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(p.to_owned())
    } else {
        Err(ConfigError::KeyPrefix(p.to_owned()))
    }
}

fn key_size(bits: usize) -> Result<usize, ConfigError> {
    if SUPPORTED_KEY_SIZES.contains(&bits) {
        return Ok(bits);
    }
    let supported: Vec<String> = SUPPORTED_KEY_SIZES
        .iter()
        .map(ToString::to_string)
        .collect();
    Err(invalid("key-size")(format!(
        "{bits} bits cannot be generated (supported: {})",
        supported.join(", ")
    )))
}

impl TryFrom<Config> for Settings {
    type Error = ConfigError;

    fn try_from(cfg: Config) -> Result<Self, ConfigError> {
        let mut notices = Vec::new();
        let priority = match cfg.key_order_priority.as_str() {
            "CertNotBefore" => KeyOrderPriority::CertNotBefore,
            "SecretCreationTimestamp" => KeyOrderPriority::SecretCreationTimestamp,
            other => {
                notices.push(Notice::UnknownKeyOrderPriority(other.to_owned()));
                KeyOrderPriority::CertNotBefore
            }
        };
        if cfg.kubeclient_qps != 5.0 || cfg.kubeclient_burst != 10 {
            notices.push(Notice::ClientRateLimitIgnored);
        }
        let cutoff = match cfg.key_cutoff_time.trim() {
            "" => None,
            s => Some(parse_cutoff(s).map_err(invalid("key-cutoff-time"))?),
        };
        let keys = KeyFlags {
            prefix: key_prefix(&cfg.key_prefix)?,
            bits: key_size(cfg.key_size)?,
            ttl: cfg.key_ttl.0,
            common_name: cfg.my_cn,
            priority,
            labels: parse_key_values(&cfg.privatekey_labels)
                .map_err(invalid("privatekey-labels"))?,
            annotations: parse_key_values(&cfg.privatekey_annotations)
                .map_err(invalid("privatekey-annotations"))?,
            renew_period: cfg
                .key_renew_period
                .or(cfg.rotate_period)
                .map_or(DEFAULT_RENEW_PERIOD, |d| d.0),
            cutoff,
            accept_multi_v1: cfg.accept_multi_recipient_v1,
        };
        let log = LogSettings {
            level: crate::telemetry::parse_level(&cfg.log_level)
                .map_err(|message| ConfigError::LogLevel { message })?,
            format: cfg.log_format,
            info_to_stdout: cfg.log_info_stdout,
        };
        let reconcile = ReconcileSettings {
            update_status: cfg.update_status,
            old_gc_behavior: cfg.old_gc_behavior,
            accept_deprecated_v1_data: cfg.accept_deprecated_v1_data,
            max_unseal_retries: cfg.max_unseal_retries,
            skip_recreate: cfg.skip_recreate,
            label_selector: cfg.label_selector,
            concurrency: at_least_one("concurrency", cfg.concurrency)?,
            allow_service_account_tokens: cfg.allow_service_account_token_secrets,
            max_sealed_secret_size: cfg.max_sealed_secret_size,
        };
        for (flag, value) in [
            ("read-header-timeout", cfg.read_header_timeout.0),
            ("write-stall-timeout", cfg.write_stall_timeout.0),
            ("read-body-timeout", cfg.read_body_timeout.0),
        ] {
            if value.is_zero() {
                return Err(invalid(flag)("must be more than 0".into()));
            }
        }
        let http = HttpSettings {
            listen_addr: cfg.listen_addr,
            metrics_addr: cfg.listen_metrics_addr,
            rate_limit: (
                at_least_one("rate-limit", cfg.rate_limit)?,
                cfg.rate_limit_burst,
            ),
            rotate_rate_limit: (
                at_least_one("rotate-rate-limit", cfg.rotate_rate_limit)?,
                cfg.rotate_rate_limit_burst,
            ),
            trusted_proxies: cfg.trusted_proxies,
            unseal: UnsealOptions {
                accept_deprecated_v1_data: cfg.accept_deprecated_v1_data
                    && cfg.http_accept_deprecated_v1_data,
                ..UnsealOptions::default()
            },
            timeout: cfg.read_timeout.0 + cfg.write_timeout.0,
            body_read_timeout: cfg.read_body_timeout.0,
            limits: ConnLimits {
                header_read_timeout: cfg.read_header_timeout.0,
                max_connections: at_least_one("max-connections", cfg.max_connections)?,
                max_connections_per_client: at_least_one(
                    "max-connections-per-client",
                    cfg.max_connections_per_client,
                )?,
                write_stall_timeout: cfg.write_stall_timeout.0,
            },
        };
        let leader_election = if cfg.leader_election {
            if cfg.leader_election_lease_duration.0.is_zero() {
                return Err(invalid("leader-election-lease-duration")(
                    "must be more than 0".into(),
                ));
            }
            Some(LeaseSettings {
                name: cfg.leader_election_lease_name,
                duration: cfg.leader_election_lease_duration.0,
            })
        } else {
            None
        };
        let namespaces = WatchScope {
            all: cfg.all_namespaces,
            additional: cfg
                .additional_namespaces
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        Ok(Self {
            kubeconfig: cfg.kubeconfig,
            log,
            keys,
            reconcile,
            http,
            leader_election,
            namespaces,
            cert_configmap: Some(cfg.cert_configmap).filter(|s| !s.is_empty()),
            notices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut v = vec!["sealed-secrets-controller"];
        v.extend_from_slice(args);
        Settings::try_from(Config::try_parse_from(v).unwrap())
    }

    fn error(args: &[&str]) -> String {
        settings(args).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_upstream() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.keys.prefix, "sealed-secrets-key");
        assert_eq!(s.keys.bits, 4096);
        assert_eq!(s.keys.ttl, Duration::from_secs(87600 * 3600));
        assert_eq!(s.keys.renew_period, DEFAULT_RENEW_PERIOD);
        assert_eq!(s.keys.priority, KeyOrderPriority::CertNotBefore);
        assert_eq!(s.keys.cutoff, None);
        assert!(s.reconcile.update_status && s.reconcile.accept_deprecated_v1_data);
        assert!(!s.reconcile.old_gc_behavior && !s.reconcile.skip_recreate);
        assert_eq!(s.reconcile.concurrency, 8);
        assert_eq!(s.http.rate_limit, (2, 2));
        assert_eq!(s.http.timeout, Duration::from_secs(240));
        assert!(!s.http.unseal.accept_deprecated_v1_data);
        assert!(
            !s.keys.accept_multi_v1,
            "multi-recipient version 1 is refused by default"
        );
        assert_eq!(s.log.level, Level::INFO);
        assert_eq!(s.leader_election.unwrap().duration, Duration::from_secs(15));
        assert_eq!(s.cert_configmap.as_deref(), Some("sealed-secrets-cert"));
        assert_eq!(
            s.namespaces,
            WatchScope {
                all: true,
                additional: vec![]
            }
        );
        assert!(s.notices.is_empty());
    }

    #[test]
    fn renew_period_falls_back_to_the_deprecated_flag() {
        let period = |args: &[&str]| settings(args).unwrap().keys.renew_period;
        assert_eq!(
            period(&["--key-renew-period=30d"]),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(
            period(&["--rotate-period", "1h"]),
            Duration::from_secs(3600)
        );
        assert_eq!(
            period(&["--rotate-period=1h", "--key-renew-period=0"]),
            Duration::ZERO
        );
    }

    #[test]
    fn multi_recipient_v1_is_a_migration_switch() {
        assert!(
            settings(&["--accept-multi-recipient-v1"])
                .unwrap()
                .keys
                .accept_multi_v1
        );
        assert!(
            !settings(&["--accept-multi-recipient-v1=false"])
                .unwrap()
                .keys
                .accept_multi_v1
        );
    }

    #[test]
    fn cutoff_is_parsed_once() {
        let s = settings(&["--key-cutoff-time", "Mon, 02 Jan 2006 15:04:05 -0700"]).unwrap();
        let t = s.keys.cutoff.unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1136239445);
        assert!(
            error(&["--key-cutoff-time", "yesterday"]).starts_with("invalid --key-cutoff-time")
        );
    }

    #[test]
    fn key_values_prefix_and_sizes_are_checked() {
        let s = settings(&["--privatekey-labels", "a=b, c=d=e"]).unwrap();
        assert_eq!(
            s.keys.labels,
            vec![("a".into(), "b".into()), ("c".into(), "d=e".into())]
        );
        assert!(error(&["--privatekey-labels", "oops"]).starts_with("invalid --privatekey-labels"));
        assert!(
            error(&["--privatekey-annotations", "a=b,=c"])
                .starts_with("invalid --privatekey-annotations")
        );
        assert!(error(&["--key-prefix", "Bad_Prefix"]).starts_with("invalid --key-prefix"));
        for ok in ["2048", "3072", "4096", "8192"] {
            settings(&["--key-size", ok]).unwrap();
        }
        assert_eq!(
            error(&["--key-size", "1000"]),
            "invalid --key-size: 1000 bits cannot be generated (supported: 2048, 3072, 4096, 8192)"
        );
    }

    /// Values that used to be accepted and silently replaced (or left to misbehave) and are
    /// now start-up errors.
    #[test]
    fn former_silent_defaults_are_errors() {
        // `--concurrency=0` ran with 1.
        assert_eq!(
            error(&["--concurrency=0"]),
            "invalid --concurrency: must be at least 1"
        );
        // `--log-level` was parsed apart from the other flags, in `main`.
        assert!(error(&["--log-level=LOUD"]).starts_with("invalid --log-level"));
        // A zero Lease duration made the leader give up its Lease at once.
        assert_eq!(
            error(&["--leader-election-lease-duration=0s"]),
            "invalid --leader-election-lease-duration: must be more than 0"
        );
        settings(&[
            "--leader-election=false",
            "--leader-election-lease-duration=0s",
        ])
        .unwrap();
        for (flag, arg) in [
            ("rate-limit", "--rate-limit=0"),
            ("rotate-rate-limit", "--rotate-rate-limit=0"),
            ("max-connections", "--max-connections=0"),
            (
                "max-connections-per-client",
                "--max-connections-per-client=0",
            ),
        ] {
            assert_eq!(
                error(&[arg]),
                format!("invalid --{flag}: must be at least 1")
            );
        }
        assert!(error(&["--read-header-timeout=0"]).starts_with("invalid --read-header-timeout"));
        assert!(error(&["--write-stall-timeout=0"]).starts_with("invalid --write-stall-timeout"));
        assert!(error(&["--read-body-timeout=0s"]).starts_with("invalid --read-body-timeout"));
        let s = settings(&[]).unwrap();
        assert_eq!(
            (
                s.http.limits.max_connections_per_client,
                s.http.limits.write_stall_timeout,
                s.http.body_read_timeout
            ),
            (64, Duration::from_secs(10), Duration::from_secs(10))
        );
    }

    #[test]
    fn unknown_key_order_priority_falls_back_like_upstream_with_a_notice() {
        let s = settings(&["--key-order-priority=SecretCreationTimestamp"]).unwrap();
        assert_eq!(s.keys.priority, KeyOrderPriority::SecretCreationTimestamp);
        let s = settings(&["--key-order-priority=nope"]).unwrap();
        assert_eq!(s.keys.priority, KeyOrderPriority::CertNotBefore);
        assert_eq!(
            s.notices,
            vec![Notice::UnknownKeyOrderPriority("nope".into())]
        );
    }

    #[test]
    fn scopes_and_optional_parts() {
        let s = settings(&[
            "--all-namespaces=false",
            "--additional-namespaces= a, ,b",
            "--cert-configmap=",
            "--leader-election=false",
            "--kubeclient-qps=20",
            "--http-accept-deprecated-v1-data",
        ])
        .unwrap();
        assert_eq!(
            s.namespaces,
            WatchScope {
                all: false,
                additional: vec!["a".into(), "b".into()]
            }
        );
        assert!(s.cert_configmap.is_none() && s.leader_election.is_none());
        assert_eq!(s.notices, vec![Notice::ClientRateLimitIgnored]);
        assert!(s.http.unseal.accept_deprecated_v1_data);
    }
}
