//! Reading manifest streams: multi-document YAML or concatenated JSON objects, as kubeseal's
//! `YAMLOrJSONDecoder` does (§6.3). Empty documents are skipped, `v1.List` objects are
//! flattened, and every document is checked for its `kind` (upstream does not check; a
//! ConfigMap piped into kubeseal by mistake is refused here with its document number).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_crypto::{Plaintext, decode_base64};
use serde_json::Value;

use crate::error::ManifestError;
use crate::types::{API_VERSION, KIND, SealedSecret};

/// Secret data with `stringData` merged over `data`, ready to seal.
///
/// Values are [`Plaintext`]: `Debug` redacts them and they are zeroized on drop.
#[derive(Clone, Debug, Default)]
pub struct SecretInput {
    /// The input Secret's metadata, unchanged.
    pub metadata: ObjectMeta,
    /// `type`, e.g. `Opaque`.
    pub type_: Option<String>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// Decoded `data`, with `stringData` entries winning on collision (upstream §6.3 step 6).
    pub data: BTreeMap<String, Plaintext>,
}

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

/// Flattens list documents into their items, keeping the outer document number: `kind: List`
/// (what `kubectl get -o yaml` prints for several objects) and the typed list of `kind`
/// (`SecretList`, what the API returns for a collection).
fn flatten_lists(docs: Vec<Value>, kind: &str) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let is_list = doc
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List" || k.strip_suffix("List") == Some(kind))
            && doc.get("items").is_some_and(Value::is_array);
        if is_list {
            if let Value::Object(mut m) = doc
                && let Some(Value::Array(items)) = m.remove("items")
            {
                out.extend(items.into_iter().map(|item| (i + 1, item)));
            }
        } else {
            out.push((i + 1, doc));
        }
    }
    out
}

fn check_kind(
    index: usize,
    doc: &Value,
    kind: &'static str,
    api_versions: &[&str],
) -> Result<(), ManifestError> {
    let Some(obj) = doc.as_object() else {
        return Err(ManifestError::NotAnObject { index });
    };
    let found = match obj.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(_) => "document whose `kind` is not a string".to_owned(),
        None => "document without `kind`".to_owned(),
    };
    if found != kind {
        return Err(ManifestError::WrongKind {
            index,
            found,
            expected: kind,
        });
    }
    match obj.get("apiVersion") {
        None => Ok(()),
        Some(Value::String(v)) if api_versions.contains(&v.as_str()) => Ok(()),
        Some(_) => Err(ManifestError::InvalidField {
            index,
            field: "apiVersion".to_owned(),
            reason: format!("expected {}", api_versions.join(" or ")),
        }),
    }
}

/// Reads every Secret of a stream (see [`parse_documents`]); any other kind is an error naming
/// the document. Returns an empty list for empty input (callers decide whether that is an error).
pub fn parse_secrets(input: &[u8]) -> Result<Vec<SecretInput>, ManifestError> {
    flatten_lists(parse_documents(input)?, "Secret")
        .into_iter()
        .map(|(i, doc)| secret_from_value(i, doc))
        .collect()
}

/// Converts one document into a [`SecretInput`], checking `kind: Secret`.
///
/// `data` values are decoded here (base64, Go-compatible) and `stringData` merged over them.
/// Errors name the document and key, never the value.
pub fn secret_from_value(index: usize, doc: Value) -> Result<SecretInput, ManifestError> {
    check_kind(index, &doc, "Secret", &["v1"])?;
    let Value::Object(mut obj) = doc else {
        return Err(ManifestError::NotAnObject { index });
    };
    let invalid = |field: &str, reason: &str| ManifestError::InvalidField {
        index,
        field: field.to_owned(),
        reason: reason.to_owned(),
    };
    let metadata = match obj.remove("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => serde_json::from_value::<ObjectMeta>(m)
            .map_err(|e| invalid("metadata", &e.to_string()))?,
    };
    let type_ = match obj.remove("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t),
        Some(_) => return Err(invalid("type", "not a string")),
    };
    let immutable = match obj.remove("immutable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(invalid("immutable", "not a boolean")),
    };
    let mut data = BTreeMap::new();
    for (key, value) in string_map(index, "data", obj.remove("data"))? {
        let bytes = decode_base64(&value).map_err(|_| ManifestError::InvalidBase64 {
            index,
            key: key.clone(),
        })?;
        data.insert(key, Plaintext::new(bytes));
    }
    for (key, value) in string_map(index, "stringData", obj.remove("stringData"))? {
        data.insert(key, Plaintext::new(value.into_bytes()));
    }
    Ok(SecretInput {
        metadata,
        type_,
        immutable,
        data,
    })
}

