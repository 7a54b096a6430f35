//! Template functions: Go's builtins plus the sprig v3 generic functions people use in
//! SealedSecret templates. `env`, `expandenv` and `getHostByName` are deliberately absent
//! (upstream v0.30, #1703); so are functions reaching outside the template (random, time,
//! network) and those needing a regex engine.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::CallError;
use crate::budget::Budget;
use crate::exec::MAX_OUTPUT;
use crate::value::{SLOT, Value, fmt_float_g};

type Res = Result<Value, CallError>;

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

/// One template function: its name as called (several names can share a function, which
/// may tell them apart), its arguments (the piped value, if any, last) and the render budget.
/// Results whose size can outgrow the arguments are checked against the budget before they
/// are built; the evaluator charges every result after.
pub(crate) type Func = fn(&str, Vec<Value>, &mut Budget) -> Res;

/// Every function, by name: Go's builtins (`and`/`or` are evaluated lazily by the evaluator
/// and are not here) and the sprig functions.
static TABLE: &[(&str, Func)] = &[
    ("not", f_not),
    ("len", f_len),
    ("index", f_index),
    ("slice", f_slice),
    ("print", f_print),
    ("println", f_println),
    ("printf", f_printf),
    ("eq", f_eq),
    ("ne", f_ordered),
    ("lt", f_ordered),
    ("le", f_ordered),
    ("gt", f_ordered),
    ("ge", f_ordered),
    ("html", f_escape),
    ("js", f_escape),
    ("urlquery", f_escape),
    ("upper", f_case),
    ("lower", f_case),
    ("title", f_case),
    ("untitle", f_case),
    ("trim", f_trim),
    ("trimAll", f_trim_all),
    ("trimPrefix", f_trim_prefix),
    ("trimSuffix", f_trim_suffix),
    ("trunc", f_trunc),
    ("substr", f_substr),
    ("repeat", f_repeat),
    ("replace", f_replace),
    ("contains", f_contains),
    ("hasPrefix", f_has_prefix),
    ("hasSuffix", f_has_suffix),
    ("quote", f_quote),
    ("squote", f_squote),
    ("cat", f_cat),
    ("indent", f_indent),
    ("nindent", f_indent),
    ("nospace", f_nospace),
    ("abbrev", f_abbrev),
    ("plural", f_plural),
    ("split", f_split),
    ("splitList", f_split),
    ("splitn", f_splitn),
    ("join", f_join),
    ("sortAlpha", f_sort_alpha),
    ("toString", f_to_string),
    ("toStrings", f_to_strings),
    ("b64enc", f_b64enc),
    ("b64dec", f_b64dec),
    ("toJson", f_to_json),
    ("mustToJson", f_to_json),
    ("toRawJson", f_to_json),
    ("mustToRawJson", f_to_json),
    ("toPrettyJson", f_to_json),
    ("mustToPrettyJson", f_to_json),
    ("sha256sum", f_sha256sum),
    ("sha1sum", f_sha1sum),
    ("sha512sum", f_sha512sum),
    ("adler32sum", f_adler32sum),
    ("default", f_default),
    ("empty", f_empty),
    ("coalesce", f_coalesce),
    ("ternary", f_ternary),
    ("fail", f_fail),
    ("required", f_required),
    ("int", f_int),
    ("int64", f_int),
    ("float64", f_float64),
    ("atoi", f_atoi),
    ("add", f_add),
    ("add1", f_add1),
    ("sub", f_sub),
    ("mul", f_mul),
    ("div", f_div_mod),
    ("mod", f_div_mod),
    ("max", f_max_min),
    ("min", f_max_min),
    ("floor", f_floor),
    ("ceil", f_ceil),
    ("round", f_round),
    ("list", f_list),
    ("first", f_first),
    ("last", f_last),
    ("rest", f_rest),
    ("initial", f_initial),
    ("append", f_append),
    ("push", f_append),
    ("prepend", f_prepend),
    ("concat", f_concat),
    ("uniq", f_uniq),
    ("has", f_has),
    ("without", f_without),
    ("compact", f_compact),
    ("reverse", f_reverse),
    ("until", f_until),
    ("dict", f_dict),
    ("get", f_get),
    ("set", f_set),
    ("unset", f_unset),
    ("hasKey", f_has_key),
    ("keys", f_keys),
    ("values", f_values),
    ("pick", f_pick_omit),
    ("omit", f_pick_omit),
];

