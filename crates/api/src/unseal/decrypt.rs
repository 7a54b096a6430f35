//! Decrypting a SealedSecret's values without rendering any template: the order keys are
//! tried in, the one RSA budget per object, and the legacy whole-Secret `spec.data`. The
//! verify and rotate paths use only this ([`verify`], [`decrypt_items`]): running
//! attacker-supplied templates there made upstream a decryption oracle (§9.3).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_crypto::{
    Fingerprint, KeyRing, OpenError, Plaintext, RsaBudget, decode_base64, value_format,
};

use crate::annotations;
use crate::error::{ItemError, MAX_RSA_OPERATIONS, UnsealError};
use crate::types::{ObjectRef, SealedSecret, SecretTemplateSpec};

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
    formats: BTreeMap<&'static str, u64>,
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
    /// How many values opened in each format (`ValueFormat::as_str`: `rsa`, `rsa-multi`,
    /// `post-quantum`), told by each value's first bytes (`FORMAT.md` §0); the items of a
    /// legacy `spec.data` blob count in the blob's format.
    pub fn format_usage(&self) -> &BTreeMap<&'static str, u64> {
        &self.formats
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

pub(super) fn count_keys(opened_by: &BTreeMap<String, Fingerprint>) -> BTreeMap<Fingerprint, u64> {
    let mut out = BTreeMap::new();
    for fp in opened_by.values() {
        *out.entry(fp.clone()).or_insert(0) += 1;
    }
    out
}

/// Decrypts every value without rendering any template. Checks the same structure as
/// [`unseal`](super::unseal) (both fields set, legacy gate, invalid items) so verify answers like unseal.
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
                *out.formats.entry(value_format(&ct).as_str()).or_default() += 1;
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
    let items = u64::try_from(out.items.len()).unwrap_or(u64::MAX);
    out.formats.insert(value_format(&ct).as_str(), items);
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

#[cfg(test)]
mod format_tests {
    use sealed_secrets_crypto::{PqIdentity, PrivateKey, Scope, encode_base64, seal, seal_pq};

    use super::*;

    #[test]
    fn each_opened_value_counts_in_its_format() {
        let rsa = PrivateKey::generate(2048).unwrap();
        let pq = PqIdentity::generate().unwrap();
        let mut ring = KeyRing::new();
        ring.insert(rsa.clone());
        ring.insert_pq(pq.clone());
        let label = Scope::Strict.label("ns", "db");
        let mut ss = SealedSecret::new("db", Default::default());
        ss.metadata.namespace = Some("ns".into());
        let pq_value = |v: &[u8]| encode_base64(&seal_pq(&[pq.recipient()], &label, v).unwrap());
        ss.spec.encrypted_data.insert("a", pq_value(b"1"));
        ss.spec.encrypted_data.insert("b", pq_value(b"2"));
        ss.spec.encrypted_data.insert(
            "c",
            encode_base64(&seal(rsa.public_key(), &label, b"3").unwrap()),
        );
        let d = decrypt_items(&ss, &ring, &UnsealOptions::default()).unwrap();
        assert_eq!(
            d.format_usage()
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>(),
            [("post-quantum", 2), ("rsa", 1)]
        );
        assert_eq!(d.rsa_operations(), 1);
        assert_eq!(d.get("a").unwrap().as_bytes(), b"1");
    }
}
