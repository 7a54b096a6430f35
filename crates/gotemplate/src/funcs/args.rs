//! What every template function is built from: argument conversion as Go and sprig do it,
//! the budget checks, and the string helpers shared by several functions. A leaf below the
//! function table (`mod.rs`), its groups of functions and `printf`, so that none of them
//! imports the module that imports it.

use crate::CallError;
use crate::budget::Budget;
use crate::budget::MAX_OUTPUT;
use crate::value::{Value, fmt_float_g};

pub(crate) type Res = Result<Value, CallError>;

/// sprig's `strval`: strings as-is, everything else as `%v`; nil as "".
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::Str(s) => s.clone(),
        other => other.fmt_v(),
    }
}

pub(crate) fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_go_int(s.trim()).unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, d) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = d.strip_prefix("0x").or(d.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = d.strip_prefix("0b").or(d.strip_prefix("0B")) {
        i64::from_str_radix(b, 2).ok()?
    } else if d.len() > 1 && d.starts_with('0') {
        i64::from_str_radix(d.trim_start_matches(['0', 'o', 'O']), 8).ok()?
    } else {
        d.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

pub(crate) fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

pub(crate) fn to_list(v: &Value) -> Result<Vec<Value>, CallError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        Value::Nil => Ok(Vec::new()),
        _ => Err(CallError::ArgumentType),
    }
}

pub(crate) fn want(args: &[Value], n: usize) -> Result<(), CallError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(CallError::Arity)
    }
}

/// Refuses a string result over 1 MiB (no Secret value can be larger) or over the budget.
pub(crate) fn cap_len(b: &mut Budget, len: usize) -> Result<(), CallError> {
    if len > MAX_OUTPUT {
        b.output_exceeded();
        return Err(CallError::Budget);
    }
    room(b, len)
}

/// Refuses, before allocating, a result of `len` bytes that the budget cannot pay for.
pub(crate) fn room(b: &mut Budget, len: usize) -> Result<(), CallError> {
    b.ensure(len).map_err(|_| CallError::Budget)
}

/// Charges per-element work of a list function.
pub(crate) fn work(b: &mut Budget, n: usize) -> Result<(), CallError> {
    b.steps(n as u64).map_err(|_| CallError::Budget)
}

/// Bytes of the strings a function will format from `a` (its `%v` text is at most about the
/// charged size of each value, which includes a slot per element).
pub(crate) fn text_size(a: &[Value]) -> usize {
    a.iter().map(Value::size).sum()
}

/// sprig's `empty`.
pub(crate) fn is_empty(v: &Value) -> bool {
    !v.truthy()
}

pub(crate) fn s(v: String) -> Res {
    Ok(Value::Str(v))
}

pub(crate) fn arg(a: &[Value], i: usize) -> Value {
    a.get(i).cloned().unwrap_or(Value::Nil)
}

pub(crate) fn sarg(a: &[Value], i: usize) -> String {
    a.get(i).map(strval).unwrap_or_default()
}

pub(crate) fn to_index(v: &Value) -> Result<usize, CallError> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as usize),
        Value::Int(_) => Err(CallError::IndexOutOfRange),
        _ => Err(CallError::ArgumentType),
    }
}

pub(crate) fn bounds(idx: &[usize], len: usize) -> Result<(usize, usize), CallError> {
    let (i, j) = match idx {
        [] => (0, len),
        [i] => (*i, len),
        [i, j] => (*i, *j),
        _ => return Err(CallError::Arity),
    };
    if i > j || j > len {
        return Err(CallError::IndexOutOfRange);
    }
    Ok((i, j))
}

/// Byte-index slicing like Go, widened to character boundaries so it never panics.
pub(crate) fn byte_slice(x: &str, mut i: usize, mut j: usize) -> String {
    j = j.min(x.len());
    i = i.min(j);
    while !x.is_char_boundary(i) {
        i -= 1;
    }
    while !x.is_char_boundary(j) {
        j += 1;
    }
    x[i..j].to_owned()
}

pub(crate) fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, CallError> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).ok_or(CallError::Incomparable),
        (Value::Int(x), Value::Float(y)) => {
            (*x as f64).partial_cmp(y).ok_or(CallError::Incomparable)
        }
        (Value::Float(x), Value::Int(y)) => {
            x.partial_cmp(&(*y as f64)).ok_or(CallError::Incomparable)
        }
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Nil, Value::Nil) => Ok(Ordering::Equal),
        (Value::Nil, _) | (_, Value::Nil) => Ok(Ordering::Less),
        _ => Err(CallError::Incomparable),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub(crate) fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        let is_str = matches!(v, Value::Str(_));
        if i > 0 && !is_str && !matches!(a[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&v.fmt_v());
    }
    out
}

/// A canonical text for `uniq`, equal exactly when the values are equal (`==` of Go's
/// `reflect.DeepEqual` on these types); `None` for values holding NaN, which equal nothing.
pub(crate) fn uniq_key(v: &Value) -> Option<String> {
    fn put(v: &Value, out: &mut String) -> Option<()> {
        use std::fmt::Write as _;
        match v {
            Value::Nil => out.push('n'),
            Value::Bool(x) => out.push(if *x { 'T' } else { 'F' }),
            Value::Int(n) => {
                let _ = write!(out, "i{n};");
            }
            Value::Float(f) if f.is_nan() => return None,
            // -0.0 == 0.0
            Value::Float(f) => {
                let _ = write!(out, "f{};", (f + 0.0).to_bits());
            }
            Value::Str(x) => {
                let _ = write!(out, "s{}:{x}", x.len());
            }
            Value::List(l) => {
                let _ = write!(out, "l{}[", l.len());
                for x in l {
                    put(x, out)?;
                }
            }
            Value::Map(m) => {
                let _ = write!(out, "m{}{{", m.len());
                for (k, x) in m {
                    let _ = write!(out, "{}:{k}", k.len());
                    put(x, out)?;
                }
            }
        }
        Some(())
    }
    let mut out = String::new();
    put(v, &mut out)?;
    Some(out)
}

pub(crate) fn title(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    let mut prev_letter = false;
    for c in x.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

pub(crate) fn untitle(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    let mut at_start = true;
    for c in x.chars() {
        if at_start && !c.is_whitespace() {
            out.extend(c.to_lowercase());
            at_start = false;
        } else {
            out.push(c);
        }
        if c.is_whitespace() {
            at_start = true;
        }
    }
    out
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(x: &str) -> String {
    let mut out = String::with_capacity(x.len() + 2);
    out.push('"');
    for c in x.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\u{fffd}' => out.push_str("\\ufffd"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn html_escape(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for c in x.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn js_escape(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for c in x.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn query_escape(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for b in x.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// `%v`-style float used by printf.
pub(crate) fn float_v(f: f64) -> String {
    fmt_float_g(f)
}
