//! Resealing decrypted values for new keys: the core of the controller's rotate and of
//! `kubeseal reencrypt`.

use super::recipients::Recipients;
use super::secret::{drop_empty_maps, seal_value, set_sealing_key, strip_server_fields};
use crate::annotations;
use crate::error::SealingError;
use crate::types::{EncryptedData, ObjectRef, SealedSecret};
use crate::unseal::DecryptedItems;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Re-encrypts decrypted values for new key(s): the rotate / re-encrypt core.
///
/// The result keeps `sealed`'s top-level metadata (minus server fields, with a new
/// `sealing-key` hint) and its template untouched: metadata, type, immutable and
/// `template.data` (unlike upstream's rotate, which flattens templates, §9.2 item 5). The
/// label comes from the TOP-LEVEL metadata only (GHSA-465p-v42x-3fmj). A legacy `spec.data`
/// object comes out in the `encryptedData` format, its template rebuilt from the legacy Secret.
pub fn reseal<'r>(
    sealed: &SealedSecret,
    items: &DecryptedItems,
    recipients: impl Into<Recipients<'r>>,
) -> Result<SealedSecret, SealingError> {
    let recipients = recipients.into();
    if recipients.is_empty() {
        return Err(SealingError::NoRecipient);
    }
    let mut out = sealed.clone();
    out.status = None;
    strip_server_fields(&mut out.metadata);
    out.metadata.managed_fields = None;
    let name = out.metadata.name.clone().unwrap_or_default();
    let namespace = out.metadata.namespace.clone().unwrap_or_default();
    let scope = annotations::scope(out.metadata.annotations.as_ref());
    let label = scope.label(&namespace, &name);
    let object = ObjectRef { namespace, name };
    let mut encrypted = EncryptedData::new();
    for (item, value) in items.iter() {
        let ct = seal_value(&recipients, &label, value.as_bytes()).map_err(|source| {
            SealingError::Encrypt {
                item: item.to_owned(),
                object: object.clone(),
                source,
            }
        })?;
        encrypted.insert(item, ct);
    }
    out.spec.encrypted_data = encrypted;
    if out.spec.data.take().is_some()
        && let Some(t) = items.legacy_template()
    {
        out.spec.template = t.clone();
    }
    if let Some(meta) = out.spec.template.metadata.as_mut() {
        strip_for_output(meta);
    }
    if let Some(a) = out.metadata.annotations.as_mut() {
        a.remove(annotations::SEALING_KEY);
        for key in annotations::LAST_APPLIED {
            a.remove(key);
        }
    }
    set_sealing_key(&mut out.metadata, &recipients);
    drop_empty_maps(&mut out.metadata);
    Ok(out)
}

/// What [`seal_secret`](super::secret::seal_secret) leaves out of a template's metadata, applied to a resealed one: a
/// legacy `spec.data` object's decrypted Secret carries whatever metadata it was sealed with,
/// including `last-applied-configuration` (which can hold the plaintext data) and server
/// fields. Rotate answers with this, and `kubeseal reencrypt` writes it.
fn strip_for_output(meta: &mut ObjectMeta) {
    strip_server_fields(meta);
    meta.managed_fields = None;
    meta.owner_references = None;
    if let Some(a) = meta.annotations.as_mut() {
        for key in annotations::LAST_APPLIED {
            a.remove(key);
        }
        a.remove(annotations::SEALING_KEY);
    }
    drop_empty_maps(meta);
}
