use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_api::annotations::{ROTATE_REQUEST, SEALING_KEY_LABEL};
use sealed_secrets_crypto::{CertParams, Certificate, PqIdentity, PrivateKey};

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;

use super::registry::Registry;
use super::{
    KeyArgs, KeyLoadError, KeyOrderPriority, Keys, LoadedKey, SUPPORTED_KEY_SIZES, has_key_origin,
    key_secret, load_secret, needs_key_at_startup, next_renewal, ordering_not_before, pick_newest,
    should_rotate, startup_backoff,
};

pub(super) fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

pub(super) fn test_pq() -> &'static PqIdentity {
    static PQ: OnceLock<PqIdentity> = OnceLock::new();
    PQ.get_or_init(|| PqIdentity::from_seed(&[7u8; 32]).unwrap())
}

pub(super) fn test_key() -> &'static (PrivateKey, Certificate) {
    static KEY: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    KEY.get_or_init(|| {
        let k = PrivateKey::generate(2048).unwrap();
        let c = k
            .self_signed_certificate(&CertParams {
                not_before: t(1000),
                ..Default::default()
            })
            .unwrap();
        (k, c)
    })
}

pub(super) fn settings() -> KeyArgs {
    KeyArgs::parse_for_test(&[
        "--key-size=2048",
        "--key-ttl=1h",
        &format!("--privatekey-labels=team=x,{SEALING_KEY_LABEL}=other"),
        "--privatekey-annotations=a=b",
    ])
}

pub(super) const NAMESPACE: &str = "kube-system";

pub(super) fn mk_key_secret(name: &str) -> Secret {
    let (k, c) = test_key();
    let mut s = key_secret(&settings(), NAMESPACE, k, c, test_pq());
    s.metadata.name = Some(name.into());
    s
}

#[test]
fn newest_is_strictly_later_and_ties_keep_first() {
    assert_eq!(pick_newest(&[]), None);
    assert_eq!(pick_newest(&[t(5), t(9), t(9), t(3)]), Some(1));
    assert_eq!(pick_newest(&[t(5), t(5)]), Some(0));
}

#[test]
fn startup_generation_and_renewal_schedule() {
    assert!(needs_key_at_startup(None, None));
    assert!(!needs_key_at_startup(Some(t(10)), None));
    assert!(needs_key_at_startup(Some(t(10)), Some(t(11))));
    assert!(!needs_key_at_startup(Some(t(12)), Some(t(11))));
    assert_eq!(next_renewal(Some(t(100)), Duration::ZERO, t(150)), None);
    assert_eq!(
        next_renewal(Some(t(100)), Duration::from_secs(60), t(150)),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        next_renewal(Some(t(100)), Duration::from_secs(60), t(500)),
        Some(Duration::ZERO)
    );
    assert_eq!(
        next_renewal(None, Duration::from_secs(60), t(500)),
        Some(Duration::from_secs(60))
    );
}

#[test]
fn startup_retries_back_off_and_cap() {
    assert_eq!(startup_backoff(1), Duration::from_millis(500));
    assert_eq!(startup_backoff(2), Duration::from_secs(1));
    assert_eq!(startup_backoff(4), Duration::from_secs(4));
    assert_eq!(startup_backoff(7), Duration::from_secs(30));
    assert_eq!(startup_backoff(u32::MAX), Duration::from_secs(30));
}

#[test]
fn unsupported_key_sizes_cannot_be_generated() {
    // The list the flag is checked against matches the generator: sizes outside it fail.
    for bits in [0, 1024, 2047, 2049, 5000, 16384] {
        assert!(!SUPPORTED_KEY_SIZES.contains(&bits));
        assert!(PrivateKey::generate(bits).is_err(), "{bits}");
    }
}

#[test]
fn key_secret_has_upstream_shape() {
    let s = mk_key_secret("k1");
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        s.metadata.generate_name.as_deref(),
        Some("sealed-secrets-key")
    );
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SEALING_KEY_LABEL], "active");
    assert_eq!(labels["team"], "x");
    let pem = &s.data.as_ref().unwrap()["tls.key"].0;
    assert!(pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    let loaded = load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap();
    assert_eq!(loaded.order_time, t(1000));
    assert_eq!(loaded.key.fingerprint(), test_key().0.fingerprint());
}

