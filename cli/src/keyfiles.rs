//! Private keys from files, as `--recovery-private-key` accepts them (§6.1): PEM (one or more
//! `RSA PRIVATE KEY`/`PRIVATE KEY` blocks), or JSON/YAML Secrets holding `data["tls.key"]`:
//! one Secret, a list of them, or several documents (see `key_file_secrets`). A key Secret's
//! post-quantum identity (`data["age.key"]`) is read beside its RSA key, and an age identity
//! file (`AGE-SECRET-KEY-PQ-1…` lines, what `keys backup --age-identities` writes) holds
//! post-quantum identities only.

use std::path::Path;

use sealed_secrets_api::manifest::{parse_documents, secret_from_value};
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_api::wrapped_key::WRAPPED_KEY_FIELD;
use sealed_secrets_api::{ManifestError, SecretInput};
use sealed_secrets_crypto::{KeyRing, PqIdentity, PqKeyError, PrivateKey};
use serde_json::Value;

use crate::args::DecryptArgs;
use crate::error::{CliError, Result};
use crate::io::read_file;

/// The private keys of a key file: RSA keys and post-quantum identities.
#[derive(Debug, Default)]
pub struct Keys {
    /// RSA keys (`tls.key`, PEM blocks).
    pub rsa: Vec<PrivateKey>,
    /// Post-quantum identities (`age.key`, age identity files).
    pub pq: Vec<PqIdentity>,
}

impl Keys {
    /// How many keys of both kinds.
    pub fn len(&self) -> usize {
        self.rsa.len() + self.pq.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds them all to `ring`.
    pub fn into_ring(self, ring: &mut KeyRing) {
        for k in self.rsa {
            ring.insert(k);
        }
        for id in self.pq {
            ring.insert_pq(id);
        }
    }
}

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
        load_file(Path::new(f), crypt)?.into_ring(&mut ring);
    }
    Ok(ring)
}

/// The keys in one file (an encrypted backup is decrypted first).
pub fn load_file(path: &Path, crypt: &DecryptArgs) -> Result<Keys> {
    let bytes = read_file(path)?;
    let plain = crate::backup_encryption::decrypt(&bytes, crypt, path)?;
    parse_keys(&plain, path)
}

/// Whether the first line that is not blank or a `#` comment is an age secret key: an age
/// identity file rather than PEM or manifests.
fn is_age_identity_file(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("AGE-SECRET-KEY-"))
}

/// The identities of an age identity file; errors name the file and line, never the key.
fn parse_age_identities(text: &str, path: &Path) -> Result<Vec<PqIdentity>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(line.parse().map_err(|source| CliError::PqIdentity {
            from: format!("`{}`, line {}", path.display(), i + 1),
            source,
        })?);
    }
    Ok(out)
}

/// The keys in one file's contents (PEM, Secret manifests, or an age identity file).
pub fn parse_keys(bytes: &[u8], path: &Path) -> Result<Keys> {
    let text = String::from_utf8_lossy(bytes);
    if is_age_identity_file(&text) {
        return Ok(Keys {
            rsa: Vec::new(),
            pq: parse_age_identities(&text, path)?,
        });
    }
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
        return Ok(Keys {
            rsa: keys,
            pq: Vec::new(),
        });
    }
    let secrets = key_file_secrets(bytes).map_err(|source| CliError::Manifest {
        context: format!(
            "failed to read private keys from `{}` (expected PEM, or Secrets with tls.key)",
            path.display()
        ),
        source,
    })?;
    let mut keys = Vec::new();
    let mut pq = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        // A key Secret of sealed-secrets-rs also holds its post-quantum identity.
        if let Some(line) = s.data.get(AGE_KEY_FIELD) {
            let text = std::str::from_utf8(line.as_bytes())
                .map_err(|_| PqKeyError::Bech32 { what: "identity" })
                .and_then(|t| t.trim().parse());
            pq.push(text.map_err(|source| CliError::PqIdentity {
                from: format!(
                    "`{}`: Secret {}{} data[\"{AGE_KEY_FIELD}\"]",
                    path.display(),
                    i + 1,
                    s.metadata
                        .name
                        .as_deref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default()
                ),
                source,
            })?);
        }
        // A wrapped key opens only with its KMS: say so, rather than "no tls.key".
        if s.data.contains_key(WRAPPED_KEY_FIELD) {
            return Err(CliError::KeyNotHere {
                what: format!("cannot use the keys of `{}`", path.display()),
                name: s.metadata.name.clone().unwrap_or_default(),
                held: "is wrapped by a KMS (tls.key.wrapped): its private key opens only with that KMS".to_owned(),
            }
            .with_hint(
                "restore the backup into a cluster whose controller has the KMS grant \
                 (kubeseal keys restore) and check there, or convert the keys with \
                 `kubeseal keys unwrap` and back them up again",
            ));
        }
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
    Ok(Keys { rsa: keys, pq })
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
