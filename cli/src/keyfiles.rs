//! Private keys from files, as `--recovery-private-key` accepts them (§6.1): PEM (one or more
//! `RSA PRIVATE KEY`/`PRIVATE KEY` blocks), or JSON/YAML Secrets holding `data["tls.key"]`:
//! one Secret, a list of them, or several documents (see `key_file_secrets`).

use std::path::Path;

use sealed_secrets_api::manifest::{parse_documents, secret_from_value};
use sealed_secrets_api::{ManifestError, SecretInput};
use sealed_secrets_crypto::{KeyRing, PrivateKey};
use serde_json::Value;

use crate::args::DecryptArgs;
use crate::error::{CliError, Result};
use crate::io::read_file;

/// Reads the keys of every file (values may themselves be comma lists) into one ring.
/// Encrypted backups from `kubeseal keys backup` are opened with `crypt` (passphrase file,
/// variable or prompt; or age identities).
pub fn load_ring(files: &[String], crypt: &DecryptArgs) -> Result<KeyRing> {
    let mut ring = KeyRing::new();
    for f in files
        .iter()
        .flat_map(|f| f.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        for key in load_file(Path::new(f), crypt)? {
            ring.insert(key);
        }
    }
    Ok(ring)
}

/// The keys in one file (an encrypted backup is decrypted first).
pub fn load_file(path: &Path, crypt: &DecryptArgs) -> Result<Vec<PrivateKey>> {
    let bytes = read_file(path)?;
    let plain = crate::backup_encryption::decrypt(&bytes, crypt, path)?;
    parse_keys(&plain, path)
}

/// The keys in one file's contents (PEM or Secret manifests).
pub fn parse_keys(bytes: &[u8], path: &Path) -> Result<Vec<PrivateKey>> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN") {
        let blocks = pem::parse_many(bytes).map_err(|cause| CliError::KeyPem {
            path: path.to_owned(),
            cause,
        })?;
        let mut keys = Vec::new();
        for b in blocks.iter().filter(|b| b.tag().ends_with("PRIVATE KEY")) {
            let one = pem::encode(b);
            keys.push(
                PrivateKey::from_pem(one.as_bytes()).map_err(|source| CliError::Key {
                    path: path.to_owned(),
                    source,
                })?,
            );
        }
        if keys.is_empty() {
            return Err(CliError::NoPrivateKey {
                path: path.to_owned(),
                why: " (expected a PEM `RSA PRIVATE KEY` or a Secret with tls.key)",
            });
        }
        return Ok(keys);
    }
    let secrets = key_file_secrets(bytes).map_err(|source| CliError::Manifest {
        context: format!(
            "failed to read private keys from `{}` (expected PEM, or Secrets with tls.key)",
            path.display()
        ),
        source,
    })?;
    let mut keys = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        // Every Secret of a key file must hold a key: skipping one silently would turn a
        // damaged backup into a later "no key could decrypt" that names no cause.
        let Some(pem) = s.data.get("tls.key") else {
            return Err(CliError::SecretWithoutKey {
                path: path.to_owned(),
                index: i + 1,
                name: s
                    .metadata
                    .name
                    .as_deref()
                    .map(|n| format!(" (`{n}`)"))
                    .unwrap_or_default(),
            });
        };
        keys.push(
            PrivateKey::from_pem(pem.as_bytes()).map_err(|source| CliError::Key {
                path: path.to_owned(),
                source,
            })?,
        );
    }
    if keys.is_empty() {
        return Err(CliError::NoPrivateKey {
            path: path.to_owned(),
            why: ": it holds no Secret",
        });
    }
    Ok(keys)
}

/// The Secrets of a key file, read as upstream's `readPrivKeysFromFile` reads them: client-go's
/// decoder fills in a missing `kind`/`apiVersion` from the type it decodes into, so
/// - a document with `items` and no `kind` (what `json.Marshal` of a client-go `SecretList`
///   writes, e.g. upstream's integration suite's key file) is a list, as are `kind: List` and
///   `kind: SecretList`;
/// - a list item, or a document without `items`, that has no `kind` is a Secret (v1).
///
/// An item or document of another kind is still an error naming it. Several documents are
/// accepted too (ours: upstream reads only the first).
fn key_file_secrets(bytes: &[u8]) -> Result<Vec<SecretInput>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in parse_documents(bytes)?.into_iter().enumerate() {
        let index = i + 1;
        let kind = doc.get("kind").and_then(Value::as_str);
        let is_list = matches!(kind, None | Some("List" | "SecretList"))
            && doc.get("items").is_some_and(Value::is_array);
        if !is_list {
            out.push(secret_from_value(index, assume_secret(doc))?);
            continue;
        }
        if let Value::Object(mut m) = doc
            && let Some(Value::Array(items)) = m.remove("items")
        {
            for item in items {
                out.push(secret_from_value(index, assume_secret(item))?);
            }
        }
    }
    Ok(out)
}

/// `kind: Secret` when the object names no kind (the decoder's default, see
/// [`key_file_secrets`]); anything else is left for [`secret_from_value`] to judge.
fn assume_secret(mut doc: Value) -> Value {
    if let Value::Object(m) = &mut doc
        && !m.contains_key("kind")
    {
        m.insert("kind".to_owned(), Value::String("Secret".to_owned()));
    }
    doc
}
