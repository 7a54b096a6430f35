//! Label and field selectors as kube-apiserver parses them.
//!
//! Knowing difference: kube-apiserver only accepts a per-resource list of field selector
//! keys (`metadata.name`, `metadata.namespace`, `type` for Secrets, ...); the stand-in accepts
//! any dotted path into the object and compares its scalar value as a string.

use serde_json::Value;

use super::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |term: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: invalid label selector: {term:?}"
            ))
        };
        let mut reqs = Vec::new();
        for term in split_top_level(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            if let Some(key) = term.strip_prefix('!') {
                reqs.push(LabelReq::NotExists(key.trim().to_owned()));
            } else if let Some(open) = term.find('(') {
                let close = term
                    .rfind(')')
                    .filter(|c| *c > open)
                    .ok_or_else(|| bad(term))?;
                let values: Vec<String> = term[open + 1..close]
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect();
                let head = term[..open].trim();
                if let Some(key) = head.strip_suffix("notin") {
                    reqs.push(LabelReq::NotIn(key.trim().to_owned(), values));
                } else if let Some(key) = head.strip_suffix("in") {
                    reqs.push(LabelReq::In(key.trim().to_owned(), values));
                } else {
                    return Err(bad(term));
                }
            } else if let Some((k, v)) = term.split_once("!=") {
                reqs.push(LabelReq::NotEq(k.trim().to_owned(), v.trim().to_owned()));
            } else if let Some((k, v)) = term.split_once("==") {
                reqs.push(LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned()));
            } else if let Some((k, v)) = term.split_once('=') {
                reqs.push(LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned()));
            } else if term.contains(['<', '>', ' ']) {
                return Err(bad(term));
            } else {
                reqs.push(LabelReq::Exists(term.to_owned()));
            }
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A parsed `fieldSelector` (`=`, `==`, `!=` terms joined by commas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in s.split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (k, eq, v) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: '{term}': expected an operator"
                )));
            };
            terms.push((k.trim().to_owned(), eq, v.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for part in path.split('.') {
                cur = &cur[part];
            }
            let got = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "type": "Opaque"})
    }

    #[test]
    fn label_selectors() {
        let o = obj(json!({"app": "x", "tier": "db"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=x"));
        assert!(m("app==x,tier"));
        assert!(!m("app!=x"));
        assert!(m("tier in (db, web)"));
        assert!(!m("tier notin (db)"));
        assert!(m("!missing"));
        assert!(!m("missing"));
        assert!(m(""));
        assert!(LabelSelector::parse("a < b").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m("metadata.name=a,metadata.namespace==ns"));
        assert!(!m("metadata.name!=a"));
        assert!(m("type=Opaque"));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