fn string_map(
    index: usize,
    field: &str,
    value: Option<Value>,
) -> Result<Vec<(String, String)>, ManifestError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                // A YAML `key:` with no value: kubectl treats it as an empty string.
                Value::Null => Ok((k, String::new())),
                _ => Err(ManifestError::InvalidField {
                    index,
                    field: format!("{field}.{k}"),
                    reason: "not a string".to_owned(),
                }),
            })
            .collect(),
        Some(_) => Err(ManifestError::InvalidField {
            index,
            field: field.to_owned(),
            reason: "not a map".to_owned(),
        }),
    }
}

/// Reads every SealedSecret of a stream (for merge-into, validate, re-encrypt and recovery);
/// any other kind is an error naming the document.
pub fn parse_sealed_secrets(input: &[u8]) -> Result<Vec<SealedSecret>, ManifestError> {
    flatten_lists(parse_documents(input)?, KIND)
        .into_iter()
        .map(|(i, doc)| sealed_secret_from_value(i, doc))
        .collect()
}

/// Converts one document into a [`SealedSecret`], checking kind and apiVersion.
pub fn sealed_secret_from_value(index: usize, doc: Value) -> Result<SealedSecret, ManifestError> {
    check_kind(index, &doc, KIND, &[API_VERSION])?;
    serde_json::from_value::<SealedSecret>(doc).map_err(|e| ManifestError::InvalidField {
        index,
        field: "SealedSecret".to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_duplicate_keys_are_refused_at_any_depth() {
        for input in [
            r#"{"kind":"Secret","kind":"Secret"}"#,
            r#"{"kind":"Secret","data":{"a":"MQ==","a":"Mg=="}}"#,
            r#"[{"x":{"y":1,"y":2}}]"#,
        ] {
            let err = parse_documents(input.as_bytes()).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains("duplicate key"), "{input}: {err}");
        }
        assert!(parse_documents(br#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
    }

    #[test]
    fn limits_are_named_with_their_values() {
        let many = "a: 1\n---\n".repeat(limits::MAX_DOCUMENTS + 1);
        let err = parse_documents(many.as_bytes()).map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input too large: the number of documents is more than 100000, the limit is 100000"
        );
        let json_many = "{}\n".repeat(limits::MAX_DOCUMENTS + 1);
        let err = parse_documents(json_many.as_bytes())
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("the limit is 100000"), "{err}");
        // What real repositories hold passes: 2,000 documents.
        let fine = "kind: ConfigMap\n---\n".repeat(2_000);
        assert_eq!(
            parse_documents(fine.as_bytes()).map(|d| d.len()).ok(),
            Some(2_000)
        );
    }

    #[test]
    fn typed_lists_are_flattened_for_their_kind_only() {
        let list = br#"{"kind":"SecretList","items":[{"kind":"Secret","metadata":{"name":"a"}},{"kind":"Secret","metadata":{"name":"b"}}]}"#;
        assert_eq!(parse_secrets(list).map(|l| l.len()).ok(), Some(2));
        // A SecretList is not a list of SealedSecrets.
        assert!(parse_sealed_secrets(list).is_err());
    }
}
