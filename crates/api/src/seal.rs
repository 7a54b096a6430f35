//! Sealing: what `kubeseal` does to Secret manifests (§6.3), plus the helpers behind
//! `--raw`, `--merge-into` and offline re-encryption.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_crypto::{PublicKey, Scope, encode_base64, seal, seal_multi};

use crate::annotations;
use crate::error::SealingError;
use crate::manifest::{SecretInput, parse_secrets};
use crate::types::{EncryptedData, ObjectRef, SealedSecret, SealedSecretSpec, SecretTemplateSpec};
use crate::unseal::DecryptedItems;

/// How to seal, mirroring kubeseal's flags.
#[derive(Clone, Debug)]
pub struct SealOptions {
    /// `--scope`. [`Scope::Strict`] (the default) keeps whatever scope annotations the input
    /// carries, like upstream; other values rewrite them.
    pub scope: Scope,
    /// `--name`: overrides `metadata.name` of every input Secret.
    pub name: Option<String>,
    /// `--namespace` when given explicitly: a Secret declaring another namespace is an error.
    pub explicit_namespace: Option<String>,
    /// Namespace for Secrets that declare none (explicit flag, else kubeconfig context
    /// namespace, else `default`). Unused for cluster-wide Secrets.
    pub default_namespace: String,
    /// `--allow-empty-data`.
    pub allow_empty_data: bool,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            scope: Scope::Strict,
            name: None,
            explicit_namespace: None,
            default_namespace: "default".to_owned(),
            allow_empty_data: false,
        }
    }
}

/// Seals every Secret of a YAML/JSON stream. Errors on empty input (§6.4) and on documents
/// that are not Secrets.
pub fn seal_manifests(
    input: &[u8],
    recipients: &[&PublicKey],
    opts: &SealOptions,
) -> Result<Vec<SealedSecret>, SealingError> {
    let secrets = parse_secrets(input)?;
    if secrets.is_empty() {
        return Err(SealingError::NoSecrets);
    }
    secrets
        .into_iter()
        .map(|s| seal_secret(s, recipients, opts))
        .collect()
}

/// Seals one Secret (§6.3 steps 1-6).
///
/// One recipient gives upstream's format (readable by upstream controllers); several give our
/// multi-recipient format. Top-level metadata gets name, namespace, the scope annotation for
/// non-strict scopes and our `sealing-key` hint; the template gets a copy of the input's
/// metadata without server fields, last-applied annotations and ownerReferences.
pub fn seal_secret(
    secret: SecretInput,
    recipients: &[&PublicKey],
    opts: &SealOptions,
) -> Result<SealedSecret, SealingError> {
    if recipients.is_empty() {
        return Err(SealingError::NoRecipient);
    }
    let SecretInput {
        mut metadata,
        type_,
        immutable,
        data,
    } = secret;
    if data.is_empty() && !opts.allow_empty_data {
        return Err(SealingError::EmptyData);
    }
    if let Some(name) = &opts.name {
        metadata.name = Some(name.clone());
    }
    if metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err(SealingError::MissingName);
    }
    if opts.scope != Scope::Strict {
        set_scope_annotations(&mut metadata.annotations, opts.scope);
    }
    let scope = annotations::scope(metadata.annotations.as_ref());
    if scope != Scope::ClusterWide {
        let declared = metadata.namespace.clone().unwrap_or_default();
        match &opts.explicit_namespace {
            Some(flag) if !declared.is_empty() && declared != *flag => {
                return Err(SealingError::NamespaceMismatch {
                    secret: declared,
                    flag: flag.clone(),
                });
            }
            _ => {}
        }
        if declared.is_empty() {
            let ns = opts
                .explicit_namespace
                .clone()
                .unwrap_or_else(|| opts.default_namespace.clone());
            if ns.is_empty() {
                return Err(SealingError::MissingNamespace);
            }
            metadata.namespace = Some(ns);
        }
    }
    strip_server_fields(&mut metadata);

    let name = metadata.name.clone().unwrap_or_default();
    let namespace = metadata.namespace.clone().unwrap_or_default();
    let object = ObjectRef {
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let label = scope.label(&namespace, &name);
    let mut encrypted = EncryptedData::new();
    for (item, value) in &data {
        let ct = seal_value(recipients, &label, value.as_bytes()).map_err(|source| {
            SealingError::Encrypt {
                item: item.clone(),
                object: object.clone(),
                source,
            }
        })?;
        encrypted.insert(item.clone(), ct);
    }

    let mut template_meta = metadata;
    template_meta.owner_references = None;
    if let Some(a) = template_meta.annotations.as_mut() {
        for key in annotations::LAST_APPLIED {
            a.remove(key);
        }
        a.remove(annotations::SEALING_KEY);
    }
    drop_empty_maps(&mut template_meta);

    let mut top = ObjectMeta {
        name: Some(name),
        namespace: (!namespace.is_empty()).then_some(namespace),
        ..ObjectMeta::default()
    };
    set_scope_annotations(&mut top.annotations, scope);
    set_sealing_key(&mut top, recipients);

    Ok(SealedSecret {
        metadata: top,
        spec: SealedSecretSpec {
            template: SecretTemplateSpec {
                metadata: Some(template_meta),
                type_,
                immutable,
                data: None,
            },
            data: None,
            encrypted_data: encrypted,
        },
        status: None,
    })
}

