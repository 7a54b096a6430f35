//! Template functions: Go's builtins plus the sprig v3 generic functions people use in
//! SealedSecret templates. `env`, `expandenv` and `getHostByName` are deliberately absent
//! (upstream v0.30, #1703); so are functions reaching outside the template (random, time,
//! network) and those needing a regex engine.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::CallError;
use super::budget::Budget;
use super::exec::MAX_OUTPUT;
use super::value::{SLOT, Value, fmt_float_g};

type Res = Result<Value, CallError>;

const NAMES: &[&str] = &[
    // Go text/template builtins (and/or are evaluated lazily by the executor).
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    // sprig: strings
    "upper",
    "lower",
    "title",
    "untitle",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "trunc",
    "substr",
    "repeat",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "nospace",
    "abbrev",
    "plural",
    "split",
    "splitList",
    "splitn",
    "join",
    "sortAlpha",
    "toString",
    "toStrings",
    // sprig: encoding and digests
    "b64enc",
    "b64dec",
    "toJson",
    "mustToJson",
    "toPrettyJson",
    "mustToPrettyJson",
    "toRawJson",
    "mustToRawJson",
    "sha256sum",
    "sha1sum",
    "sha512sum",
    "adler32sum",
    // sprig: defaults and flow
    "default",
    "empty",
    "coalesce",
    "ternary",
    "fail",
    "required",
    // sprig: numbers
    "int",
    "int64",
    "float64",
    "atoi",
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "floor",
    "ceil",
    "round",
    // sprig: lists and dicts
    "list",
    "first",
    "last",
    "rest",
    "initial",
    "append",
    "push",
    "prepend",
    "concat",
    "uniq",
    "has",
    "without",
    "compact",
    "reverse",
    "until",
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "keys",
    "values",
    "pick",
    "omit",
];

/// Whether `name` is a known function (checked at parse time, like Go).
pub(crate) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// sprig's `strval`: strings as-is, everything else as `%v`; nil as "".
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::Str(s) => s.clone(),
        other => other.fmt_v(),
    }
}

fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_go_int(s.trim()).unwrap_or(0),
        _ => 0,
    }
}

fn parse_go_int(s: &str) -> Option<i64> {
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

fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn to_list(v: &Value) -> Result<Vec<Value>, CallError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        Value::Nil => Ok(Vec::new()),
        _ => Err(CallError::ArgumentType),
    }
}

fn want(args: &[Value], n: usize) -> Result<(), CallError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(CallError::Arity)
    }
}

/// Refuses a string result over 1 MiB (no Secret value can be larger) or over the budget.
fn cap_len(b: &mut Budget, len: usize) -> Result<(), CallError> {
    if len > MAX_OUTPUT {
        b.output_exceeded();
        return Err(CallError::Budget);
    }
    room(b, len)
}

/// Refuses, before allocating, a result of `len` bytes that the budget cannot pay for.
fn room(b: &mut Budget, len: usize) -> Result<(), CallError> {
    b.ensure(len).map_err(|_| CallError::Budget)
}

/// Charges per-element work of a list function.
fn work(b: &mut Budget, n: usize) -> Result<(), CallError> {
    b.steps(n as u64).map_err(|_| CallError::Budget)
}

/// Bytes of the strings a function will format from `a` (its `%v` text is at most about the
/// charged size of each value, which includes a slot per element).
fn text_size(a: &[Value]) -> usize {
    a.iter().map(Value::size).sum()
}

/// sprig's `empty`.
fn is_empty(v: &Value) -> bool {
    !v.truthy()
}

fn s(v: String) -> Res {
    Ok(Value::Str(v))
}