#[test]
fn malformed_key_secrets_are_errors_not_panics() {
    let mut s = mk_key_secret("bad");
    s.data
        .as_mut()
        .unwrap()
        .insert("tls.key".into(), ByteString(b"garbage".to_vec()));
    assert!(matches!(
        load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)),
        Err(KeyLoadError::Key { .. })
    ));
    let mut s = mk_key_secret("bad");
    s.data.as_mut().unwrap().remove("tls.crt");
    assert!(matches!(
        load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)),
        Err(KeyLoadError::Missing { .. })
    ));
    let mut s = mk_key_secret("bad");
    s.data = None;
    let e = load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap_err();
    assert_eq!(e.to_string(), "key Secret `bad` has no `tls.key`");
}

#[test]
fn future_not_before_does_not_make_a_key_newest() {
    let s = mk_key_secret("k");
    // Loaded when its NotBefore (t(1000)) is 1000 s away: ranks as the oldest.
    let early = load_secret(&s, KeyOrderPriority::CertNotBefore, t(0)).unwrap();
    assert_eq!(early.order_time, SystemTime::UNIX_EPOCH);
    assert!(early.future_not_before);
    // Within the skew, or once the date has come: its NotBefore.
    let skewed = load_secret(&s, KeyOrderPriority::CertNotBefore, t(1000 - 60)).unwrap();
    assert_eq!(skewed.order_time, t(1000));
    assert!(!skewed.future_not_before);
    assert_eq!(ordering_not_before(t(5000), t(5000)), t(5000));
    assert_eq!(
        ordering_not_before(t(5301), t(5000)),
        SystemTime::UNIX_EPOCH
    );
    // So a legitimate key stays newest against a future-dated one.
    assert_eq!(pick_newest(&[t(900), early.order_time]), Some(0));
}

#[test]
fn certificate_of_another_key_is_refused() {
    let mut s = mk_key_secret("mixed");
    let other = PrivateKey::generate(2048).unwrap();
    let other_cert = other
        .self_signed_certificate(&CertParams::default())
        .unwrap();
    s.data.as_mut().unwrap().insert(
        "tls.crt".into(),
        ByteString(other_cert.pem().as_bytes().to_vec()),
    );
    let e = load_secret(&s, KeyOrderPriority::CertNotBefore, t(2000)).unwrap_err();
    assert!(matches!(e, KeyLoadError::CertMismatch { .. }));
    assert_eq!(
        e.to_string(),
        "key Secret `mixed` is refused: its `tls.crt` does not belong to its `tls.key`"
    );
    let keys = Keys::new(
        settings(),
        NAMESPACE.into(),
        Arc::new(crate::metrics::Metrics::new()),
    );
    keys.load_and_register(&s);
    assert!(keys.snapshot().keys.is_empty());
}

#[test]
fn keys_not_generated_here_are_counted() {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let keys = Keys::new(settings(), NAMESPACE.into(), metrics.clone());
    let generated = mk_key_secret("gen");
    assert!(has_key_origin(&generated.metadata));
    let loaded = load_secret(&generated, KeyOrderPriority::CertNotBefore, t(2000)).unwrap();
    assert!(!loaded.foreign);
    keys.load_and_register(&generated);
    assert_eq!(metrics.keys_foreign.get(), 0);
    keys.unregister("gen");
    let mut foreign = mk_key_secret("restored");
    foreign.metadata.annotations = None;
    keys.load_and_register(&foreign);
    assert!(keys.snapshot().keys[0].foreign);
    assert_eq!(metrics.keys_foreign.get(), 1);
    assert!(
        metrics
            .encode()
            .contains("sealed_secrets_controller_keys_foreign 1")
    );
}

#[test]
fn secret_creation_timestamp_priority() {
    let mut s = mk_key_secret("k");
    s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(5000).unwrap(),
    ));
    let k = load_secret(&s, KeyOrderPriority::SecretCreationTimestamp, t(2000)).unwrap();
    assert_eq!(k.order_time, t(5000));
}

