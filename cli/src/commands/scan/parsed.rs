//! Findings in documents that parse: Secrets with data (inside `List`s too), at the line of
//! their `kind: Secret`, and SealedSecret values in multi-recipient version 1.

use std::path::Path;

use serde_json::Value;

use super::finding::Finding;
use super::text::is_kind_secret_line;
use crate::documents;

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
