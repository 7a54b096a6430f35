//! sprig's defaults, flow and number functions.

use super::args::{Res, arg, is_empty, sarg, to_f64, to_i64, want};
use crate::CallError;
use crate::budget::Budget;
use crate::value::Value;

pub(super) fn f_default(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    if a.is_empty() {
        return Err(CallError::Arity);
    }
    match a.get(1) {
        Some(g) if !is_empty(g) => Ok(g.clone()),
        _ => Ok(a[0].clone()),
    }
}

pub(super) fn f_empty(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(is_empty(&arg(&a, 0))))
}

pub(super) fn f_coalesce(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(a.iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(super) fn f_ternary(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 3)?;
    Ok(if a[2].truthy() {
        a[0].clone()
    } else {
        a[1].clone()
    })
}

/// The message is the caller's text, typically built from values: never reported.
pub(super) fn f_fail(_name: &str, _a: Vec<Value>, _b: &mut Budget) -> Res {
    Err(CallError::Failed)
}

/// sprig: `required "message" value` fails on nil or "" (message withheld as for fail).
pub(super) fn f_required(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 2)?;
    match &a[1] {
        Value::Nil => Err(CallError::Failed),
        Value::Str(x) if x.is_empty() => Err(CallError::Failed),
        v => Ok(v.clone()),
    }
}

pub(super) fn f_int(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(to_i64(&arg(&a, 0))))
}

pub(super) fn f_float64(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Float(to_f64(&arg(&a, 0))))
}

pub(super) fn f_atoi(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(sarg(&a, 0).parse::<i64>().unwrap_or(0)))
}

pub(super) fn f_add(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(
        a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_i64(v))),
    ))
}

pub(super) fn f_add1(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(to_i64(&arg(&a, 0)).wrapping_add(1)))
}

pub(super) fn f_sub(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(
        to_i64(&arg(&a, 0)).wrapping_sub(to_i64(&arg(&a, 1))),
    ))
}

pub(super) fn f_mul(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Int(
        a.iter().fold(1i64, |acc, v| acc.wrapping_mul(to_i64(v))),
    ))
}

pub(super) fn f_div_mod(name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

pub(super) fn f_max_min(name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let nums = a.iter().map(to_i64);
    let v = if name == "max" {
        nums.max()
    } else {
        nums.min()
    };
    Ok(Value::Int(v.unwrap_or(0)))
}

pub(super) fn f_floor(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Float(to_f64(&arg(&a, 0)).floor()))
}

pub(super) fn f_ceil(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Float(to_f64(&arg(&a, 0)).ceil()))
}

pub(super) fn f_round(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let p = 10f64.powi(to_i64(&arg(&a, 1)).clamp(0, 15) as i32);
    Ok(Value::Float((to_f64(&arg(&a, 0)) * p).round() / p))
}
