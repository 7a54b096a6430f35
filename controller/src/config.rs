//! Command-line configuration: every flag of upstream's controller (§4.1) with its default,
//! plus the project's own (docs/design.md). Each concern declares its own flags, typed by
//! clap value parsers ([`crate::flags`]), and [`Config`] flattens them:
//!
//! | group | flags of |
//! |---|---|
//! | [`KeyArgs`] (`keys/flags.rs`) | key generation, naming, ordering, renewal |
//! | [`ReconcileArgs`] (`reconcile/flags.rs`) | unsealing, Secret and status writes, retries |
//! | [`ClusterArgs`] (`cluster.rs`) | the client, the watched namespaces |
//! | [`ServerArgs`] (`server/flags.rs`) | the HTTP servers |
//! | [`LeaderArgs`] (`leader/flags.rs`) | leader election |
//! | [`crate::shard::flags::ShardArgs`] (`shard/flags.rs`) | active-active shards |
//! | [`CertMapArgs`] (`certmap.rs`) | the certificate ConfigMap |
//! | [`LogArgs`] (`telemetry.rs`) | logging |
//! | [`crate::keywrap::KeyWrapArgs`] (`keywrap/flags.rs`) | private keys wrapped by a KMS |
//! | [`crate::tokenkeys::TokenKeyArgs`] (`tokenkeys/flags.rs`) | keys held in a PKCS#11 token |
//!
//! Each flag also reads `SEALED_SECRETS_<FLAG>` (the flag wins), exactly like upstream's
//! pflag/env binding; [`Config::command`] gives every flag its variable
//! ([`crate::env::for_flag`]). Booleans take pflag's forms (`--flag`, `--flag=true`,
//! `--flag=false`, and Go's `strconv.ParseBool` spellings); durations take Go syntax
//! (`720h0m0s`, `1h30m`, `500ms`) and days (`30d`), which upstream lacks (§9.1).

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, FromArgMatches as _, Parser};

use crate::certmap::CertMapArgs;
use crate::cluster::ClusterArgs;
use crate::flags::Refused;
use crate::keys::KeyArgs;
use crate::leader::LeaderArgs;
use crate::reconcile::ReconcileArgs;
use crate::server::ServerArgs;
use crate::telemetry::LogArgs;

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
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    #[command(flatten)]
    pub shard: crate::shard::flags::ShardArgs,
    #[command(flatten)]
    pub cert_configmap: CertMapArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub key_wrap: crate::keywrap::KeyWrapArgs,
    #[command(flatten)]
    pub token_keys: crate::tokenkeys::TokenKeyArgs,

    /// Print the version and exit.
    #[arg(long, action = ArgAction::SetTrue)]
    pub version: bool,
}

/// A command line the controller cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a valid command line, `--help`: clap's own message and exit code.
    #[error(transparent)]
    Usage(clap::Error),
    /// A well-formed value the controller cannot use, `invalid --flag: …` (exit 2).
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// The clap command, with every flag's `SEALED_SECRETS_*` variable (but `--version`'s).
    pub fn command() -> clap::Command {
        // The value shows as the flag's name (`--key-ttl <KEY_TTL>`), not the field's.
        <Self as clap::CommandFactory>::command().mut_args(|arg| match arg.get_long() {
            Some(long) if long != "version" => {
                let (env, value) = (crate::env::for_flag(long), long.to_ascii_uppercase());
                arg.env(env).value_name(value.replace('-', "_"))
            }
            _ => arg,
        })
    }

    /// Parses and checks a command line (the program name first), with the environment.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let parsed = Self::command()
            .try_get_matches_from(args)
            .and_then(|mut m| Self::from_arg_matches_mut(&mut m))
            .map_err(|e| refusal(&e).map_or(ConfigError::Usage(e), ConfigError::Invalid))?;
        parsed
            .leader
            .check()
            .map_err(|(flag, refused)| ConfigError::Invalid(refused.message(flag)))?;
        parsed
            .shard
            .check(&parsed.leader)
            .map_err(|(flag, refused)| ConfigError::Invalid(refused.message(flag)))?;
        Ok(parsed)
    }

    /// Logs what the flags deserve a word about (upstream's fallbacks), once the logger is up.
    pub fn log_notices(&self) {
        self.keys.log_notices();
        self.cluster.log_notices();
    }
}