/// The index in the table of function `name`, resolved once at parse time.
pub(crate) fn lookup(name: &str) -> Option<usize> {
    TABLE.iter().position(|(n, _)| *n == name)
}

/// Calls the function at `index` (from [`lookup`]).
pub(crate) fn call(index: usize, a: Vec<Value>, b: &mut Budget) -> Res {
    match TABLE.get(index) {
        Some((name, f)) => f(name, a, b),
        None => Err(CallError::Undefined),
    }
}

fn arg(a: &[Value], i: usize) -> Value {
    a.get(i).cloned().unwrap_or(Value::Nil)
}

fn sarg(a: &[Value], i: usize) -> String {
    a.get(i).map(strval).unwrap_or_default()
}

fn f_not(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 1)?;
    Ok(Value::Bool(!arg(&a, 0).truthy()))
}

fn f_len(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 1)?;
    match &a[0] {
        Value::Str(x) => Ok(Value::Int(x.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.len() as i64)),
        Value::Map(m) => Ok(Value::Int(m.len() as i64)),
        _ => Err(CallError::ArgumentType),
    }
}

fn f_index(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

fn f_slice(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

fn f_print(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, text_size(&a))?;
    s(sprint(&a))
}

fn f_println(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, 2 * text_size(&a))?;
    let parts: Vec<String> = a.iter().map(Value::fmt_v).collect();
    s(parts.join(" ") + "\n")
}

fn f_printf(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let Some(Value::Str(f)) = a.first() else {
        return Err(CallError::ArgumentType);
    };
    let limit = b.remaining().min(MAX_OUTPUT);
    match crate::printf::sprintf(f, &a[1..], limit) {
        Some(out) => s(out),
        None => {
            cap_len(b, limit.saturating_add(1))?;
            Err(CallError::Budget)
        }
    }
}

fn f_eq(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

fn f_ordered(name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

fn f_escape(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // Escaping grows text at most sixfold (`"` -> `&#34;`, `<` -> `\u003C`).
    room(b, 7 * text_size(&a))?;
    let text = sprint(&a);
    s(match name {
        "html" => html_escape(&text),
        "js" => js_escape(&text),
        _ => query_escape(&text),
    })
}

fn f_case(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // Case mapping can turn one byte into three.
    let x = sarg(&a, 0);
    room(b, 3 * x.len())?;
    s(match name {
        "upper" => x.to_uppercase(),
        "lower" => x.to_lowercase(),
        "title" => title(&x),
        _ => untitle(&x),
    })
}

fn f_trim(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(sarg(&a, 0).trim().to_owned())
}

fn f_trim_all(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let cut: Vec<char> = sarg(&a, 0).chars().collect();
    s(sarg(&a, 1).trim_matches(cut.as_slice()).to_owned())
}

fn f_trim_prefix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let p = sarg(&a, 0);
    let x = sarg(&a, 1);
    s(x.strip_prefix(p.as_str()).unwrap_or(&x).to_owned())
}

fn f_trim_suffix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let p = sarg(&a, 0);
    let x = sarg(&a, 1);
    s(x.strip_suffix(p.as_str()).unwrap_or(&x).to_owned())
}

fn f_trunc(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 2)?;
    let n = to_i64(&a[0]);
    let x = sarg(&a, 1);
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

fn f_substr(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 3)?;
    let (start, end) = (to_i64(&a[0]), to_i64(&a[1]));
    let x = sarg(&a, 2);
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

fn f_repeat(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 2)?;
    let n = to_i64(&a[0]).max(0) as usize;
    let x = sarg(&a, 1);
    let len = x.len().saturating_mul(n);
    cap_len(b, len)?;
    s(x.repeat(n))
}

fn f_replace(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 3)?;
    let (old, new, x) = (sarg(&a, 0), sarg(&a, 1), sarg(&a, 2));
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

fn f_contains(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(sarg(&a, 1).contains(&sarg(&a, 0))))
}

fn f_has_prefix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(sarg(&a, 1).starts_with(&sarg(&a, 0))))
}

fn f_has_suffix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(sarg(&a, 1).ends_with(&sarg(&a, 0))))
}

fn f_quote(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // `\x00` style escapes: four bytes per byte at most.
    room(b, 4 * text_size(&a))?;
    let parts: Vec<String> = a
        .iter()
        .filter(|v| **v != Value::Nil)
        .map(|v| go_quote(&strval(v)))
        .collect();
    s(parts.join(" "))
}

