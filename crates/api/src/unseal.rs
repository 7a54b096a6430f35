//! Unsealing: what the controller does to a SealedSecret (§2.4, §2.5), and the
//! template-free [`verify`] and [`decrypt_items`] the verify and rotate paths must use: running
//! attacker-supplied templates there made upstream a decryption oracle (§9.3).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sealed_secrets_crypto::{Fingerprint, KeyRing, OpenError, Plaintext, RsaBudget, decode_base64};
use zeroize::Zeroize;

use crate::annotations;
use crate::error::{ItemError, MAX_RSA_OPERATIONS, UnsealError};
use crate::template;
use crate::types::{API_VERSION, KIND, ObjectRef, SealedSecret, SecretTemplateSpec};

/// Wall-clock time all `spec.template.data` items of one object may take to render together
/// (the `max_time` of [`TEMPLATE_LIMITS`]).
pub const MAX_RENDER_TIME_PER_OBJECT: Duration = Duration::from_secs(2);

/// Most `spec.template.data` items one object may have. Real objects have a handful; the cap
/// bounds the parsing and the per-item overhead of rendering, which the byte budget does not
/// see. Upstream has no such limit (a deliberate difference, like [`MAX_RSA_OPERATIONS`]).
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

/// Controller switches that change unsealing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnsealOptions {
    /// Accept the deprecated whole-Secret `spec.data` (controller flag
    /// `--accept-deprecated-v1-data`, default true there; false here as in upstream's library
    /// and `kubeseal --recovery-unseal`).
    pub accept_deprecated_v1_data: bool,
    /// Keys to try first, in order, after those the object's own `sealing-key` hint names:
    /// the caller's guess for values without a hint (the controller passes the keys that
    /// opened similar objects). Only an order, never trusted: every key is still tried, and
    /// the label and the authenticated decryption decide. Unknown fingerprints are ignored.
    pub key_order: Vec<Fingerprint>,
}

/// Fingerprints listed in our `sealing-key` hint annotation (unparsable entries are ignored:
/// the hint only orders the keys tried, it is never trusted).
pub fn sealing_key_hints(meta: &ObjectMeta) -> Vec<Fingerprint> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(annotations::SEALING_KEY))
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse::<Fingerprint>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The order in which keys are tried for an object's values: the object's own hint, then the
/// caller's [`UnsealOptions::key_order`], each key once.
fn initial_order(hints: Vec<Fingerprint>, key_order: &[Fingerprint]) -> Vec<Fingerprint> {
    let mut order = hints;
    for fp in key_order {
        if !order.contains(fp) {
            order.push(fp.clone());
        }
    }
    order
}

/// Moves `key` to the front of `order`: all values of one SealedSecret are sealed with one
/// certificate (kubeseal reads one), so once a value opened with `key`, the object's other
/// values most likely open with it too, and cost one RSA operation each instead of up to one
/// per key.
fn try_first(order: &mut Vec<Fingerprint>, key: &Fingerprint) {
    match order.iter().position(|fp| fp == key) {
        Some(0) => {}
        Some(pos) => order[..=pos].rotate_right(1),
        None => order.insert(0, key.clone()),
    }
}

/// Decrypted item values, with the key that opened each. Never rendered through templates.
#[derive(Clone, Default)]
pub struct DecryptedItems {
    items: BTreeMap<String, Plaintext>,
    opened_by: BTreeMap<String, Fingerprint>,
    legacy_template: Option<SecretTemplateSpec>,
    rsa_operations: u64,
}

impl DecryptedItems {
    /// Items in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Plaintext)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// One item.
    pub fn get(&self, item: &str) -> Option<&Plaintext> {
        self.items.get(item)
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// No items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Item -> fingerprint of the key that opened it (legacy `spec.data` items all map to the
    /// key that opened the blob).
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
    /// For a legacy `spec.data` object: the template equivalent of the decrypted Secret's
    /// metadata/type, used by [`crate::reseal`] to convert it to `encryptedData`.
    pub fn legacy_template(&self) -> Option<&SecretTemplateSpec> {
        self.legacy_template.as_ref()
    }
    /// Builds items by hand (e.g. from `--recovery-unseal` output being re-encrypted).
    pub fn from_plaintexts(items: BTreeMap<String, Plaintext>) -> Self {
        Self {
            items,
            ..Self::default()
        }
    }
}

impl fmt::Debug for DecryptedItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptedItems")
            .field("items", &self.items.keys().collect::<Vec<_>>())
            .field("opened_by", &self.opened_by)
            .field("rsa_operations", &self.rsa_operations)
            .finish_non_exhaustive()
    }
}