/// `invalid --flag: …` when a value parser [`Refused`] a value; `None` for clap's own errors.
fn refusal(e: &clap::Error) -> Option<String> {
    if e.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let refused = std::error::Error::source(e)?.downcast_ref::<Refused>()?;
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--flag <FLAG>` or `--flag[=<FLAG>]`.
    let flag = arg.split([' ', '[', '=']).next().unwrap_or(arg);
    Some(refused.message(flag))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use tracing::Level;

    use super::*;
    use crate::keys::KeyOrderPriority;
    use crate::telemetry::LogFormat;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::try_parse_from(
            std::iter::once("sealed-secrets-controller").chain(args.iter().copied()),
        )
    }

    fn config(args: &[&str]) -> Config {
        parse(args).unwrap()
    }

    fn error(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
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

    /// Every flag reads the variable upstream's binding gives it (`SEALED_SECRETS_<FLAG>`),
    /// and every variable the controller read before the flags moved into their concerns is
    /// still read (deployments set them).
    #[test]
    fn every_flag_reads_its_upstream_variable() {
        let cmd = Config::command();
        let mut got = Vec::new();
        for arg in cmd.get_arguments() {
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            match arg.get_long() {
                Some("version") | None => assert_eq!(env, None),
                Some(long) => {
                    let want = format!("SEALED_SECRETS_{}", long.to_uppercase().replace('-', "_"));
                    assert_eq!(env.as_deref(), Some(want.as_str()), "--{long}");
                    got.push(want);
                }
            }
        }
        for name in [
            "KEY_PREFIX",
            "KEY_SIZE",
            "KEY_TTL",
            "MY_CN",
            "KEY_RENEW_PERIOD",
            "ROTATE_PERIOD",
            "KEY_ORDER_PRIORITY",
            "KEY_CUTOFF_TIME",
            "ACCEPT_DEPRECATED_V1_DATA",
            "ALL_NAMESPACES",
            "ADDITIONAL_NAMESPACES",
            "LABEL_SELECTOR",
            "RATE_LIMIT",
            "RATE_LIMIT_BURST",
            "PRIVATEKEY_ANNOTATIONS",
            "PRIVATEKEY_LABELS",
            "OLD_GC_BEHAVIOR",
            "UPDATE_STATUS",
            "WATCH_FOR_SECRETS",
            "SKIP_RECREATE",
            "MAX_UNSEAL_RETRIES",
            "KUBECLIENT_QPS",
            "KUBECLIENT_BURST",
            "LOG_INFO_STDOUT",
            "LOG_LEVEL",
            "LOG_FORMAT",
            "LISTEN_ADDR",
            "LISTEN_METRICS_ADDR",
            "READ_TIMEOUT",
            "WRITE_TIMEOUT",
            "KUBECONFIG",
            "CERT_CONFIGMAP",
            "LEADER_ELECTION",
            "LEADER_ELECTION_LEASE_NAME",
            "LEADER_ELECTION_LEASE_DURATION",
            "CONCURRENCY",
            "READ_HEADER_TIMEOUT",
            "MAX_CONNECTIONS",
            "MAX_CONNECTIONS_PER_CLIENT",
            "WRITE_STALL_TIMEOUT",
            "READ_BODY_TIMEOUT",
            "TRUSTED_PROXIES",
            "ROTATE_RATE_LIMIT",
            "ROTATE_RATE_LIMIT_BURST",
            "HTTP_ACCEPT_DEPRECATED_V1_DATA",
            "ACCEPT_MULTI_RECIPIENT_V1",
            "ALLOW_SERVICE_ACCOUNT_TOKEN_SECRETS",
            "MAX_SEALED_SECRET_SIZE",
        ] {
            let name = format!("SEALED_SECRETS_{name}");
            assert!(got.contains(&name), "{name} is no longer read");
        }
    }

    #[test]
    fn defaults_match_upstream() {
        let c = config(&[]);
        assert_eq!(c.keys.prefix, "sealed-secrets-key");
        assert_eq!(c.keys.bits, 4096);
        assert_eq!(c.keys.ttl, Duration::from_secs(87600 * 3600));
        assert_eq!(c.keys.key_renew_period, None);
        assert_eq!(c.keys.order.priority, KeyOrderPriority::CertNotBefore);
        assert!(c.reconcile.accept_deprecated_v1_data && c.cluster.all_namespaces);
        assert!(c.reconcile.update_status);
        assert!(!c.reconcile.old_gc_behavior && !c.reconcile.skip_recreate);
        assert!(!c.keys.watch_for_secrets);
        assert_eq!(c.reconcile.concurrency, 8);
        assert_eq!(
            (
                c.server.rate_limit,
                c.server.rate_limit_burst,
                c.reconcile.max_unseal_retries
            ),
            (2, 2, 5)
        );
        assert_eq!(c.server.listen_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            c.server.listen_metrics_addr,
            "0.0.0.0:8081".parse().unwrap()
        );
        assert_eq!(c.server.read_timeout, Duration::from_secs(120));
        assert_eq!(c.server.timeout(), Duration::from_secs(240));
        assert!(!c.server.unseal_options(true).accept_deprecated_v1_data);
        assert_eq!(
            (
                c.server.limits().max_connections_per_client,
                c.server.write_stall_timeout,
                c.server.body_read_timeout
            ),
            (64, Duration::from_secs(10), Duration::from_secs(10))
        );
        assert!(c.leader.enabled);
        assert_eq!(c.leader.lease_duration, Duration::from_secs(15));
        assert_eq!(c.cert_configmap.configmap(), Some("sealed-secrets-cert"));
        assert_eq!(c.log.level, Level::INFO);
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.cluster.additional_namespaces.0.is_empty());
    }

    #[test]
    fn deploy_manifest_args_parse() {
        let c = config(&[
            "--update-status",
            "--key-prefix=sealed-secrets-key",
            "--listen-addr=:8080",
            "--listen-metrics-addr=:8081",
            "--leader-election=true",
            "--leader-election-lease-name=sealed-secrets-controller",
            "--cert-configmap=sealed-secrets-cert",
        ]);
        assert!(c.reconcile.update_status && c.leader.enabled);
        let c = config(&[
            "--update-status=false",
            "--leader-election=F",
            "--skip-recreate",
        ]);
        assert!(!c.reconcile.update_status && !c.leader.enabled && c.reconcile.skip_recreate);
    }

    #[test]
    fn repeated_flags_last_wins_like_pflag() {
        let c = config(&[
            "--leader-election=false",
            "--leader-election=true",
            "--key-size=2048",
            "--key-size=3072",
        ]);
        assert!(c.leader.enabled);
        assert_eq!(c.keys.bits, 3072);
    }

    #[test]
    fn bool_flag_without_value_does_not_eat_next_argument() {
        let c = config(&["--old-gc-behavior", "--key-size", "2048"]);
        assert!(c.reconcile.old_gc_behavior);
        assert_eq!(c.keys.bits, 2048);
    }

    #[test]
    fn key_values_prefix_and_sizes_are_checked() {
        let c = config(&["--privatekey-labels", "a=b, c=d=e"]);
        assert_eq!(
            c.keys.labels.0,
            vec![("a".into(), "b".into()), ("c".into(), "d=e".into())]
        );
        assert_eq!(
            error(&["--privatekey-labels", "oops"]),
            "invalid --privatekey-labels: invalid item \"oops\": expected key=value"
        );
        assert!(
            error(&["--privatekey-annotations", "a=b,=c"])
                .starts_with("invalid --privatekey-annotations")
        );
        assert_eq!(
            error(&["--key-prefix", "Bad_Prefix"]),
            "invalid --key-prefix \"Bad_Prefix\": use only lowercase letters, digits and '-', at most 245 characters"
        );
        for ok in ["2048", "3072", "4096", "8192"] {
            config(&["--key-size", ok]);
        }
        assert_eq!(
            error(&["--key-size", "1000"]),
            "invalid --key-size: 1000 bits cannot be generated (supported: 2048, 3072, 4096, 8192)"
        );
        let c = config(&["--key-cutoff-time", "Mon, 02 Jan 2006 15:04:05 -0700"]);
        let secs = c
            .keys
            .cutoff
            .0
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1136239445);
        assert!(
            error(&["--key-cutoff-time", "yesterday"])
                .starts_with("invalid --key-cutoff-time \"yesterday\" (expected RFC1123Z")
        );
    }

    /// Values that used to be accepted and silently replaced (or left to misbehave) and are
    /// start-up errors naming the flag.
    #[test]
    fn unusable_values_are_errors_naming_the_flag() {
        assert_eq!(
            error(&["--concurrency=0"]),
            "invalid --concurrency: must be at least 1"
        );
        assert_eq!(
            error(&["--log-level=LOUD"]),
            "invalid --log-level \"LOUD\" (use DEBUG, INFO, WARN or ERROR)"
        );
        assert_eq!(
            error(&["--leader-election-lease-duration=0s"]),
            "invalid --leader-election-lease-duration: must be more than 0"
        );
        config(&[
            "--leader-election=false",
            "--leader-election-lease-duration=0s",
        ]);
        for flag in [
            "rate-limit",
            "rotate-rate-limit",
            "max-connections",
            "max-connections-per-client",
        ] {
            assert_eq!(
                error(&[&format!("--{flag}=0")]),
                format!("invalid --{flag}: must be at least 1")
            );
        }
        for flag in [
            "read-header-timeout",
            "write-stall-timeout",
            "read-body-timeout",
        ] {
            assert_eq!(
                error(&[&format!("--{flag}=0s")]),
                format!("invalid --{flag}: must be more than 0")
            );
        }
        // Text that is no value of the type stays clap's usage error.
        assert!(matches!(
            parse(&["--key-ttl=bogus"]),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse(&["--concurrency=x"]),
            Err(ConfigError::Usage(_))
        ));
        assert!(error(&["--read-timeout=-1s"]).contains("invalid duration \"-1s\""));
    }

    #[test]
    fn scopes_and_optional_parts() {
        let c = config(&[
            "--all-namespaces=false",
            "--additional-namespaces= a, ,b",
            "--cert-configmap=",
            "--leader-election=false",
            "--kubeclient-qps=20",
            "--http-accept-deprecated-v1-data",
            "--log-format=JSON",
        ]);
        assert!(!c.cluster.all_namespaces);
        assert_eq!(c.cluster.additional_namespaces.0, vec!["a", "b"]);
        assert!(c.cert_configmap.configmap().is_none());
        assert!(c.leader.election("ns", "me").is_none());
        assert!(c.server.unseal_options(true).accept_deprecated_v1_data);
        assert!(!c.server.unseal_options(false).accept_deprecated_v1_data);
        assert_eq!(c.log.format, LogFormat::Json);
    }
}
