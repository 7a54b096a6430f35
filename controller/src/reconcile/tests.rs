use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use sealed_secrets_api::annotations::{
    self, MANAGED, PATCH, SKIP_SET_OWNER_REFERENCES, SOURCE_DIGEST,
};
use sealed_secrets_api::{API_VERSION, KIND, SealedSecret, SealedSecretStatus};
use sealed_secrets_crypto::Fingerprint;

use super::*;
use crate::metrics::ErrorReason;
use sealed_secrets_api::SecretTemplateSpec;

fn bytes_map(items: &[(&str, &[u8])]) -> BTreeMap<String, k8s_openapi::ByteString> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), k8s_openapi::ByteString(v.to_vec())))
        .collect()
}

const UID: &str = "uid-1";

fn mk_ss(name: &str) -> SealedSecret {
    let mut ss = SealedSecret::new(name, Default::default());
    ss.metadata.namespace = Some("ns".into());
    ss.metadata.uid = Some(UID.into());
    ss.metadata.generation = Some(1);
    ss.spec.encrypted_data.insert("a", "AgBy");
    ss
}

fn mk_secret(annotations: &[(&str, &str)], owner_uid: Option<&str>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            namespace: Some("ns".into()),
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect()
            }),
            labels: Some([("old".to_owned(), "l".to_owned())].into()),
            owner_references: owner_uid.map(|u| {
                vec![OwnerReference {
                    api_version: API_VERSION.into(),
                    kind: KIND.into(),
                    name: "s".into(),
                    uid: u.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..Default::default()
        },
        data: Some(bytes_map(&[("keep", b"1"), ("a", b"old")])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

fn mk_desired() -> Secret {
    let mut d = desired_metadata_only(&mk_ss("s"));
    d.metadata.labels = Some([("new".to_owned(), "l".to_owned())].into());
    d.data = Some(bytes_map(&[("a", b"new")]));
    d
}

#[test]
fn ownership_decisions() {
    assert_eq!(
        write_mode(&mk_secret(&[], Some(UID)).metadata, UID),
        Ok(WriteMode::Overwrite)
    );
    assert_eq!(
        write_mode(&mk_secret(&[], Some("other")).metadata, UID),
        Err(Unmanaged)
    );
    assert_eq!(
        write_mode(&mk_secret(&[], None).metadata, UID),
        Err(Unmanaged)
    );
    assert_eq!(
        write_mode(&mk_secret(&[(MANAGED, "true")], None).metadata, UID),
        Ok(WriteMode::Overwrite)
    );
    assert_eq!(
        write_mode(&mk_secret(&[(MANAGED, "True")], None).metadata, UID),
        Err(Unmanaged)
    );
    assert_eq!(
        write_mode(&mk_secret(&[(PATCH, "true")], None).metadata, UID),
        Ok(WriteMode::Patch {
            take_ownership: false
        })
    );
    assert_eq!(
        write_mode(
            &mk_secret(&[(PATCH, "true"), (MANAGED, "true")], None).metadata,
            UID
        ),
        Ok(WriteMode::Patch {
            take_ownership: true
        })
    );
    // A non-controller ownerReference is not ownership.
    let mut s = mk_secret(&[], Some(UID));
    s.metadata.owner_references.as_mut().unwrap()[0].controller = None;
    assert_eq!(write_mode(&s.metadata, UID), Err(Unmanaged));
}

#[test]
fn overwrite_replaces_everything_we_write() {
    let existing = mk_secret(&[(MANAGED, "true")], None);
    let m = merge(&existing, &mk_desired(), WriteMode::Overwrite);
    assert_eq!(m.data, Some(bytes_map(&[("a", b"new")])));
    assert_eq!(
        m.metadata.labels,
        Some([("new".to_owned(), "l".to_owned())].into())
    );
    assert_eq!(m.metadata.annotations, None);
    assert_eq!(m.metadata.owner_references.as_ref().unwrap()[0].uid, UID);
    assert!(differs(&existing, &m));
}

#[test]
fn a_produced_secret_carries_exactly_the_templates_annotations() {
    // What upstream writes: the template's annotations and nothing of ours.
    let mut ss = mk_ss("s");
    ss.spec.template.metadata = Some(ObjectMeta {
        annotations: Some([("team".to_owned(), "a".to_owned())].into()),
        ..Default::default()
    });
    let desired = finish_desired(desired_metadata_only(&ss));
    assert_eq!(
        desired.metadata.annotations,
        Some([("team".to_owned(), "a".to_owned())].into())
    );
    // A Secret written by an older version loses the legacy digest annotation on the next
    // write, in either write mode; other annotations of a patched Secret stay.
    let legacy = mk_secret(&[(SOURCE_DIGEST, "sha256:old;keys=")], Some(UID));
    let m = merge(&legacy, &desired, WriteMode::Overwrite);
    assert_eq!(m.metadata.annotations, desired.metadata.annotations);
    let patched = mk_secret(
        &[(SOURCE_DIGEST, "sha256:old;keys="), (PATCH, "true")],
        None,
    );
    let m = merge(
        &patched,
        &desired,
        WriteMode::Patch {
            take_ownership: false,
        },
    );
    let ann = m.metadata.annotations.unwrap();
    assert!(!ann.contains_key(SOURCE_DIGEST));
    assert_eq!(ann[PATCH], "true");
    assert_eq!(ann["team"], "a");
    // Removing it is a change worth a write.
    let mut same = legacy.clone();
    same.data = desired.data.clone();
    same.metadata.labels = desired.metadata.labels.clone();
    same.metadata.owner_references = desired.metadata.owner_references.clone();
    let mut with_ann = desired.clone();
    with_ann
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SOURCE_DIGEST.to_owned(), "sha256:old;keys=".to_owned());
    same.metadata.annotations = with_ann.metadata.annotations;
    assert!(differs(
        &same,
        &merge(&same, &desired, WriteMode::Overwrite)
    ));
}

#[test]
fn patch_merges_and_takes_ownership_only_when_managed() {
    let existing = mk_secret(&[(PATCH, "true")], None);
    let m = merge(
        &existing,
        &mk_desired(),
        WriteMode::Patch {
            take_ownership: false,
        },
    );
    assert_eq!(m.data, Some(bytes_map(&[("a", b"new"), ("keep", b"1")])));
    let labels = m.metadata.labels.as_ref().unwrap();
    assert_eq!((labels["old"].as_str(), labels["new"].as_str()), ("l", "l"));
    assert_eq!(m.metadata.annotations.as_ref().unwrap()[PATCH], "true");
    assert!(m.metadata.owner_references.is_none());
    let m = merge(
        &existing,
        &mk_desired(),
        WriteMode::Patch {
            take_ownership: true,
        },
    );
    assert_eq!(m.metadata.owner_references.as_ref().unwrap()[0].uid, UID);
}

#[test]
fn semantic_equality_ignores_empty_vs_absent() {
    let mut a = mk_secret(&[], Some(UID));
    let mut b = a.clone();
    assert!(!differs(&a, &b));
    a.metadata.annotations = Some(BTreeMap::new());
    b.type_ = None;
    assert!(!differs(&a, &b));
    b.type_ = Some("kubernetes.io/tls".into());
    assert!(differs(&a, &b));
}

#[test]
fn immutable_targets_refuse_data_changes_only() {
    let mut existing = mk_secret(&[], Some(UID));
    existing.immutable = Some(true);
    let m = merge(&existing, &mk_desired(), WriteMode::Overwrite);
    assert!(violates_immutable(&existing, &m));
    let mut same_data = mk_desired();
    same_data.data = existing.data.clone();
    let m = merge(&existing, &same_data, WriteMode::Overwrite);
    assert!(!violates_immutable(&existing, &m));
    assert_eq!(m.immutable, Some(true));
}

#[test]
fn desired_metadata_follows_template() {
    let mut ss = mk_ss("s");
    ss.spec.template = SecretTemplateSpec {
        metadata: Some(ObjectMeta {
            name: Some("ignored".into()),
            namespace: Some("elsewhere".into()),
            labels: Some([("app".to_owned(), "x".to_owned())].into()),
            ..Default::default()
        }),
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        immutable: Some(true),
        data: None,
    };
    let d = desired_metadata_only(&ss);
    assert_eq!(d.metadata.name.as_deref(), Some("s"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(d.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(d.metadata.owner_references.as_ref().unwrap().len(), 1);
    ss.spec.template.metadata.as_mut().unwrap().annotations =
        Some([(SKIP_SET_OWNER_REFERENCES.to_owned(), "true".to_owned())].into());
    assert!(
        desired_metadata_only(&ss)
            .metadata
            .owner_references
            .is_none()
    );
}

#[test]
fn digest_changes_with_inputs_and_checks_keys() {
    let ss = mk_ss("s");
    let fp: Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .parse()
        .unwrap();
    let keys: BTreeSet<Fingerprint> = [fp.clone()].into();
    let d = source_digest(&ss, "secret-1", &keys);
    assert!(d.starts_with("sha256:") && d.ends_with(&format!(";keys={fp}")));
    assert!(digest_matches(&d, &ss, "secret-1", |_| true));
    assert!(
        !digest_matches(&d, &ss, "secret-1", |_| false),
        "a removed key forces decryption"
    );
    assert!(
        !digest_matches(&d, &ss, "secret-2", |_| true),
        "another Secret (deleted and created again) is decrypted for again"
    );
    assert!(!digest_matches(&d, &ss, "", |_| true));
    let mut ss2 = ss.clone();
    ss2.metadata.generation = Some(2);
    assert!(!digest_matches(&d, &ss2, "secret-1", |_| true));
    let mut ss3 = ss.clone();
    ss3.spec.encrypted_data.insert("b", "AgBz");
    assert!(!digest_matches(&d, &ss3, "secret-1", |_| true));
    let mut ss4 = ss.clone();
    ss4.metadata.uid = Some("uid-2".into());
    assert!(!digest_matches(&d, &ss4, "secret-1", |_| true));
    let mut ss5 = ss.clone();
    ss5.metadata.annotations =
        Some([(annotations::CLUSTER_WIDE.to_owned(), "true".to_owned())].into());
    assert!(!digest_matches(&d, &ss5, "secret-1", |_| true));
    assert!(!digest_matches("garbage", &ss, "secret-1", |_| true));
    let forged = d.replace(";keys=", ";keys=SHA256:x,");
    assert!(!digest_matches(&forged, &ss, "secret-1", |_| true));
    // The legacy (annotation) digest is another value and only checked as one.
    let legacy = legacy_source_digest(&ss, &keys);
    assert_ne!(legacy, d);
    assert!(legacy_digest_matches(&legacy, &ss, |_| true));
    assert!(!legacy_digest_matches(&d, &ss, |_| true));
    assert!(!digest_matches(&legacy, &ss, "secret-1", |_| true));
}

#[test]
fn data_is_reused_only_for_the_recorded_secret_or_a_legacy_annotation() {
    let fp: Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .parse()
        .unwrap();
    let keys: BTreeSet<Fingerprint> = [fp].into();
    let mut ss = mk_ss("s");
    let mut secret = mk_secret(&[], Some(UID));
    secret.metadata.uid = Some("secret-1".into());
    assert_eq!(reusable(&secret, &ss, |_| true), None, "no digest anywhere");
    ss.status = Some(SealedSecretStatus {
        source_digest: Some(source_digest(&ss, "secret-1", &keys)),
        ..Default::default()
    });
    assert_eq!(reusable(&secret, &ss, |_| true), Some(keys.clone()));
    assert_eq!(reusable(&secret, &ss, |_| false), None, "its key is gone");
    // The same name, another Secret.
    let mut other = secret.clone();
    other.metadata.uid = Some("secret-2".into());
    assert_eq!(reusable(&other, &ss, |_| true), None);
    // A Secret the controller may not write is never reused, digest or not.
    let mut foreign = secret.clone();
    foreign.metadata.owner_references = None;
    assert_eq!(reusable(&foreign, &ss, |_| true), None);
    // An older version's annotation on the Secret still saves the decryption.
    let mut plain = mk_ss("s");
    plain.status = None;
    let legacy = mk_secret(
        &[(SOURCE_DIGEST, &legacy_source_digest(&plain, &keys))],
        Some(UID),
    );
    assert_eq!(reusable(&legacy, &plain, |_| true), Some(keys.clone()));
    let mut newer = plain.clone();
    newer.metadata.generation = Some(2);
    assert_eq!(reusable(&legacy, &newer, |_| true), None);
}

#[test]
fn the_cache_keeps_only_what_queueing_needs() {
    let big = "x".repeat(100_000);
    let meta = ObjectMeta {
        name: Some("s".into()),
        namespace: Some("ns".into()),
        uid: Some(UID.into()),
        generation: Some(3),
        resource_version: Some("42".into()),
        labels: Some(
            [
                (annotations::APP_INSTANCE_LABEL.to_owned(), "app".to_owned()),
                ("big".to_owned(), big.clone()),
            ]
            .into(),
        ),
        annotations: Some([(annotations::KUBECTL_LAST_APPLIED.to_owned(), big.clone())].into()),
        managed_fields: Some(vec![Default::default(); 10]),
        finalizers: Some(vec![big]),
        ..Default::default()
    };
    let kept = cached_metadata(meta);
    assert_eq!(
        kept,
        ObjectMeta {
            name: Some("s".into()),
            namespace: Some("ns".into()),
            uid: Some(UID.into()),
            generation: Some(3),
            resource_version: Some("42".into()),
            labels: Some([(annotations::APP_INSTANCE_LABEL.to_owned(), "app".to_owned())].into()),
            ..Default::default()
        }
    );
    assert_eq!(
        cached_metadata(ObjectMeta::default()),
        ObjectMeta::default()
    );
}

#[test]
fn the_size_limit() {
    let limit = super::flags::DEFAULT_MAX_SEALED_SECRET_SIZE;
    // A sealed 1 MiB Secret (base64 of the values) fits under the default.
    assert!(!too_large(1_398_102 + 20_000, limit));
    assert!(!too_large(limit, limit));
    assert!(too_large(limit + 1, limit));
    assert!(!too_large(u64::MAX, 0), "0 means no limit");
    let e = ReconcileError::TooLarge {
        object: "ns/s".into(),
        size: 2_000_000,
        limit,
    };
    assert!(e.message().contains("2000000 bytes"));
    assert!(e.message().contains("--max-sealed-secret-size"));
    assert_eq!(e.reason(), ErrorReason::Unseal);
}

fn time(s: i64) -> Time {
    Time(jiff::Timestamp::from_second(s).unwrap())
}

#[test]
fn status_transitions() {
    // First success: condition created, transition == update.
    let s1 = next_status(None, Some(1), None, None, &time(10)).unwrap();
    let c = &s1.conditions[0];
    assert_eq!((c.type_.as_str(), c.status.as_str()), ("Synced", "True"));
    assert_eq!(c.last_transition_time, c.last_update_time);
    assert_eq!(s1.observed_generation, Some(1));
    // Same result, same generation: no write.
    assert!(next_status(Some(&s1), Some(1), None, None, &time(20)).is_none());
    // New generation, still success: update time moves, transition does not.
    let s2 = next_status(Some(&s1), Some(2), None, None, &time(20)).unwrap();
    assert_eq!(s2.observed_generation, Some(2));
    assert_eq!(s2.conditions[0].last_transition_time, Some(time(10)));
    assert_eq!(s2.conditions[0].last_update_time, Some(time(20)));
    // Failure: transition with message.
    let s3 = next_status(Some(&s2), Some(2), Some("boom"), None, &time(30)).unwrap();
    assert_eq!(s3.conditions[0].status, "False");
    assert_eq!(s3.conditions[0].message.as_deref(), Some("boom"));
    assert_eq!(s3.conditions[0].last_transition_time, Some(time(30)));
    // Same failure again: no write; a different message is written.
    assert!(next_status(Some(&s3), Some(2), Some("boom"), None, &time(40)).is_none());
    assert!(next_status(Some(&s3), Some(2), Some("other"), None, &time(40)).is_some());
    // Back to success clears the message.
    let s4 = next_status(Some(&s3), Some(2), None, None, &time(50)).unwrap();
    assert_eq!(s4.conditions[0].message, None);
    assert_eq!(s4.conditions.len(), 1);
    // The source digest: recorded, unchanged (no write), changed, cleared by a failure.
    let s5 = next_status(Some(&s4), Some(2), None, Some("sha256:a;keys="), &time(60)).unwrap();
    assert_eq!(s5.source_digest.as_deref(), Some("sha256:a;keys="));
    assert_eq!(s5.conditions[0].last_transition_time, Some(time(50)));
    assert!(next_status(Some(&s5), Some(2), None, Some("sha256:a;keys="), &time(70)).is_none());
    let s6 = next_status(Some(&s5), Some(2), None, Some("sha256:b;keys="), &time(70)).unwrap();
    assert_eq!(s6.source_digest.as_deref(), Some("sha256:b;keys="));
    let s7 = next_status(Some(&s6), Some(2), Some("boom"), None, &time(80)).unwrap();
    assert_eq!(s7.source_digest, None);
    // With a CRD that prunes the field, nothing is recorded and nothing rewritten for it.
    assert!(next_status(Some(&s4), Some(2), None, None, &time(90)).is_none());
}

#[test]
fn recreate_targets() {
    let owned = mk_secret(&[], Some(UID));
    assert_eq!(
        recreate_target(&owned.metadata),
        Some(("ns".into(), "s".into()))
    );
    let managed = mk_secret(&[(MANAGED, "true")], None);
    assert_eq!(
        recreate_target(&managed.metadata),
        Some(("ns".into(), "s".into()))
    );
    assert_eq!(
        recreate_target(&mk_secret(&[(PATCH, "true")], None).metadata),
        None
    );
    assert_eq!(recreate_target(&mk_secret(&[], None).metadata), None);
}

#[test]
fn backoff_grows_and_caps() {
    assert_eq!(retry_backoff(1), Duration::from_millis(500));
    assert_eq!(retry_backoff(2), Duration::from_millis(1000));
    assert_eq!(retry_backoff(40), Duration::from_secs(300));
}

#[test]
fn error_messages_and_reasons() {
    let e = ReconcileError::Unmanaged { name: "db".into() };
    assert_eq!(
        e.message(),
        "Resource \"db\" already exists and is not managed by SealedSecret"
    );
    assert_eq!(e.reason(), ErrorReason::Unmanaged);
    let e = ReconcileError::Immutable {
        object: "ns/db".into(),
    };
    assert!(e.message().contains("the target Secret is immutable"));
    assert_eq!(e.reason(), ErrorReason::Update);
    let e = ReconcileError::RefusedType {
        object: "ns/sa".into(),
    };
    assert!(
        e.message()
            .contains("--allow-service-account-token-secrets")
    );
    assert_eq!(e.reason(), ErrorReason::Unseal);
}

#[test]
fn service_account_token_secrets_need_the_flag() {
    let mut s = mk_desired();
    assert!(!refused_type(&s, false));
    s.type_ = Some(SERVICE_ACCOUNT_TOKEN_TYPE.into());
    assert!(refused_type(&s, false));
    assert!(!refused_type(&s, true));
    s.type_ = Some("kubernetes.io/tls".into());
    assert!(!refused_type(&s, false));
}
#[test]
fn old_gc_deletes_only_what_this_sealed_secret_produced() {
    assert!(old_gc_deletes(
        &mk_secret(&[], Some(UID)).metadata,
        UID,
        None
    ));
    assert!(!old_gc_deletes(
        &mk_secret(&[], Some("other")).metadata,
        UID,
        None
    ));
    assert!(!old_gc_deletes(
        &mk_secret(&[(MANAGED, "true")], None).metadata,
        UID,
        None
    ));
    // No ownerReference (orphaned, or skip-set-owner-references) but the very Secret this
    // controller produced from it.
    let mut produced = mk_secret(&[], None);
    produced.metadata.uid = Some("secret-1".into());
    assert!(old_gc_deletes(&produced.metadata, UID, Some("secret-1")));
    // Another Secret of the same name (deleted and created again by someone) is not.
    assert!(!old_gc_deletes(&produced.metadata, UID, Some("secret-2")));
    assert!(!old_gc_deletes(&produced.metadata, "", Some("secret-1")));
    let mut no_uid = produced.clone();
    no_uid.metadata.uid = None;
    assert!(!old_gc_deletes(&no_uid.metadata, UID, Some("")));
    // A legacy digest annotation alone proves nothing any more.
    let legacy = mk_secret(&[(SOURCE_DIGEST, "sha256:x;keys=")], None);
    assert!(!old_gc_deletes(&legacy.metadata, UID, None));
}

#[test]
fn transient_api_failures_are_told_from_lasting_ones() {
    let api = |code: u16| {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    };
    let get = |code| ReconcileError::Get {
        object: "ns/x".into(),
        source: api(code),
    };
    for code in [429, 500, 502, 503, 504] {
        assert!(get(code).is_transient(), "{code}");
        assert!(
            ReconcileError::Create {
                object: "ns/x".into(),
                source: api(code),
            }
            .is_transient()
        );
    }
    for code in [400, 403, 404, 409, 422] {
        assert!(!get(code).is_transient(), "{code}");
    }
    assert!(!ReconcileError::Unmanaged { name: "x".into() }.is_transient());
    assert!(
        !ReconcileError::Immutable {
            object: "ns/x".into()
        }
        .is_transient()
    );
}