fn count_keys(opened_by: &BTreeMap<String, Fingerprint>) -> BTreeMap<Fingerprint, u64> {
    let mut out = BTreeMap::new();
    for fp in opened_by.values() {
        *out.entry(fp.clone()).or_insert(0) += 1;
    }
    out
}

/// The Secret produced by [`unseal`]. `Debug` redacts the data, and the data is zeroized on
/// drop unless moved out with [`UnsealedSecret::into_secret`].
pub struct UnsealedSecret {
    secret: Secret,
    opened_by: BTreeMap<String, Fingerprint>,
    rsa_operations: u64,
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

/// Decrypts every value without rendering any template. Checks the same structure as
/// [`unseal`] (both fields set, legacy gate, invalid items) so verify answers like unseal.
///
/// Keys are tried in the order of the object's `sealing-key` hint, then
/// [`UnsealOptions::key_order`], then the ring's; once a value opens, its key is tried first
/// for the object's remaining values. The RSA operations spent are reported on success and
/// failure alike ([`DecryptedItems::rsa_operations`], [`UnsealError::rsa_operations`]).
pub fn decrypt_items(
    sealed: &SealedSecret,
    keys: &KeyRing,
    opts: &UnsealOptions,
) -> Result<DecryptedItems, UnsealError> {
    let object = sealed.object_ref();
    let spec = &sealed.spec;
    let has_legacy = spec.data.as_deref().is_some_and(|d| !d.is_empty());
    if has_legacy && !spec.encrypted_data.is_empty() {
        return Err(UnsealError::BothFields { object });
    }
    if spec.encrypted_data.was_not_a_map() {
        return Err(UnsealError::EncryptedDataNotAMap { object });
    }
    let scope = annotations::scope(sealed.metadata.annotations.as_ref());
    let label = scope.label(&object.namespace, &object.name);
    let mut order = initial_order(sealing_key_hints(&sealed.metadata), &opts.key_order);
    // One RSA budget for the whole object.
    let mut rsa_budget = RsaBudget::new(MAX_RSA_OPERATIONS);

    if has_legacy && spec.encrypted_data.is_empty() {
        if !opts.accept_deprecated_v1_data {
            return Err(UnsealError::DeprecatedData { object });
        }
        return decrypt_legacy(
            spec.data.as_deref().unwrap_or(""),
            keys,
            &label,
            &order,
            &mut rsa_budget,
            object,
        );
    }

    let mut errors: Vec<ItemError> = spec
        .encrypted_data
        .invalid_keys()
        .map(|item| ItemError::NotAString {
            item: item.to_owned(),
            object: object.clone(),
        })
        .collect();
    let mut sealed_values = Vec::with_capacity(spec.encrypted_data.len());
    for (item, value) in spec.encrypted_data.iter() {
        match decode_base64(value) {
            Ok(ct) => sealed_values.push((item, ct)),
            Err(_) => errors.push(ItemError::Base64 {
                item: item.to_owned(),
                object: object.clone(),
            }),
        }
    }
    // Every value costs at least one RSA operation: refuse before any when they cannot fit.
    let items = sealed_values.len();
    let too_much_work = |object: ObjectRef, rsa_budget: &RsaBudget| UnsealError::TooMuchWork {
        object,
        limit: MAX_RSA_OPERATIONS,
        items,
        rsa_operations: rsa_budget.spent(),
    };
    if items as u64 > MAX_RSA_OPERATIONS {
        return Err(too_much_work(object, &rsa_budget));
    }
    let mut out = DecryptedItems::default();
    for (item, ct) in sealed_values {
        match keys.open_within(&label, &ct, &order, &mut rsa_budget) {
            Ok(opened) => {
                try_first(&mut order, &opened.key);
                out.opened_by.insert(item.to_owned(), opened.key);
                out.items.insert(item.to_owned(), opened.plaintext);
            }
            Err(OpenError::WorkLimit) => return Err(too_much_work(object, &rsa_budget)),
            Err(source) => errors.push(ItemError::Decrypt {
                item: item.to_owned(),
                object: object.clone(),
                source,
            }),
        }
    }
    out.rsa_operations = rsa_budget.spent();
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by(|a, b| a.item().cmp(b.item()));
        Err(UnsealError::Items {
            errors,
            rsa_operations: rsa_budget.spent(),
        })
    }
}

