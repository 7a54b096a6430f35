//! sprig's string functions.

use super::args::{
    Res, arg, byte_slice, cap_len, go_quote, room, s, sarg, strval, text_size, title, to_i64,
    to_list, untitle, want, work,
};
use crate::budget::Budget;
use crate::value::{SLOT, Value};

pub(super) fn f_case(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_trim(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(sarg(&a, 0).trim().to_owned())
}

pub(super) fn f_trim_all(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let cut: Vec<char> = sarg(&a, 0).chars().collect();
    s(sarg(&a, 1).trim_matches(cut.as_slice()).to_owned())
}

pub(super) fn f_trim_prefix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let p = sarg(&a, 0);
    let x = sarg(&a, 1);
    s(x.strip_prefix(p.as_str()).unwrap_or(&x).to_owned())
}

pub(super) fn f_trim_suffix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    let p = sarg(&a, 0);
    let x = sarg(&a, 1);
    s(x.strip_suffix(p.as_str()).unwrap_or(&x).to_owned())
}

pub(super) fn f_trunc(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

pub(super) fn f_substr(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
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

pub(super) fn f_repeat(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    want(&a, 2)?;
    let n = to_i64(&a[0]).max(0) as usize;
    let x = sarg(&a, 1);
    let len = x.len().saturating_mul(n);
    cap_len(b, len)?;
    s(x.repeat(n))
}

pub(super) fn f_replace(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_contains(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(sarg(&a, 1).contains(&sarg(&a, 0))))
}

pub(super) fn f_has_prefix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(sarg(&a, 1).starts_with(&sarg(&a, 0))))
}

pub(super) fn f_has_suffix(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    Ok(Value::Bool(sarg(&a, 1).ends_with(&sarg(&a, 0))))
}

pub(super) fn f_quote(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // `\x00` style escapes: four bytes per byte at most.
    room(b, 4 * text_size(&a))?;
    let parts: Vec<String> = a
        .iter()
        .filter(|v| **v != Value::Nil)
        .map(|v| go_quote(&strval(v)))
        .collect();
    s(parts.join(" "))
}

pub(super) fn f_squote(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, text_size(&a))?;
    let parts: Vec<String> = a
        .iter()
        .filter(|v| **v != Value::Nil)
        .map(|v| format!("'{}'", strval(v)))
        .collect();
    s(parts.join(" "))
}

pub(super) fn f_cat(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    room(b, text_size(&a))?;
    let parts: Vec<String> = a.iter().filter(|v| **v != Value::Nil).map(strval).collect();
    s(parts.join(" "))
}

pub(super) fn f_indent(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_nospace(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(sarg(&a, 0).chars().filter(|c| !c.is_whitespace()).collect())
}

pub(super) fn f_abbrev(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 2)?;
    let w = to_i64(&a[0]);
    let x = sarg(&a, 1);
    if w < 4 || x.len() as i64 <= w {
        s(x)
    } else {
        s(byte_slice(&x, 0, (w - 3) as usize) + "...")
    }
}

pub(super) fn f_plural(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    want(&a, 3)?;
    s(if to_i64(&a[2]) == 1 {
        sarg(&a, 0)
    } else {
        sarg(&a, 1)
    })
}

pub(super) fn f_split(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_splitn(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_join(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
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

pub(super) fn f_sort_alpha(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    room(b, text_size(&l))?;
    work(b, l.len().saturating_mul(l.len().max(2).ilog2() as usize))?;
    let mut items: Vec<String> = l.iter().map(strval).collect();
    items.sort();
    Ok(Value::List(items.into_iter().map(Value::Str).collect()))
}

pub(super) fn f_to_string(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(match arg(&a, 0) {
        Value::Nil => "<nil>".to_owned(),
        v => strval(&v),
    })
}

pub(super) fn f_to_strings(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let l = to_list(&arg(&a, 0))?;
    room(b, text_size(&l))?;
    work(b, l.len())?;
    Ok(Value::List(
        l.iter().map(|v| Value::Str(strval(v))).collect(),
    ))
}
