//! AES-GCM does not commit to its key, so one multi-recipient value of
//! version 1 can open to different plaintexts for different recipients ("invisible
//! salamanders"). These tests craft such a value, then show that version 2's key commitment
//! refuses the same construction.
//!
//! The craft: wrap a different session key for each recipient, choose one ciphertext block so
//! that the GCM tag is the same under both keys (GHASH is linear in each block, so that block
//! is the solution of one equation in GF(2^128)), and let each recipient decrypt with its own
//! key stream.

use aws_lc_rs::cipher::{AES_256, EncryptingKey, UnboundCipherKey};

use std::sync::Arc;

use super::*;
use crate::error::OpenError;
use crate::keys::PrivateKey;

/// GF(2^128) product in GCM's bit order (NIST SP 800-38D, algorithm 1).
fn gf_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xe1 << 120;
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 0 { v >> 1 } else { (v >> 1) ^ R };
    }
    z
}

/// The multiplicative identity in GCM's bit order.
const ONE: u128 = 1 << 127;

fn gf_pow(x: u128, mut e: u32) -> u128 {
    let (mut r, mut b) = (ONE, x);
    while e > 0 {
        if e & 1 == 1 {
            r = gf_mul(r, b);
        }
        b = gf_mul(b, b);
        e >>= 1;
    }
    r
}

/// x^(2^128 - 2) = x^-1.
fn gf_inv(x: u128) -> u128 {
    let mut r = ONE;
    for i in 0..128 {
        r = gf_mul(r, r);
        if i < 127 {
            r = gf_mul(r, x);
        }
    }
    r
}

/// AES-256 of one block.
fn aes(key: &[u8; 32], block: u128) -> u128 {
    let enc = EncryptingKey::ecb(UnboundCipherKey::new(&AES_256, key).unwrap()).unwrap();
    let mut b = block.to_be_bytes();
    enc.encrypt(&mut b).unwrap();
    u128::from_be_bytes(b)
}

/// Counter block `i` of the all-zero 96-bit nonce (`J0` is `i = 1`).
fn counter(i: u32) -> u128 {
    u128::from(i)
}

fn blocks(data: &[u8]) -> Vec<u128> {
    data.chunks(16)
        .map(|c| {
            let mut b = [0u8; 16];
            b[..c.len()].copy_from_slice(c);
            u128::from_be_bytes(b)
        })
        .collect()
}

/// GHASH of AAD `aad` and full ciphertext blocks `ct`, leaving out the term of ciphertext
/// block `free` (whose power of `h` is returned with the sum).
fn ghash_without(h: u128, aad: &[u8], ct: &[u128], free: Option<usize>) -> (u128, u32) {
    let mut xs = blocks(aad);
    let first_ct = xs.len();
    xs.extend_from_slice(ct);
    xs.push(((aad.len() as u128 * 8) << 64) | (ct.len() as u128 * 128));
    let m = xs.len();
    let mut sum = 0u128;
    let mut free_exp = 0;
    for (i, x) in xs.iter().enumerate() {
        let e = (m - i) as u32;
        if free.is_some_and(|f| i == first_ct + f) {
            free_exp = e;
            continue;
        }
        sum ^= gf_mul(*x, gf_pow(h, e));
    }
    (sum, free_exp)
}

/// A ciphertext of `n` blocks and tag that AES-256-GCM (zero nonce, AAD `aad`) accepts under
/// both keys: block 0 is free, the others are zero.
fn salamander(k1: &[u8; 32], k2: &[u8; 32], aad: &[u8], n: usize) -> Vec<u8> {
    let (h1, h2) = (aes(k1, 0), aes(k2, 0));
    let mut ct = vec![0u128; n];
    let (s1, e) = ghash_without(h1, aad, &ct, Some(0));
    let (s2, _) = ghash_without(h2, aad, &ct, Some(0));
    // E1(J0) + s1 + c*h1^e = E2(J0) + s2 + c*h2^e
    let rhs = aes(k1, counter(1)) ^ aes(k2, counter(1)) ^ s1 ^ s2;
    ct[0] = gf_mul(rhs, gf_inv(gf_pow(h1, e) ^ gf_pow(h2, e)));
    let (s1, _) = ghash_without(h1, aad, &ct, None);
    let tag = aes(k1, counter(1)) ^ s1;
    let mut out: Vec<u8> = ct.iter().flat_map(|b| b.to_be_bytes()).collect();
    out.extend_from_slice(&tag.to_be_bytes());
    out
}

fn keys() -> (PrivateKey, PrivateKey) {
    (
        PrivateKey::generate(2048).unwrap(),
        PrivateKey::generate(2048).unwrap(),
    )
}

fn ring(key: &PrivateKey) -> KeyRing {
    let mut r = KeyRing::new();
    r.insert(key.clone());
    r
}

/// A ring that accepts version 1 (the migration switch), to show what version 1 allows.
fn ring_accepting_v1(key: &PrivateKey) -> KeyRing {
    let mut r = ring(key);
    r.set_multi_v1_policy(MultiV1Policy::accept(Arc::default()));
    r
}

/// A multi-recipient header of `version` giving each key its own session key.
fn header(version: u8, recipients: &[(&PrivateKey, &[u8; 32])], label: &[u8]) -> Vec<u8> {
    let mut h = MULTI_MARKER.to_vec();
    h.extend_from_slice(&MULTI_MAGIC);
    h.push(version);
    h.push(recipients.len() as u8);
    for (key, session) in recipients {
        let wrapped = rsa_wrap(key.public_key(), label, session.as_slice()).unwrap();
        h.extend_from_slice(&key.fingerprint().digest());
        h.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
        h.extend_from_slice(&wrapped);
    }
    h
}

