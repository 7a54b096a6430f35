//! The post-quantum identity of key Secrets: written beside the RSA key, loaded into the key
//! ring, and an unusable one reported without costing the RSA key.

use std::sync::Arc;

use k8s_openapi::ByteString;
use sealed_secrets_api::annotations::{KEY_ORIGIN, SEALING_KEY_LABEL};
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_crypto::{PqIdentity, Scope, seal_pq};

use super::registry::Registry;
use super::tests::{NAMESPACE, mk_key_secret, settings, t, test_key, test_pq};
use super::{KeyOrderPriority, Keys, PqFieldError, load_pq_identity, load_secret};
use crate::metrics::Metrics;

/// Whether an error is the one a case expects.
type Expected = fn(&PqFieldError) -> bool;

fn with_age_key(name: &str, value: &[u8]) -> k8s_openapi::api::core::v1::Secret {
    let mut s = mk_key_secret(name);
    s.data
        .as_mut()
        .unwrap()
        .insert(AGE_KEY_FIELD.into(), ByteString(value.to_vec()));
    s
}

#[test]
fn a_key_secret_holds_the_identity_line_beside_the_rsa_key_with_the_same_metadata() {
    let s = mk_key_secret("k1");
    let data = s.data.as_ref().unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["age.key", "tls.crt", "tls.key"]
    );
    let line = std::str::from_utf8(&data[AGE_KEY_FIELD].0).unwrap();
    assert!(line.starts_with("AGE-SECRET-KEY-PQ-1"), "an age identity");
    assert!(line.ends_with('\n') && line.lines().count() == 1);
    assert_eq!(line.trim_end(), test_pq().to_age_string().as_str());
    // Labels and annotations are those of an RSA-only key Secret.
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()[SEALING_KEY_LABEL],
        "active"
    );
    assert!(
        s.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(KEY_ORIGIN)
    );
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));

    let loaded = load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap();
    assert_eq!(
        loaded.pq.as_ref().map(|p| p.recipient().clone()),
        Some(test_pq().recipient().clone())
    );
    assert_eq!(loaded.pq_error, None);
    assert!(
        !format!("{loaded:?}").contains(&line[19..40]),
        "Debug never shows the identity"
    );
}

#[test]
fn a_key_secret_without_the_field_is_an_rsa_only_key() {
    let mut s = mk_key_secret("upstream");
    s.data.as_mut().unwrap().remove(AGE_KEY_FIELD);
    assert!(matches!(load_pq_identity(&s), Ok(None)));
    let loaded = load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap();
    assert!(loaded.pq.is_none() && loaded.pq_error.is_none());
    assert_eq!(loaded.key.fingerprint(), test_key().0.fingerprint());
}

#[test]
fn an_unusable_identity_is_reported_by_secret_and_field_and_the_rsa_key_still_loads() {
    let id = test_pq().to_age_string();
    let two = format!("{}\n{}\n", id.as_str(), id.as_str());
    let recipient = format!("{}\n", test_pq().recipient());
    let mut truncated = id.as_bytes().to_vec();
    truncated.truncate(40);
    let cases: [(&[u8], Expected); 6] = [
        (b"garbage\n", |e| matches!(e, PqFieldError::Parse { .. })),
        (b"\xff\xfe", |e| matches!(e, PqFieldError::NotText { .. })),
        (two.as_bytes(), |e| {
            matches!(e, PqFieldError::Count { count: 2, .. })
        }),
        (b"", |e| matches!(e, PqFieldError::Count { count: 0, .. })),
        (recipient.as_bytes(), |e| {
            matches!(e, PqFieldError::Parse { .. })
        }),
        (&truncated, |e| matches!(e, PqFieldError::Parse { .. })),
    ];
    for (value, expected) in cases {
        let s = with_age_key("broken-key", value);
        let loaded = load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap();
        assert_eq!(loaded.key.fingerprint(), test_key().0.fingerprint());
        assert!(loaded.pq.is_none());
        let e = loaded.pq_error.expect("reported");
        assert!(expected(&e), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("`broken-key`") && msg.contains("`age.key`"),
            "{msg}"
        );
        let shown = format!("{msg} {e:?}");
        assert!(
            !shown.contains(&id[19..40]),
            "never quotes the field: {shown}"
        );
    }
    // Comments and blank lines, as `age-keygen` writes them, are fine.
    let file = format!(
        "# created: now\n# public key: {}\n\n{}\n",
        test_pq().recipient(),
        id.as_str()
    );
    let s = with_age_key("commented", file.as_bytes());
    assert!(load_pq_identity(&s).unwrap().is_some());
}

#[test]
fn the_snapshot_ring_opens_post_quantum_values_and_names_each_keys_recipient() {
    let mut r = Registry::default();
    let s = mk_key_secret("k1");
    assert!(r.upsert(
        load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap(),
        false
    ));
    let snap = r.snapshot();
    assert_eq!(
        snap.newest().unwrap().pq_recipient.as_ref(),
        Some(test_pq().recipient())
    );
    let label = Scope::Strict.label("ns", "db");
    let ct = seal_pq(&[test_pq().recipient()], &label, b"hunter2").unwrap();
    let opened = snap.ring.open(&label, &ct, &[]).unwrap();
    assert_eq!(opened.plaintext.as_bytes(), b"hunter2");
    assert_eq!(&opened.key, test_pq().fingerprint());
    // Moved to another namespace: refused.
    assert!(
        snap.ring
            .open(&Scope::Strict.label("other", "db"), &ct, &[])
            .is_err()
    );

    // The same RSA key with another identity (the Secret was edited or restored): the
    // identity follows the Secret.
    let other = PqIdentity::from_seed(&[9u8; 32]).unwrap();
    let edited = with_age_key("k1", other.to_age_string().as_bytes());
    assert!(r.upsert(
        load_secret(&edited, KeyOrderPriority::CertNotBefore, t(2000)).unwrap(),
        false
    ));
    let snap = r.snapshot();
    assert_eq!(snap.keys.len(), 1);
    assert_eq!(
        snap.newest().unwrap().pq_recipient.as_ref(),
        Some(other.recipient())
    );
    assert!(
        snap.ring.open(&label, &ct, &[]).is_err(),
        "old identity gone"
    );
}

#[test]
fn the_registry_keeps_the_rsa_key_of_a_secret_whose_identity_is_unusable() {
    let metrics = Arc::new(Metrics::new());
    let keys = Keys::new(settings(), NAMESPACE.into(), metrics.clone());
    keys.load_and_register(&with_age_key("broken", b"AGE-SECRET-KEY-PQ-1XYZ\n"));
    let snap = keys.snapshot();
    assert_eq!(snap.keys.len(), 1);
    assert!(snap.newest().unwrap().pq_recipient.is_none());
    assert_eq!(snap.ring.len(), 1);
    assert_eq!(snap.ring.pq_identities().count(), 0);
    assert_eq!(metrics.keys_post_quantum.get(), 0);
    assert_eq!(metrics.keys_active.get(), 1);

    // Repaired: the same RSA key now with its identity.
    keys.load_and_register(&mk_key_secret("broken"));
    let snap = keys.snapshot();
    assert_eq!(snap.keys.len(), 1);
    assert_eq!(snap.ring.pq_identities().count(), 1);
    assert_eq!(metrics.keys_post_quantum.get(), 1);
}
