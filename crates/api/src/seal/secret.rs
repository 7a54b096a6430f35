//! Sealing one Secret (§6.3 steps 1-6) and one raw value (`--raw`), and the metadata helpers
//! that merging and resealing share with them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_crypto::{Scope, encode_base64};

use super::recipients::Recipients;

use crate::annotations;
use crate::error::SealingError;
use crate::manifest::SecretInput;
use crate::types::{EncryptedData, ObjectRef, SealedSecret, SealedSecretSpec, SecretTemplateSpec};

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

/// Seals one Secret (§6.3 steps 1-6).
///
/// One recipient gives upstream's format (readable by upstream controllers); several give our
/// multi-recipient format. Top-level metadata gets name, namespace, the scope annotation for
/// non-strict scopes and our `sealing-key` hint; the template gets a copy of the input's
/// metadata without server fields, last-applied annotations and ownerReferences.
pub fn seal_secret<'r>(
    secret: SecretInput,
    recipients: impl Into<Recipients<'r>>,
    opts: &SealOptions,
) -> Result<SealedSecret, SealingError> {
    let recipients = recipients.into();
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
        let ct = seal_value(&recipients, &label, value.as_bytes()).map_err(|source| {
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
    set_sealing_key(&mut top, &recipients);

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
pub(super) fn seal_value(
    recipients: &Recipients<'_>,
    label: &[u8],
    value: &[u8],
) -> Result<String, sealed_secrets_crypto::SealError> {
    Ok(encode_base64(&recipients.seal(label, value)?))
}

/// Upstream's `UpdateScopeAnnotations`: removes both scope annotations, then sets the one for
/// `scope` (none for strict).
pub(super) fn set_scope_annotations(
    annotations: &mut Option<BTreeMap<String, String>>,
    scope: Scope,
) {
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
/// A post-quantum recipient's fingerprint is recorded the same way: the controller ignores
/// hints it holds no RSA key for, and `kubeseal audit --key` finds objects by it.
pub(super) fn set_sealing_key(meta: &mut ObjectMeta, recipients: &Recipients<'_>) {
    let fps = recipients.fingerprints();
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(annotations::SEALING_KEY.to_owned(), fps.join(","));
}

/// §6.3 step 5: fields the API server owns.
pub(super) fn strip_server_fields(meta: &mut ObjectMeta) {
    meta.self_link = None;
    meta.uid = None;
    meta.resource_version = None;
    meta.generation = None;
    meta.creation_timestamp = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
}

/// Go omits empty maps (`omitempty`); keep our output identical.
pub(super) fn drop_empty_maps(meta: &mut ObjectMeta) {
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
pub fn seal_raw<'r>(
    value: &[u8],
    recipients: impl Into<Recipients<'r>>,
    scope: Scope,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<String, SealingError> {
    let recipients = recipients.into();
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
    seal_value(&recipients, &scope.label(namespace, name), value).map_err(SealingError::EncryptRaw)
}
