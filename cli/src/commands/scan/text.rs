//! The text fallback: `kind: Secret` with literal values found line by line in what does not
//! parse (Helm templates, non-UTF-8 files, broken documents).

use std::path::Path;

use super::finding::Finding;

/// `kind: Secret` found in text that does not parse: each `---`-separated part holding a
/// `kind: Secret` line and a `data`/`stringData` entry with a literal value (a value that is
/// only a template action, `{{ ... }}`, is not plaintext in the repository).
pub fn text_findings(path: &Path, text: &str, first_line: usize) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("---") {
            parts.push((start, i));
            start = i + 1;
        }
    }
    parts.push((start, lines.len()));
    for (from, to) in parts {
        let part = &lines[from..to];
        let Some(kind_at) = part.iter().position(|l| is_kind_secret_line(l)) else {
            continue;
        };
        if !has_literal_data(part) {
            continue;
        }
        let name = part
            .iter()
            .find_map(|l| text_name(l.trim()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "?".to_owned());
        out.push(Finding {
            path: path.to_owned(),
            line: first_line + from + kind_at,
            object: name,
            what: "unsealed Secret (found as text)",
        });
    }
    out
}

/// The `name` on a line: YAML `name: x`, or JSON `"name": "x"` anywhere in the line.
fn text_name(t: &str) -> Option<String> {
    if let Some(v) = t.strip_prefix("name:") {
        return Some(v.trim().trim_matches(['"', '\'']).to_owned());
    }
    let (_, after) = t.split_once("\"name\"")?;
    let v = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(v.split('"').next()?.to_owned())
}

/// A value that is plaintext in the file: not empty, not only a template action.
fn is_literal(v: &str) -> bool {
    let v = v.trim().trim_matches(['"', '\'', ',']).trim();
    !v.is_empty() && !v.starts_with("{{") && v != "{}" && v != "|" && v != ">"
}

/// Whether a part has a `data:`/`stringData:` entry (YAML or JSON text) with a literal value.
fn has_literal_data(part: &[&str]) -> bool {
    let mut block: Option<usize> = None;
    for l in part {
        let indent = l.len() - l.trim_start().len();
        let t = l.trim();
        if let Some(ind) = block {
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if indent <= ind {
                block = None;
            } else if t.starts_with("{{") || t == "}" || t == "}," {
                continue;
            } else {
                match t.split_once(':') {
                    Some((_, v)) if is_literal(v) => return true,
                    Some(_) => {}
                    // A block scalar's content line: literal text.
                    None => return true,
                }
            }
        }
        for key in ["data", "stringData"] {
            let quoted = format!("\"{key}\":");
            let Some(rest) = t
                .strip_prefix(&format!("{key}:"))
                .or_else(|| t.strip_prefix(quoted.as_str()))
            else {
                continue;
            };
            let rest = rest.trim();
            if rest.is_empty() || rest == "{" {
                block = Some(indent);
            } else if let Some(inner) = rest.strip_prefix('{') {
                let inner = inner.trim_end_matches([',', '}', ' ']);
                if inner
                    .split(',')
                    .any(|kv| kv.split_once(':').is_some_and(|(_, v)| is_literal(v)))
                {
                    return true;
                }
            }
        }
    }
    false
}

pub(super) fn is_kind_secret_line(l: &str) -> bool {
    let t = l.replace(['"', '\'', ' ', '\t'], "");
    t.match_indices("kind:Secret").any(|(i, m)| {
        let before_ok = i == 0 || matches!(t.as_bytes()[i - 1], b'{' | b',' | b'-');
        let after = t[i + m.len()..].chars().next();
        before_ok && matches!(after, None | Some(',') | Some('}'))
    })
}
