//! Splitting a stream into documents: multi-document YAML or concatenated JSON values, as
//! kubeseal's `YAMLOrJSONDecoder` does (§6.3), under the [`limits`] of one stream, with
//! duplicate keys refused in JSON as YAML refuses them.

use serde_json::Value;

use crate::error::ManifestError;

/// Limits on one input stream, named with their values in every error that reports them.
///
/// They bound memory and CPU on hostile input, yet sit far above what real repositories
/// hold: a `kustomize build` of a large cluster is some thousands of documents, and the API
/// server refuses any object over ~1.5 MiB. (serde-saphyr's own defaults, 1,024 documents and
/// 250,000 nodes per stream, refused legitimate monorepo streams.)
pub mod limits {
    /// Bytes of one input stream (file or stdin).
    pub const MAX_INPUT_BYTES: usize = 256 * 1024 * 1024;
    /// Documents in one stream (YAML `---` documents or concatenated JSON values).
    pub const MAX_DOCUMENTS: usize = 100_000;
    /// YAML nodes (mappings, sequences, scalars) in one stream: 40 per document on average.
    pub const MAX_NODES: usize = 4_000_000;
    /// YAML parser events in one stream (about two per node).
    pub const MAX_EVENTS: usize = 2 * MAX_NODES;
    /// Total bytes of all scalar values of one stream (YAML).
    pub const MAX_SCALAR_BYTES: usize = MAX_INPUT_BYTES;
    /// Nesting depth of mappings and sequences (YAML; serde_json's own limit is 128).
    pub const MAX_DEPTH: usize = 64;
}

/// Splits a YAML or JSON stream into documents (1-based index = position in the result + 1).
///
/// JSON is detected like apimachinery does: the first non-blank character is `{` or `[`.
/// Null/empty documents are skipped. A key repeated in one JSON object is an error (serde_json
/// would silently keep the last one, so `data` could hold another value than the one the
/// user reviewed), as it already is in YAML. Every limit of [`limits`] is reported with its
/// value. Never panics, whatever the input.
pub fn parse_documents(input: &[u8]) -> Result<Vec<Value>, ManifestError> {
    if input.len() > limits::MAX_INPUT_BYTES {
        return Err(ManifestError::TooLarge {
            what: "input size",
            found: describe_bytes(input.len()),
            limit: describe_bytes(limits::MAX_INPUT_BYTES),
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| ManifestError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs = match text.trim_start().chars().next() {
        None => return Ok(Vec::new()),
        Some('{') | Some('[') => {
            let mut docs = Vec::new();
            let stream = serde_json::Deserializer::from_str(text).into_iter::<UniqueKeys>();
            for (i, doc) in stream.enumerate() {
                if i >= limits::MAX_DOCUMENTS {
                    return Err(too_many_documents());
                }
                let doc = doc.map_err(|e| ManifestError::Json {
                    index: i + 1,
                    message: json_syntax_message(&e),
                })?;
                docs.push(doc.0);
            }
            docs
        }
        Some(_) => {
            // YAML 1.2 booleans only: `name: n` or `value: yes` stay strings instead of turning
            // into booleans that then fail as "not a string".
            let budget = serde_saphyr::budget! {
                max_documents: limits::MAX_DOCUMENTS,
                max_nodes: limits::MAX_NODES,
                max_events: limits::MAX_EVENTS,
                max_total_scalar_bytes: limits::MAX_SCALAR_BYTES,
                max_depth: limits::MAX_DEPTH,
            };
            let options = serde_saphyr::options! {
                with_snippet: false,
                strict_booleans: true,
                budget: budget,
            };
            serde_saphyr::from_multiple_with_options::<Value>(text, options).map_err(yaml_error)?
        }
    };
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn too_many_documents() -> ManifestError {
    ManifestError::TooLarge {
        what: "number of documents",
        found: format!("more than {}", limits::MAX_DOCUMENTS),
        limit: limits::MAX_DOCUMENTS.to_string(),
    }
}

/// `1048576 bytes (1.0 MiB)`.
fn describe_bytes(n: usize) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let mib = n as f64 / (1024.0 * 1024.0);
    format!("{n} bytes ({mib:.1} MiB)")
}

/// serde-saphyr's errors in our words: budget breaches name the limit and its value, a
/// repeated top-level key says what usually causes it (two documents pasted together without
/// `---`), and nothing suggests library options to the user.
fn yaml_error(e: serde_saphyr::Error) -> ManifestError {
    use serde_saphyr::budget::BudgetBreach;
    let inner = e.without_snippet();
    let at = |loc: Option<serde_saphyr::Location>| {
        loc.filter(|l| l.line() > 0)
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default()
    };
    match inner {
        serde_saphyr::Error::Budget { breach, .. } => {
            let (what, found, limit) = match breach {
                BudgetBreach::Documents { .. } => return too_many_documents(),
                BudgetBreach::ScalarBytes { total_scalar_bytes } => (
                    "total size of the values",
                    format!("at least {}", describe_bytes(*total_scalar_bytes)),
                    describe_bytes(limits::MAX_SCALAR_BYTES),
                ),
                BudgetBreach::Nodes { nodes } => (
                    "number of YAML nodes",
                    format!("at least {nodes}"),
                    limits::MAX_NODES.to_string(),
                ),
                BudgetBreach::Events { events } => (
                    "number of YAML parser events",
                    format!("at least {events}"),
                    limits::MAX_EVENTS.to_string(),
                ),
                BudgetBreach::Depth { depth } => (
                    "nesting depth",
                    format!("at least {depth}"),
                    limits::MAX_DEPTH.to_string(),
                ),
                BudgetBreach::Aliases { aliases } => (
                    "number of YAML aliases",
                    format!("at least {aliases}"),
                    serde_saphyr::Budget::default().max_aliases.to_string(),
                ),
                BudgetBreach::Anchors { anchors } => (
                    "number of YAML anchors",
                    format!("at least {anchors}"),
                    serde_saphyr::Budget::default().max_anchors.to_string(),
                ),
                other => {
                    return ManifestError::Yaml {
                        message: format!(
                            "the input exceeds a YAML parser limit ({}){}",
                            breach_name(other),
                            at(inner.location())
                        ),
                    };
                }
            };
            ManifestError::TooLarge { what, found, limit }
        }
        serde_saphyr::Error::DuplicateMappingKey { key, location } => {
            let key = key.as_deref().unwrap_or("(complex key)");
            let hint = if location.column() <= 1 {
                "; two documents were probably concatenated without a `---` line between them"
            } else {
                ""
            };
            ManifestError::Yaml {
                message: format!("duplicate key `{key}`{}{hint}", at(Some(*location))),
            }
        }
        other => ManifestError::Yaml {
            message: other.render_with_formatter(&serde_saphyr::UserMessageFormatter),
        },
    }
}

/// The breach's variant name (`Debug` would print its counters in Rust syntax).
fn breach_name(b: &serde_saphyr::budget::BudgetBreach) -> String {
    let debug = format!("{b:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("budget")
        .to_owned()
}

/// A JSON value in which no object repeats a key. serde_json's own `Value` keeps the last of
/// duplicate keys without a word; this visitor refuses them, naming the key (never a value).
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{key}`"
                )));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// serde_json's message for a syntax error names the category and position only; type
/// errors (which could quote a value) cannot happen when parsing into `Value`.
fn json_syntax_message(e: &serde_json::Error) -> String {
    e.to_string()
}
