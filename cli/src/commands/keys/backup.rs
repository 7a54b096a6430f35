//! `kubeseal keys backup`: writes the key Secrets to a file (age-encrypted unless
//! `--insecure-plaintext`). `restore` reads such a file back (`backup_file`), `verify-backup`
//! proves it opens a tree; the encryption itself is `crate::backup_encryption`'s. Every data
//! field of a key Secret is kept, its post-quantum identity (`age.key`) included; with
//! `--age-identities` those identities are also written as a stock age identity file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::annotations::ROTATE_REQUEST;
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_crypto::{PqIdentity, PqKeyError, Zeroizing};

use super::secrets::key_secrets;
use crate::args::{ControllerArgs, EncryptArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, io, printer};

/// The files `keys backup` writes.
pub(super) struct Outputs {
    /// `-o`: the backup.
    pub(super) backup: PathBuf,
    /// `--age-identities`: the post-quantum identities for stock age.
    pub(super) age_identities: Option<PathBuf>,
}

/// `kubeseal keys backup`: refuses before touching the cluster when an output exists
/// (without `--force`) or the flags conflict, then writes the file(s) owner-only.
pub(super) fn backup(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    outputs: Outputs,
    insecure_plaintext: bool,
    force: bool,
    crypt: &EncryptArgs,
) -> Result<Outcome> {
    let output = outputs.backup;
    // Refuse early, before touching the cluster.
    for path in std::iter::once(&output).chain(&outputs.age_identities) {
        if path.exists() && !force {
            return Err(CliError::WouldOverwrite { path: path.clone() });
        }
    }
    if outputs.age_identities.as_ref() == Some(&output) {
        return Err(CliError::FlagsExclusive("-o FILE", "--age-identities FILE")
            .with_hint("write the age identities to a file of their own"));
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
    // Built (and every age.key checked) before anything is written: no half-done backup.
    let identities = match &outputs.age_identities {
        Some(_) => Some(age_identity_file(
            &secrets,
            &controller.controller_namespace,
        )?),
        None => None,
    };
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
    if let (Some(path), Some((text, count))) = (&outputs.age_identities, identities) {
        io::create_private_file(path, text.as_bytes(), force)?;
        printer().warn(format_args!(
            "wrote {count} post-quantum private key(s) UNENCRYPTED to `{}` (an age identity file: `age -d -i {}` opens the post-quantum values)",
            path.display(),
            path.display()
        ));
    }
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

/// The age identity file of the key Secrets' `age.key` fields, oldest key first, each with
/// its Secret's name and recipient as comments, and how many it holds. Every `age.key` must
/// parse; none at all is an error (the file would open nothing). Pure.
pub(super) fn age_identity_file(
    secrets: &[Secret],
    namespace: &str,
) -> Result<(Zeroizing<String>, usize)> {
    let mut text = Zeroizing::new(format!(
        "# post-quantum identities of the sealed-secrets controller in namespace `{namespace}`,\n\
         # written by kubeseal keys backup --age-identities: `age -d -i THIS_FILE` opens its values\n"
    ));
    let mut count = 0;
    for s in secrets {
        let Some(line) = s.data.as_ref().and_then(|d| d.get(AGE_KEY_FIELD)) else {
            continue;
        };
        let name = s.metadata.name.clone().unwrap_or_default();
        let id: PqIdentity = std::str::from_utf8(&line.0)
            .map_err(|_| PqKeyError::Bech32 { what: "identity" })
            .and_then(|t| t.trim().parse())
            .map_err(|source| CliError::PqIdentity {
                from: format!("key Secret `{namespace}/{name}` data[\"{AGE_KEY_FIELD}\"]"),
                source,
            })?;
        text.push_str(&format!(
            "\n# key Secret: {name}\n# public key: {}\n",
            id.recipient()
        ));
        text.push_str(&id.to_age_string());
        text.push('\n');
        count += 1;
    }
    if count == 0 {
        return Err(CliError::NoPqIdentity {
            namespace: namespace.to_owned(),
        });
    }
    Ok((text, count))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn mk_secret(name: &str, age_key: Option<&[u8]>) -> Secret {
        let mut data = BTreeMap::from([("tls.key".to_owned(), ByteString(b"k".to_vec()))]);
        if let Some(a) = age_key {
            data.insert(AGE_KEY_FIELD.to_owned(), ByteString(a.to_vec()));
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..Secret::default()
        }
    }

    #[test]
    fn backups_keep_age_key_and_export_an_age_identity_file() {
        let a = PqIdentity::generate().unwrap();
        let b = PqIdentity::generate().unwrap();
        let line = |id: &PqIdentity| format!("{}\n", id.to_age_string().as_str());
        let secrets = [
            mk_secret("k1", Some(line(&a).as_bytes())),
            mk_secret("legacy", None),
            mk_secret("k2", Some(line(&b).as_bytes())),
        ];
        let yaml = backup_text(&secrets).unwrap();
        assert!(yaml.contains(&format!("{AGE_KEY_FIELD}: ")), "{yaml}");

        let (text, count) = age_identity_file(&secrets, "kube-system").unwrap();
        assert_eq!(count, 2);
        let ids = PqIdentity::parse_file(&text).unwrap();
        let got: Vec<_> = ids.iter().map(|i| i.recipient().clone()).collect();
        assert_eq!(got, [a.recipient().clone(), b.recipient().clone()]);
        assert!(text.contains("# key Secret: k2"));

        let none = age_identity_file(&secrets[1..2], "kube-system").unwrap_err();
        assert!(matches!(none, CliError::NoPqIdentity { .. }), "{none}");
        let broken = [mk_secret("bad", Some(b"AGE-SECRET-KEY-PQ-1QQQQ"))];
        let e = age_identity_file(&broken, "kube-system").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid post-quantum identity in key Secret `kube-system/bad` data[\"age.key\"]"
        );
    }
}
