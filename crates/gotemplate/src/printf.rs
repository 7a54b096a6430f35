//! Go's `fmt.Sprintf` for the verbs templates use: `%s %v %q %d %x %X %o %b %c %f %e %g %t %%`
//! with flags `-+ 0#`, width and precision (including `*`).

use crate::funcs::args::{float_v, go_quote, strval};
use crate::value::Value;

/// Formats like Go's `fmt.Sprintf`; `None` once the text would exceed `limit` bytes (each verb
/// can pad to 65,536 characters, so the result is not bounded by the inputs' size).
pub(crate) fn sprintf(format: &str, args: &[Value], limit: usize) -> Option<String> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() > limit {
            return None;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space, mut sharp) =
            (false, false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => sharp = true,
                _ => break,
            }
            chars.next();
        }
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = args.get(next).map(|v| match v {
                    Value::Int(n) => (*n).clamp(0, 1 << 16) as usize,
                    _ => 0,
                });
                next += 1;
                return v;
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some((n.unwrap_or(0) * 10 + d as usize).min(1 << 16));
                chars.next();
            }
            n
        };
        let width = number(&mut chars);
        let prec = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let numeric = matches!(arg, Value::Int(_) | Value::Float(_));
        let body = match (verb, arg) {
            ('v', Value::Float(f)) | ('g', Value::Float(f)) => match prec {
                Some(p) => format_g(*f, p),
                None => float_v(*f),
            },
            ('v', v) => v.fmt_v(),
            ('s', v) => {
                let x = match v {
                    Value::Str(x) => x.clone(),
                    other => other.fmt_v(),
                };
                match prec {
                    Some(p) => x.chars().take(p).collect(),
                    None => x,
                }
            }
            ('q', Value::Str(x)) => go_quote(x),
            ('q', Value::Int(n)) => {
                format!("'{}'", char::from_u32(*n as u32).unwrap_or('\u{fffd}'))
            }
            ('d', Value::Int(n)) => n.to_string(),
            ('x', Value::Int(n)) => signed(*n, |u| format!("{u:x}"), sharp.then_some("0x")),
            ('X', Value::Int(n)) => signed(*n, |u| format!("{u:X}"), sharp.then_some("0X")),
            ('o', Value::Int(n)) => signed(*n, |u| format!("{u:o}"), sharp.then_some("0")),
            ('b', Value::Int(n)) => signed(*n, |u| format!("{u:b}"), None),
            ('x', Value::Str(x)) => x.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(x)) => x.bytes().map(|b| format!("{b:02X}")).collect(),
            ('c', Value::Int(n)) => char::from_u32(*n as u32).unwrap_or('\u{fffd}').to_string(),
            ('f' | 'F', v @ (Value::Float(_) | Value::Int(_))) if matches!(v, Value::Float(_)) => {
                format!("{:.*}", prec.unwrap_or(6), as_f(v))
            }
            ('e', Value::Float(f)) => go_exp(*f, prec.unwrap_or(6)),
            ('t', Value::Bool(b)) => b.to_string(),
            (verb, v) => format!("%!{verb}({}={})", v.type_name(), strval(v)),
        };
        let body = if numeric && !body.starts_with('-') && !body.starts_with('%') {
            if plus {
                format!("+{body}")
            } else if space {
                format!(" {body}")
            } else {
                body
            }
        } else {
            body
        };
        out.push_str(&pad(body, width, minus, zero && numeric));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|v| format!("{}={}", v.type_name(), strval(v)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    (out.len() <= limit).then_some(out)
}

fn as_f(v: &Value) -> f64 {
    match v {
        Value::Float(f) => *f,
        Value::Int(n) => *n as f64,
        _ => 0.0,
    }
}

fn signed(n: i64, f: impl Fn(u64) -> String, prefix: Option<&str>) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}{}", prefix.unwrap_or(""), f(n.unsigned_abs()))
}

fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, d) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{d:0>2}")
        }
        None => s,
    }
}

fn format_g(f: f64, prec: usize) -> String {
    let p = prec.max(1);
    let exp = if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i64
    };
    if exp < -4 || exp >= p as i64 {
        let s = go_exp(f, p - 1);
        match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        }
    } else {
        let decimals = (p as i64 - 1 - exp).max(0) as usize;
        let s = format!("{f:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    }
}

fn pad(body: String, width: Option<usize>, left: bool, zero: bool) -> String {
    let Some(w) = width else { return body };
    let len = body.chars().count();
    if len >= w {
        return body;
    }
    let fill = w - len;
    if left {
        format!("{body}{}", " ".repeat(fill))
    } else if zero {
        let (sign, digits) = match body.strip_prefix(['-', '+']) {
            Some(d) => (&body[..1], d),
            None => ("", body.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}
