//! The envelope's own guarantees, with an in-memory backend that (on purpose) ignores the
//! context: the binding to the key Secret must hold even for such a service.

use std::time::Instant;

use super::*;
use crate::wrapper::{Operation, WrapFuture, WrapperStats};

#[derive(Debug, Default)]
struct MemoryWrapper {
    stats: WrapperStats,
}

const MEMORY_KEY: [u8; 32] = [7; 32];

impl Wrapper for MemoryWrapper {
    fn backend(&self) -> &'static str {
        "memory"
    }
    fn key_id(&self) -> &str {
        "mem-1"
    }
    fn describe(&self) -> String {
        "in-memory test key".into()
    }
    fn stats(&self) -> &WrapperStats {
        &self.stats
    }
    fn wrap<'a>(&'a self, plaintext: &'a [u8], _: &'a WrapContext) -> WrapFuture<'a, Wrapped> {
        Box::pin(async move {
            let started = Instant::now();
            let key = gcm_key(&MEMORY_KEY)?;
            let mut blob = plaintext.to_vec();
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut blob,
            )
            .map_err(|_| envelope_err("seal"))?;
            self.stats.record(Operation::Wrap, started, false);
            Ok(Wrapped {
                key_id: "mem-1".into(),
                blob,
            })
        })
    }
    fn unwrap<'a>(
        &'a self,
        w: &'a Wrapped,
        _: &'a WrapContext,
    ) -> WrapFuture<'a, Zeroizing<Vec<u8>>> {
        Box::pin(async move {
            let started = Instant::now();
            let key = gcm_key(&MEMORY_KEY)?;
            let mut buf = Zeroizing::new(w.blob.clone());
            let result = key
                .open_in_place(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    &mut buf,
                )
                .map(|p| p.len())
                .map_err(|_| WrapError::InvalidCiphertext {
                    backend: "memory",
                    key_id: w.key_id.clone(),
                });
            self.stats
                .record(Operation::Unwrap, started, result.is_err());
            buf.truncate(result?);
            Ok(buf)
        })
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .block_on(f)
}

fn ctx() -> WrapContext {
    WrapContext::new("c1", "kube-system", "sealed-secrets-key1")
}

fn sealed(w: &MemoryWrapper, key: &[u8]) -> Vec<u8> {
    block_on(WrappedKey::seal(w, key, &ctx()))
        .unwrap_or_else(|e| panic!("{e}"))
        .to_bytes()
}

#[test]
fn round_trip_through_bytes() {
    let w = MemoryWrapper::default();
    let bytes = sealed(&w, b"-----BEGIN PRIVATE KEY----- secret");
    assert_eq!(&bytes[..5], b"SSKW\x01");
    let env = WrappedKey::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((env.backend(), env.kms_key_id()), ("memory", "mem-1"));
    let plain = block_on(env.open(&w, &ctx())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.as_slice(), b"-----BEGIN PRIVATE KEY----- secret");
    assert_eq!((w.stats.wraps(), w.stats.unwraps()), (1, 1));
    assert!(!format!("{env:?}").contains("secret"));
}

#[test]
fn the_envelope_binds_the_context_even_if_the_backend_does_not() {
    let w = MemoryWrapper::default();
    let env = WrappedKey::from_bytes(&sealed(&w, b"k")).unwrap_or_else(|e| panic!("{e}"));
    for other in [
        WrapContext::new("c2", "kube-system", "sealed-secrets-key1"),
        WrapContext::new("c1", "kube-system", "sealed-secrets-key2"),
        WrapContext::new("c1", "other", "sealed-secrets-key1"),
    ] {
        let err = block_on(env.open(&w, &other)).err();
        assert!(
            matches!(err, Some(WrapError::InvalidCiphertext { .. })),
            "{err:?}"
        );
    }
}

#[test]
fn every_flipped_bit_is_refused_or_unparseable() {
    let w = MemoryWrapper::default();
    let bytes = sealed(&w, b"private key bytes");
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        let opened = WrappedKey::from_bytes(&t).and_then(|env| block_on(env.open(&w, &ctx())));
        assert!(opened.is_err(), "flipping a bit of byte {i} still opened");
    }
}

#[test]
fn truncations_and_oversize_are_refused() {
    let w = MemoryWrapper::default();
    let bytes = sealed(&w, b"private key bytes");
    for len in 0..bytes.len() {
        let opened =
            WrappedKey::from_bytes(&bytes[..len]).and_then(|env| block_on(env.open(&w, &ctx())));
        assert!(opened.is_err(), "a {len}-byte prefix opened");
    }
    let big = vec![0u8; MAX_ENVELOPE_LEN + 1];
    assert!(matches!(
        WrappedKey::from_bytes(&big),
        Err(WrapError::Envelope { .. })
    ));
}

#[test]
fn another_backend_is_named_not_tried() {
    let w = MemoryWrapper::default();
    let mut bytes = sealed(&w, b"k");
    // Backend name "memory" -> "memorz": parses, then refuses before any call.
    bytes[11] = b'z';
    let env = WrappedKey::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let err = block_on(env.open(&w, &ctx()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("memorz"), "{err}");
    assert_eq!(w.stats.unwraps(), 0);
}

proptest::proptest! {
    /// Arbitrary bytes (and arbitrary bytes after a valid prefix) never panic the parser,
    /// and whatever parses encodes back to the same bytes.
    #[test]
    fn the_parser_is_total_and_canonical(
        prefix_len in 0usize..64,
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
    ) {
        let w = MemoryWrapper::default();
        let valid = sealed(&w, b"k");
        let mut bytes = valid[..prefix_len.min(valid.len())].to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(env) = WrappedKey::from_bytes(&bytes) {
            proptest::prop_assert_eq!(env.to_bytes(), bytes);
        }
    }
}
