use std::sync::OnceLock;

use sealed_secrets_api::{SealOptions, SealedSecret, seal_manifests};
use sealed_secrets_crypto::{KeyRing, PrivateKey, PublicKey};

/// Two 2048-bit keys, generated once per test binary.
pub fn keys() -> &'static (PrivateKey, PrivateKey) {
    static KEYS: OnceLock<(PrivateKey, PrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            PrivateKey::generate(2048).expect("keygen"),
            PrivateKey::generate(2048).expect("keygen"),
        )
    })
}

pub fn key_a() -> &'static PrivateKey {
    &keys().0
}

pub fn key_b() -> &'static PrivateKey {
    &keys().1
}

pub fn pub_a() -> &'static PublicKey {
    key_a().public_key()
}

pub fn ring_a() -> KeyRing {
    let mut r = KeyRing::new();
    r.insert(key_a().clone());
    r
}

pub fn ring_b() -> KeyRing {
    let mut r = KeyRing::new();
    r.insert(key_b().clone());
    r
}

/// Seals one manifest with key A and default options.
pub fn seal_one(manifest: &str) -> SealedSecret {
    seal_with(manifest, &SealOptions::default())
}

pub fn seal_with(manifest: &str, opts: &SealOptions) -> SealedSecret {
    let mut v = seal_manifests(manifest.as_bytes(), &[pub_a()], opts).expect("seal");
    assert_eq!(v.len(), 1);
    v.remove(0)
}
