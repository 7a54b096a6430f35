//! kubectl's duration syntax, parsed once for every flag that takes one (`--request-timeout`,
//! `keys rotate --timeout`). A leaf module: the flag definitions (`cli`) and the cluster code
//! both use it without depending on each other.

use std::time::Duration;

/// `s` is not a duration; callers name the flag and what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotADuration;

/// Parses a duration like kubectl: a bare number is seconds, else a Go duration made of `h`,
/// `m`, `s`, `ms` parts (`1m30s`). `0`, or parts adding up to zero, mean none (`Ok(None)`).
/// A value too large for a `Duration` is refused, not a panic.
pub fn parse(s: &str) -> Result<Option<Duration>, NotADuration> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Some(Duration::from_secs(secs)));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(NotADuration)?;
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().map_err(|_| NotADuration)?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1000.0,
            _ => return Err(NotADuration),
        };
        let part = Duration::try_from_secs_f64(secs).map_err(|_| NotADuration)?;
        total = total.checked_add(part).ok_or(NotADuration)?;
        rest = next;
    }
    Ok((!total.is_zero()).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kubectl() {
        assert_eq!(parse("0"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("5"), Ok(Some(Duration::from_secs(5))));
        assert_eq!(parse("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse("1.5h"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(parse("0s"), Ok(None));
        for bad in ["soon", "5d", "m", "1..2s", "-1s"] {
            assert_eq!(parse(bad), Err(NotADuration), "{bad}");
        }
    }

    /// Input reaches this parser straight from the command line: huge values are an error,
    /// never a panic (`Duration::from_secs_f64` and `+=` would panic on overflow).
    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let huge = format!("{}h", "9".repeat(400));
        assert_eq!(parse(&huge), Err(NotADuration));
        let many = "99999999999999999h".repeat(3);
        assert_eq!(parse(&many), Err(NotADuration));
    }
}