fn f_squote(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, text_size(&a))?;
    let parts: Vec<String> = a
        .iter()
        .filter(|v| **v != Value::Nil)
        .map(|v| format!("'{}'", strval(v)))
        .collect();
    s(parts.join(" "))
}

fn f_cat(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, text_size(&a))?;
    let parts: Vec<String> = a.iter().filter(|v| **v != Value::Nil).map(strval).collect();
    s(parts.join(" "))
}

fn f_indent(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 2)?;
    let pad = " ".repeat(to_i64(&a[0]).clamp(0, 1024) as usize);
    let x = sarg(&a, 1);
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

fn f_nospace(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(sarg(&a, 0).chars().filter(|c| !c.is_whitespace()).collect())
}

fn f_abbrev(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 2)?;
    let w = to_i64(&a[0]);
    let x = sarg(&a, 1);
    if w < 4 || x.len() as i64 <= w {
        s(x)
    } else {
        s(byte_slice(&x, 0, (w - 3) as usize) + "...")
    }
}

fn f_plural(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 3)?;
    s(if to_i64(&a[2]) == 1 {
        sarg(&a, 0)
    } else {
        sarg(&a, 1)
    })
}

fn f_split(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 2)?;
    let (sep, x) = (sarg(&a, 0), sarg(&a, 1));
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

fn f_splitn(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 3)?;
    let (sep, n, x) = (sarg(&a, 0), to_i64(&a[1]), sarg(&a, 2));
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

fn f_join(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 2)?;
    let sep = sarg(&a, 0);
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

fn f_sort_alpha(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    room(b, text_size(&l))?;
    work(b, l.len().saturating_mul(l.len().max(2).ilog2() as usize))?;
    let mut items: Vec<String> = l.iter().map(strval).collect();
    items.sort();
    Ok(Value::List(items.into_iter().map(Value::Str).collect()))
}

fn f_to_string(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(match arg(&a, 0) {
        Value::Nil => "<nil>".to_owned(),
        v => strval(&v),
    })
}

fn f_to_strings(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    room(b, text_size(&l))?;
    work(b, l.len())?;
    Ok(Value::List(
        l.iter().map(|v| Value::Str(strval(v))).collect(),
    ))
}

fn f_b64enc(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let x = sarg(&a, 0);
    room(b, x.len() / 3 * 4 + 4)?;
    s(STANDARD.encode(x.as_bytes()))
}

fn f_b64dec(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match STANDARD.decode(sarg(&a, 0).as_bytes()) {
        Ok(b) => s(String::from_utf8_lossy(&b).into_owned()),
        // sprig returns the error text as the result.
        Err(e) => s(e.to_string()),
    }
}

fn f_to_json(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // A JSON tree of the value, then text escaping each byte to at most six.
    let v = arg(&a, 0);
    room(b, 8 * v.size())?;
    let json = v.to_json();
    s(match name {
        "toJson" | "mustToJson" => crate::json::to_json_compact(&json, true),
        "toRawJson" | "mustToRawJson" => crate::json::to_json_compact(&json, false),
        _ => crate::json::to_json_pretty(&json),
    })
}

fn f_sha256sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        sarg(&a, 0).as_bytes(),
    )
    .as_ref()))
}

fn f_sha1sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sarg(&a, 0).as_bytes(),
    )
    .as_ref()))
}

fn f_sha512sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA512,
        sarg(&a, 0).as_bytes(),
    )
    .as_ref()))
}

fn f_adler32sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(adler32(sarg(&a, 0).as_bytes()).to_string())
}

fn f_default(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    if a.is_empty() {
        return Err(CallError::Arity);
    }
    match a.get(1) {
        Some(g) if !is_empty(g) => Ok(g.clone()),
        _ => Ok(a[0].clone()),
    }
}

fn f_empty(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(is_empty(&arg(&a, 0))))
}

fn f_coalesce(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(a.iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

fn f_ternary(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 3)?;
    Ok(if a[2].truthy() {
        a[0].clone()
    } else {
        a[1].clone()
    })
}

/// The message is the caller's text, typically built from values: never reported.
fn f_fail(_name: &str, _a: Vec<Value>, _b: &mut Budget) -> Res {
    Err(CallError::Failed)
}

/// sprig: `required "message" value` fails on nil or "" (message withheld as for fail).
fn f_required(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 2)?;
    match &a[1] {
        Value::Nil => Err(CallError::Failed),
        Value::Str(x) if x.is_empty() => Err(CallError::Failed),
        v => Ok(v.clone()),
    }
}

