//! The one duration parser of the workspace: Go's `time.ParseDuration` syntax, as upstream's
//! controller flags and kubectl's `--request-timeout` take it (docs/upstream.md §4.1, §6.1).
//!
//! A duration is a sequence of decimal numbers, each with a unit: `720h0m0s`, `1h30m`,
//! `1.5s`, `300ms`. Units: `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, and, where the caller
//! allows it, `d` (24 hours; the controller's flags take `30d`, which Go lacks). `0` alone is
//! zero. Negative durations are refused: no flag of either binary has a meaning for them.
//! Values too large for a [`Duration`] are an error, never a panic (input reaches this
//! straight from the command line).
//!
//! - [`parse_go`]: Go's syntax; [`parse_go_or_days`]: plus `d` (the controller's flags).
//! - [`parse_kubectl`]: kubectl's flag rule on top: a bare number is seconds, and empty or
//!   zero means no timeout (`kubeseal --request-timeout`, `keys rotate --timeout`).
//!
//! ```
//! use std::time::Duration;
//! use sealed_secrets_api::duration;
//!
//! assert_eq!(duration::parse_go("1h30m"), Ok(Duration::from_secs(5400)));
//! assert_eq!(duration::parse_go_or_days("30d"), Ok(Duration::from_secs(30 * 86400)));
//! assert_eq!(duration::parse_kubectl("5"), Ok(Some(Duration::from_secs(5))));
//! assert_eq!(duration::parse_kubectl("0s"), Ok(None));
//! ```

use std::time::Duration;

/// The text is not a duration; callers name the flag and what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a duration")]
pub struct InvalidDuration;

/// Go's `time.ParseDuration` syntax, non-negative (see the [module](self) documentation).
pub fn parse_go(s: &str) -> Result<Duration, InvalidDuration> {
    parse(s, false)
}

/// [`parse_go`] plus a `d` unit of 24 hours: `30d`, `1d12h`.
pub fn parse_go_or_days(s: &str) -> Result<Duration, InvalidDuration> {
    parse(s, true)
}

/// kubectl's duration flags: a bare number is seconds, else [`parse_go`]; empty, `0`, or
/// parts adding up to zero mean none (`Ok(None)`).
pub fn parse_kubectl(s: &str) -> Result<Option<Duration>, InvalidDuration> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let total = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_go(s)?,
    };
    Ok((!total.is_zero()).then_some(total))
}

fn parse(s: &str, days: bool) -> Result<Duration, InvalidDuration> {
    let t = s.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(InvalidDuration);
    }
    let mut rest = t;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(InvalidDuration)?;
        if num_end == 0 {
            return Err(InvalidDuration);
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| InvalidDuration)?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" if days => 86400.0,
            _ => return Err(InvalidDuration),
        };
        let part =
            Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| InvalidDuration)?;
        total = total.checked_add(part).ok_or(InvalidDuration)?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn go_syntax() {
        let ok = [
            ("720h0m0s", Duration::from_secs(720 * 3600)),
            ("87600h0m0s", Duration::from_secs(87600 * 3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            ("1.5h", Duration::from_secs(5400)),
            ("300ms", Duration::from_millis(300)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1h.5m", Duration::from_secs(3630)),
            ("+2m", Duration::from_secs(120)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_go(text), Ok(want), "{text}");
        }
        for bad in [
            "", "10", "h", "-1h", "1x", "1h-2m", "30d", "1..2s", "soon", ".",
        ] {
            assert_eq!(parse_go(bad), Err(InvalidDuration), "{bad}");
        }
    }

    #[test]
    fn days_only_where_allowed() {
        assert_eq!(parse_go_or_days("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(
            parse_go_or_days("1d12h"),
            Ok(Duration::from_secs(36 * 3600))
        );
        assert_eq!(parse_go("30d"), Err(InvalidDuration));
        assert_eq!(parse_kubectl("5d"), Err(InvalidDuration));
    }

    #[test]
    fn kubectl_flags() {
        assert_eq!(parse_kubectl("0"), Ok(None));
        assert_eq!(parse_kubectl(""), Ok(None));
        assert_eq!(parse_kubectl("0s"), Ok(None));
        assert_eq!(parse_kubectl("5"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(parse_kubectl("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_kubectl("500ms"), Ok(Some(Duration::from_millis(500))));
        for bad in ["soon", "5d", "m", "1..2s", "-1s", "-5"] {
            assert_eq!(parse_kubectl(bad), Err(InvalidDuration), "{bad}");
        }
    }

    /// `Duration::from_secs_f64` and `+=` panic on overflow; huge values must be errors.
    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let huge = format!("{}h", "9".repeat(400));
        assert_eq!(parse_go(&huge), Err(InvalidDuration));
        assert_eq!(parse_kubectl(&huge), Err(InvalidDuration));
        let many = "99999999999999999h".repeat(3);
        assert_eq!(parse_go(&many), Err(InvalidDuration));
    }

    proptest! {
        /// Whatever the text, the parsers answer (no panic).
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_go_or_days(&s);
            let _ = parse_kubectl(&s);
        }

        /// Go's `Duration.String` form (`1h2m3s`) and any mix of whole units add up.
        #[test]
        fn parts_add_up(d in 0u64..1000, h in 0u64..100_000, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
            let text = format!("{d}d{h}h{m}m{s}s{ms}ms");
            let want = Duration::from_secs(((d * 24 + h) * 60 + m) * 60 + s) + Duration::from_millis(ms);
            prop_assert_eq!(parse_go_or_days(&text), Ok(want));
            let go = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_go(&go), Ok(Duration::from_secs((h * 60 + m) * 60 + s)));
        }

        /// A bare number is seconds for kubectl, and no duration for Go (except `0`).
        #[test]
        fn bare_numbers(n in 1u64..u64::from(u32::MAX)) {
            prop_assert_eq!(parse_kubectl(&n.to_string()), Ok(Some(Duration::from_secs(n))));
            prop_assert_eq!(parse_go(&n.to_string()), Err(InvalidDuration));
        }
    }
}
