//! The key flags (§4.1): how keys are generated, named, ordered and renewed.

use std::time::{Duration, SystemTime};

use clap::{ArgAction, Args};

use super::registry::KeyOrderPriority;
use crate::flags::{KeyValues, Refused, duration, parse_bool};

/// Key sizes the generator can produce (`PrivateKey::generate`): anything else is refused at
/// start-up rather than failing at every generation attempt.
pub const SUPPORTED_KEY_SIZES: [usize; 4] = [2048, 3072, 4096, 8192];

/// `--key-renew-period`'s default, used when neither it nor `--rotate-period` is given.
pub const DEFAULT_RENEW_PERIOD: Duration = Duration::from_secs(720 * 3600);

/// How keys are generated, named, ordered and renewed.
#[derive(Clone, Debug, Args)]
pub struct KeyArgs {
    /// Prefix used to name keys (generateName of new key Secrets, and name of the legacy key Secret).
    #[arg(long = "key-prefix", default_value = "sealed-secrets-key", value_parser = key_prefix)]
    pub prefix: String,

    /// Size of encryption key (RSA modulus bits).
    #[arg(long = "key-size", default_value = "4096", value_parser = key_size)]
    pub bits: usize,

    /// Duration that certificate is valid for.
    #[arg(long = "key-ttl", default_value = "87600h0m0s", value_parser = duration)]
    pub ttl: Duration,

    /// Common name to be used as issuer/subject DN in generated certificate.
    #[arg(long = "my-cn", default_value = "")]
    pub common_name: String,

    /// New key generation period (automatic rotation disabled if 0) [default: 720h0m0s]
    // No clap default: an unset flag falls back to the deprecated --rotate-period first.
    #[arg(long, value_parser = duration)]
    pub key_renew_period: Option<Duration>,

    /// New key generation period (deprecated alias of --key-renew-period).
    #[arg(long, hide = true, value_parser = duration)]
    pub rotate_period: Option<Duration>,

    /// Ordering of keys based on NotBefore certificate attribute or secret creation timestamp
    /// (CertNotBefore or SecretCreationTimestamp).
    #[arg(long = "key-order-priority", default_value = "CertNotBefore", value_parser = KeyOrder::parse)]
    pub order: KeyOrder,

    /// Create a new key if latest one is older than this cutoff time. RFC1123Z format (`date -R`).
    #[arg(long = "key-cutoff-time", default_value = "", value_parser = cutoff)]
    pub cutoff: Cutoff,

    /// Comma-separated k=v annotations added to newly generated key Secrets.
    #[arg(long = "privatekey-annotations", default_value = "", value_parser = KeyValues::parse)]
    pub annotations: KeyValues,

    /// Comma-separated k=v labels added to newly generated key Secrets.
    #[arg(long = "privatekey-labels", default_value = "", value_parser = KeyValues::parse)]
    pub labels: KeyValues,

    /// Accepted for compatibility: key Secrets are always watched (added, removed and
    /// relabelled keys are picked up without restart).
    #[arg(long, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub watch_for_secrets: bool,

    /// Open multi-recipient values of version 1, which have no key commitment (a sealer can
    /// make one value open to different plaintexts in different clusters; crates/crypto/FORMAT.md
    /// §2.1). Off by default; turn on only for a migration window while such values are
    /// resealed (`kubeseal scan`/`audit` find them; metric multi_recipient_v1_values_total).
    #[arg(long = "accept-multi-recipient-v1", default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub accept_multi_v1: bool,
}

/// `--key-order-priority`. Upstream logs an unknown value as an error and uses
/// `CertNotBefore` (§4.1); so does [`KeyArgs::log_notices`], once the logger is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOrder {
    pub priority: KeyOrderPriority,
    /// The value given, when it named no ordering.
    pub unknown: Option<String>,
}

impl KeyOrder {
    pub fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
        let known = |priority| Self {
            priority,
            unknown: None,
        };
        Ok(match s {
            "CertNotBefore" => known(KeyOrderPriority::CertNotBefore),
            "SecretCreationTimestamp" => known(KeyOrderPriority::SecretCreationTimestamp),
            other => Self {
                priority: KeyOrderPriority::CertNotBefore,
                unknown: Some(other.to_owned()),
            },
        })
    }
}

