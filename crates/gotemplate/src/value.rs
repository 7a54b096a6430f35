//! Template values: what Go's reflection-based evaluator sees, reduced to what a
//! `map[string]string` dot and sprig's generic functions can produce.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Go's invalid value / nil (missing map key, `nil`).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

/// Bytes charged for one value slot (the enum itself, in a list, a map or a variable).
pub(crate) const SLOT: usize = std::mem::size_of::<Value>();
/// Extra bytes charged per map entry (key `String` and tree overhead).
const MAP_ENTRY: usize = 48;

impl Value {
    /// What producing (or copying) this value costs against the render budget: roughly its
    /// heap and inline size.
    pub(crate) fn size(&self) -> usize {
        match self {
            Value::Str(s) => SLOT + s.len(),
            Value::List(l) => SLOT + l.iter().map(Value::size).sum::<usize>(),
            Value::Map(m) => {
                SLOT + m
                    .iter()
                    .map(|(k, v)| MAP_ENTRY + k.len() + v.size())
                    .sum::<usize>()
            }
            Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Float(_) => SLOT,
        }
    }

    /// Go's `truth`: zero values are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(n) => *n != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// How `{{ x }}` prints it (Go's `fmt.Print`, with `<no value>` for the invalid value).
    pub(crate) fn print(&self) -> String {
        match self {
            Value::Nil => "<no value>".to_owned(),
            other => other.fmt_v(),
        }
    }

    /// Go's `%v`.
    pub(crate) fn fmt_v(&self) -> String {
        match self {
            Value::Nil => "<nil>".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => fmt_float_g(*f),
            Value::Str(s) => s.clone(),
            Value::List(l) => {
                let parts: Vec<String> = l.iter().map(Value::fmt_v).collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.fmt_v()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
        }
    }

    /// As JSON (for toJson). Nil is `null`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// Go's `%v` for float64 (`strconv.FormatFloat(f, 'g', -1, 64)` with Go's exponent style).
pub(crate) fn fmt_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".to_owned()
        } else {
            "0".to_owned()
        };
    }
    let exp = f.abs().log10().floor() as i32;
    if (-4..21).contains(&exp) {
        let s = format!("{f}");
        s
    } else {
        // Shortest round-trip mantissa, Go-style exponent (e+06).
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}
