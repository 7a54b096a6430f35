//! `kubeseal scan`: a plaintext guard for repositories. Finds `kind: Secret` manifests with
//! data (YAML or JSON, multi-document, inside `List`s too) and prints `file:line` for each;
//! exit status 3 ([`crate::exit::FINDINGS`]) when any is found, so it can run as a pre-commit hook or CI step.
//!
//! Helm templates (files under a chart's `templates/`, or containing `{{`) are not valid YAML
//! before rendering: they are skipped with a note on stderr (scan `helm template` output
//! instead).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Outcome;
use crate::cli::ScanArgs;
use crate::docs;
use crate::error::Result;
use crate::io;

/// One unsealed Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// File.
    pub path: PathBuf,
    /// 1-based line of its `kind: Secret`.
    pub line: usize,
    /// `namespace/name` as far as known.
    pub object: String,
}

/// Runs the scan and prints findings (stdout) and notes (stderr).
pub fn run(args: &ScanArgs) -> Result<Outcome> {
    let files = io::walk(&args.paths)?;
    let mut findings = Vec::new();
    let mut scanned = 0usize;
    for f in files
        .iter()
        .filter(|f| io::is_manifest(f) || args.paths.contains(f))
    {
        let Ok(bytes) = std::fs::read(f) else {
            eprintln!("note: {}: unreadable, skipped", f.display());
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if is_helm_template(f, &text) {
            eprintln!(
                "note: {}: Helm template skipped (scan `helm template` output instead)",
                f.display()
            );
            continue;
        }
        scanned += 1;
        findings.extend(scan_text(f, &text));
    }
    let mut out = String::new();
    for x in &findings {
        out.push_str(&format!(
            "{}:{}: unsealed Secret `{}`\n",
            x.path.display(),
            x.line,
            x.object
        ));
    }
    io::write_stdout(out.as_bytes())?;
    if findings.is_empty() {
        eprintln!("scanned {scanned} file(s): no unsealed Secret found");
        Ok(Outcome::Success)
    } else {
        eprintln!(
            "found {} unsealed Secret(s) in {scanned} scanned file(s); seal them with kubeseal and commit the SealedSecret instead",
            findings.len()
        );
        Ok(Outcome::Findings)
    }
}

/// A chart template: under `templates/` of a directory with `Chart.yaml`, or any manifest with
/// Go template actions.
fn is_helm_template(path: &Path, text: &str) -> bool {
    if text.contains("{{") {
        return true;
    }
    let mut dir = path.parent();
    let mut in_templates = false;
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "templates") {
            in_templates = true;
        } else if in_templates && d.join("Chart.yaml").is_file() {
            return true;
        }
        dir = d.parent();
    }
    false
}

/// Findings in one file's text.
pub fn scan_text(path: &Path, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for doc in docs::split(text) {
        let Some(value) = &doc.value else { continue };
        let mut secrets = Vec::new();
        collect_secrets(value, &mut secrets);
        let mut search_from = doc.start;
        for s in secrets {
            // Point at the n-th `kind: Secret` line of the document.
            let line = docs::line_of_in(
                text,
                &relative(text, &doc, search_from),
                is_kind_secret_line,
            );
            out.push(Finding {
                path: path.to_owned(),
                line,
                object: s,
            });
            // Continue after this line for the next Secret of a List.
            search_from = offset_of_line(text, line + 1).min(doc.end);
        }
    }
    out
}

fn relative(text: &str, doc: &docs::Doc, from: usize) -> docs::Doc {
    docs::Doc {
        start: from,
        end: doc.end,
        line: text[..from].matches('\n').count() + 1,
        value: None,
        after_separator: false,
    }
}

fn offset_of_line(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

fn is_kind_secret_line(l: &str) -> bool {
    let t = l.replace(['"', '\'', ' ', '\t'], "");
    t.match_indices("kind:Secret").any(|(i, m)| {
        let before_ok = i == 0 || matches!(t.as_bytes()[i - 1], b'{' | b',' | b'-');
        let after = t[i + m.len()..].chars().next();
        before_ok && matches!(after, None | Some(',') | Some('}'))
    })
}

/// `namespace/name` of every Secret with data in a document (Lists flattened).
fn collect_secrets(v: &Value, out: &mut Vec<String>) {
    let kind = v.get("kind").and_then(Value::as_str);
    if kind == Some("List") || kind.is_some_and(|k| k.ends_with("List")) {
        if let Some(items) = v.get("items").and_then(Value::as_array) {
            for i in items {
                collect_secrets(i, out);
            }
        }
        return;
    }
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
    if kind != Some("Secret") || api != "v1" {
        return;
    }
    let has = |f: &str| {
        v.get(f)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    };
    if !has("data") && !has("stringData") {
        return;
    }
    let meta = v.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (ns, name) = (get("namespace"), get("name"));
    out.push(if ns.is_empty() {
        name
    } else {
        format!("{ns}/{name}")
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secrets_with_lines() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ns1\nstringData:\n  a: b\n---\nkind: Secret\nmetadata: {name: empty}\n";
        let f = scan_text(Path::new("x.yaml"), text);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].line, 6);
        assert_eq!(f[0].object, "ns1/s");
    }

    #[test]
    fn finds_secrets_in_lists_and_json() {
        let text = "{\n  \"kind\": \"List\",\n  \"items\": [\n    {\"kind\": \"Secret\", \"metadata\": {\"name\": \"a\"}, \"data\": {\"k\": \"dg==\"}},\n    {\"kind\": \"Secret\", \"metadata\": {\"name\": \"b\"}, \"data\": {\"k\": \"dg==\"}}\n  ]\n}\n";
        let f = scan_text(Path::new("x.json"), text);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].object, "a");
    }

    #[test]
    fn sealed_secrets_are_not_findings() {
        let text = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: s}\nspec:\n  encryptedData: {a: AgB}\n";
        assert!(scan_text(Path::new("x.yaml"), text).is_empty());
    }
}
