//! Round trips and negative cases for both formats, on freshly generated keys.

// Test code: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use sealed_secrets_crypto::{
    Envelope, Fingerprint, KeyRing, OpenError, PrivateKey, RsaBudget, Scope, envelope, seal,
    seal_multi,
};

/// RSA-2048 keys generated once per test binary: generation dominates test time otherwise.
fn keys() -> &'static [PrivateKey; 3] {
    static KEYS: OnceLock<[PrivateKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            PrivateKey::generate(2048).unwrap(),
            PrivateKey::generate(2048).unwrap(),
            PrivateKey::generate(2048).unwrap(),
        ]
    })
}

fn ring(keys: &[&PrivateKey]) -> KeyRing {
    let mut ring = KeyRing::new();
    for k in keys {
        ring.insert((*k).clone());
    }
    ring
}

fn scope_strategy() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Strict),
        Just(Scope::NamespaceWide),
        Just(Scope::ClusterWide)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn upstream_format_round_trips(
        scope in scope_strategy(),
        ns in "[a-z0-9-]{1,20}",
        name in "[a-z0-9.-]{1,30}",
        value in proptest::collection::vec(any::<u8>(), 0..2048),
        which in 0usize..3,
    ) {
        let [a, b, c] = keys();
        let sealer = [a, b, c][which];
        let label = scope.label(&ns, &name);
        let ct = seal(sealer.public_key(), &label, &value).unwrap();
        prop_assert_eq!(ct.len(), 2 + 256 + value.len() + 16);
        prop_assert_eq!(&ct[..2], &[1u8, 0][..]);
        let opened = ring(&[a, b, c]).open(&label, &ct, &[]).unwrap();
        prop_assert_eq!(opened.plaintext.as_bytes(), value.as_slice());
        prop_assert_eq!(&opened.key, sealer.fingerprint());
        // Never deterministic: a fresh session key every time.
        prop_assert_ne!(seal(sealer.public_key(), &label, &value).unwrap(), ct);
    }

    #[test]
    fn multi_recipient_round_trips_for_each_recipient(
        scope in scope_strategy(),
        ns in "[a-z0-9-]{1,20}",
        name in "[a-z0-9.-]{1,30}",
        value in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let [a, b, c] = keys();
        let label = scope.label(&ns, &name);
        let ct = seal_multi(&[a.public_key(), b.public_key()], &label, &value).unwrap();
        prop_assert_eq!(
            envelope(&ct).unwrap(),
            Envelope::Multi { recipients: vec![a.fingerprint().clone(), b.fingerprint().clone()] }
        );
        for k in [a, b] {
            let r = ring(&[k]);
            let opened = r.open(&label, &ct, &[]).unwrap();
            prop_assert_eq!(opened.plaintext.as_bytes(), value.as_slice());
            prop_assert_eq!(&opened.key, k.fingerprint());
            prop_assert_eq!(opened.rsa_operations, 1);
        }
        prop_assert_eq!(ring(&[c]).open(&label, &ct, &[]).unwrap_err(), OpenError::NoKey);
    }

    #[test]
    fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let [a, ..] = keys();
        let _ = ring(&[a]).open(b"ns/name", &bytes, &[]);
        let _ = envelope(&bytes);
    }
}

#[test]
fn wrong_label_and_wrong_key_are_refused() {
    let [a, b, _] = keys();
    let ct = seal(a.public_key(), b"team-a/db", b"secret").unwrap();
    let r = ring(&[a, b]);
    for label in [&b"team-b/db"[..], b"team-a/other", b"team-a", b""] {
        assert_eq!(r.open(label, &ct, &[]).unwrap_err(), OpenError::NoKey);
    }
    assert_eq!(
        ring(&[b]).open(b"team-a/db", &ct, &[]).unwrap_err(),
        OpenError::NoKey
    );
    assert_eq!(
        KeyRing::new().open(b"team-a/db", &ct, &[]).unwrap_err(),
        OpenError::NoKey
    );
}

