//! From documents to typed objects: `v1.List` flattened, every document's `kind` checked (a
//! ConfigMap piped into kubeseal by mistake is refused with its document number), Secrets
//! decoded into [`SecretInput`] and SealedSecrets into [`SealedSecret`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_crypto::{Plaintext, decode_base64};
use serde_json::Value;

use super::documents::parse_documents;
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
