//! What unsealing costs in RSA operations, and how the key order lowers it: the object's hint
//! first, then the caller's order, then the key that opened the object's previous value.

use std::sync::OnceLock;

use sealed_secrets_api::{
    SealOptions, SealedSecret, UnsealError, UnsealOptions, annotations, decrypt_items,
    seal_manifests, unseal, verify,
};
use sealed_secrets_crypto::{Fingerprint, KeyRing, PrivateKey};

const KEYS: usize = 13;

/// 13 RSA-2048 keys, generated once per test binary (the count, not the size, matters here).
fn keys() -> &'static [PrivateKey] {
    static KEYS_: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS_.get_or_init(|| {
        (0..KEYS)
            .map(|_| PrivateKey::generate(2048).expect("keygen"))
            .collect()
    })
}

fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    for k in keys() {
        r.insert(k.clone());
    }
    r
}

/// A SealedSecret of three values sealed with key `i`; without the `sealing-key` hint, as
/// upstream's kubeseal writes it, unless `hinted`.
fn sealed(i: usize, hinted: bool) -> SealedSecret {
    let manifest = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\ndata:\n  a: YQ==\n  b: Yg==\n  c: Yw==\n";
    let mut ss = seal_manifests(
        manifest.as_bytes(),
        &[keys()[i].public_key()],
        &SealOptions::default(),
    )
    .expect("seal")
    .remove(0);
    if !hinted && let Some(a) = ss.metadata.annotations.as_mut() {
        a.remove(annotations::SEALING_KEY);
    }
    ss
}

fn fp(i: usize) -> Fingerprint {
    keys()[i].fingerprint().clone()
}

fn with_order(order: Vec<Fingerprint>) -> UnsealOptions {
    UnsealOptions {
        key_order: order,
        ..UnsealOptions::default()
    }
}

/// The issue's example: 13 keys, an unhinted object of 3 values sealed with the last key.
/// The first value tries every key (13), the others open with the key the first one found.
#[test]
fn unhinted_object_pays_the_search_once() {
    let ss = sealed(KEYS - 1, false);
    let items = decrypt_items(&ss, &ring(), &UnsealOptions::default()).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.rsa_operations(), 13 + 1 + 1);
    let out = unseal(&ss, &ring(), &UnsealOptions::default()).unwrap();
    assert_eq!(out.rsa_operations(), 15);
    assert_eq!(out.value("c"), Some(&b"c"[..]));
    assert!(out.opened_by().values().all(|k| *k == fp(KEYS - 1)));
}

#[test]
fn callers_order_is_tried_first() {
    let ss = sealed(7, false);
    let opts = with_order(vec![fp(7), fp(0)]);
    assert_eq!(
        decrypt_items(&ss, &ring(), &opts).unwrap().rsa_operations(),
        3
    );
    // A wrong guess costs its own attempt, then the search goes on.
    let opts = with_order(vec![fp(3), fp(7)]);
    assert_eq!(
        decrypt_items(&ss, &ring(), &opts).unwrap().rsa_operations(),
        2 + 1 + 1
    );
    // Unknown keys in the order are ignored.
    let mut small = KeyRing::new();
    small.insert(keys()[7].clone());
    let opts = with_order(vec![fp(3), fp(7)]);
    assert_eq!(
        decrypt_items(&ss, &small, &opts).unwrap().rsa_operations(),
        3
    );
}

/// The object's own hint comes before the caller's guess, and the guess never changes what
/// opens: a wrong order only costs operations.
#[test]
fn object_hint_goes_before_the_callers_order() {
    let ss = sealed(5, true);
    let opts = with_order(vec![fp(1), fp(2)]);
    let items = decrypt_items(&ss, &ring(), &opts).unwrap();
    assert_eq!(items.rsa_operations(), 3);
    assert!(items.opened_by().values().all(|k| *k == fp(5)));
}

/// A value no key opens costs one operation per key, and the failure reports it.
#[test]
fn failed_unseal_reports_its_cost() {
    let ss = sealed(4, false);
    let mut others = KeyRing::new();
    for (i, k) in keys().iter().enumerate() {
        if i != 4 {
            others.insert(k.clone());
        }
    }
    let err = decrypt_items(&ss, &others, &UnsealOptions::default()).unwrap_err();
    assert!(err.is_no_key(), "{err}");
    assert_eq!(err.rsa_operations(), 3 * 12);
    assert_eq!(
        unseal(&ss, &others, &UnsealOptions::default())
            .unwrap_err()
            .rsa_operations(),
        36
    );
    assert!(verify(&ss, &others, &UnsealOptions::default()).is_err());
}

/// A template that fails after every value opened still reports the decryption work; one
/// that does not parse is refused before any.
#[test]
fn template_failure_reports_the_decryption_cost() {
    let mut ss = sealed(0, true);
    ss.spec.template.data = Some([("x".to_owned(), r#"{{ fail "no" }}"#.to_owned())].into());
    let err = unseal(&ss, &ring(), &UnsealOptions::default()).unwrap_err();
    assert!(matches!(err, UnsealError::Render { .. }), "{err}");
    assert_eq!(err.rsa_operations(), 3);

    ss.spec.template.data = Some([("x".to_owned(), "{{ .a ".to_owned())].into());
    let err = unseal(&ss, &ring(), &UnsealOptions::default()).unwrap_err();
    assert!(matches!(err, UnsealError::Items { .. }), "{err}");
    assert_eq!(err.rsa_operations(), 0);
}
