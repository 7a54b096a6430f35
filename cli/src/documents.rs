//! Splitting manifest files into documents while keeping each document's byte span and first
//! line, so findings can say `file:line` and in-place rewrites can leave every other document
//! byte-for-byte as it was.

use sealed_secrets_api::manifest::parse_documents;
use serde_json::Value;

/// One document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Byte range in the file (for YAML, after the `---` line that opens it).
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// 1-based line of the document's first line.
    pub line: usize,
    /// Parsed value (`None` when the document is empty or does not parse).
    pub value: Option<Value>,
    /// Whether this document was preceded by a `---` separator line.
    pub after_separator: bool,
}

/// Splits `text` (YAML stream or JSON stream) into documents.
pub fn split(text: &str) -> Vec<Document> {
    let trimmed = text.trim_start_matches('\u{feff}');
    match trimmed.trim_start().chars().next() {
        Some('{') | Some('[') => split_json(text),
        _ => split_yaml(text),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn split_json(text: &str) -> Vec<Document> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut prev = 0;
    while let Some(Ok(value)) = stream.next() {
        let end = stream.byte_offset();
        let start = prev + (text[prev..end].len() - text[prev..end].trim_start().len());
        out.push(Document {
            start,
            end,
            line: line_of(text, start),
            value: Some(value),
            after_separator: false,
        });
        prev = end;
    }
    out
}

/// Where a JSON stream stops parsing before its end (byte offset of the first value that
/// does not parse), for callers that must look at the rest anyway; `None` for YAML and for
/// JSON that parses to the end.
pub fn json_unparsed_tail(text: &str) -> Option<usize> {
    let trimmed = text.trim_start_matches('\u{feff}');
    if !matches!(trimmed.trim_start().chars().next(), Some('{') | Some('[')) {
        return None;
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut prev = 0;
    loop {
        match stream.next() {
            None => return None,
            Some(Ok(_)) => prev = stream.byte_offset(),
            Some(Err(_)) => {
                let rest = &text[prev..];
                return Some(prev + (rest.len() - rest.trim_start().len()));
            }
        }
    }
}

/// YAML documents are separated by lines starting with `---` (optionally followed by
/// whitespace or a comment); a `...` end marker is left inside the previous document.
fn split_yaml(text: &str) -> Vec<Document> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut after_separator = false;
    let mut offset = 0;
    let push = |start: usize, end: usize, after: bool, out: &mut Vec<Document>| {
        let body = &text[start..end];
        let value = if body.trim().is_empty() {
            None
        } else {
            parse_documents(body.as_bytes())
                .ok()
                .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
        };
        out.push(Document {
            start,
            end,
            line: line_of(text, start),
            value,
            after_separator: after,
        });
    };
    for line in text.split_inclusive('\n') {
        let is_sep = line.starts_with("---")
            && line[3..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '#');
        if is_sep {
            if offset > start {
                push(start, offset, after_separator, &mut out);
            }
            start = offset + line.len();
            after_separator = true;
        }
        offset += line.len();
    }
    if text.len() > start || out.is_empty() {
        push(start, text.len(), after_separator, &mut out);
    }
    out
}

/// The 1-based line within `text[doc.start..doc.end]` holding `needle`, made absolute.
pub fn line_of_in(text: &str, doc: &Document, needle: impl Fn(&str) -> bool) -> usize {
    let body = &text[doc.start..doc.end];
    for (i, l) in body.lines().enumerate() {
        if needle(l) {
            return doc.line + i;
        }
    }
    doc.line
}

/// The SealedSecrets of a file's text, with their documents (other kinds, Lists and
/// unparsable documents are left out; `errors` gets a note for SealedSecrets that do not
/// parse).
pub fn sealed_secrets(
    text: &str,
    errors: &mut Vec<String>,
) -> Vec<(Document, sealed_secrets_api::SealedSecret)> {
    let mut out = Vec::new();
    for doc in split(text) {
        let Some(v) = &doc.value else {
            // Silently skipping it would let `verify-backup` or `audit` report a tree as
            // complete while a SealedSecret in it was never looked at.
            if text[doc.start..doc.end].contains(sealed_secrets_api::KIND) {
                errors.push(format!(
                    "line {}: a document mentioning {} does not parse",
                    doc.line,
                    sealed_secrets_api::KIND
                ));
            }
            continue;
        };
        if v.get("kind").and_then(Value::as_str) != Some(sealed_secrets_api::KIND) {
            continue;
        }
        match sealed_secrets_api::manifest::sealed_secret_from_value(1, v.clone()) {
            Ok(ss) => out.push((doc, ss)),
            Err(e) => errors.push(format!("line {}: {e}", doc.line)),
        }
    }
    if let Some(rest) = json_unparsed_tail(text)
        && text[rest..].contains(sealed_secrets_api::KIND)
    {
        errors.push(format!(
            "line {}: the JSON stream stops parsing here, before a {}",
            line_of(text, rest),
            sealed_secrets_api::KIND
        ));
    }
    out
}

/// Files under `paths` that hold at least one SealedSecret, with their text.
pub fn sealed_files(
    paths: &[std::path::PathBuf],
) -> crate::Result<Vec<(std::path::PathBuf, String)>> {
    let mut out = Vec::new();
    for f in crate::io::walk(paths)? {
        if !(crate::io::is_manifest(&f) || paths.contains(&f)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if text.contains(sealed_secrets_api::KIND) {
            out.push((f, text));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_keep_spans_and_lines() {
        let text = "# c\na: 1\n---\nb: 2\n--- # x\n\n---\nc: 3\n";
        let docs = split(text);
        let with_values: Vec<_> = docs.iter().filter(|d| d.value.is_some()).collect();
        assert_eq!(with_values.len(), 3);
        assert_eq!(with_values[0].line, 1);
        assert_eq!(with_values[1].line, 4);
        assert_eq!(&text[with_values[1].start..with_values[1].end], "b: 2\n");
        assert_eq!(with_values[2].line, 8);
    }

    #[test]
    fn unparsable_sealed_secrets_are_reported_not_skipped() {
        let yaml = "kind: SealedSecret\nmetadata: {name: [broken\n---\nkind: ConfigMap\n";
        let mut errors = Vec::new();
        assert!(sealed_secrets(yaml, &mut errors).is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("line 1:"), "{errors:?}");
        let json = "{\"kind\": \"ConfigMap\"}\n{,}\n{\"kind\": \"SealedSecret\"}\n";
        let mut errors = Vec::new();
        assert!(sealed_secrets(json, &mut errors).is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("line 2:"), "{errors:?}");
    }

    #[test]
    fn json_stream_documents() {
        let text = "{\"a\":1}\n\n{\n\"b\":2}\n";
        let docs = split(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 3);
        assert_eq!(&text[docs[1].start..docs[1].end], "{\n\"b\":2}");
    }
}
