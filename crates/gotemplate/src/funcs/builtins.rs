//! Go's `text/template` builtins (`and`/`or` live in the evaluator).

use super::args::{
    Res, arg, bounds, cap_len, compare, html_escape, js_escape, query_escape, room, s, sprint,
    text_size, to_index, want, work,
};
use crate::CallError;
use crate::budget::{Budget, MAX_OUTPUT};
use crate::value::Value;

pub(super) fn f_not(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 1)?;
    Ok(Value::Bool(!arg(&a, 0).truthy()))
}

pub(super) fn f_len(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 1)?;
    match &a[0] {
        Value::Str(x) => Ok(Value::Int(x.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.len() as i64)),
        Value::Map(m) => Ok(Value::Int(m.len() as i64)),
        _ => Err(CallError::ArgumentType),
    }
}

pub(super) fn f_index(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

pub(super) fn f_slice(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

pub(super) fn f_print(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, text_size(&a))?;
    s(sprint(&a))
}

pub(super) fn f_println(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, 2 * text_size(&a))?;
    let parts: Vec<String> = a.iter().map(Value::fmt_v).collect();
    s(parts.join(" ") + "\n")
}

pub(super) fn f_printf(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_eq(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_ordered(name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

pub(super) fn f_escape(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // Escaping grows text at most sixfold (`"` -> `&#34;`, `<` -> `\u003C`).
    room(b, 7 * text_size(&a))?;
    let text = sprint(&a);
    s(match name {
        "html" => html_escape(&text),
        "js" => js_escape(&text),
        _ => query_escape(&text),
    })
}
