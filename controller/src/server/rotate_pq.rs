//! `/v1/rotate` and post-quantum values: the re-encryption `sealed_secrets_api::reseal` does
//! is RSA only, and would turn a post-quantum value (`crates/crypto/FORMAT.md` §3) back into
//! one a quantum computer opens. A value that came in post-quantum leaves post-quantum.

use sealed_secrets_api::annotations;
use sealed_secrets_api::{DecryptedItems, SealedSecret};
use sealed_secrets_crypto::{PqRecipient, SealError, decode_base64, encode_base64, is_pq, seal_pq};

/// Puts every item that was post-quantum in `input` back in that format in `out` (the
/// re-encrypted copy of `input`, same name, namespace and scope): sealed again to `newest`,
/// the newest key's recipient, or, when the newest key has none (an RSA-only key), left as it
/// came, which still opens with the identity it was sealed to. Pure apart from the randomness
/// of sealing.
pub fn keep_post_quantum(
    input: &SealedSecret,
    items: &DecryptedItems,
    newest: Option<&PqRecipient>,
    out: &mut SealedSecret,
) -> Result<(), SealError> {
    let namespace = input.metadata.namespace.as_deref().unwrap_or_default();
    let name = input.metadata.name.as_deref().unwrap_or_default();
    let label = annotations::scope(input.metadata.annotations.as_ref()).label(namespace, name);
    for (item, value) in input.spec.encrypted_data.iter() {
        let Ok(ct) = decode_base64(value) else {
            continue;
        };
        if !is_pq(&ct) {
            continue;
        }
        let resealed = match (newest, items.get(item)) {
            (Some(r), Some(plaintext)) => {
                encode_base64(&seal_pq(&[r], &label, plaintext.as_bytes())?)
            }
            _ => value.to_owned(),
        };
        out.spec.encrypted_data.insert(item, resealed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sealed_secrets_crypto::{KeyRing, PqIdentity, PrivateKey, Scope, seal};

    use super::*;

    #[test]
    fn post_quantum_items_stay_post_quantum_and_rsa_items_stay_rsa() {
        let rsa = PrivateKey::generate(2048).unwrap();
        let (old, new) = (
            PqIdentity::generate().unwrap(),
            PqIdentity::generate().unwrap(),
        );
        let mut ring = KeyRing::new();
        ring.insert(rsa.clone());
        ring.insert_pq(old.clone());
        ring.insert_pq(new.clone());
        let label = Scope::Strict.label("ns", "db");
        let mut input = SealedSecret::new("db", Default::default());
        input.metadata.namespace = Some("ns".into());
        let pq = encode_base64(&seal_pq(&[old.recipient()], &label, b"pq-value").unwrap());
        input.spec.encrypted_data.insert("pq", pq.clone());
        input.spec.encrypted_data.insert(
            "rsa",
            encode_base64(&seal(rsa.public_key(), &label, b"rsa-value").unwrap()),
        );
        let items = sealed_secrets_api::decrypt_items(&input, &ring, &Default::default()).unwrap();
        let resealed = sealed_secrets_api::reseal(&input, &items, &[rsa.public_key()]).unwrap();
        let opened = |ss: &SealedSecret, item: &str| {
            let ct = decode_base64(ss.spec.encrypted_data.get(item).unwrap()).unwrap();
            let o = ring.open(&label, &ct, &[]).unwrap();
            (is_pq(&ct), o.key, o.plaintext.as_bytes().to_vec())
        };
        // What reseal alone does: the post-quantum value comes out RSA.
        assert!(!opened(&resealed, "pq").0);

        let mut out = resealed.clone();
        keep_post_quantum(&input, &items, Some(new.recipient()), &mut out).unwrap();
        assert_eq!(
            opened(&out, "pq"),
            (true, new.fingerprint().clone(), b"pq-value".to_vec())
        );
        assert!(!opened(&out, "rsa").0);
        assert_eq!(opened(&out, "rsa").2, b"rsa-value");

        // Newest key RSA-only: the value is kept as it came.
        let mut out = resealed;
        keep_post_quantum(&input, &items, None, &mut out).unwrap();
        assert_eq!(out.spec.encrypted_data.get("pq"), Some(pq.as_str()));
    }
}
