//! `kubeseal keys backup`: writes the key Secrets to a file (age-encrypted unless
//! `--insecure-plaintext`). `restore` reads such a file back (`backup_file`), `verify-backup`
//! proves it opens a tree; the encryption itself is `crate::backup_encryption`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::annotations::ROTATE_REQUEST;

use super::secrets::key_secrets;
use crate::args::{ControllerArgs, EncryptArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, io, printer};

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
    let secrets = crate::async_runtime::block_on(cluster::bounded(
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
        crate::backup_encryption::encrypt(text.as_bytes(), crypt)?
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