#[test]
fn truncation_at_every_length_is_refused() {
    let [a, ..] = keys();
    let r = ring(&[a]);
    for ct in [
        seal(a.public_key(), b"ns/n", b"value").unwrap(),
        seal_multi(&[a.public_key()], b"ns/n", b"value").unwrap(),
    ] {
        for len in 0..ct.len() {
            assert!(
                r.open(b"ns/n", &ct[..len], &[]).is_err(),
                "length {len} opened"
            );
        }
        assert!(r.open(b"ns/n", &ct, &[]).is_ok());
    }
}

#[test]
fn every_flipped_bit_is_refused() {
    let [a, ..] = keys();
    let r = ring(&[a]);
    for ct in [
        seal(a.public_key(), b"ns/n", b"value").unwrap(),
        seal_multi(&[a.public_key()], b"ns/n", b"value").unwrap(),
    ] {
        for i in 0..ct.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = ct.clone();
                bad[i] ^= bit;
                assert!(
                    r.open(b"ns/n", &bad, &[]).is_err(),
                    "flip at byte {i} opened"
                );
            }
        }
    }
}

#[test]
fn structural_errors() {
    let [a, ..] = keys();
    let r = ring(&[a]);
    assert_eq!(r.open(b"", &[], &[]).unwrap_err(), OpenError::TooShort);
    assert_eq!(r.open(b"", &[0x02], &[]).unwrap_err(), OpenError::TooShort);
    // Length prefix larger than the data.
    assert_eq!(
        r.open(b"", &[0x02, 0x00, 1, 2, 3], &[]).unwrap_err(),
        OpenError::TooShort
    );
    assert_eq!(
        r.open(b"", &[0xff, 0xff], &[]).unwrap_err(),
        OpenError::TooShort
    );
    assert_eq!(
        r.open(b"", b"\0\0xxxx\x01\x01", &[]).unwrap_err(),
        OpenError::MalformedHeader("unknown magic")
    );
    assert_eq!(
        r.open(b"", b"\0\0ssrs\x03\x01", &[]).unwrap_err(),
        OpenError::MalformedHeader("unsupported version")
    );
    assert_eq!(
        r.open(b"", b"\0\0ssrs\x01\x00", &[]).unwrap_err(),
        OpenError::MalformedHeader("no recipients")
    );
    // Uniform message: nothing says which step failed.
    assert_eq!(OpenError::NoKey.to_string(), "no key could decrypt secret");
}

#[test]
fn hints_cost_one_rsa_operation_and_unknown_hints_are_ignored() {
    let [a, b, c] = keys();
    let r = ring(&[a, b, c]);
    let ct = seal(c.public_key(), b"x", b"v").unwrap();
    let opened = r.open(b"x", &ct, &[c.fingerprint().clone()]).unwrap();
    assert_eq!(opened.rsa_operations, 1);
    let unknown: Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .parse()
        .unwrap();
    assert_eq!(r.open(b"x", &ct, &[unknown]).unwrap().rsa_operations, 3);
    // The hints are an order: the second hint is tried after the first.
    let order = [b.fingerprint().clone(), c.fingerprint().clone()];
    assert_eq!(r.open(b"x", &ct, &order).unwrap().rsa_operations, 2);
}

/// A failed open reports its cost through the budget: every key tried once, and no more than
/// the budget allows.
#[test]
fn budget_counts_failed_opens_and_bounds_them() {
    let [a, b, c] = keys();
    let r = ring(&[a, b]);
    let ct = seal(c.public_key(), b"x", b"v").unwrap();
    let mut budget = RsaBudget::unlimited();
    assert_eq!(
        r.open_within(b"x", &ct, &[], &mut budget).unwrap_err(),
        OpenError::NoKey
    );
    assert_eq!(budget.spent(), 2);
    let ours = seal(b.public_key(), b"x", b"v").unwrap();
    let opened = r.open_within(b"x", &ours, &[], &mut budget).unwrap();
    assert_eq!((opened.rsa_operations, budget.spent()), (2, 4));

    let mut small = RsaBudget::new(1);
    assert_eq!(
        r.open_within(b"x", &ours, &[], &mut small).unwrap_err(),
        OpenError::WorkLimit
    );
    assert_eq!((small.spent(), small.remaining()), (1, 0));
    // Structural failures cost nothing.
    let mut none = RsaBudget::unlimited();
    assert!(r.open_within(b"x", &[0x02], &[], &mut none).is_err());
    assert_eq!(none.spent(), 0);
}

