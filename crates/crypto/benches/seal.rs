//! Seal cost at RSA-4096, single- and multi-recipient.
//!
//! `cargo bench -p sealed-secrets-crypto --bench seal`. Unsealing, and the bare RSA-OAEP
//! decryption that is its floor, are measured in `benches/unseal.rs`.

// Test code: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sealed_secrets_crypto::{PrivateKey, Scope, seal, seal_multi};

fn bench(c: &mut Criterion) {
    let keys: Vec<PrivateKey> = (0..3)
        .map(|_| PrivateKey::generate(4096).expect("key generation"))
        .collect();
    let sealer = &keys[0];
    let label = Scope::Strict.label("team-a", "db-creds");
    let value = b"correct horse battery staple";

    let mut g = c.benchmark_group("rsa4096");
    g.sample_size(30);
    g.bench_function("seal", |b| {
        b.iter(|| seal(sealer.public_key(), black_box(&label), black_box(value)))
    });
    g.bench_function("seal_multi_3_recipients", |b| {
        let pks: Vec<_> = keys.iter().map(PrivateKey::public_key).collect();
        b.iter(|| seal_multi(&pks, black_box(&label), black_box(value)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
