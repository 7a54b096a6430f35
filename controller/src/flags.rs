//! Value parsers shared by the flag groups of every concern (`keys::flags`, `reconcile::flags`,
//! `server::flags`, `leader::flags`, `telemetry`, `cluster`, `certmap`): clap runs them on the
//! command line, the `SEALED_SECRETS_*` variables and the defaults alike, so every value is
//! typed once, at start-up (parse, don't validate).
//!
//! Two kinds of refusal, both exit 2 before anything talks to the API server:
//! - text that is not a value of the type (a duration, a boolean, a number): clap's usage
//!   error, `invalid value 'x' for '--flag <FLAG>': …`;
//! - a value of the type that the controller cannot use (`--concurrency=0`, a key size it
//!   cannot generate): a [`Refused`], printed as `invalid --flag: …`
//!   ([`crate::config::ConfigError`]).

use std::time::Duration;

/// A well-formed value the controller cannot use. It holds what follows the flag's name in
/// the message (`invalid --concurrency: must be at least 1`): the flag's name is added by
/// [`crate::config`], from clap's error, so one parser serves several flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(String);

impl Refused {
    /// `invalid --flag: {why}`.
    pub fn because(why: impl std::fmt::Display) -> Self {
        Self(format!(": {why}"))
    }

    /// `invalid --flag "{value}"{rest}`; `rest` brings its own separator (`: …` or ` (…)`).
    pub fn value(value: &str, rest: impl std::fmt::Display) -> Self {
        Self(format!(" {value:?}{rest}"))
    }

    /// The message for `flag` (`--concurrency`).
    pub fn message(&self, flag: &str) -> String {
        format!("invalid {flag}{}", self.0)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.trim_start_matches(": ").trim_start())
    }
}

impl std::error::Error for Refused {}

/// Go's `strconv.ParseBool`, which pflag uses for `--flag=<value>`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
}

/// A duration in Go syntax or days (`720h0m0s`, `1h30m`, `500ms`, `30d`;
/// [`sealed_secrets_api::duration`]).
pub fn duration(s: &str) -> Result<Duration, String> {
    sealed_secrets_api::duration::parse_go_or_days(s).map_err(|_| {
        format!("invalid duration {s:?} (use Go syntax such as 720h0m0s, 30m, or days: 30d)")
    })
}

/// A [`duration`] above zero (timeouts: zero would close every connection at once).
pub fn positive_duration(s: &str) -> Result<Duration, BoxError> {
    match duration(s)? {
        d if d.is_zero() => Err(Refused::because("must be more than 0").into()),
        d => Ok(d),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A count of at least one (`--concurrency`, the rate limits, the connection caps), of type
/// `T`. Text that is no `T` gets the message clap's own parser of `T` gives: `u16` and
/// `u32` are checked against their range (`70000 is not in 0..=65535`), `usize` is parsed
/// with `FromStr`.
pub fn at_least_one<T: Count>(s: &str) -> Result<T, BoxError> {
    match T::parse(s)? {
        v if v == T::default() => Err(Refused::because("must be at least 1").into()),
        v => Ok(v),
    }
}

/// An unsigned count type that [`at_least_one`] parses as clap's default parser does.
pub trait Count: Sized + PartialEq + Default {
    fn parse(s: &str) -> Result<Self, BoxError>;
}

/// clap's `RangedI64ValueParser`: an `i64`, then the range of the type.
fn ranged(s: &str, max: i64) -> Result<i64, BoxError> {
    let v: i64 = s.parse()?;
    if (0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in 0..={max}").into())
    }
}

impl Count for u16 {
    fn parse(s: &str) -> Result<Self, BoxError> {
        Ok(Self::try_from(ranged(s, Self::MAX.into())?)?)
    }
}

impl Count for u32 {
    fn parse(s: &str) -> Result<Self, BoxError> {
        Ok(Self::try_from(ranged(s, Self::MAX.into())?)?)
    }
}

impl Count for usize {
    fn parse(s: &str) -> Result<Self, BoxError> {
        Ok(s.parse()?)
    }
}

/// `k=v,k2=v2` (`--privatekey-labels`, `--privatekey-annotations`), in flag order. Upstream
/// panics on an item without `=` (#1386); here it is a configuration error at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValues(pub Vec<(String, String)>);

impl KeyValues {
    pub fn parse(s: &str) -> Result<Self, Refused> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| {
                        Refused::because(format!("invalid item {item:?}: expected key=value"))
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// A comma-separated list of names; blanks are dropped (`--additional-namespaces= a, ,b`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

impl Names {
    pub fn parse(s: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_syntax_and_days() {
        assert_eq!(duration("720h0m0s"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            duration("-1h").unwrap_err(),
            "invalid duration \"-1h\" (use Go syntax such as 720h0m0s, 30m, or days: 30d)"
        );
        assert!(positive_duration("1s").is_ok());
        let zero = positive_duration("0s").unwrap_err();
        assert_eq!(
            zero.downcast_ref::<Refused>().unwrap().message("--x"),
            "invalid --x: must be more than 0"
        );
    }

    #[test]
    fn counts_and_booleans() {
        assert_eq!(at_least_one::<u16>("3").unwrap(), 3);
        assert!(at_least_one::<u16>("0").unwrap_err().is::<Refused>());
        assert!(!at_least_one::<u16>("x").unwrap_err().is::<Refused>());
        assert_eq!(
            at_least_one::<u16>("70000").unwrap_err().to_string(),
            "70000 is not in 0..=65535"
        );
        assert_eq!(
            at_least_one::<u32>("-1").unwrap_err().to_string(),
            "-1 is not in 0..=4294967295"
        );
        assert_eq!(
            at_least_one::<usize>("-5").unwrap_err().to_string(),
            "invalid digit found in string"
        );
        assert_eq!(parse_bool("T"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn key_values_and_names() {
        assert_eq!(
            KeyValues::parse("a=b, c=d=e").unwrap().0,
            vec![("a".into(), "b".into()), ("c".into(), "d=e".into())]
        );
        assert_eq!(
            KeyValues::parse("novalue").unwrap_err().message("--l"),
            "invalid --l: invalid item \"novalue\": expected key=value"
        );
        assert!(KeyValues::parse("=v").is_err());
        assert_eq!(Names::parse(" a, ,b").unwrap().0, vec!["a", "b"]);
    }
}
