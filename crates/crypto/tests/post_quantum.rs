//! The post-quantum format (`FORMAT.md` §3) through the public API: round trips in every
//! scope, the scope binding (moved, stripped, altered values refused), key hints, dispatch
//! between the three formats, and hostile input.

// Test code: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use proptest::prelude::*;
use sealed_secrets_crypto::{
    Envelope, KeyRing, MAX_STANZAS, OpenError, PqIdentity, PqRecipient, PrivateKey, Scope,
    ValueFormat, envelope, seal, seal_multi, seal_pq, value_format,
};

/// Three identities, as a controller holding three key generations would.
fn identities() -> &'static [PqIdentity; 3] {
    static IDS: OnceLock<[PqIdentity; 3]> = OnceLock::new();
    IDS.get_or_init(|| {
        [
            PqIdentity::from_seed(&[1u8; 32]).unwrap(),
            PqIdentity::from_seed(&[2u8; 32]).unwrap(),
            PqIdentity::from_seed(&[3u8; 32]).unwrap(),
        ]
    })
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    for id in identities() {
        ring.insert_pq(id.clone());
    }
    ring
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Replaces the scope stanza (line and body) of `value` with `stanza` (or removes it).
fn replace_scope_stanza(value: &[u8], stanza: &str) -> Vec<u8> {
    let start = find(value, b"-> sealed-secrets-rs.dev/scope\n").unwrap();
    let body_start = start + b"-> sealed-secrets-rs.dev/scope\n".len();
    let end = body_start
        + value[body_start..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap()
        + 1;
    let mut out = value[..start].to_vec();
    out.extend_from_slice(stanza.as_bytes());
    out.extend_from_slice(&value[end..]);
    out
}

fn scope_stanza(label: &[u8]) -> String {
    format!(
        "-> sealed-secrets-rs.dev/scope\n{}\n",
        STANDARD_NO_PAD.encode(label)
    )
}

fn k8s_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// 100 random vectors per scope: the value opens under its own scope with the key its hint
    /// names, and is refused once moved to another name or namespace (where the scope binds
    /// them).
    #[test]
    fn round_trip_and_moves_per_scope(
        ns in k8s_name(),
        name in k8s_name(),
        other in k8s_name(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        which in 0usize..3,
    ) {
        let ring = ring();
        let id = &identities()[which];
        for scope in Scope::ALL {
            let label = scope.label(&ns, &name);
            let value = seal_pq(&[id.recipient()], &label, &plaintext).unwrap();
            prop_assert_eq!(value_format(&value), ValueFormat::PostQuantum);
            let opened = ring.open(&label, &value, &[]).unwrap();
            prop_assert_eq!(opened.plaintext.as_bytes(), plaintext.as_slice());
            prop_assert_eq!(&opened.key, id.fingerprint());
            prop_assert_eq!(opened.rsa_operations, 0);
            prop_assert_eq!(
                envelope(&value).unwrap(),
                Envelope::PostQuantum { recipients: vec![id.fingerprint().clone()], label: label.clone() }
            );
            let moved_name = scope.label(&ns, &format!("{name}-{other}"));
            let moved_ns = scope.label(&format!("{ns}-{other}"), &name);
            for moved in [moved_name, moved_ns] {
                if moved != label {
                    prop_assert_eq!(ring.open(&moved, &value, &[]).unwrap_err(), OpenError::NoKey);
                }
            }
            // Strict and namespace-wide values are refused as cluster-wide ones and back.
            for wider in Scope::ALL {
                let wl = wider.label(&ns, &name);
                if wl != label {
                    prop_assert_eq!(ring.open(&wl, &value, &[]).unwrap_err(), OpenError::NoKey);
                }
            }
        }
    }

    /// A value whose scope stanza was altered to claim another scope, or stripped and
    /// re-added for another scope, is refused: the header MAC covers it and only holders of
    /// the file key can recompute it.
    #[test]
    fn altered_scope_binding_is_refused(
        ns in k8s_name(),
        name in k8s_name(),
        attacker_ns in k8s_name(),
    ) {
        prop_assume!(ns != attacker_ns);
        let ring = ring();
        for scope in Scope::ALL {
            let label = scope.label(&ns, &name);
            let value = seal_pq(&[identities()[0].recipient()], &label, b"s3cr3t").unwrap();
            for target in [Scope::Strict.label(&attacker_ns, &name), attacker_ns.clone().into_bytes(), Vec::new()] {
                if target == label {
                    continue;
                }
                let altered = replace_scope_stanza(&value, &scope_stanza(&target));
                prop_assert_eq!(ring.open(&target, &altered, &[]).unwrap_err(), OpenError::NoKey);
            }
            let stripped = replace_scope_stanza(&value, "");
            prop_assert_eq!(
                ring.open(&label, &stripped, &[]).unwrap_err(),
                OpenError::MalformedAge("no scope binding")
            );
        }
    }
}

#[test]
fn multi_cluster_values_open_with_each_identity_and_hints_pick_the_key() {
    let [a, b, c] = identities();
    let value = seal_pq(
        &[a.recipient(), b.recipient(), a.recipient()],
        b"ns/x",
        b"v",
    )
    .unwrap();
    let Envelope::PostQuantum { recipients, .. } = envelope(&value).unwrap() else {
        panic!("not post-quantum");
    };
    // The duplicate was kept once; hints name both keys, in order.
    assert_eq!(
        recipients,
        [a.fingerprint().clone(), b.fingerprint().clone()]
    );
    for (id, opens) in [(a, true), (b, true), (c, false)] {
        let mut ring = KeyRing::new();
        ring.insert_pq(id.clone());
        let result = ring.open(b"ns/x", &value, &[]);
        assert_eq!(result.is_ok(), opens, "{id:?}");
        if let Ok(opened) = result {
            assert_eq!(&opened.key, id.fingerprint());
        }
    }
    assert!(matches!(
        seal_pq(&[], b"", b""),
        Err(sealed_secrets_crypto::SealError::Recipients(0))
    ));
    let many: Vec<PqIdentity> = (0..33u8)
        .map(|i| PqIdentity::from_seed(&[i; 32]).unwrap())
        .collect();
    let many: Vec<&PqRecipient> = many.iter().map(PqIdentity::recipient).collect();
    assert!(seal_pq(&many, b"", b"").is_err());
    assert!(seal_pq(&many[..32], b"", b"").is_ok());
}

/// One ring, three formats, dispatched on the first bytes.
#[test]
fn one_ring_opens_every_format() {
    let rsa = PrivateKey::generate(2048).unwrap();
    let mut ring = ring();
    ring.insert(rsa.clone());
    let label = Scope::Strict.label("ns", "db");
    let upstream = seal(rsa.public_key(), &label, b"one").unwrap();
    let multi = seal_multi(&[rsa.public_key()], &label, b"two").unwrap();
    let pq = seal_pq(&[identities()[1].recipient()], &label, b"three").unwrap();
    assert_eq!(value_format(&upstream), ValueFormat::Upstream);
    assert_eq!(value_format(&multi), ValueFormat::Multi);
    assert_eq!(value_format(&pq), ValueFormat::PostQuantum);
    for (value, want) in [(&upstream, "one"), (&multi, "two"), (&pq, "three")] {
        let opened = ring.open(&label, value, &[]).unwrap();
        assert_eq!(opened.plaintext.as_bytes(), want.as_bytes());
    }
    // An RSA-only ring refuses a post-quantum value cleanly.
    let mut rsa_only = KeyRing::new();
    rsa_only.insert(rsa);
    assert_eq!(
        rsa_only.open(&label, &pq, &[]).unwrap_err(),
        OpenError::NoKey
    );
}

/// Every prefix of a value, and every single-byte change, is a typed error (never a panic,
/// never a wrong plaintext).
#[test]
fn truncated_and_flipped_values_are_refused() {
    let ring = ring();
    let value = seal_pq(&[identities()[0].recipient()], b"ns/n", b"hello world").unwrap();
    for len in 0..value.len() {
        let err = ring.open(b"ns/n", &value[..len], &[]).unwrap_err();
        assert!(
            matches!(
                err,
                OpenError::TooShort | OpenError::MalformedAge(_) | OpenError::NoKey
            ),
            "prefix {len}: {err:?}"
        );
    }
    for i in (0..value.len()).step_by(7) {
        let mut bad = value.clone();
        bad[i] ^= 0x01;
        if let Ok(opened) = ring.open(b"ns/n", &bad, &[]) {
            panic!("byte {i} flipped still opened to {:?}", opened.plaintext);
        }
    }
}

#[test]
fn hostile_headers_are_bounded_typed_errors() {
    let ring = ring();
    let stanzas = "-> x\n\n".repeat(5000);
    let many = format!("age-encryption.org/v1\n{stanzas}--- {}\n", "A".repeat(43));
    assert_eq!(
        ring.open(b"", many.as_bytes(), &[]).unwrap_err(),
        OpenError::MalformedAge("too many stanzas")
    );
    const { assert!(MAX_STANZAS < 5000) };
    let long = format!("age-encryption.org/v1\n-> {}\n", "a".repeat(1 << 20));
    assert_eq!(
        ring.open(b"", long.as_bytes(), &[]).unwrap_err(),
        OpenError::MalformedAge("header too large")
    );
    let value = seal_pq(&[identities()[0].recipient()], b"", b"x").unwrap();
    let text = String::from_utf8_lossy(&value).into_owned();
    // A hint that is not 32 bytes, and hints that do not match the stanzas.
    let hints_at = text.find("-> sealed-secrets-rs.dev/recipients ").unwrap();
    let hint_line_end = hints_at + text[hints_at..].find('\n').unwrap();
    let mut bad_hint = value[..hints_at].to_vec();
    bad_hint.extend_from_slice(b"-> sealed-secrets-rs.dev/recipients AAAA");
    bad_hint.extend_from_slice(&value[hint_line_end..]);
    assert_eq!(
        ring.open(b"", &bad_hint, &[]).unwrap_err(),
        OpenError::MalformedAge("malformed key hint")
    );
    let mut two_hints = value[..hint_line_end].to_vec();
    two_hints.extend_from_slice(format!(" {}", "A".repeat(43)).as_bytes());
    two_hints.extend_from_slice(&value[hint_line_end..]);
    assert_eq!(
        ring.open(b"", &two_hints, &[]).unwrap_err(),
        OpenError::MalformedAge("key hints do not match the stanzas")
    );
    // An mlkem768x25519 stanza with a short enc.
    let enc_at = text.find("-> mlkem768x25519 ").unwrap() + "-> mlkem768x25519 ".len();
    let mut short = value[..enc_at].to_vec();
    short.extend_from_slice(&value[enc_at + 4..]);
    assert_eq!(
        ring.open(b"", &short, &[]).unwrap_err(),
        OpenError::MalformedAge("malformed mlkem768x25519 stanza")
    );
    // Two scope stanzas.
    let doubled = replace_scope_stanza(
        &value,
        &format!("{}{}", scope_stanza(b""), scope_stanza(b"")),
    );
    assert_eq!(
        ring.open(b"", &doubled, &[]).unwrap_err(),
        OpenError::MalformedAge("malformed scope binding")
    );
}

#[test]
fn key_strings_round_trip_through_the_public_api() {
    let id = PqIdentity::generate().unwrap();
    let back: PqIdentity = id.to_age_string().parse().unwrap();
    assert_eq!(back.fingerprint(), id.fingerprint());
    let r: PqRecipient = id.recipient().to_string().parse().unwrap();
    assert_eq!(&r, id.recipient());
    assert_eq!(r.as_bytes().len(), 1216);
}

#[test]
fn a_ring_holds_the_fingerprints_of_its_identities_and_rsa_keys() {
    let mut ring = ring();
    for id in identities() {
        assert!(ring.holds(id.fingerprint()));
        // Not an RSA key: `get` alone would say the Secret's key is gone.
        assert!(ring.get(id.fingerprint()).is_none());
    }
    let absent = PqIdentity::from_seed(&[9u8; 32]).unwrap();
    assert!(!ring.holds(absent.fingerprint()));
    let rsa = PrivateKey::generate(2048).unwrap();
    assert!(!ring.holds(rsa.public_key().fingerprint()));
    ring.insert(rsa.clone());
    assert!(ring.holds(rsa.public_key().fingerprint()));
}
