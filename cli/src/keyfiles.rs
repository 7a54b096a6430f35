//! Private keys from files, as `--recovery-private-key` accepts them (§6.1): PEM (one or more
//! `RSA PRIVATE KEY`/`PRIVATE KEY` blocks), or JSON/YAML Secrets (several documents, or a
//! `v1.List`) holding `data["tls.key"]`.

use std::path::Path;

use sealed_secrets_api::parse_secrets;
use sealed_secrets_crypto::{KeyRing, PrivateKey};

use crate::cli::DecryptArgs;
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
    let plain = crate::backup::decrypt(&bytes, crypt, path)?;
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
    let secrets = parse_secrets(bytes).map_err(|source| CliError::Manifest {
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
