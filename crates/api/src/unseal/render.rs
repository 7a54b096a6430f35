//! Producing the Secret (§2.4): decrypt, then render `spec.template.data` under one budget per
//! object, then copy the template's metadata and set the ownerReference.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sealed_secrets_crypto::{Fingerprint, KeyRing};
use zeroize::Zeroize;

use super::decrypt::{DecryptedItems, UnsealOptions, count_keys, decrypt_items};
use crate::annotations;
use crate::error::{ItemError, UnsealError};
use crate::template;
use crate::types::{API_VERSION, KIND, SealedSecret};

/// Wall-clock time all `spec.template.data` items of one object may take to render together
/// (the `max_time` of [`TEMPLATE_LIMITS`]).
pub const MAX_RENDER_TIME_PER_OBJECT: Duration = Duration::from_secs(2);

/// Most `spec.template.data` items one object may have. Real objects have a handful; the cap
/// bounds the parsing and the per-item overhead of rendering, which the byte budget does not
/// see. Upstream has no such limit (a deliberate difference, like [`MAX_RSA_OPERATIONS`](crate::MAX_RSA_OPERATIONS)).
pub const MAX_TEMPLATE_ITEMS: usize = 500;

/// The ONE budget all `spec.template.data` items of an object render under together: a limit
/// per item times many items is no limit (two hundred items of `{{ repeat 1048576 "a" }}`
/// took a controller from 15 MB to 499 MB, and `kubeseal --recovery-unseal` to 1.5 GB with
/// four hundred). The first item to overrun stops the object; nothing after it is rendered.
///
/// - `max_output`, 1 MiB: everything the templates write, together. A Secret cannot hold more.
/// - `max_bytes`, 8 MiB: every value produced while rendering, together, live or not. Eight
///   times the output leaves room for any real template; it also bounds what a render can hold
///   in memory at once, so even eight hostile objects reconciled at the same time stay well
///   inside the controller's memory limit.
/// - `max_steps` and `max_time` ([`MAX_RENDER_TIME_PER_OBJECT`]): the interpreter's work.
pub const TEMPLATE_LIMITS: template::Limits = template::Limits {
    max_bytes: 8 << 20,
    max_steps: 2_000_000,
    max_time: MAX_RENDER_TIME_PER_OBJECT,
    max_output: 1 << 20,
};

/// The Secret produced by [`unseal`]. `Debug` redacts the data, and the data is zeroized on
/// drop unless moved out with [`UnsealedSecret::into_secret`].
pub struct UnsealedSecret {
    secret: Secret,
    opened_by: BTreeMap<String, Fingerprint>,
    rsa_operations: u64,
    formats: BTreeMap<&'static str, u64>,
}

impl UnsealedSecret {
    /// The Secret to create or update.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
    /// Takes the Secret out (the caller becomes responsible for its data).
    pub fn into_secret(mut self) -> Secret {
        std::mem::take(&mut self.secret)
    }
    /// One data value of the produced Secret.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
    }
    /// Encrypted item -> fingerprint of the key that opened it.
    pub fn opened_by(&self) -> &BTreeMap<String, Fingerprint> {
        &self.opened_by
    }
    /// How many values each key opened (for `key_values_opened_total`).
    pub fn key_usage(&self) -> BTreeMap<Fingerprint, u64> {
        count_keys(&self.opened_by)
    }
    /// RSA private-key operations decrypting cost (for `rsa_decryptions_total`); a failure
    /// reports its cost in [`UnsealError::rsa_operations`].
    pub fn rsa_operations(&self) -> u64 {
        self.rsa_operations
    }
    /// How many values opened in each format (see [`DecryptedItems::format_usage`]).
    pub fn format_usage(&self) -> &BTreeMap<&'static str, u64> {
        &self.formats
    }
}

impl fmt::Debug for UnsealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&String> = self.secret.data.iter().flat_map(|d| d.keys()).collect();
        f.debug_struct("UnsealedSecret")
            .field("metadata", &self.secret.metadata)
            .field("type", &self.secret.type_)
            .field("data", &format_args!("{keys:?} [REDACTED]"))
            .field("opened_by", &self.opened_by)
            .field("rsa_operations", &self.rsa_operations)
            .finish()
    }
}

impl Drop for UnsealedSecret {
    fn drop(&mut self) {
        if let Some(data) = self.secret.data.as_mut() {
            for v in data.values_mut() {
                v.0.zeroize();
            }
        }
    }
}

