//! `kubeseal --merge-into`: sealing more items into an existing SealedSecret.

use std::collections::BTreeMap;

use super::recipients::Recipients;
use super::secret::seal_value;
use crate::annotations;
use crate::error::SealingError;
use crate::manifest::SecretInput;
use crate::types::{ObjectRef, SealedSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `kubeseal --merge-into`: seals `secrets` for `target` and merges them into it.
///
/// Unlike upstream (§9.2 item 8), the items are sealed with the TARGET's namespace, name and
/// scope (read from its top-level metadata), so merged items always unseal. Input labels and
/// annotations are merged into the template, except scope and last-applied annotations.
/// The `sealing-key` hint becomes the union of the old and new fingerprints. Post-quantum
/// items may join an object of RSA items (and the reverse): each value names its own format.
///
/// Input without any data item leaves `target` untouched (no label, annotation or hint is
/// merged): a merge that adds nothing must not rewrite the file it was pointed at.
pub fn merge_into<'r>(
    target: &mut SealedSecret,
    secrets: Vec<SecretInput>,
    recipients: impl Into<Recipients<'r>>,
) -> Result<(), SealingError> {
    let recipients = recipients.into();
    if recipients.is_empty() {
        return Err(SealingError::NoRecipient);
    }
    if secrets.iter().all(|s| s.data.is_empty()) {
        return Ok(());
    }
    let name = target
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(SealingError::TargetWithoutName)?;
    let namespace = target.metadata.namespace.clone().unwrap_or_default();
    let scope = annotations::scope(target.metadata.annotations.as_ref());
    let label = scope.label(&namespace, &name);
    let object = ObjectRef {
        namespace,
        name: name.clone(),
    };
    for secret in secrets {
        for (item, value) in &secret.data {
            let ct = seal_value(&recipients, &label, value.as_bytes()).map_err(|source| {
                SealingError::Encrypt {
                    item: item.clone(),
                    object: object.clone(),
                    source,
                }
            })?;
            target.spec.encrypted_data.insert(item.clone(), ct);
        }
        let tmeta = target
            .spec
            .template
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        if let Some(labels) = secret.metadata.labels {
            tmeta
                .labels
                .get_or_insert_with(BTreeMap::new)
                .extend(labels);
        }
        if let Some(mut ann) = secret.metadata.annotations {
            for key in annotations::LAST_APPLIED.iter().chain(&[
                annotations::CLUSTER_WIDE,
                annotations::NAMESPACE_WIDE,
                annotations::SEALING_KEY,
            ]) {
                ann.remove(*key);
            }
            if !ann.is_empty() {
                tmeta
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(ann);
            }
        }
    }
    let mut fps: Vec<String> = sealing_key_list(&target.metadata);
    for fp in recipients.fingerprints() {
        if !fps.contains(&fp) {
            fps.push(fp);
        }
    }
    target
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(annotations::SEALING_KEY.to_owned(), fps.join(","));
    Ok(())
}

fn sealing_key_list(meta: &ObjectMeta) -> Vec<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(annotations::SEALING_KEY))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
