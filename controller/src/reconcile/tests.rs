use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use sealed_secrets_api::annotations::{
    self, MANAGED, PATCH, SKIP_SET_OWNER_REFERENCES, SOURCE_DIGEST,
};
use sealed_secrets_api::{API_VERSION, KIND, SealedSecret};
use sealed_secrets_crypto::Fingerprint;

use super::*;
use crate::metrics::ErrorReason;
use sealed_secrets_api::SecretTemplateSpec;

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
fn a_secret_without_digest_is_not_rewritten_only_to_record_one() {
    // As upstream's controller leaves it: owned, same data and metadata, no digest.
    let mut existing = mk_secret(&[], Some(UID));
    let desired = finish_desired(mk_desired(), "sha256:ab;keys=k");
    existing.data = desired.data.clone();
    existing.metadata.labels = desired.metadata.labels.clone();
    let merged = merge(&existing, &desired, WriteMode::Overwrite);
    assert!(differs(&existing, &merged));
    assert!(only_records_digest(&existing, &merged));
    // Any other change is still written, digest included.
    let mut stale = existing.clone();
    stale.data = Some(bytes_map(&[("a", b"old")]));
    assert!(!only_records_digest(
        &stale,
        &merge(&stale, &desired, WriteMode::Overwrite)
    ));
    // A Secret that already records a digest gets the new one.
    let mut ours = existing.clone();
    ours.metadata.annotations = Some([(SOURCE_DIGEST.to_owned(), "sha256:old".to_owned())].into());
    assert!(!only_records_digest(
        &ours,
        &merge(&ours, &desired, WriteMode::Overwrite)
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
    let d = source_digest(&ss, &keys);
    assert!(d.starts_with("sha256:") && d.ends_with(&format!(";keys={fp}")));
    assert!(digest_matches(&d, &ss, |_| true));
    assert!(
        !digest_matches(&d, &ss, |_| false),
        "a removed key forces decryption"
    );
    let mut ss2 = ss.clone();
    ss2.metadata.generation = Some(2);
    assert!(!digest_matches(&d, &ss2, |_| true));
    let mut ss3 = ss.clone();
    ss3.spec.encrypted_data.insert("b", "AgBz");
    assert!(!digest_matches(&d, &ss3, |_| true));
    let mut ss4 = ss.clone();
    ss4.metadata.uid = Some("uid-2".into());
    assert!(!digest_matches(&d, &ss4, |_| true));
    let mut ss5 = ss.clone();
    ss5.metadata.annotations =
        Some([(annotations::CLUSTER_WIDE.to_owned(), "true".to_owned())].into());
    assert!(!digest_matches(&d, &ss5, |_| true));
    assert!(!digest_matches("garbage", &ss, |_| true));
    let forged = d.replace(";keys=", ";keys=SHA256:x,");
    assert!(!digest_matches(&forged, &ss, |_| true));
}

fn time(s: i64) -> Time {
    Time(jiff::Timestamp::from_second(s).unwrap())
}

#[test]
fn status_transitions() {
    // First success: condition created, transition == update.
    let s1 = next_status(None, Some(1), None, &time(10)).unwrap();
    let c = &s1.conditions[0];
    assert_eq!((c.type_.as_str(), c.status.as_str()), ("Synced", "True"));
    assert_eq!(c.last_transition_time, c.last_update_time);
    assert_eq!(s1.observed_generation, Some(1));
    // Same result, same generation: no write.
    assert!(next_status(Some(&s1), Some(1), None, &time(20)).is_none());
    // New generation, still success: update time moves, transition does not.
    let s2 = next_status(Some(&s1), Some(2), None, &time(20)).unwrap();
    assert_eq!(s2.observed_generation, Some(2));
    assert_eq!(s2.conditions[0].last_transition_time, Some(time(10)));
    assert_eq!(s2.conditions[0].last_update_time, Some(time(20)));
    // Failure: transition with message.
    let s3 = next_status(Some(&s2), Some(2), Some("boom"), &time(30)).unwrap();
    assert_eq!(s3.conditions[0].status, "False");
    assert_eq!(s3.conditions[0].message.as_deref(), Some("boom"));
    assert_eq!(s3.conditions[0].last_transition_time, Some(time(30)));
    // Same failure again: no write; a different message is written.
    assert!(next_status(Some(&s3), Some(2), Some("boom"), &time(40)).is_none());
    assert!(next_status(Some(&s3), Some(2), Some("other"), &time(40)).is_some());
    // Back to success clears the message.
    let s4 = next_status(Some(&s3), Some(2), None, &time(50)).unwrap();
    assert_eq!(s4.conditions[0].message, None);
    assert_eq!(s4.conditions.len(), 1);
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
    let ss = mk_ss("s");
    assert!(old_gc_deletes(&mk_secret(&[], Some(UID)).metadata, &ss));
    assert!(!old_gc_deletes(
        &mk_secret(&[], Some("other")).metadata,
        &ss
    ));
    assert!(!old_gc_deletes(
        &mk_secret(&[(MANAGED, "true")], None).metadata,
        &ss
    ));
    // No ownerReference (orphaned, or skip-set-owner-references) but our digest.
    let d = source_digest(&ss, &BTreeSet::new());
    assert!(old_gc_deletes(
        &mk_secret(&[(SOURCE_DIGEST, &d)], None).metadata,
        &ss
    ));
    // The digest of another object (same name, another uid) is not ours.
    let mut other = ss.clone();
    other.metadata.uid = Some("uid-2".into());
    let d2 = source_digest(&other, &BTreeSet::new());
    assert!(!old_gc_deletes(
        &mk_secret(&[(SOURCE_DIGEST, &d2)], None).metadata,
        &ss
    ));
}

#[test]
fn old_gc_deletes_after_the_generation_bump_of_a_finalizing_delete() {
    let mut ss = mk_ss("s");
    ss.metadata.generation = Some(1);
    let d = source_digest(&ss, &BTreeSet::new());
    let secret = mk_secret(&[(SOURCE_DIGEST, &d)], None);
    // What the watch reports for an orphaning delete on a real API server.
    let mut deleted = ss.clone();
    deleted.metadata.generation = Some(2);
    deleted.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
    );
    assert!(old_gc_deletes(&secret.metadata, &deleted));
    // Without a deletion, a newer generation is another spec: not ours to delete.
    let mut newer = ss.clone();
    newer.metadata.generation = Some(2);
    assert!(!old_gc_deletes(&secret.metadata, &newer));
    // Two generations past it is not the deletion's bump either.
    deleted.metadata.generation = Some(3);
    assert!(!old_gc_deletes(&secret.metadata, &deleted));
}
