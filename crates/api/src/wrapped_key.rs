//! Key Secrets whose private fields are wrapped by a key management service (docs/security.md,
//! "Tier 2: key Secrets wrapped by a KMS"): the names both binaries read and write, and the
//! pure conversion between a plain key Secret and a wrapped one.
//!
//! A wrapped key Secret has type [`WRAPPED_SECRET_TYPE`], keeps `tls.crt` in the clear, and
//! holds the envelope (the `sealed-secrets-kms` crate's `WrappedKey`) in [`WRAPPED_KEY_FIELD`]
//! instead of the [`PRIVATE_FIELDS`]. The envelope's plaintext is a JSON object mapping each
//! private field's name to its base64 value ([`take_private_fields`]), so the RSA key and the
//! post-quantum identity beside it open with one KMS call. The controller writes such Secrets
//! for the keys it generates; `kubeseal keys wrap` / `keys unwrap` convert existing ones.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_crypto::{Zeroizing, decode_base64, encode_base64};

use crate::seal::AGE_KEY_FIELD;

/// Type of a wrapped key Secret. Not `kubernetes.io/tls`, whose validation requires a
/// `tls.key`; a type of our own also tells `kubectl get secret` readers what it holds. A
/// Secret's type cannot change in place, so converting a key between plain and wrapped makes a
/// new Secret.
pub const WRAPPED_SECRET_TYPE: &str = "sealed-secrets-rs.dev/wrapped-key";

/// The data field holding the envelope, in place of `tls.key`.
pub const WRAPPED_KEY_FIELD: &str = "tls.key.wrapped";

/// Type of a plain key Secret, as upstream writes it (§4.2).
pub const PLAIN_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The data fields of a key Secret that hold private material and are wrapped: the RSA key
/// and the post-quantum identity stored beside it. `tls.crt` stays in the clear.
pub const PRIVATE_FIELDS: [&str; 2] = ["tls.key", AGE_KEY_FIELD];

/// Whether a key Secret holds a wrapped key. Pure.
pub fn is_wrapped(secret: &Secret) -> bool {
    secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(WRAPPED_KEY_FIELD))
}

/// Moves the private fields out of `secret` into the envelope's plaintext (JSON object of
/// field name → base64). Pure.
pub fn take_private_fields(secret: &mut Secret) -> Zeroizing<Vec<u8>> {
    let mut fields: BTreeMap<&str, Zeroizing<String>> = BTreeMap::new();
    if let Some(data) = secret.data.as_mut() {
        for f in PRIVATE_FIELDS {
            if let Some(mut v) = data.remove(f) {
                fields.insert(f, Zeroizing::new(encode_base64(&v.0)));
                zeroize::Zeroize::zeroize(&mut v.0);
            }
        }
    }
    let plain: BTreeMap<&str, &str> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Serialising a map of strings cannot fail.
    Zeroizing::new(serde_json::to_vec(&plain).unwrap_or_default())
}

/// Turns `secret`, whose private fields [`take_private_fields`] took out, into a wrapped key
/// Secret: its type, the envelope's bytes in [`WRAPPED_KEY_FIELD`], and the envelope's
/// annotations (backend, KMS key; for people and `kubectl`). Pure.
pub fn install_envelope<'a>(
    secret: &mut Secret,
    envelope: Vec<u8>,
    annotations: impl IntoIterator<Item = (&'a str, String)>,
) {
    secret.type_ = Some(WRAPPED_SECRET_TYPE.to_owned());
    secret
        .data
        .get_or_insert_with(BTreeMap::new)
        .insert(WRAPPED_KEY_FIELD.to_owned(), ByteString(envelope));
    let a = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    for (k, v) in annotations {
        a.insert(k.to_owned(), v);
    }
}

/// The envelope's plaintext does not hold private fields.
#[derive(Debug, thiserror::Error)]
#[error("the unwrapped key of key Secret `{secret}` is not a set of private fields")]
pub struct PayloadError {
    pub secret: String,
}

/// `secret` with [`WRAPPED_KEY_FIELD`] replaced by the private fields of `payload`, as the key
/// registry reads it. Only [`PRIVATE_FIELDS`] are restored, and `tls.key` must be one. The
/// type and annotations are left as they are (the controller reads it in memory only). Pure.
pub fn restore_private_fields(secret: &Secret, payload: &[u8]) -> Result<Secret, PayloadError> {
    let err = || PayloadError {
        secret: secret.metadata.name.clone().unwrap_or_default(),
    };
    let fields: BTreeMap<String, Zeroizing<String>> =
        serde_json::from_slice::<BTreeMap<String, String>>(payload)
            .map_err(|_| err())?
            .into_iter()
            .map(|(k, v)| (k, Zeroizing::new(v)))
            .collect();
    let mut out = secret.clone();
    let data = out.data.get_or_insert_with(BTreeMap::new);
    data.remove(WRAPPED_KEY_FIELD);
    for f in PRIVATE_FIELDS {
        if let Some(v) = fields.get(f) {
            let bytes = decode_base64(v).map_err(|_| err())?;
            data.insert(f.to_owned(), ByteString(bytes));
        }
    }
    if !data.contains_key("tls.key") {
        return Err(err());
    }
    Ok(out)
}

/// A name for a new key Secret, as the API server's generateName would make it: the prefix
/// and five characters of its alphabet. Wrapped keys need their name before they are written
/// (it is bound into the wrap context).
pub fn new_key_name(prefix: &str, rng: &mut impl rand::Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn mk_plain() -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("k1".into()),
                ..ObjectMeta::default()
            },
            type_: Some(PLAIN_SECRET_TYPE.into()),
            data: Some(BTreeMap::from([
                ("tls.crt".into(), ByteString(b"CERT".to_vec())),
                ("tls.key".into(), ByteString(b"KEY\n".to_vec())),
                (AGE_KEY_FIELD.into(), ByteString(b"AGE".to_vec())),
            ])),
            ..Secret::default()
        }
    }

    #[test]
    fn private_fields_round_trip_through_an_installed_envelope() {
        let original = mk_plain();
        let mut s = original.clone();
        let payload = take_private_fields(&mut s);
        install_envelope(&mut s, b"ENV".to_vec(), [("a/b", "c".to_owned())]);
        assert!(is_wrapped(&s) && !is_wrapped(&original));
        assert_eq!(s.type_.as_deref(), Some(WRAPPED_SECRET_TYPE));
        let data = s.data.as_ref().unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["tls.crt", WRAPPED_KEY_FIELD]
        );
        assert_eq!(s.metadata.annotations.as_ref().unwrap()["a/b"], "c");
        let back = restore_private_fields(&s, &payload).unwrap();
        assert_eq!(back.data, original.data);
        assert!(restore_private_fields(&s, b"not json").is_err());
        assert!(restore_private_fields(&s, br#"{"age.key":"QQ=="}"#).is_err());
        // Only private fields come back, whatever else the envelope holds.
        let extra = restore_private_fields(&s, br#"{"tls.key":"QQ==","tls.crt":"QQ=="}"#).unwrap();
        assert_eq!(extra.data.unwrap()["tls.crt"].0, b"CERT");
    }

    #[test]
    fn new_names_look_generated() {
        let n = new_key_name("sealed-secrets-key", &mut rand::rng());
        assert_eq!(n.len(), "sealed-secrets-key".len() + 5);
        assert!(n.starts_with("sealed-secrets-key"));
        assert_ne!(n, new_key_name("sealed-secrets-key", &mut rand::rng()));
    }
}