/// Encrypts one value for `recipients` and base64-encodes it.
fn seal_value(
    recipients: &[&PublicKey],
    label: &[u8],
    value: &[u8],
) -> Result<String, sealed_secrets_crypto::SealError> {
    let ct = match recipients {
        [one] => seal(one, label, value)?,
        many => seal_multi(many, label, value)?,
    };
    Ok(encode_base64(&ct))
}

/// Upstream's `UpdateScopeAnnotations`: removes both scope annotations, then sets the one for
/// `scope` (none for strict).
fn set_scope_annotations(annotations: &mut Option<BTreeMap<String, String>>, scope: Scope) {
    let map = annotations.get_or_insert_with(BTreeMap::new);
    map.remove(annotations::CLUSTER_WIDE);
    map.remove(annotations::NAMESPACE_WIDE);
    if let Some(key) = annotations::scope_annotation(scope) {
        map.insert(key.to_owned(), "true".to_owned());
    }
    if map.is_empty() {
        *annotations = None;
    }
}

/// Records the recipients' fingerprints in our hint annotation.
fn set_sealing_key(meta: &mut ObjectMeta, recipients: &[&PublicKey]) {
    let mut fps: Vec<String> = recipients
        .iter()
        .map(|k| k.fingerprint().to_string())
        .collect();
    fps.dedup();
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(annotations::SEALING_KEY.to_owned(), fps.join(","));
}

/// §6.3 step 5: fields the API server owns.
fn strip_server_fields(meta: &mut ObjectMeta) {
    meta.self_link = None;
    meta.uid = None;
    meta.resource_version = None;
    meta.generation = None;
    meta.creation_timestamp = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
}

/// Go omits empty maps (`omitempty`); keep our output identical.
fn drop_empty_maps(meta: &mut ObjectMeta) {
    if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.annotations = None;
    }
    if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.labels = None;
    }
}

/// `kubeseal --raw`: seals one value and returns bare standard base64 (no newline).
///
/// Strict needs `namespace` and `name`, namespace-wide needs `namespace`, cluster-wide
/// neither (upstream's rules and messages). The caller must add the scope annotation to the
/// SealedSecret the value goes into.
pub fn seal_raw(
    value: &[u8],
    recipients: &[&PublicKey],
    scope: Scope,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<String, SealingError> {
    if recipients.is_empty() {
        return Err(SealingError::NoRecipient);
    }
    let namespace = namespace.unwrap_or("");
    let name = name.unwrap_or("");
    if scope != Scope::ClusterWide && namespace.is_empty() {
        return Err(SealingError::RawNeedsNamespace);
    }
    if scope == Scope::Strict && name.is_empty() {
        return Err(SealingError::RawNeedsName);
    }
    seal_value(recipients, &scope.label(namespace, name), value).map_err(SealingError::EncryptRaw)
}

/// `kubeseal --merge-into`: seals `secrets` for `target` and merges them into it.
///
/// Unlike upstream (§9.2 item 8), the items are sealed with the TARGET's namespace, name and
/// scope (read from its top-level metadata), so merged items always unseal. Input labels and
/// annotations are merged into the template, except scope and last-applied annotations.
/// The `sealing-key` hint becomes the union of the old and new fingerprints.
///
/// Input without any data item leaves `target` untouched (no label, annotation or hint is
/// merged): a merge that adds nothing must not rewrite the file it was pointed at.
pub fn merge_into(
    target: &mut SealedSecret,
    secrets: Vec<SecretInput>,
    recipients: &[&PublicKey],
) -> Result<(), SealingError> {
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
            let ct = seal_value(recipients, &label, value.as_bytes()).map_err(|source| {
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
    for k in recipients {
        let fp = k.fingerprint().to_string();
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

/// Re-encrypts decrypted values for new key(s): the rotate / re-encrypt core.
///
/// The result keeps `sealed`'s top-level metadata (minus server fields, with a new
/// `sealing-key` hint) and its template untouched: metadata, type, immutable and
/// `template.data` (unlike upstream's rotate, which flattens templates, §9.2 item 5). The
/// label comes from the TOP-LEVEL metadata only (GHSA-465p-v42x-3fmj). A legacy `spec.data`
/// object comes out in the `encryptedData` format, its template rebuilt from the legacy Secret.
pub fn reseal(
    sealed: &SealedSecret,
    items: &DecryptedItems,
    recipients: &[&PublicKey],
) -> Result<SealedSecret, SealingError> {
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
        let ct = seal_value(recipients, &label, value.as_bytes()).map_err(|source| {
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
    set_sealing_key(&mut out.metadata, recipients);
    drop_empty_maps(&mut out.metadata);
    Ok(out)
}

/// What [`seal_secret`] leaves out of a template's metadata, applied to a resealed one: a
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
