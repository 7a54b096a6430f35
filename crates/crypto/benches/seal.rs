//! Seal and unseal cost at RSA-4096, and what the key hint buys with 13 keys loaded.
//!
//! `cargo bench -p sealed-secrets-crypto --bench seal`. The goal: unseal with the hint
//! at 13 keys within 1.2x of unseal at 1 key. `rsa_oaep_decrypt_only` is the floor: one bare
//! RSA-OAEP decryption with aws-lc-rs, which any unseal must pay once.

// Test code: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use sealed_secrets_crypto::{KeyRing, PrivateKey, Scope, seal, seal_multi};

const KEYS: usize = 13;

fn bench(c: &mut Criterion) {
    let keys: Vec<PrivateKey> = (0..KEYS)
        .map(|_| PrivateKey::generate(4096).expect("key generation"))
        .collect();
    // The sealing key is registered last, the worst case for trying keys in order.
    let sealer = &keys[KEYS - 1];
    let label = Scope::Strict.label("team-a", "db-creds");
    let value = b"correct horse battery staple";
    let sealed = seal(sealer.public_key(), &label, value).expect("seal");
    let hint = [sealer.fingerprint().clone()];

    let mut one = KeyRing::new();
    one.insert(sealer.clone());
    let mut all = KeyRing::new();
    for k in &keys {
        all.insert(k.clone());
    }

    let mut g = c.benchmark_group("rsa4096");
    g.sample_size(30);
    g.bench_function("seal", |b| {
        b.iter(|| seal(sealer.public_key(), black_box(&label), black_box(value)))
    });
    g.bench_function("seal_multi_3_recipients", |b| {
        let pks: Vec<_> = keys[..3].iter().map(PrivateKey::public_key).collect();
        b.iter(|| seal_multi(&pks, black_box(&label), black_box(value)))
    });
    g.bench_function("unseal_1_key", |b| {
        b.iter(|| one.open(black_box(&label), black_box(&sealed), &[]))
    });
    g.bench_function("unseal_13_keys_with_hint", |b| {
        b.iter(|| all.open(black_box(&label), black_box(&sealed), &hint))
    });
    g.bench_function("unseal_13_keys_without_hint", |b| {
        b.iter(|| all.open(black_box(&label), black_box(&sealed), &[]))
    });

    let raw = PrivateDecryptingKey::generate(KeySize::Rsa4096).expect("key");
    let _ = raw.as_der();
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
