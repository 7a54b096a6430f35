//! `kubeseal scan`: a plaintext guard for repositories. Finds `kind: Secret` manifests with
//! data (YAML or JSON, multi-document, inside `List`s too) and kustomize `secretGenerator`
//! entries that carry values (`literals`, `envs`, `files`), and prints `file:line` for each;
//! exit status 3 ([`crate::exit::FINDINGS`]) when any is found, so it can run as a pre-commit
//! hook or CI step.
//!
//! What cannot be parsed is still looked at: Helm templates (`{{`), non-UTF-8 files, YAML
//! documents that do not parse and the rest of a JSON stream after a syntax error are
//! scanned as text for a `kind: Secret` with literal values ([`text_findings`]). Every such
//! file is reported on stderr, and `--strict` turns any of them into a failure.
//!
//! It also reports SealedSecret values in multi-recipient version 1, which has no key
//! commitment (`crates/crypto/FORMAT.md` §2.2) and which the controller refuses by default:
//! they need resealing. Hidden directories (`.github/`, `.argocd/`) are scanned unless
//! `--skip-hidden`; `.git` never is.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::args::ScanArgs;
use crate::documents;
use crate::error::{CliError, Result};
use crate::io;
use crate::{Outcome, printer};

/// One unsealed Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// File.
    pub path: PathBuf,
    /// 1-based line of its `kind: Secret` (or of the `secretGenerator` entry).
    pub line: usize,
    /// `namespace/name` as far as known.
    pub object: String,
    /// What was found, e.g. "unsealed Secret".
    pub what: &'static str,
}

/// Findings and fallbacks of one file.
#[derive(Debug, Default)]
pub struct FileReport {
    /// What was found.
    pub findings: Vec<Finding>,
    /// Why (part of) the file was only scanned as text, if it was.
    pub fallback: Option<String>,
}