/// The ring is a plain value: a clone opens the same values, and opening leaves no state.
#[test]
fn key_ring_clone_is_equivalent() {
    let [a, b, _] = keys();
    let r = ring(&[a, b]);
    let copy = r.clone();
    let ct = seal(b.public_key(), b"x", b"v").unwrap();
    let first = r.open(b"x", &ct, &[]).unwrap();
    let again = copy.open(b"x", &ct, &[]).unwrap();
    assert_eq!((first.rsa_operations, again.rsa_operations), (2, 2));
    assert_eq!(first.key, again.key);
}

/// A multi-recipient value naming our key in all 255 wraps costs one RSA
/// operation, not 255.
#[test]
fn one_unwrap_attempt_per_held_key() {
    let [a, b, _] = keys();
    let r = ring(&[a, b]);
    let genuine = seal_multi(&[a.public_key()], b"l", b"v").unwrap();
    // Header of 255 wraps, all naming key A, none of them valid, then the genuine body.
    let mut forged = genuine[..7].to_vec();
    forged.push(255);
    for i in 0..255u8 {
        forged.extend_from_slice(&a.fingerprint().digest());
        forged.extend_from_slice(&256u16.to_be_bytes());
        forged.extend_from_slice(&[i; 256]);
    }
    forged.extend_from_slice(&genuine[8 + 32 + 2 + 256..]);
    let mut budget = RsaBudget::unlimited();
    assert_eq!(
        r.open_within(b"l", &forged, &[], &mut budget).unwrap_err(),
        OpenError::NoKey
    );
    assert_eq!(budget.spent(), 1);
}

#[test]
fn multi_recipient_header_is_authenticated() {
    let [a, b, _] = keys();
    let ct = seal_multi(&[a.public_key(), b.public_key()], b"l", b"v").unwrap();
    // Swap the two recipients' fingerprints: the wraps still open, but the header no longer
    // matches what was authenticated, so AES-GCM refuses the body.
    let mut swapped = ct.clone();
    let fp_a = 8..40;
    let wrap_len = 32 + 2 + 256;
    let fp_b = 8 + wrap_len..8 + wrap_len + 32;
    let (da, db) = (ct[fp_a.clone()].to_vec(), ct[fp_b.clone()].to_vec());
    swapped[fp_a].copy_from_slice(&db);
    swapped[fp_b].copy_from_slice(&da);
    assert!(ring(&[a, b]).open(b"l", &swapped, &[]).is_err());
    // Duplicated recipients are sealed once.
    let dup = seal_multi(&[a.public_key(), a.public_key()], b"l", b"v").unwrap();
    assert_eq!(
        envelope(&dup).unwrap(),
        Envelope::Multi {
            recipients: vec![a.fingerprint().clone()]
        }
    );
    assert!(seal_multi(&[], b"l", b"v").is_err());
}

#[test]
fn key_ring_insert_remove() {
    let [a, b, _] = keys();
    let mut r = ring(&[a, b]);
    assert!(!r.insert(a.clone()));
    assert_eq!(r.len(), 2);
    assert!(r.remove(a.fingerprint()).is_some());
    assert!(r.get(a.fingerprint()).is_none());
    assert!(r.get(b.fingerprint()).is_some());
    let ct = seal(b.public_key(), b"l", b"v").unwrap();
    assert!(r.open(b"l", &ct, &[]).is_ok());
}