#[test]
fn a_generated_key_seen_first_by_the_watcher_still_becomes_newest() {
    let (k, c) = test_key();
    let mk = |name: &str, secs: u64| LoadedKey {
        secret_name: name.into(),
        key: k.clone(),
        cert: c.clone(),
        order_time: t(secs),
        foreign: false,
        future_not_before: false,
        pq: None,
        pq_error: None,
    };
    let mut r = Registry::default();
    assert!(r.upsert(mk("gen", 1000), false)); // watcher: cert NotBefore
    assert!(!r.upsert(mk("gen", 1000), false));
    assert!(r.upsert(mk("gen", 1005), true)); // generate(): "now"
    assert_eq!(r.entries[0].order_time, t(1005));
    assert!(!r.upsert(mk("gen", 999), true), "never moves back");
}

#[test]
fn registry_upsert_and_remove() {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let keys = Keys::new(settings(), NAMESPACE.into(), metrics);
    keys.load_and_register(&mk_key_secret("k1"));
    keys.load_and_register(&mk_key_secret("k1"));
    // The same key under another Secret name is kept once.
    keys.load_and_register(&mk_key_secret("k2"));
    assert_eq!(keys.snapshot().keys.len(), 1);
    assert!(keys.snapshot().newest().is_some());
    keys.unregister("k1");
    assert!(keys.snapshot().newest().is_none());
}
fn mk_meta(value: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some("k".into()),
        annotations: value.map(|v| [(ROTATE_REQUEST.to_owned(), v.to_owned())].into()),
        ..Default::default()
    }
}

#[test]
fn rotation_only_for_requests_after_the_newest_key() {
    // Later than the newest key: rotate.
    assert!(should_rotate(Some(t(100)), Some(t(50)), None));
    // Not later (equal or older): the request was already answered, or predates the key.
    assert!(!should_rotate(Some(t(50)), Some(t(50)), None));
    assert!(!should_rotate(Some(t(40)), Some(t(50)), None));
    // No request, or no key at all (startup generates the first one).
    assert!(!should_rotate(None, Some(t(50)), None));
    assert!(!should_rotate(Some(t(100)), None, None));
    // A request answered by this process is never answered twice, even if stamped in
    // the future (clock skew) so that it stays later than the key it produced...
    assert!(!should_rotate(Some(t(100)), Some(t(60)), Some(t(100))));
    // ...but a newer request is.
    assert!(should_rotate(Some(t(101)), Some(t(60)), Some(t(100))));
}

#[test]
fn rotation_requests_follow_the_key_secrets() {
    let keys = Keys::new(
        settings(),
        NAMESPACE.into(),
        Arc::new(crate::metrics::Metrics::new()),
    );
    let mut rx = keys.rotation_requests_changed();
    let mut a = mk_key_secret("a");
    a.metadata.annotations = mk_meta(Some("1970-01-01T00:16:40Z")).annotations;
    let mut b = mk_key_secret("b");
    b.metadata.annotations = mk_meta(Some("1970-01-01T00:33:20Z")).annotations;
    keys.track_rotation_request(&a);
    keys.track_rotation_request(&b);
    assert_eq!(keys.latest_rotation_request(), Some(t(2000)));
    assert!(rx.has_changed().unwrap());
    rx.borrow_and_update();
    // The same value again is no change.
    keys.track_rotation_request(&b);
    assert!(!rx.has_changed().unwrap());
    // The annotation removed, or the Secret gone: its request is forgotten.
    keys.track_rotation_request(&mk_key_secret("b"));
    assert_eq!(keys.latest_rotation_request(), Some(t(1000)));
    keys.forget_rotation_request("a");
    assert_eq!(keys.latest_rotation_request(), None);
    keys.track_rotation_request(&a);
    keys.retain_rotation_requests(&BTreeSet::from(["other".to_owned()]));
    assert_eq!(keys.latest_rotation_request(), None);
    // A value that is not a time is ignored, and replaces a valid request it overwrote.
    keys.track_rotation_request(&a);
    a.metadata.annotations = mk_meta(Some("yesterday")).annotations;
    keys.track_rotation_request(&a);
    assert_eq!(keys.latest_rotation_request(), None);
}