#[test]
fn gf_arithmetic() {
    let x = 0x66e94bd4ef8a2c3b884cfa59ca342b2e_u128;
    assert_eq!(gf_mul(x, ONE), x);
    assert_eq!(gf_mul(x, gf_inv(x)), ONE);
    assert_eq!(gf_pow(x, 3), gf_mul(x, gf_mul(x, x)));
}

#[test]
fn version_1_opens_to_two_plaintexts() {
    let (a, b) = keys();
    let label = b"ns/name";
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let mut value = header(MULTI_VERSION_V1, &[(&a, &k1), (&b, &k2)], label);
    let body = salamander(&k1, &k2, &value, 2);
    value.extend_from_slice(&body);

    let for_a = ring_accepting_v1(&a).open(label, &value, &[]).unwrap();
    let for_b = ring_accepting_v1(&b).open(label, &value, &[]).unwrap();
    assert_eq!(for_a.plaintext.len(), 32);
    assert_ne!(
        for_a.plaintext, for_b.plaintext,
        "the old construction lets one value say two things"
    );
}

#[test]
fn version_1_is_refused_by_default_before_any_rsa_work() {
    let (a, b) = keys();
    let label = b"ns/name";
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let mut value = header(MULTI_VERSION_V1, &[(&a, &k1), (&b, &k2)], label);
    let body = salamander(&k1, &k2, &value, 2);
    value.extend_from_slice(&body);
    assert!(is_multi_v1(&value));

    let tally = Arc::new(MultiV1Tally::default());
    let mut r = ring(&a);
    assert!(!r.multi_v1_policy().accepts(), "refusal is the default");
    r.set_multi_v1_policy(MultiV1Policy::refuse(tally.clone()));
    let mut budget = RsaBudget::unlimited();
    assert_eq!(
        r.open_within(label, &value, &[], &mut budget).unwrap_err(),
        OpenError::MultiV1Refused
    );
    assert_eq!(budget.spent(), 0, "refused before any RSA operation");
    assert_eq!((tally.accepted(), tally.refused()), (0, 1));
    // The default ring refuses too.
    assert_eq!(
        ring(&b).open(label, &value, &[]).unwrap_err(),
        OpenError::MultiV1Refused
    );

    r.set_multi_v1_policy(MultiV1Policy::accept(tally.clone()));
    assert!(r.open(label, &value, &[]).is_ok());
    assert_eq!((tally.accepted(), tally.refused()), (1, 1));
    // Version 2 is not counted.
    let v2 = seal_multi(&[a.public_key()], label, b"x").unwrap();
    assert!(!is_multi_v1(&v2));
    assert!(r.open(label, &v2, &[]).is_ok());
    assert_eq!((tally.accepted(), tally.refused()), (1, 1));
}

#[test]
fn version_2_refuses_the_same_craft() {
    let (a, b) = keys();
    let label = b"ns/name";
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    // The body keys are derived in version 2: the craft targets those. Whichever session
    // key the commitment is for, the other recipient refuses the value.
    for committed in [&k1, &k2] {
        let mut value = header(MULTI_VERSION, &[(&a, &k1), (&b, &k2)], label);
        value.extend_from_slice(commitment(committed).unwrap().as_ref());
        let body = salamander(&body_key(&k1).unwrap(), &body_key(&k2).unwrap(), &value, 2);
        value.extend_from_slice(&body);

        let for_a = ring(&a).open(label, &value, &[]);
        let for_b = ring(&b).open(label, &value, &[]);
        assert_eq!(
            (for_a.is_ok(), for_b.is_ok()),
            (committed == &k1, committed == &k2)
        );
        let refused = if committed == &k1 { for_b } else { for_a };
        assert_eq!(refused.unwrap_err(), OpenError::NoKey);
    }
}

#[test]
fn seal_multi_writes_version_2_and_version_1_opens_only_when_accepted() {
    let (a, b) = keys();
    let value = seal_multi(&[a.public_key(), b.public_key()], b"l", b"same").unwrap();
    assert_eq!(value[6], MULTI_VERSION);
    assert_eq!(MULTI_VERSION, 2);
    for key in [&a, &b] {
        assert_eq!(
            ring(key)
                .open(b"l", &value, &[])
                .unwrap()
                .plaintext
                .as_bytes(),
            b"same"
        );
    }
    // An honest version-1 value (one session key for all) opens when version 1 is accepted.
    let session = [7u8; 32];
    let mut v1 = header(MULTI_VERSION_V1, &[(&a, &session), (&b, &session)], b"l");
    let mut body = b"old".to_vec();
    gcm(&session)
        .unwrap()
        .seal_in_place_append_tag(zero_nonce(), Aad::from(v1.as_slice()), &mut body)
        .unwrap();
    v1.extend_from_slice(&body);
    for key in [&a, &b] {
        assert_eq!(
            ring_accepting_v1(key)
                .open(b"l", &v1, &[])
                .unwrap()
                .plaintext
                .as_bytes(),
            b"old"
        );
        assert_eq!(
            ring(key).open(b"l", &v1, &[]).unwrap_err(),
            OpenError::MultiV1Refused
        );
    }
}