fn f_int(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(to_i64(&arg(&a, 0))))
}

fn f_float64(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Float(to_f64(&arg(&a, 0))))
}

fn f_atoi(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(sarg(&a, 0).parse::<i64>().unwrap_or(0)))
}

fn f_add(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(
        a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_i64(v))),
    ))
}

fn f_add1(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(to_i64(&arg(&a, 0)).wrapping_add(1)))
}

fn f_sub(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(
        to_i64(&arg(&a, 0)).wrapping_sub(to_i64(&arg(&a, 1))),
    ))
}

fn f_mul(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(
        a.iter().fold(1i64, |acc, v| acc.wrapping_mul(to_i64(v))),
    ))
}

fn f_div_mod(name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

fn f_max_min(name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let nums = a.iter().map(to_i64);
    let v = if name == "max" {
        nums.max()
    } else {
        nums.min()
    };
    Ok(Value::Int(v.unwrap_or(0)))
}

fn f_floor(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Float(to_f64(&arg(&a, 0)).floor()))
}

fn f_ceil(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Float(to_f64(&arg(&a, 0)).ceil()))
}

fn f_round(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let p = 10f64.powi(to_i64(&arg(&a, 1)).clamp(0, 15) as i32);
    Ok(Value::Float((to_f64(&arg(&a, 0)) * p).round() / p))
}

fn f_list(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    work(b, a.len())?;
    Ok(Value::List(a))
}

fn f_first(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(to_list(&arg(&a, 0))?.first().cloned().unwrap_or(Value::Nil))
}

fn f_last(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(to_list(&arg(&a, 0))?.last().cloned().unwrap_or(Value::Nil))
}

fn f_rest(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    Ok(Value::List(l.into_iter().skip(1).collect()))
}

fn f_initial(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.pop();
    Ok(Value::List(l))
}

fn f_append(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.push(arg(&a, 1));
    Ok(Value::List(l))
}

fn f_prepend(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.insert(0, arg(&a, 1));
    Ok(Value::List(l))
}

fn f_concat(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut out = Vec::new();
    for v in &a {
        let l = to_list(v)?;
        work(b, l.len())?;
        out.extend(l);
    }
    Ok(Value::List(out))
}

fn f_uniq(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // sprig compares each element with all kept ones (quadratic); a set of canonical
    // keys gives the same result in linear time.
    let l = to_list(&arg(&a, 0))?;
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

fn f_has(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 1))?;
    work(b, l.len())?;
    Ok(Value::Bool(l.contains(&arg(&a, 0))))
}

fn f_without(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let drop = &a[1.min(a.len())..];
    let l = to_list(&arg(&a, 0))?;
    work(b, l.len().saturating_mul(drop.len().max(1)))?;
    Ok(Value::List(
        l.into_iter().filter(|v| !drop.contains(v)).collect(),
    ))
}

fn f_compact(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    Ok(Value::List(
        l.into_iter().filter(|v| !is_empty(v)).collect(),
    ))
}

fn f_reverse(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.reverse();
    Ok(Value::List(l))
}

fn f_until(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let n = to_i64(&arg(&a, 0));
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

fn f_dict(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    work(b, a.len())?;
    let mut m = BTreeMap::new();
    for pair in a.chunks(2) {
        let k = strval(&pair[0]);
        m.insert(k, pair.get(1).cloned().unwrap_or(Value::Str(String::new())));
    }
    Ok(Value::Map(m))
}

fn f_get(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(m) => Ok(m
            .get(&sarg(&a, 1))
            .cloned()
            .unwrap_or(Value::Str(String::new()))),
        _ => Err(CallError::ArgumentType),
    }
}

fn f_set(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(mut m) => {
            m.insert(sarg(&a, 1), arg(&a, 2));
            Ok(Value::Map(m))
        }
        _ => Err(CallError::ArgumentType),
    }
}

fn f_unset(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(mut m) => {
            m.remove(&sarg(&a, 1));
            Ok(Value::Map(m))
        }
        _ => Err(CallError::ArgumentType),
    }
}

fn f_has_key(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(m) => Ok(Value::Bool(m.contains_key(&sarg(&a, 1)))),
        _ => Err(CallError::ArgumentType),
    }
}

fn f_keys(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

fn f_values(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(m) => {
            work(b, m.len())?;
            Ok(Value::List(m.into_values().collect()))
        }
        _ => Err(CallError::ArgumentType),
    }
}

fn f_pick_omit(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    match arg(&a, 0) {
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
