//! sprig's list and dict functions.

use std::collections::BTreeMap;

use super::args::{
    Res, arg, is_empty, room, sarg, strval, text_size, to_i64, to_list, uniq_key, work,
};
use crate::CallError;
use crate::budget::Budget;
use crate::value::{SLOT, Value};

pub(super) fn f_list(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    work(b, a.len())?;
    Ok(Value::List(a))
}

pub(super) fn f_first(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(to_list(&arg(&a, 0))?.first().cloned().unwrap_or(Value::Nil))
}

pub(super) fn f_last(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(to_list(&arg(&a, 0))?.last().cloned().unwrap_or(Value::Nil))
}

pub(super) fn f_rest(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    Ok(Value::List(l.into_iter().skip(1).collect()))
}

pub(super) fn f_initial(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.pop();
    Ok(Value::List(l))
}

pub(super) fn f_append(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.push(arg(&a, 1));
    Ok(Value::List(l))
}

pub(super) fn f_prepend(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.insert(0, arg(&a, 1));
    Ok(Value::List(l))
}

pub(super) fn f_concat(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut out = Vec::new();
    for v in &a {
        let l = to_list(v)?;
        work(b, l.len())?;
        out.extend(l);
    }
    Ok(Value::List(out))
}

pub(super) fn f_uniq(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_has(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 1))?;
    work(b, l.len())?;
    Ok(Value::Bool(l.contains(&arg(&a, 0))))
}

pub(super) fn f_without(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let drop = &a[1.min(a.len())..];
    let l = to_list(&arg(&a, 0))?;
    work(b, l.len().saturating_mul(drop.len().max(1)))?;
    Ok(Value::List(
        l.into_iter().filter(|v| !drop.contains(v)).collect(),
    ))
}

pub(super) fn f_compact(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    Ok(Value::List(
        l.into_iter().filter(|v| !is_empty(v)).collect(),
    ))
}

pub(super) fn f_reverse(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let mut l = to_list(&arg(&a, 0))?;
    work(b, l.len())?;
    l.reverse();
    Ok(Value::List(l))
}

pub(super) fn f_until(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_dict(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    work(b, a.len())?;
    let mut m = BTreeMap::new();
    for pair in a.chunks(2) {
        let k = strval(&pair[0]);
        m.insert(k, pair.get(1).cloned().unwrap_or(Value::Str(String::new())));
    }
    Ok(Value::Map(m))
}

pub(super) fn f_get(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(m) => Ok(m
            .get(&sarg(&a, 1))
            .cloned()
            .unwrap_or(Value::Str(String::new()))),
        _ => Err(CallError::ArgumentType),
    }
}

pub(super) fn f_set(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(mut m) => {
            m.insert(sarg(&a, 1), arg(&a, 2));
            Ok(Value::Map(m))
        }
        _ => Err(CallError::ArgumentType),
    }
}

pub(super) fn f_unset(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(mut m) => {
            m.remove(&sarg(&a, 1));
            Ok(Value::Map(m))
        }
        _ => Err(CallError::ArgumentType),
    }
}

pub(super) fn f_has_key(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(m) => Ok(Value::Bool(m.contains_key(&sarg(&a, 1)))),
        _ => Err(CallError::ArgumentType),
    }
}

pub(super) fn f_keys(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_values(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    match arg(&a, 0) {
        Value::Map(m) => {
            work(b, m.len())?;
            Ok(Value::List(m.into_values().collect()))
        }
        _ => Err(CallError::ArgumentType),
    }
}

pub(super) fn f_pick_omit(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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