fn decrypt_legacy(
    data: &str,
    keys: &KeyRing,
    label: &[u8],
    hints: &[Fingerprint],
    rsa_budget: &mut RsaBudget,
    object: ObjectRef,
) -> Result<DecryptedItems, UnsealError> {
    let ct = decode_base64(data).map_err(|_| UnsealError::LegacyFormat {
        object: object.clone(),
        rsa_operations: 0,
    })?;
    let opened = keys
        .open_within(label, &ct, hints, rsa_budget)
        .map_err(|source| UnsealError::LegacyDecrypt {
            object: object.clone(),
            source,
            rsa_operations: rsa_budget.spent(),
        })?;
    // The error of a failed parse is dropped on purpose: it could quote decrypted content.
    let mut secret: Secret = serde_json::from_slice(opened.plaintext.as_bytes()).map_err(|_| {
        UnsealError::LegacyFormat {
            object,
            rsa_operations: rsa_budget.spent(),
        }
    })?;
    let mut out = DecryptedItems {
        rsa_operations: rsa_budget.spent(),
        ..DecryptedItems::default()
    };
    for (k, v) in secret.data.take().unwrap_or_default() {
        out.items.insert(k, Plaintext::new(v.0));
    }
    for (k, v) in secret.string_data.take().unwrap_or_default() {
        out.items.insert(k, Plaintext::new(v.into_bytes()));
    }
    for k in out.items.keys() {
        out.opened_by.insert(k.clone(), opened.key.clone());
    }
    out.legacy_template = Some(SecretTemplateSpec {
        metadata: Some(secret.metadata),
        type_: secret.type_,
        immutable: secret.immutable,
        data: None,
    });
    Ok(out)
}

/// Checks that every value decrypts, with no template rendering at all (§9.3). Returns which
/// key opened each item (use [`decrypt_items`] to learn the RSA operations spent).
pub fn verify(
    sealed: &SealedSecret,
    keys: &KeyRing,
    opts: &UnsealOptions,
) -> Result<BTreeMap<String, Fingerprint>, UnsealError> {
    decrypt_items(sealed, keys, opts).map(|d| d.opened_by)
}

/// Produces the Secret for a SealedSecret (§2.4): decrypts every item with the label from the
/// SealedSecret's top-level metadata, renders `spec.template.data`, copies the template's
/// metadata/type/immutable, forces namespace and name, and sets the ownerReference unless the
/// template says `skip-set-owner-references`.
///
/// Bounded for any input: at most [`MAX_RSA_OPERATIONS`] RSA operations, at most
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
    let template = match &decrypted.legacy_template {
        // v1 path: upstream ignores spec.template entirely.
        Some(t) => t.clone(),
        None => sealed.spec.template.clone(),
    };
    let mut data: BTreeMap<String, ByteString> = decrypted
        .iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();

    if decrypted.legacy_template.is_none() && !templates.is_empty() {
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
                    rsa_operations: decrypted.rsa_operations,
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
        opened_by: decrypted.opened_by.clone(),
        rsa_operations: decrypted.rsa_operations,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A test fingerprint; `c`'s low two bits must be zero for the final base64 digit.
    fn fp(c: char) -> Fingerprint {
        format!("SHA256:{}", c.to_string().repeat(43))
            .parse()
            .unwrap()
    }

    #[test]
    fn object_hint_comes_before_the_callers_order_each_key_once() {
        let (a, b, c) = (fp('A'), fp('E'), fp('I'));
        assert_eq!(
            initial_order(vec![b.clone()], &[a.clone(), b.clone(), c.clone()]),
            [b.clone(), a.clone(), c.clone()]
        );
        assert_eq!(initial_order(vec![], std::slice::from_ref(&c)), [c]);
        assert_eq!(initial_order(vec![a.clone()], &[]), [a]);
    }

    #[test]
    fn the_key_that_opened_a_value_is_tried_first_keeping_the_rest_in_order() {
        let (a, b, c, d) = (fp('A'), fp('E'), fp('I'), fp('M'));
        let mut order = vec![a.clone(), b.clone(), c.clone()];
        try_first(&mut order, &c);
        assert_eq!(order, [c.clone(), a.clone(), b.clone()]);
        try_first(&mut order, &c);
        assert_eq!(order, [c.clone(), a.clone(), b.clone()]);
        try_first(&mut order, &d);
        assert_eq!(order, [d, c, a, b]);
    }
}
