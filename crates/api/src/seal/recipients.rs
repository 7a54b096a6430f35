//! Whom values are sealed to: RSA keys (upstream's format, or the multi-recipient format for
//! several) or post-quantum recipients (`crates/crypto/FORMAT.md` §3). Every sealing function
//! of this module takes `impl Into<Recipients>`, so existing callers keep passing
//! `&[&PublicKey]` and post-quantum callers pass `&[&PqRecipient]`.

use sealed_secrets_crypto::{PqRecipient, PublicKey, SealError, seal, seal_multi, seal_pq};

/// The controller's endpoint serving its newest key's post-quantum recipient: the body is one
/// `age1pq1…` line, 404 when that key has none. Beside upstream's `/v1/cert.pem`.
pub const AGE_RECIPIENT_PATH: &str = "/v1/age-recipient.txt";
/// The data key of the certificate ConfigMap holding the same recipient line (beside
/// `cert.pem`).
pub const AGE_RECIPIENT_CONFIGMAP_KEY: &str = "age-recipient.txt";
/// The data field of a key Secret holding its post-quantum identity
/// (`AGE-SECRET-KEY-PQ-1…`), beside `tls.key` and `tls.crt`.
pub const AGE_KEY_FIELD: &str = "age.key";

/// The keys one sealing run seals every value to. One format per run: a value is either RSA
/// or post-quantum (an object may still mix both, item by item, through `merge_into`).
#[derive(Clone, Copy, Debug)]
pub enum Recipients<'a> {
    /// RSA public keys: one gives upstream's format, several our multi-recipient format.
    Rsa(&'a [&'a PublicKey]),
    /// Post-quantum recipients (`age1pq1…`), one per cluster: an age v1 file per value.
    PostQuantum(&'a [&'a PqRecipient]),
}

