//! Key backups as files: `kubeseal keys backup` writes the key Secrets (age-encrypted unless
//! `--insecure-plaintext`), `read_backup` reads them back for `restore`, and
//! `kubeseal keys verify-backup` proves offline that a backup opens every SealedSecret in a
//! tree. The encryption itself is `crate::backup`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::annotations::ROTATE_REQUEST;
use sealed_secrets_api::{UnsealOptions, decrypt_items};
use sealed_secrets_crypto::KeyRing;

use super::secrets::key_secrets;
use crate::cli::{ControllerArgs, DecryptArgs, EncryptArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, docs, io, keyfiles, printer};

/// `kubeseal keys backup`: refuses before touching the cluster when the output exists
/// (without `--force`) or the flags conflict, then writes the file owner-only.
pub(super) fn backup(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    output: PathBuf,
    insecure_plaintext: bool,
    force: bool,
    crypt: &EncryptArgs,
) -> Result<Outcome> {
    // Refuse early, before touching the cluster.
    if output.exists() && !force {
        return Err(CliError::WouldOverwrite { path: output });
    }
    if insecure_plaintext && !crypt.recipient.is_empty() {
        return Err(CliError::FlagsExclusive(
            "--insecure-plaintext",
            "--recipient",
        ));
    }
    let secrets = crate::runtime::block_on(cluster::bounded(
        kube,
        "cannot back up keys",
        key_secrets(controller, kube),
    ))??;
    let text = backup_text(&secrets)?;
    let data = if insecure_plaintext {
        printer().warn(format_args!(
            "writing private keys UNENCRYPTED to `{}`",
            output.display()
        ));
        text.into_bytes()
    } else {
        crate::backup::encrypt(text.as_bytes(), crypt)?
    };
    io::create_private_file(&output, &data, force)?;
    printer().status(format_args!(
        "backed up {} key(s) to `{}`{}",
        secrets.len(),
        output.display(),
        if insecure_plaintext {
            ""
        } else {
            " (age-encrypted)"
        }
    ));
    Ok(Outcome::Success)
}

/// A backup: the key Secrets without server fields, as a `v1.List` in YAML.
fn backup_text(secrets: &[Secret]) -> Result<String> {
    let items: Vec<serde_json::Value> = secrets
        .iter()
        .map(|s| {
            let m = &s.metadata;
            let mut meta = serde_json::Map::new();
            meta.insert("name".into(), m.name.clone().unwrap_or_default().into());
            meta.insert(
                "namespace".into(),
                m.namespace.clone().unwrap_or_default().into(),
            );
            if let Some(l) = &m.labels {
                meta.insert("labels".into(), serde_json::json!(l));
            }
            if let Some(a) = &m.annotations {
                let a: BTreeMap<_, _> = a
                    .iter()
                    .filter(|(k, _)| k.as_str() != ROTATE_REQUEST)
                    .collect();
                if !a.is_empty() {
                    meta.insert("annotations".into(), serde_json::json!(a));
                }
            }
            if let Some(t) = &m.creation_timestamp {
                meta.insert("creationTimestamp".into(), t.0.to_string().into());
            }
            let data: BTreeMap<&String, String> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k, sealed_secrets_crypto::encode_base64(&v.0)))
                .collect();
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta,
                "type": s.type_.clone().unwrap_or_else(|| "kubernetes.io/tls".to_owned()),
                "data": data,
            })
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    Ok(sealed_secrets_api::output::value_to_yaml(&list)?)
}

/// The key Secrets of a backup file (decrypted as needed); an unencrypted one only with
/// `insecure_plaintext`.
pub(super) fn read_backup(
    path: &Path,
    crypt: &DecryptArgs,
    insecure_plaintext: bool,
) -> Result<Vec<Secret>> {
    let raw = io::read_file(path)?;
    super::restore::check_encryption(path, &raw, insecure_plaintext)?;
    if !crate::backup::is_encrypted(&raw) {
        printer().warn(format_args!(
            "`{}` is not encrypted: nothing shows who wrote its keys",
            path.display()
        ));
    }
    let plain = crate::backup::decrypt(&raw, crypt, path)?;
    let docs = sealed_secrets_api::manifest::parse_documents(&plain).map_err(|source| {
        CliError::Manifest {
            context: format!("backup `{}` is not a list of key Secrets", path.display()),
            source,
        }
    })?;
    let mut out = Vec::new();
    for d in docs {
        let items = match d.get("kind").and_then(|k| k.as_str()) {
            Some("List") | Some("SecretList") => d
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default(),
            _ => vec![d],
        };
        for i in items {
            let s: Secret =
                serde_json::from_value(i).map_err(|cause| CliError::BackupInvalidSecret {
                    path: path.to_owned(),
                    cause,
                })?;
            if !s.data.as_ref().is_some_and(|d| d.contains_key("tls.key")) {
                return Err(CliError::BackupSecretWithoutKey {
                    path: path.to_owned(),
                    index: out.len() + 1,
                    name: s
                        .metadata
                        .name
                        .as_deref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default(),
                });
            }
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(CliError::BackupWithoutKeys {
            path: path.to_owned(),
        });
    }
    Ok(out)
}

pub(super) fn verify_backup(file: &Path, dirs: &[PathBuf], crypt: &DecryptArgs) -> Result<Outcome> {
    let raw = io::read_file(file)?;
    let plain = crate::backup::decrypt(&raw, crypt, file)?;
    let mut ring = KeyRing::new();
    for key in keyfiles::parse_keys(&plain, file)? {
        ring.insert(key);
    }
    let opts = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..UnsealOptions::default()
    };
    let (mut ok, mut bad) = (0usize, Vec::new());
    for (path, text) in docs::sealed_files(dirs)? {
        let mut errors = Vec::new();
        for (doc, ss) in docs::sealed_secrets(&text, &mut errors) {
            match decrypt_items(&ss, &ring, &opts) {
                Ok(_) => ok += 1,
                Err(e) => bad.push(format!(
                    "{}:{}: SealedSecret `{}`: {e}",
                    path.display(),
                    doc.line,
                    ss.object_ref()
                )),
            }
        }
        for e in errors {
            bad.push(format!("{}: {e}", path.display()));
        }
    }
    let mut out = String::new();
    for b in &bad {
        out.push_str(b);
        out.push('\n');
    }
    io::write_stdout(out.as_bytes())?;
    printer().status(format_args!(
        "backup holds {} key(s); it opens {ok} SealedSecret(s), {} cannot be opened",
        ring.len(),
        bad.len()
    ));
    if bad.is_empty() {
        Ok(Outcome::Success)
    } else {
        Err(CliError::BackupIncomplete { count: bad.len() })
    }
}
