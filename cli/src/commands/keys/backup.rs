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
use sealed_secrets_api::wrapped_key::is_wrapped;
use sealed_secrets_crypto::{PqIdentity, PqKeyError, Zeroizing};

use super::secrets::{key_secrets, token_held};
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
    let all = crate::async_runtime::block_on(cluster::bounded(
        kube,
        "cannot back up keys",
        key_secrets(controller, kube),
    ))??;
    let ns = &controller.controller_namespace;
    let secrets = exportable(all, ns)?;
    let wrapped = secrets.iter().filter(|s| is_wrapped(s)).count();
    if wrapped > 0 {
        printer().note(format_args!(
            "{wrapped} key(s) are wrapped by a KMS and stay wrapped in the backup: restoring them \
             needs that KMS key, a grant to use it, the namespace `{ns}`, the same Secret names and \
             the controller's --key-wrap-cluster (docs/security.md, \"Tier 2\")"
        ));
    }
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

/// What to tell the operator about a key held in a PKCS#11 token (docs/security.md, "Tier 1").
const TOKEN_BACKUP_ADVICE: &str = "its private key is in the PKCS#11 token and cannot be \
    exported (the Secret holds only the certificate and a reference to the token object): back \
    up the token object itself, with the HSM's own backup, replication or key ceremony";

/// The key Secrets a backup can hold: token-held keys are left out, each named with what to
/// back up instead; none left at all is an error (the file would restore nothing).
pub(super) fn exportable(secrets: Vec<Secret>, namespace: &str) -> Result<Vec<Secret>> {
    let (token, out): (Vec<Secret>, Vec<Secret>) = secrets.into_iter().partition(token_held);
    for s in &token {
        printer().warn(format_args!(
            "key Secret `{namespace}/{}` is NOT in this backup: {TOKEN_BACKUP_ADVICE}",
            s.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    match (out.is_empty(), token.first()) {
        (true, Some(first)) => Err(CliError::KeyNotHere {
            what: "nothing to back up".to_owned(),
            name: format!(
                "{namespace}/{}",
                first.metadata.name.as_deref().unwrap_or_default()
            ),
            held: "(like every key here) is held in a PKCS#11 token".to_owned(),
        }
        .with_hint(TOKEN_BACKUP_ADVICE)),
        _ => Ok(out),
    }
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
        // A wrapped key's identity is inside its envelope: refused rather than silently left
        // out of a file meant to open every post-quantum value.
        if is_wrapped(s) {
            return Err(CliError::KeyNotHere {
                what: "cannot export post-quantum identities".to_owned(),
                name: format!(
                    "{namespace}/{}",
                    s.metadata.name.as_deref().unwrap_or_default()
                ),
                held: "is wrapped by a KMS (its age.key is inside the envelope)".to_owned(),
            }
            .with_hint(
                "back up without --age-identities (wrapped keys stay wrapped), or convert the \
                 keys with `kubeseal keys unwrap` first",
            ));
        }
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
    fn token_held_keys_are_never_exported() {
        let mut token = mk_secret("t", None);
        token.type_ = Some(sealed_secrets_api::token_key::TOKEN_KEY_SECRET_TYPE.to_owned());
        token.data.as_mut().unwrap().remove("tls.key");
        let kept = exportable(vec![mk_secret("p", None), token.clone()], "ns").unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].metadata.name.as_deref(), Some("p"));
        let e = exportable(vec![token], "ns").unwrap_err();
        assert!(e.to_string().contains("held in a PKCS#11 token"), "{e}");
        assert!(e.hint().unwrap().contains("back up the token object"));
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
        let mut wrapped = mk_secret("w", None);
        let data = wrapped.data.as_mut().unwrap();
        data.remove("tls.key");
        data.insert(
            sealed_secrets_api::wrapped_key::WRAPPED_KEY_FIELD.to_owned(),
            ByteString(b"SSKW".to_vec()),
        );
        let e = age_identity_file(&[secrets[0].clone(), wrapped.clone()], "ns").unwrap_err();
        assert!(e.to_string().contains("is wrapped by a KMS"), "{e}");
        // Wrapped keys stay wrapped in a backup.
        let yaml = backup_text(std::slice::from_ref(&wrapped)).unwrap();
        assert!(
            yaml.contains("tls.key.wrapped") && !yaml.contains("tls.key:"),
            "{yaml}"
        );

        let broken = [mk_secret("bad", Some(b"AGE-SECRET-KEY-PQ-1QQQQ"))];
        let e = age_identity_file(&broken, "kube-system").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid post-quantum identity in key Secret `kube-system/bad` data[\"age.key\"]"
        );
    }
}