/// `--key-cutoff-time`; `None` when empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cutoff(pub Option<SystemTime>);

/// RFC1123Z as `date -R` prints it (`Mon, 02 Jan 2006 15:04:05 -0700`); empty is none.
fn cutoff(s: &str) -> Result<Cutoff, Refused> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Cutoff(None));
    }
    let zdt = jiff::fmt::rfc2822::parse(s)
        .map_err(|e| Refused::value(s, format!(" (expected RFC1123Z, e.g. `date -R`): {e}")))?;
    Ok(Cutoff(Some(SystemTime::from(zdt.timestamp()))))
}

/// Upstream's rule: the prefix becomes a generateName.
fn key_prefix(p: &str) -> Result<String, Refused> {
    let ok = !p.is_empty()
        && p.len() <= 245
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(p.to_owned())
    } else {
        Err(Refused::value(
            p,
            ": use only lowercase letters, digits and '-', at most 245 characters",
        ))
    }
}

fn key_size(s: &str) -> Result<usize, Box<dyn std::error::Error + Send + Sync + 'static>> {
    let bits: usize = s.parse()?;
    if SUPPORTED_KEY_SIZES.contains(&bits) {
        return Ok(bits);
    }
    let supported: Vec<String> = SUPPORTED_KEY_SIZES
        .iter()
        .map(ToString::to_string)
        .collect();
    Err(Refused::because(format!(
        "{bits} bits cannot be generated (supported: {})",
        supported.join(", ")
    ))
    .into())
}

impl KeyArgs {
    /// `--key-renew-period`, else the deprecated `--rotate-period`, else 30 days; zero
    /// disables renewal.
    pub fn renew_period(&self) -> Duration {
        self.key_renew_period
            .or(self.rotate_period)
            .unwrap_or(DEFAULT_RENEW_PERIOD)
    }

    /// The key flags of the command line `args` (tests build key registries with it).
    #[cfg(test)]
    pub fn parse_for_test(args: &[&str]) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            keys: KeyArgs,
        }
        Cli::parse_from(std::iter::once("test").chain(args.iter().copied())).keys
    }

    /// What start-up logs about these flags.
    pub fn log_notices(&self) {
        if let Some(value) = &self.order.unknown {
            tracing::error!(%value, "invalid --key-order-priority; using CertNotBefore");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(args: &[&str]) -> KeyArgs {
        KeyArgs::parse_for_test(args)
    }

    #[test]
    fn defaults_match_upstream() {
        let k = keys(&[]);
        assert_eq!(k.prefix, "sealed-secrets-key");
        assert_eq!(k.bits, 4096);
        assert_eq!(k.ttl, Duration::from_secs(87600 * 3600));
        assert_eq!(k.renew_period(), DEFAULT_RENEW_PERIOD);
        assert_eq!(k.order.priority, KeyOrderPriority::CertNotBefore);
        assert_eq!(k.cutoff, Cutoff(None));
        assert!(
            !k.accept_multi_v1,
            "multi-recipient version 1 is refused by default"
        );
    }

    #[test]
    fn renew_period_falls_back_to_the_deprecated_flag() {
        let period = |args: &[&str]| keys(args).renew_period();
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
        assert!(keys(&["--accept-multi-recipient-v1"]).accept_multi_v1);
        assert!(!keys(&["--accept-multi-recipient-v1=false"]).accept_multi_v1);
    }

    #[test]
    fn cutoff_is_rfc1123z() {
        let k = keys(&["--key-cutoff-time", "Mon, 02 Jan 2006 15:04:05 -0700"]);
        let t = k.cutoff.0.unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1136239445);
        assert!(
            cutoff("yesterday")
                .unwrap_err()
                .message("--key-cutoff-time")
                .starts_with("invalid --key-cutoff-time \"yesterday\" (expected RFC1123Z")
        );
    }

    #[test]
    fn unknown_key_order_priority_falls_back_like_upstream() {
        let k = keys(&["--key-order-priority=SecretCreationTimestamp"]);
        assert_eq!(k.order.priority, KeyOrderPriority::SecretCreationTimestamp);
        let k = keys(&["--key-order-priority=nope"]);
        assert_eq!(k.order.priority, KeyOrderPriority::CertNotBefore);
        assert_eq!(k.order.unknown.as_deref(), Some("nope"));
    }
}
