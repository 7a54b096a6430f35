//! Reading a key backup file back (for `keys restore`): decrypted as needed, every entry a key
//! Secret holding `tls.key`; an unencrypted file only with `--insecure-plaintext`.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::wrapped_key::WRAPPED_KEY_FIELD;

use super::restore::check_encryption;
use crate::args::DecryptArgs;
use crate::error::{CliError, Result};
use crate::{io, printer};

/// The key Secrets of a backup file (decrypted as needed); an unencrypted one only with
/// `insecure_plaintext`.
pub(super) fn read_backup(
    path: &Path,
    crypt: &DecryptArgs,
    insecure_plaintext: bool,
) -> Result<Vec<Secret>> {
    let raw = io::read_file(path)?;
    check_encryption(path, &raw, insecure_plaintext)?;
    if !crate::backup_encryption::is_encrypted(&raw) {
        printer().warn(format_args!(
            "`{}` is not encrypted: nothing shows who wrote its keys",
            path.display()
        ));
    }
    let plain = crate::backup_encryption::decrypt(&raw, crypt, path)?;
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
            // A key Secret holds its key plain, or wrapped by a KMS.
            if !s
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key("tls.key") || d.contains_key(WRAPPED_KEY_FIELD))
            {
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
