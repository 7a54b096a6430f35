//! Unseal cost at RSA-4096: 1 and 13 keys loaded, key hint present and
//! absent, upstream's single-recipient format and our multi-recipient one.
//!
//! `cargo bench -p sealed-secrets-crypto --bench unseal` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quick run). `rsa_oaep_decrypt_only` is the floor: one bare
//! RSA-OAEP decryption with aws-lc-rs, which any unseal must pay once. Goals: with the hint,
//! 13 keys cost within 1.2x of 1 key; without it, an upstream value costs one decryption per
//! key tried (here the worst case: the sealing key is tried last), while a multi-recipient
//! value names its keys and costs one whatever the hint.

// Test code: a failed unwrap is a failed benchmark, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sealed_secrets_crypto::{Fingerprint, KeyRing, PrivateKey, Scope, seal, seal_multi};

const KEYS: usize = 13;

fn bench(c: &mut Criterion) {
    let keys: Vec<PrivateKey> = (0..KEYS)
        .map(|_| PrivateKey::generate(4096).expect("key generation"))
        .collect();
    // The sealing key is registered last, the worst case for trying keys in order.
    let sealer = &keys[KEYS - 1];
    let label = Scope::Strict.label("team-a", "db-creds");
    let value = b"correct horse battery staple";
    // A multi-recipient value for this cluster's key and another cluster's (not loaded here).
    let elsewhere = PrivateKey::generate(4096).expect("key generation");
    let formats = [
        (
            "upstream",
            seal(sealer.public_key(), &label, value).expect("seal"),
        ),
        (
            "multi",
            seal_multi(
                &[elsewhere.public_key(), sealer.public_key()],
                &label,
                value,
            )
            .expect("seal"),
        ),
    ];
    let hint = [sealer.fingerprint().clone()];
    let no_hint: [Fingerprint; 0] = [];

    let mut one = KeyRing::new();
    one.insert(sealer.clone());
    let mut all = KeyRing::new();
    for k in &keys {
        all.insert(k.clone());
    }

    let mut g = c.benchmark_group("unseal_rsa4096");
    g.sample_size(20);
    for (format, sealed) in &formats {
        for (ring_name, ring) in [("1_key", &one), ("13_keys", &all)] {
            for (hint_name, hints) in [("hint", &hint[..]), ("no_hint", &no_hint[..])] {
                let opened = ring.open(&label, sealed, hints).expect("opens");
                let id = BenchmarkId::new(
                    format!("{format}/{ring_name}/{hint_name}"),
                    format!("{}_rsa_ops", opened.rsa_operations),
                );
                g.bench_function(id, |b| {
                    b.iter(|| ring.open(black_box(&label), black_box(sealed), hints))
                });
            }
        }
    }

    let raw = PrivateDecryptingKey::generate(KeySize::Rsa4096).expect("key");
    let public = OaepPublicEncryptingKey::new(raw.public_key()).expect("public");
    let private = OaepPrivateDecryptingKey::new(raw).expect("private");
    let mut ct = vec![0u8; public.ciphertext_size()];
    public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut ct, Some(&label))
        .expect("encrypt");
    g.bench_function("rsa_oaep_decrypt_only", |b| {
        let mut out = vec![0u8; private.min_output_size()];
        b.iter(|| {
            private
                .decrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    black_box(&ct),
                    &mut out,
                    Some(&label),
                )
                .map(|p| p.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