/// Runs the scan and prints findings (stdout) and notes (stderr).
pub fn run(args: &ScanArgs) -> Result<Outcome> {
    let mut passed_over = Vec::new();
    let hidden = if args.skip_hidden {
        io::HiddenDirs::Skip
    } else {
        io::HiddenDirs::Enter
    };
    let files = io::walk_reporting(&args.paths, &mut passed_over, hidden)?;
    let mut findings = Vec::new();
    // Entries the walk passed over count when they could hold a manifest: a link or an
    // unreadable entry named like one.
    let mut skipped: Vec<(PathBuf, String)> = passed_over
        .into_iter()
        .filter(|(p, _)| io::is_manifest(p))
        .collect();
    let mut scanned = 0usize;
    for f in files
        .iter()
        .filter(|f| io::is_manifest(f) || args.paths.contains(f))
    {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                let why = crate::error::GoIoError(e);
                skipped.push((f.clone(), format!("unreadable ({why}): not scanned")));
                continue;
            }
        };
        scanned += 1;
        let report = scan_bytes(f, &bytes);
        findings.extend(report.findings);
        if let Some(reason) = report.fallback {
            skipped.push((f.clone(), reason));
        }
    }
    let mut out = String::new();
    for x in &findings {
        out.push_str(&format!(
            "{}:{}: {} `{}`\n",
            x.path.display(),
            x.line,
            x.what,
            x.object
        ));
    }
    io::write_stdout(out.as_bytes())?;
    for (path, reason) in &skipped {
        printer().note(format_args!("{}: {reason}", path.display()));
    }
    let v1 = findings
        .iter()
        .filter(|f| f.what == MULTI_V1_FINDING)
        .count();
    let unsealed = findings.len() - v1;
    if unsealed == 0 {
        printer().status(format_args!(
            "scanned {scanned} file(s): no unsealed Secret found"
        ));
    } else {
        printer().status(format_args!(
            "found {unsealed} unsealed Secret(s) in {scanned} scanned file(s); seal them with kubeseal and commit the SealedSecret instead",
        ));
    }
    if v1 > 0 {
        printer().status(format_args!(
            "found {v1} multi-recipient version-1 value(s) (no key commitment): the controller refuses them unless --accept-multi-recipient-v1; reseal them with kubeseal (or kubeseal reencrypt)"
        ));
    }
    if args.strict && !skipped.is_empty() {
        return Err(CliError::StrictUnparsed {
            count: skipped.len(),
        });
    }
    Ok(if findings.is_empty() {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}

/// Scans one file's bytes: parsed where possible, as text where not.
pub fn scan_bytes(path: &Path, bytes: &[u8]) -> FileReport {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let lossy = String::from_utf8_lossy(bytes);
        return FileReport {
            findings: text_findings(path, &lossy, 1),
            fallback: Some("not UTF-8: scanned as text".to_owned()),
        };
    };
    if text.contains("{{") {
        return FileReport {
            findings: text_findings(path, text, 1),
            fallback: Some(
                "template (`{{`): scanned as text (scan `helm template` output for certainty)"
                    .to_owned(),
            ),
        };
    }
    let mut report = FileReport {
        findings: scan_text(path, text),
        fallback: None,
    };
    let mut bad_lines = Vec::new();
    for doc in documents::split(text) {
        if doc.value.is_none() && !text[doc.start..doc.end].trim().is_empty() {
            bad_lines.push(doc.line);
            report
                .findings
                .extend(text_findings(path, &text[doc.start..doc.end], doc.line));
        }
    }
    if let Some(rest) = documents::json_unparsed_tail(text) {
        let line = text[..rest].matches('\n').count() + 1;
        bad_lines.push(line);
        report
            .findings
            .extend(text_findings(path, &text[rest..], line));
    }
    if !bad_lines.is_empty() {
        report.fallback = Some(format!(
            "{} document(s) do not parse (starting at line {}): scanned as text",
            bad_lines.len(),
            bad_lines
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if is_kustomization(path) {
        report.findings.extend(secret_generators(path, text));
    }
    report.findings.extend(multi_v1_findings(path, text));
    report.findings.sort_by_key(|f| f.line);
    report
}

/// What a multi-recipient version-1 value is reported as.
pub const MULTI_V1_FINDING: &str = "multi-recipient version-1 value (no key commitment; refused by the controller, reseal it) in SealedSecret";

/// SealedSecret values in multi-recipient version 1, one finding per value, at the line of
/// the SealedSecret's document. Needs no key: the version is in the value's header.
pub fn multi_v1_findings(path: &Path, text: &str) -> Vec<Finding> {
    if !text.contains(sealed_secrets_api::KIND) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (doc, ss) in documents::sealed_secrets(text, &mut Vec::new()) {
        for item in ss.multi_v1_items() {
            out.push(Finding {
                path: path.to_owned(),
                line: doc.line,
                object: format!("{}` item `{item}", ss.object_ref()),
                what: MULTI_V1_FINDING,
            });
        }
    }
    out
}

/// `kustomization.yaml`, `kustomization.yml` or `Kustomization`.
fn is_kustomization(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        matches!(
            n,
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        )
    })
}

/// kustomize `secretGenerator` entries that put values into the repository: `literals`, or
/// `envs`/`env`/`files` naming files beside it (kustomize reads them at build time).
fn secret_generators(path: &Path, text: &str) -> Vec<Finding> {
    let Ok(docs) = sealed_secrets_api::manifest::parse_documents(text.as_bytes()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for doc in docs {
        let Some(gens) = doc.get("secretGenerator").and_then(Value::as_array) else {
            continue;
        };
        for g in gens {
            let non_empty = |k: &str| match g.get(k) {
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::String(s)) => !s.is_empty(),
                _ => false,
            };
            let sources: Vec<&str> = ["literals", "envs", "env", "files"]
                .into_iter()
                .filter(|k| non_empty(k))
                .collect();
            if sources.is_empty() {
                continue;
            }
            let name = g.get("name").and_then(Value::as_str).unwrap_or("");
            let name_line = text.lines().position(|l| {
                let t = l.trim_start().trim_start_matches("- ").trim();
                t.strip_prefix("name:")
                    .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
            });
            let line = name_line
                .or_else(|| text.lines().position(|l| l.starts_with("secretGenerator")))
                .unwrap_or(0)
                + 1;
            out.push(Finding {
                path: path.to_owned(),
                line,
                object: format!("{name} ({})", sources.join(", ")),
                what: "kustomize secretGenerator with values",
            });
        }
    }
    out
}

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

/// Findings in one file's text.
pub fn scan_text(path: &Path, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for doc in documents::split(text) {
        let Some(value) = &doc.value else { continue };
        let mut secrets = Vec::new();
        collect_secrets(value, &mut secrets);
        let mut search_from = doc.start;
        for s in secrets {
            // Point at the n-th `kind: Secret` line of the document.
            let line = documents::line_of_in(
                text,
                &relative(text, &doc, search_from),
                is_kind_secret_line,
            );
            out.push(Finding {
                path: path.to_owned(),
                line,
                object: s,
                what: "unsealed Secret",
            });
            // Continue after this line for the next Secret of a List.
            search_from = offset_of_line(text, line + 1).min(doc.end);
        }
    }
    out
}

fn relative(text: &str, doc: &documents::Document, from: usize) -> documents::Document {
    documents::Document {
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