/// Calls a function with evaluated arguments (the piped value, if any, last). Results whose
/// size can outgrow the arguments are checked against `b` before they are built; the caller
/// charges every result after.
pub(crate) fn call(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let arg = |i: usize| a.get(i).cloned().unwrap_or(Value::Nil);
    let sarg = |i: usize| strval(&a.get(i).cloned().unwrap_or(Value::Nil));
    match name {
        "not" => {
            want(&a, 1)?;
            Ok(Value::Bool(!arg(0).truthy()))
        }
        "len" => {
            want(&a, 1)?;
            match &a[0] {
                Value::Str(x) => Ok(Value::Int(x.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                _ => Err(CallError::ArgumentType),
            }
        }
        "index" => {
            let Some(mut cur) = a.first().cloned() else {
                return Err(CallError::Arity);
            };
            for key in &a[1..] {
                cur = match (cur, key) {
                    (Value::Map(mut m), Value::Str(k)) => {
                        let all_strings = m.values().all(|v| matches!(v, Value::Str(_)));
                        match m.remove(k) {
                            Some(v) => v,
                            // Zero value of the element type: "" for the map[string]string dot.
                            None if all_strings => Value::Str(String::new()),
                            None => Value::Nil,
                        }
                    }
                    (Value::List(l), k) => {
                        let i = to_index(k)?;
                        l.get(i).cloned().ok_or(CallError::IndexOutOfRange)?
                    }
                    (Value::Str(x), k) => {
                        let i = to_index(k)?;
                        Value::Int(i64::from(
                            *x.as_bytes().get(i).ok_or(CallError::IndexOutOfRange)?,
                        ))
                    }
                    _ => return Err(CallError::ArgumentType),
                };
            }
            Ok(cur)
        }
        "slice" => {
            let Some(item) = a.first() else {
                return Err(CallError::Arity);
            };
            let idx: Result<Vec<usize>, CallError> = a[1..].iter().map(to_index).collect();
            let idx = idx?;
            match item {
                Value::Str(x) => {
                    let (i, j) = bounds(&idx, x.len())?;
                    x.get(i..j)
                        .map(|t| Value::Str(t.to_owned()))
                        .ok_or(CallError::IndexOutOfRange)
                }
                Value::List(l) => {
                    let (i, j) = bounds(&idx, l.len())?;
                    Ok(Value::List(l[i..j].to_vec()))
                }
                _ => Err(CallError::ArgumentType),
            }
        }
        "print" => {
            room(b, text_size(&a))?;
            s(sprint(&a))
        }
        "println" => {
            room(b, 2 * text_size(&a))?;
            let parts: Vec<String> = a.iter().map(Value::fmt_v).collect();
            s(parts.join(" ") + "\n")
        }
        "printf" => {
            let Some(Value::Str(f)) = a.first() else {
                return Err(CallError::ArgumentType);
            };
            let limit = b.remaining().min(MAX_OUTPUT);
            match super::printf::sprintf(f, &a[1..], limit) {
                Some(out) => s(out),
                None => {
                    cap_len(b, limit.saturating_add(1))?;
                    Err(CallError::Budget)
                }
            }
        }
        "eq" => {
            if a.len() < 2 {
                return Err(CallError::Arity);
            }
            work(b, a.len())?;
            for other in &a[1..] {
                if compare(&a[0], other)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(&a, 2)?;
            let ord = compare(&a[0], &a[1])?;
            if name != "ne" && !matches!(a[0], Value::Int(_) | Value::Float(_) | Value::Str(_)) {
                return Err(CallError::Incomparable);
            }
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => ord != Equal,
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            }))
        }
        "html" | "js" | "urlquery" => {
            // Escaping grows text at most sixfold (`"` -> `&#34;`, `<` -> `\u003C`).
            room(b, 7 * text_size(&a))?;
            let text = sprint(&a);
            s(match name {
                "html" => html_escape(&text),
                "js" => js_escape(&text),
                _ => query_escape(&text),
            })
        }

        "upper" | "lower" | "title" | "untitle" => {
            // Case mapping can turn one byte into three.
            let x = sarg(0);
            room(b, 3 * x.len())?;
            s(match name {
                "upper" => x.to_uppercase(),
                "lower" => x.to_lowercase(),
                "title" => title(&x),
                _ => untitle(&x),
            })
        }
        "trim" => s(sarg(0).trim().to_owned()),
        "trimAll" => {
            let cut: Vec<char> = sarg(0).chars().collect();
            s(sarg(1).trim_matches(cut.as_slice()).to_owned())
        }
        "trimPrefix" => {
            let p = sarg(0);
            let x = sarg(1);
            s(x.strip_prefix(p.as_str()).unwrap_or(&x).to_owned())
        }
        "trimSuffix" => {
            let p = sarg(0);
            let x = sarg(1);
            s(x.strip_suffix(p.as_str()).unwrap_or(&x).to_owned())
        }
        "trunc" => {
            want(&a, 2)?;
            let n = to_i64(&a[0]);
            let x = sarg(1);
            let len = x.len() as i64;
            let out = if n < 0 {
                if -n < len {
                    byte_slice(&x, (len + n) as usize, x.len())
                } else {
                    x
                }
            } else if len > n {
                byte_slice(&x, 0, n as usize)
            } else {
                x
            };
            s(out)
        }
        "substr" => {
            want(&a, 3)?;
            let (start, end) = (to_i64(&a[0]), to_i64(&a[1]));
            let x = sarg(2);
            let len = x.len() as i64;
            let out = if start < 0 {
                byte_slice(&x, 0, end.clamp(0, len) as usize)
            } else if end < 0 || end > len {
                byte_slice(&x, start.min(len) as usize, x.len())
            } else {
                byte_slice(&x, start.min(end) as usize, end as usize)
            };
            s(out)
        }
        "repeat" => {
            want(&a, 2)?;
            let n = to_i64(&a[0]).max(0) as usize;
            let x = sarg(1);
            let len = x.len().saturating_mul(n);
            cap_len(b, len)?;
            s(x.repeat(n))
        }
        "replace" => {
            want(&a, 3)?;
            let (old, new, x) = (sarg(0), sarg(1), sarg(2));
            // An empty `old` matches between every character.
            let hits = if old.is_empty() {
                x.chars().count() + 1
            } else {
                x.matches(old.as_str()).count()
            };
            let len = x.len().saturating_add(hits.saturating_mul(new.len()));
            cap_len(b, len)?;
            let out = x.replace(&old, &new);
            cap_len(b, out.len())?;
            s(out)
        }
        "contains" => Ok(Value::Bool(sarg(1).contains(&sarg(0)))),
        "hasPrefix" => Ok(Value::Bool(sarg(1).starts_with(&sarg(0)))),
        "hasSuffix" => Ok(Value::Bool(sarg(1).ends_with(&sarg(0)))),
        "quote" => {
            // `\x00` style escapes: four bytes per byte at most.
            room(b, 4 * text_size(&a))?;
            let parts: Vec<String> = a
                .iter()
                .filter(|v| **v != Value::Nil)
                .map(|v| go_quote(&strval(v)))
                .collect();
            s(parts.join(" "))
        }
        "squote" => {
            room(b, text_size(&a))?;
            let parts: Vec<String> = a
                .iter()
                .filter(|v| **v != Value::Nil)
                .map(|v| format!("'{}'", strval(v)))
                .collect();
            s(parts.join(" "))
        }
        "cat" => {
            room(b, text_size(&a))?;
            let parts: Vec<String> = a.iter().filter(|v| **v != Value::Nil).map(strval).collect();
            s(parts.join(" "))
        }
        "indent" | "nindent" => {
            want(&a, 2)?;
            let pad = " ".repeat(to_i64(&a[0]).clamp(0, 1024) as usize);
            let x = sarg(1);
            let lines = x.matches('\n').count() + 1;
            let len = x.len().saturating_add(lines.saturating_mul(pad.len() + 1));
            cap_len(b, len)?;
            let mut out = String::new();
            if name == "nindent" {
                out.push('\n');
            }
            out.push_str(&pad);
            out.push_str(&x.replace('\n', &format!("\n{pad}")));
            cap_len(b, out.len())?;
            s(out)
        }
        "nospace" => s(sarg(0).chars().filter(|c| !c.is_whitespace()).collect()),
        "abbrev" => {
            want(&a, 2)?;
            let w = to_i64(&a[0]);
            let x = sarg(1);
            if w < 4 || x.len() as i64 <= w {
                s(x)
            } else {
                s(byte_slice(&x, 0, (w - 3) as usize) + "...")
            }
        }
        "plural" => {
            want(&a, 3)?;
            s(if to_i64(&a[2]) == 1 { sarg(0) } else { sarg(1) })
        }
        "split" | "splitList" => {
            want(&a, 2)?;
            let (sep, x) = (sarg(0), sarg(1));
            let count = if sep.is_empty() {
                x.chars().count()
            } else {
                x.matches(sep.as_str()).count() + 1
            };
            // `split` makes a map: a key string and an entry per part.
            room(b, x.len() + count.saturating_mul(2 * SLOT + 32))?;
            work(b, count)?;
            let parts: Vec<Value> = if sep.is_empty() {
                x.chars().map(|c| Value::Str(c.to_string())).collect()
            } else {
                x.split(sep.as_str())
                    .map(|p| Value::Str(p.to_owned()))
                    .collect()
            };
            if name == "split" {
                Ok(Value::Map(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (format!("_{i}"), p))
                        .collect(),
                ))
            } else {
                Ok(Value::List(parts))
            }
        }
        "splitn" => {
            want(&a, 3)?;
            let (sep, n, x) = (sarg(0), to_i64(&a[1]), sarg(2));
            let count = if sep.is_empty() {
                x.chars().count()
            } else {
                x.matches(sep.as_str()).count() + 1
            };
            room(b, x.len() + count.saturating_mul(2 * SLOT + 32))?;
            work(b, count)?;
            let parts: Vec<&str> = if n < 0 {
                x.split(sep.as_str()).collect()
            } else {
                x.splitn(n as usize, sep.as_str()).collect()
            };
            Ok(Value::Map(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), Value::Str(p.to_owned())))
                    .collect(),
            ))
        }
        "join" => {
            want(&a, 2)?;
            let sep = sarg(0);
            let n = match &a[1] {
                Value::List(l) => l.len(),
                _ => 1,
            };
            let len = text_size(&a[1..]).saturating_add(n.saturating_mul(sep.len()));
            cap_len(b, len)?;
            work(b, n)?;
            let items: Vec<String> = match &a[1] {
                Value::List(l) => l.iter().filter(|v| **v != Value::Nil).map(strval).collect(),
                other => vec![strval(other)],
            };
            let out = items.join(&sep);
            cap_len(b, out.len())?;
            s(out)
        }
        "sortAlpha" => {
            let l = to_list(&arg(0))?;
            room(b, text_size(&l))?;
            work(b, l.len().saturating_mul(l.len().max(2).ilog2() as usize))?;
            let mut items: Vec<String> = l.iter().map(strval).collect();
            items.sort();
            Ok(Value::List(items.into_iter().map(Value::Str).collect()))
        }
        "toString" => s(match arg(0) {
            Value::Nil => "<nil>".to_owned(),
            v => strval(&v),
        }),
        "toStrings" => {
            let l = to_list(&arg(0))?;
            room(b, text_size(&l))?;
            work(b, l.len())?;
            Ok(Value::List(
                l.iter().map(|v| Value::Str(strval(v))).collect(),
            ))
        }

        "b64enc" => {
            let x = sarg(0);
            room(b, x.len() / 3 * 4 + 4)?;
            s(STANDARD.encode(x.as_bytes()))
        }
        "b64dec" => match STANDARD.decode(sarg(0).as_bytes()) {
            Ok(b) => s(String::from_utf8_lossy(&b).into_owned()),
            // sprig returns the error text as the result.
            Err(e) => s(e.to_string()),
        },
        "toJson" | "mustToJson" | "toRawJson" | "mustToRawJson" | "toPrettyJson"
        | "mustToPrettyJson" => {
            // A JSON tree of the value, then text escaping each byte to at most six.
            let v = arg(0);
            room(b, 8 * v.size())?;
            let json = v.to_json();
            s(match name {
                "toJson" | "mustToJson" => crate::output::go_json_compact(&json, true),
                "toRawJson" | "mustToRawJson" => crate::output::go_json_compact(&json, false),
                _ => crate::output::go_json_pretty(&json),
            })
        }
        "sha256sum" => s(hex(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            sarg(0).as_bytes(),
        )
        .as_ref())),
        "sha1sum" => s(hex(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            sarg(0).as_bytes(),
        )
        .as_ref())),
        "sha512sum" => s(hex(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA512,
            sarg(0).as_bytes(),
        )
        .as_ref())),
        "adler32sum" => s(adler32(sarg(0).as_bytes()).to_string()),

        "default" => {
            if a.is_empty() {
                return Err(CallError::Arity);
            }
            match a.get(1) {
                Some(g) if !is_empty(g) => Ok(g.clone()),
                _ => Ok(a[0].clone()),
            }
        }
        "empty" => Ok(Value::Bool(is_empty(&arg(0)))),
        "coalesce" => Ok(a
            .iter()
            .find(|v| !is_empty(v))
            .cloned()
            .unwrap_or(Value::Nil)),
        "ternary" => {
            want(&a, 3)?;
            Ok(if a[2].truthy() {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }
        // The message is the caller's text, typically built from values: never reported.
        "fail" => Err(CallError::Failed),
        // sprig: `required "message" value` fails on nil or "" (message withheld as for fail).
        "required" => {
            want(&a, 2)?;
            match &a[1] {
                Value::Nil => Err(CallError::Failed),
                Value::Str(x) if x.is_empty() => Err(CallError::Failed),
                v => Ok(v.clone()),
            }
        }

        "int" | "int64" => Ok(Value::Int(to_i64(&arg(0)))),
        "float64" => Ok(Value::Float(to_f64(&arg(0)))),
        "atoi" => Ok(Value::Int(sarg(0).parse::<i64>().unwrap_or(0))),
        "add" => Ok(Value::Int(
            a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_i64(v))),
        )),
        "add1" => Ok(Value::Int(to_i64(&arg(0)).wrapping_add(1))),
        "sub" => Ok(Value::Int(to_i64(&arg(0)).wrapping_sub(to_i64(&arg(1))))),
        "mul" => Ok(Value::Int(
            a.iter().fold(1i64, |acc, v| acc.wrapping_mul(to_i64(v))),
        )),
        "div" | "mod" => {
            want(&a, 2)?;
            let d = to_i64(&a[1]);
            if d == 0 {
                return Err(CallError::DivideByZero);
            }
            let n = to_i64(&a[0]);
            Ok(Value::Int(if name == "div" {
                n.wrapping_div(d)
            } else {
                n.wrapping_rem(d)
            }))
        }
        "max" | "min" => {
            let nums = a.iter().map(to_i64);
            let v = if name == "max" {
                nums.max()
            } else {
                nums.min()
            };
            Ok(Value::Int(v.unwrap_or(0)))
        }
        "floor" => Ok(Value::Float(to_f64(&arg(0)).floor())),
        "ceil" => Ok(Value::Float(to_f64(&arg(0)).ceil())),
        "round" => {
            let p = 10f64.powi(to_i64(&arg(1)).clamp(0, 15) as i32);
            Ok(Value::Float((to_f64(&arg(0)) * p).round() / p))
        }

        "list" => {
            work(b, a.len())?;
            Ok(Value::List(a))
        }
        "first" => Ok(to_list(&arg(0))?.first().cloned().unwrap_or(Value::Nil)),
        "last" => Ok(to_list(&arg(0))?.last().cloned().unwrap_or(Value::Nil)),
        "rest" => {
            let l = to_list(&arg(0))?;
            work(b, l.len())?;
            Ok(Value::List(l.into_iter().skip(1).collect()))
        }
        "initial" => {
            let mut l = to_list(&arg(0))?;
            work(b, l.len())?;
            l.pop();
            Ok(Value::List(l))
        }
        "append" | "push" => {
            let mut l = to_list(&arg(0))?;
            work(b, l.len())?;
            l.push(arg(1));
            Ok(Value::List(l))
        }
        "prepend" => {
            let mut l = to_list(&arg(0))?;
            work(b, l.len())?;
            l.insert(0, arg(1));
            Ok(Value::List(l))
        }
        "concat" => {
            let mut out = Vec::new();
            for v in &a {
                let l = to_list(v)?;
                work(b, l.len())?;
                out.extend(l);
            }
            Ok(Value::List(out))
        }
        "uniq" => {
            // sprig compares each element with all kept ones (quadratic); a set of canonical
            // keys gives the same result in linear time.
            let l = to_list(&arg(0))?;
            room(b, 2 * text_size(&l))?;
            work(b, l.len())?;
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<Value> = Vec::new();
            for v in l {
                let new = uniq_key(&v).is_none_or(|key| seen.insert(key));
                if new {
                    out.push(v);
                }
            }
            Ok(Value::List(out))
        }
        "has" => {
            let l = to_list(&arg(1))?;
            work(b, l.len())?;
            Ok(Value::Bool(l.contains(&arg(0))))
        }
        "without" => {
            let drop = &a[1.min(a.len())..];
            let l = to_list(&arg(0))?;
            work(b, l.len().saturating_mul(drop.len().max(1)))?;
            Ok(Value::List(
                l.into_iter().filter(|v| !drop.contains(v)).collect(),
            ))
        }
        "compact" => {
            let l = to_list(&arg(0))?;
            work(b, l.len())?;
            Ok(Value::List(
                l.into_iter().filter(|v| !is_empty(v)).collect(),
            ))
        }
        "reverse" => {
            let mut l = to_list(&arg(0))?;
            work(b, l.len())?;
            l.reverse();
            Ok(Value::List(l))
        }
        "until" => {
            let n = to_i64(&arg(0));
            if n.unsigned_abs() > 100_000 {
                return Err(CallError::Budget);
            }
            room(b, n.unsigned_abs() as usize * SLOT)?;
            work(b, n.unsigned_abs() as usize)?;
            let items: Vec<Value> = if n >= 0 {
                (0..n).map(Value::Int).collect()
            } else {
                (n + 1..=0).rev().map(Value::Int).collect()
            };
            Ok(Value::List(items))
        }
        "dict" => {
            work(b, a.len())?;
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                let k = strval(&pair[0]);
                m.insert(k, pair.get(1).cloned().unwrap_or(Value::Str(String::new())));
            }
            Ok(Value::Map(m))
        }
        "get" => match arg(0) {
            Value::Map(m) => Ok(m
                .get(&sarg(1))
                .cloned()
                .unwrap_or(Value::Str(String::new()))),
            _ => Err(CallError::ArgumentType),
        },
        "set" => match arg(0) {
            Value::Map(mut m) => {
                m.insert(sarg(1), arg(2));
                Ok(Value::Map(m))
            }
            _ => Err(CallError::ArgumentType),
        },
        "unset" => match arg(0) {
            Value::Map(mut m) => {
                m.remove(&sarg(1));
                Ok(Value::Map(m))
            }
            _ => Err(CallError::ArgumentType),
        },
        "hasKey" => match arg(0) {
            Value::Map(m) => Ok(Value::Bool(m.contains_key(&sarg(1)))),
            _ => Err(CallError::ArgumentType),
        },
        "keys" => {
            room(b, text_size(&a))?;
            let mut out = Vec::new();
            for v in &a {
                if let Value::Map(m) = v {
                    work(b, m.len())?;
                    out.extend(m.keys().map(|k| Value::Str(k.clone())));
                }
            }
            Ok(Value::List(out))
        }
        "values" => match arg(0) {
            Value::Map(m) => {
                work(b, m.len())?;
                Ok(Value::List(m.into_values().collect()))
            }
            _ => Err(CallError::ArgumentType),
        },
        "pick" | "omit" => match arg(0) {
            Value::Map(m) => {
                let names: Vec<String> = a[1..].iter().map(strval).collect();
                work(b, m.len().saturating_mul(names.len().max(1)))?;
                let keep = name == "pick";
                Ok(Value::Map(
                    m.into_iter()
                        .filter(|(k, _)| names.contains(k) == keep)
                        .collect(),
                ))
            }
            _ => Err(CallError::ArgumentType),
        },
        _ => Err(CallError::Undefined),
    }
}

fn to_index(v: &Value) -> Result<usize, CallError> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as usize),
        Value::Int(_) => Err(CallError::IndexOutOfRange),
        _ => Err(CallError::ArgumentType),
    }
}

fn bounds(idx: &[usize], len: usize) -> Result<(usize, usize), CallError> {
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
fn byte_slice(x: &str, mut i: usize, mut j: usize) -> String {
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

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, CallError> {
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
fn sprint(a: &[Value]) -> String {
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
fn uniq_key(v: &Value) -> Option<String> {
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

fn title(x: &str) -> String {
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

fn untitle(x: &str) -> String {
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

fn html_escape(x: &str) -> String {
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

fn js_escape(x: &str) -> String {
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

fn query_escape(x: &str) -> String {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
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