/// Produces the Secret for a SealedSecret (§2.4): decrypts every item with the label from the
/// SealedSecret's top-level metadata, renders `spec.template.data`, copies the template's
/// metadata/type/immutable, forces namespace and name, and sets the ownerReference unless the
/// template says `skip-set-owner-references`.
///
/// Bounded for any input: at most [`MAX_RSA_OPERATIONS`](crate::MAX_RSA_OPERATIONS) RSA operations, at most
/// [`MAX_TEMPLATE_ITEMS`] template items, and all of them rendered under the one budget of
/// [`TEMPLATE_LIMITS`]; exceeding any is an ordinary error. The controller and `kubeseal
/// --recovery-unseal` both come here, so both have the same limits and the same messages.
///
/// Template errors: the template text is public (it is stored unencrypted in the
/// SealedSecret), so the items are parsed before anything is decrypted and parse errors are
/// reported in detail ([`ItemError::Template`]). Once values are decrypted, any failure of
/// rendering is [`UnsealError::Render`], one fixed message per object; see its documentation
/// for why.
pub fn unseal(
    sealed: &SealedSecret,
    keys: &KeyRing,
    opts: &UnsealOptions,
) -> Result<UnsealedSecret, UnsealError> {
    let object = sealed.object_ref();
    // The legacy `spec.data` path ignores spec.template entirely, like upstream.
    let legacy = sealed.spec.data.as_deref().is_some_and(|d| !d.is_empty());
    let templates = if legacy {
        Vec::new()
    } else {
        parse_templates(sealed)?
    };
    let decrypted = decrypt_items(sealed, keys, opts)?;
    let template = match decrypted.legacy_template() {
        // v1 path: upstream ignores spec.template entirely.
        Some(t) => t.clone(),
        None => sealed.spec.template.clone(),
    };
    let mut data: BTreeMap<String, ByteString> = decrypted
        .iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();

    if decrypted.legacy_template().is_none() && !templates.is_empty() {
        let dot = DotMap::new(&decrypted);
        let mut renderer = template::Renderer::new(&dot.0, &TEMPLATE_LIMITS);
        for (key, parsed) in &templates {
            // The error is dropped unread: which item, which line and why all may be chosen
            // by a value (see `UnsealError::Render`).
            let Ok(rendered) = renderer.render(parsed) else {
                for v in data.values_mut() {
                    v.0.zeroize();
                }
                return Err(UnsealError::Render {
                    object,
                    rsa_operations: decrypted.rsa_operations(),
                });
            };
            data.insert(key.clone(), ByteString(rendered.into_bytes()));
        }
    }

    let mut metadata = template.metadata.clone().unwrap_or_default();
    metadata.name = sealed.metadata.name.clone();
    metadata.namespace = sealed.metadata.namespace.clone();
    let skip_owner = annotations::is_true(
        sealed
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref()),
        annotations::SKIP_SET_OWNER_REFERENCES,
    ) || annotations::is_true(
        metadata.annotations.as_ref(),
        annotations::SKIP_SET_OWNER_REFERENCES,
    );
    if !skip_owner {
        metadata.owner_references = Some(vec![owner_reference(sealed)]);
    }
    let secret = Secret {
        metadata,
        data: Some(data),
        immutable: template.immutable,
        type_: template.type_.clone(),
        string_data: None,
    };
    Ok(UnsealedSecret {
        secret,
        opened_by: decrypted.opened_by().clone(),
        rsa_operations: decrypted.rsa_operations(),
        formats: decrypted.format_usage().clone(),
    })
}

/// Parses every `spec.template.data` item, before anything is decrypted: what fails here
/// depends on the public template text alone, so it is reported item by item and line by line.
fn parse_templates(
    sealed: &SealedSecret,
) -> Result<Vec<(String, template::Template)>, UnsealError> {
    let Some(tdata) = &sealed.spec.template.data else {
        return Ok(Vec::new());
    };
    if tdata.len() > MAX_TEMPLATE_ITEMS {
        return Err(UnsealError::TooManyTemplates {
            object: sealed.object_ref(),
            items: tdata.len(),
            limit: MAX_TEMPLATE_ITEMS,
        });
    }
    let mut parsed = Vec::with_capacity(tdata.len());
    let mut errors = Vec::new();
    for (key, text) in tdata {
        match template::Template::parse(text) {
            Ok(t) => parsed.push((key.clone(), t)),
            Err(source) => errors.push(ItemError::Template {
                item: key.clone(),
                object: sealed.object_ref(),
                source,
            }),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(UnsealError::Items {
            errors,
            rsa_operations: 0,
        })
    }
}

/// The single ownerReference upstream sets (no `blockOwnerDeletion`).
pub fn owner_reference(sealed: &SealedSecret) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        name: sealed.metadata.name.clone().unwrap_or_default(),
        uid: sealed.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The template dot (`map[string]string` of decrypted values), zeroized on drop.
///
/// Go strings are byte strings; ours are UTF-8, so a non-UTF-8 value is seen by templates
/// with replacement characters (values that are not templated pass through untouched).
struct DotMap(BTreeMap<String, String>);

impl DotMap {
    fn new(items: &DecryptedItems) -> Self {
        Self(
            items
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        )
    }
}

impl Drop for DotMap {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}