impl Recipients<'_> {
    /// Whether there is no key to seal to.
    pub fn is_empty(&self) -> bool {
        match self {
            Recipients::Rsa(k) => k.is_empty(),
            Recipients::PostQuantum(r) => r.is_empty(),
        }
    }

    /// The fingerprints our `sealing-key` hint records, in order, without repeats.
    pub fn fingerprints(&self) -> Vec<String> {
        let all: Vec<String> = match self {
            Recipients::Rsa(k) => k.iter().map(|k| k.fingerprint().to_string()).collect(),
            Recipients::PostQuantum(r) => r.iter().map(|r| r.fingerprint().to_string()).collect(),
        };
        let mut out: Vec<String> = Vec::with_capacity(all.len());
        for f in all {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// Encrypts one value under the scope `label` (not base64-encoded).
    pub fn seal(&self, label: &[u8], value: &[u8]) -> Result<Vec<u8>, SealError> {
        match self {
            Recipients::Rsa([one]) => seal(one, label, value),
            Recipients::Rsa(many) => seal_multi(many, label, value),
            Recipients::PostQuantum(r) => seal_pq(r, label, value),
        }
    }
}

impl<'a, 'k: 'a> From<&'a [&'k PublicKey]> for Recipients<'a> {
    fn from(keys: &'a [&'k PublicKey]) -> Self {
        Recipients::Rsa(keys)
    }
}

impl<'a, 'k: 'a, const N: usize> From<&'a [&'k PublicKey; N]> for Recipients<'a> {
    fn from(keys: &'a [&'k PublicKey; N]) -> Self {
        Recipients::Rsa(keys)
    }
}

impl<'a, 'k: 'a> From<&'a Vec<&'k PublicKey>> for Recipients<'a> {
    fn from(keys: &'a Vec<&'k PublicKey>) -> Self {
        Recipients::Rsa(keys)
    }
}

impl<'a, 'k: 'a> From<&'a [&'k PqRecipient]> for Recipients<'a> {
    fn from(r: &'a [&'k PqRecipient]) -> Self {
        Recipients::PostQuantum(r)
    }
}

impl<'a, 'k: 'a, const N: usize> From<&'a [&'k PqRecipient; N]> for Recipients<'a> {
    fn from(r: &'a [&'k PqRecipient; N]) -> Self {
        Recipients::PostQuantum(r)
    }
}

impl<'a, 'k: 'a> From<&'a Vec<&'k PqRecipient>> for Recipients<'a> {
    fn from(r: &'a Vec<&'k PqRecipient>) -> Self {
        Recipients::PostQuantum(r)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use sealed_secrets_crypto::{
        KeyRing, PqIdentity, PrivateKey, ValueFormat, decode_base64, value_format,
    };

    use crate::{
        SealOptions, UnsealOptions, decrypt_items, merge_into, parse_secrets, reseal,
        seal_manifests, seal_raw, unseal,
    };
    use sealed_secrets_crypto::Scope;

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team\nstringData:\n  password: hunter2\n";

    fn formats(ss: &crate::SealedSecret) -> Vec<ValueFormat> {
        ss.spec
            .encrypted_data
            .iter()
            .map(|(_, v)| value_format(&decode_base64(v).unwrap()))
            .collect()
    }

    #[test]
    fn post_quantum_seal_opens_under_its_scope_only() {
        let id = PqIdentity::generate().unwrap();
        let mut ring = KeyRing::new();
        ring.insert_pq(id.clone());
        for scope in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
            let opts = SealOptions {
                scope,
                ..SealOptions::default()
            };
            let ss = seal_manifests(SECRET.as_bytes(), &[id.recipient()], &opts)
                .unwrap()
                .remove(0);
            assert_eq!(formats(&ss), [ValueFormat::PostQuantum]);
            let hint = &ss.metadata.annotations.as_ref().unwrap()[crate::annotations::SEALING_KEY];
            assert_eq!(hint, id.fingerprint().as_str());
            let secret = unseal(&ss, &ring, &UnsealOptions::default()).unwrap();
            assert_eq!(secret.value("password"), Some(&b"hunter2"[..]));
            // Moved to another name: refused unless the scope allows it, exactly as for RSA.
            let mut moved = ss.clone();
            moved.metadata.name = Some("other".into());
            assert_eq!(
                unseal(&moved, &ring, &UnsealOptions::default()).is_ok(),
                scope != Scope::Strict,
                "{scope}"
            );
            let mut moved = ss.clone();
            moved.metadata.namespace = Some("elsewhere".into());
            assert_eq!(
                unseal(&moved, &ring, &UnsealOptions::default()).is_ok(),
                scope == Scope::ClusterWide,
                "{scope}"
            );
        }
        let raw = seal_raw(
            b"v",
            &[id.recipient()],
            Scope::Strict,
            Some("team"),
            Some("db"),
        );
        let raw = decode_base64(&raw.unwrap()).unwrap();
        assert_eq!(value_format(&raw), ValueFormat::PostQuantum);
        let opened = ring.open(&Scope::Strict.label("team", "db"), &raw, &[]);
        assert_eq!(opened.unwrap().plaintext.as_bytes(), b"v");
    }

    #[test]
    fn merge_mixes_formats_and_reseal_upgrades() {
        let rsa = PrivateKey::generate(2048).unwrap();
        let id = PqIdentity::generate().unwrap();
        let mut ring = KeyRing::new();
        ring.insert(rsa.clone());
        ring.insert_pq(id.clone());
        let mut ss = seal_manifests(
            SECRET.as_bytes(),
            &[rsa.public_key()],
            &SealOptions::default(),
        )
        .unwrap()
        .remove(0);
        let more =
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  token: t0k\n";
        merge_into(
            &mut ss,
            parse_secrets(more.as_bytes()).unwrap(),
            &[id.recipient()],
        )
        .unwrap();
        assert_eq!(
            formats(&ss),
            [ValueFormat::Upstream, ValueFormat::PostQuantum]
        );
        let hint = &ss.metadata.annotations.as_ref().unwrap()[crate::annotations::SEALING_KEY];
        assert_eq!(hint, &format!("{},{}", rsa.fingerprint(), id.fingerprint()));
        let secret = unseal(&ss, &ring, &UnsealOptions::default()).unwrap();
        assert_eq!(secret.value("token"), Some(&b"t0k"[..]));
        assert_eq!(secret.value("password"), Some(&b"hunter2"[..]));

        let items = decrypt_items(&ss, &ring, &UnsealOptions::default()).unwrap();
        let up = reseal(&ss, &items, &[id.recipient()]).unwrap();
        assert_eq!(formats(&up), [ValueFormat::PostQuantum; 2]);
        let mut pq_only = KeyRing::new();
        pq_only.insert_pq(id);
        let secret = unseal(&up, &pq_only, &UnsealOptions::default()).unwrap();
        assert_eq!(secret.value("password"), Some(&b"hunter2"[..]));
    }
}
