//! The plan of one pass, as tables ([`super::plan`]).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sealed_secrets_api::{SealedSecretCondition, SealedSecretSpec};

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use sealed_secrets_api::{CONDITION_SYNCED, SealedSecret, SealedSecretStatus};

use super::error::ReconcileError;
use super::plan::{
    Facts, Plan, SecretWrite, StartFacts, StatusWrite, Written, plan, secret_write,
    unchanged_at_start,
};
use crate::events::{EventType, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED};

const UID: &str = "ss-uid";

fn mk_ss(synced: Option<&str>) -> SealedSecret {
    let mut ss = SealedSecret::new("db", SealedSecretSpec::default());
    ss.metadata.namespace = Some("ns".into());
    ss.metadata.uid = Some(UID.into());
    ss.metadata.generation = Some(1);
    ss.status = synced.map(|s| SealedSecretStatus {
        observed_generation: Some(1),
        conditions: vec![SealedSecretCondition {
            type_: CONDITION_SYNCED.into(),
            status: s.into(),
            message: (s == "False").then(|| {
                "Resource \"db\" already exists and is not managed by SealedSecret".into()
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    ss
}

fn mk_secret(value: &[u8], owned: bool, immutable: bool) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("db".into()),
            namespace: Some("ns".into()),
            owner_references: owned.then(|| {
                vec![OwnerReference {
                    api_version: sealed_secrets_api::API_VERSION.into(),
                    kind: sealed_secrets_api::KIND.into(),
                    name: "db".into(),
                    uid: UID.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "k".to_owned(),
            ByteString(value.to_vec()),
        )])),
        immutable: immutable.then_some(true),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

#[derive(Debug, PartialEq)]
enum Want {
    Create,
    Replace,
    Unchanged,
    Refused(&'static str),
}

/// The Secret write, as a table: existing Secret × desired Secret → write.
#[test]
fn secret_write_table() {
    let ss = mk_ss(None);
    let mut sa_token = mk_secret(b"v", true, false);
    sa_token.type_ = Some(super::decide::SERVICE_ACCOUNT_TOKEN_TYPE.into());
    let cases: Vec<(&str, Option<Secret>, Secret, Want)> = vec![
        ("none yet", None, mk_secret(b"v", true, false), Want::Create),
        (
            "owned, same",
            Some(mk_secret(b"v", true, false)),
            mk_secret(b"v", true, false),
            Want::Unchanged,
        ),
        (
            "owned, changed",
            Some(mk_secret(b"old", true, false)),
            mk_secret(b"v", true, false),
            Want::Replace,
        ),
        (
            "foreign",
            Some(mk_secret(b"v", false, false)),
            mk_secret(b"v", true, false),
            Want::Refused("Unmanaged"),
        ),
        (
            "immutable, changed",
            Some(mk_secret(b"old", true, true)),
            mk_secret(b"v", true, false),
            Want::Refused("Immutable"),
        ),
        (
            "service-account token",
            None,
            sa_token,
            Want::Refused("RefusedType"),
        ),
    ];
    for (case, existing, desired, want) in cases {
        let got = match secret_write(&ss, "ns/db", existing.as_ref(), desired, false) {
            Ok(SecretWrite::Create(_)) => Want::Create,
            Ok(SecretWrite::Replace(_)) => Want::Replace,
            Ok(SecretWrite::Unchanged) => Want::Unchanged,
            Err(ReconcileError::Unmanaged { .. }) => Want::Refused("Unmanaged"),
            Err(ReconcileError::Immutable { .. }) => Want::Refused("Immutable"),
            Err(ReconcileError::RefusedType { .. }) => Want::Refused("RefusedType"),
            Err(e) => panic!("{case}: unexpected {e}"),
        };
        assert_eq!(got, want, "{case}");
    }
}

#[derive(Debug, PartialEq)]
enum St {
    Off,
    UpToDate,
    Write,
}

/// Everything after the write, as a table: prior Synced condition × outcome × flags →
/// status write, condition label, Event.
#[test]
fn plan_table() {
    let unmanaged = ReconcileError::Unmanaged { name: "db".into() };
    let refused = ReconcileError::RefusedType {
        object: "ns/db".into(),
    };
    let now = Time(jiff::Timestamp::UNIX_EPOCH);
    let ok = |w| Ok::<_, &ReconcileError>(w);
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        Result<Written, &'a ReconcileError>,
        bool,
        bool,
        St,
        &'a str,
        Option<(EventType, &'a str)>,
    );
    let normal = Some((EventType::Normal, REASON_UNSEALED));
    let rows: Vec<Row> = vec![
        // case, prior, outcome, update_status, retrying_status → status, condition, event
        (
            "first unseal",
            None,
            ok(Written::Created),
            true,
            false,
            St::Write,
            "True",
            normal,
        ),
        (
            "update",
            Some("True"),
            ok(Written::Updated),
            true,
            false,
            St::UpToDate,
            "True",
            normal,
        ),
        (
            "nothing to do",
            Some("True"),
            ok(Written::Unchanged),
            true,
            false,
            St::UpToDate,
            "True",
            None,
        ),
        (
            "recovered, Secret already right",
            Some("False"),
            ok(Written::Unchanged),
            true,
            false,
            St::Write,
            "True",
            normal,
        ),
        (
            "only a status retry",
            Some("False"),
            ok(Written::Unchanged),
            true,
            true,
            St::Write,
            "True",
            None,
        ),
        (
            "no status flag",
            None,
            ok(Written::Unchanged),
            false,
            false,
            St::Off,
            "True",
            None,
        ),
        (
            "no status flag, written",
            None,
            ok(Written::Updated),
            false,
            false,
            St::Off,
            "True",
            normal,
        ),
        (
            "foreign Secret",
            None,
            Err(&unmanaged),
            true,
            false,
            St::Write,
            "False",
            Some((EventType::Warning, REASON_UPDATE_FAILED)),
        ),
        (
            "same failure again",
            Some("False"),
            Err(&unmanaged),
            true,
            false,
            St::UpToDate,
            "False",
            Some((EventType::Warning, REASON_UPDATE_FAILED)),
        ),
        (
            "refused type",
            Some("True"),
            Err(&refused),
            true,
            false,
            St::Write,
            "False",
            Some((EventType::Warning, REASON_UNSEAL_FAILED)),
        ),
    ];
    for (case, prior, outcome, update_status, retrying_status, status, condition, event) in rows {
        let p = plan(
            &mk_ss(prior),
            Facts {
                outcome,
                digest: None,
                update_status,
                retrying_status,
                now: &now,
            },
        );
        let got_status = match p.status {
            StatusWrite::Off => St::Off,
            StatusWrite::UpToDate => St::UpToDate,
            StatusWrite::Write(_) => St::Write,
        };
        assert_eq!(got_status, status, "{case}: status");
        assert_eq!(p.condition, condition, "{case}: condition");
        assert_eq!(
            p.event.as_ref().map(|e| (e.type_, e.reason)),
            event,
            "{case}: event"
        );
        assert_eq!(p.succeeded, outcome.is_ok(), "{case}");
    }
}

#[test]
fn failure_events_carry_the_message() {
    let refused = ReconcileError::RefusedType {
        object: "ns/db".into(),
    };
    let now = Time(jiff::Timestamp::UNIX_EPOCH);
    let p = plan(
        &mk_ss(None),
        Facts {
            outcome: Err(&refused),
            digest: None,
            update_status: true,
            retrying_status: false,
            now: &now,
        },
    );
    let ev = p.event.unwrap();
    assert!(
        ev.message
            .starts_with("Failed to unseal: SealedSecret `ns/db` asks for"),
        "{}",
        ev.message
    );
    let StatusWrite::Write(status) = p.status else {
        panic!("a failure is recorded in the status");
    };
    assert_eq!(
        status.conditions[0].message.as_deref(),
        Some(refused.message().as_str())
    );
}

#[test]
fn requeue_until_the_status_is_written() {
    assert_eq!(Plan::requeue(None), Action::await_change());
    assert_eq!(
        Plan::requeue(Some(Duration::from_secs(4))),
        Action::requeue(Duration::from_secs(4))
    );
}

/// A SealedSecret in sync with the Secret `secret-1` opened with one key, and that Secret's
/// metadata, as a previous pass left them.
fn synced_pair() -> (SealedSecret, ObjectMeta) {
    use super::decide::{desired_metadata_only, source_digest};
    let mut ss = mk_ss(Some("True"));
    ss.spec.template.metadata = Some(ObjectMeta {
        labels: Some(BTreeMap::from([("team".to_owned(), "x".to_owned())])),
        ..Default::default()
    });
    let fp: sealed_secrets_crypto::Fingerprint =
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .parse()
            .unwrap();
    let digest = source_digest(&ss, "secret-1", &[fp].into());
    if let Some(s) = ss.status.as_mut() {
        s.source_digest = Some(digest);
    }
    let mut meta = desired_metadata_only(&ss).metadata;
    meta.uid = Some("secret-1".into());
    (ss, meta)
}

const START: StartFacts = StartFacts {
    size: 4_000,
    max_size: 1_000_000,
    size_slack: 10_000,
    update_status: true,
    allow_service_account_tokens: false,
};

/// The start-up shortcut, as a table: it says "nothing to do" exactly when a reconcile
/// would neither decrypt nor write anything (the Secret the digest names, its metadata as
/// the template says, the status up to date, the keys loaded, the size clear of the limit).
#[test]
fn unchanged_at_start_table() {
    type Edit = fn(&mut SealedSecret, &mut Option<ObjectMeta>, &mut StartFacts, &mut bool);
    let cases: Vec<(&str, Edit, bool)> = vec![
        ("in sync", |_, _, _, _| {}, true),
        (
            "in sync, no size limit",
            |_, _, f, _| {
                f.max_size = 0;
                f.size = u64::MAX;
            },
            true,
        ),
        (
            "in sync, status not written (--update-status=false)",
            |_, _, f, _| f.update_status = false,
            true,
        ),
        (
            "patch mode: a foreign label is kept, nothing to write",
            |_, m, _, _| {
                let m = m.as_mut().unwrap();
                m.owner_references = None;
                m.annotations = Some(BTreeMap::from([(
                    sealed_secrets_api::annotations::PATCH.to_owned(),
                    "true".to_owned(),
                )]));
                m.labels
                    .as_mut()
                    .unwrap()
                    .insert("other".into(), "y".into());
            },
            true,
        ),
        ("no Secret", |_, m, _, _| *m = None, false),
        (
            "the Secret was replaced (another uid)",
            |_, m, _, _| m.as_mut().unwrap().uid = Some("secret-2".into()),
            false,
        ),
        (
            "labels edited by hand",
            |_, m, _, _| m.as_mut().unwrap().labels = None,
            false,
        ),
        (
            "the Secret is no longer owned (foreign)",
            |_, m, _, _| m.as_mut().unwrap().owner_references = None,
            false,
        ),
        (
            "an older version's digest annotation to remove",
            |_, m, _, _| {
                m.as_mut().unwrap().annotations = Some(BTreeMap::from([(
                    sealed_secrets_api::annotations::SOURCE_DIGEST.to_owned(),
                    "sha256:x;keys=".to_owned(),
                )]))
            },
            false,
        ),
        (
            "a new generation",
            |ss, _, _, _| ss.metadata.generation = Some(2),
            false,
        ),
        ("its key is gone", |_, _, _, k| *k = false, false),
        (
            "no digest recorded",
            |ss, _, _, _| ss.status.as_mut().unwrap().source_digest = None,
            false,
        ),
        (
            "the status says Synced=False",
            |ss, _, _, _| {
                let c = &mut ss.status.as_mut().unwrap().conditions[0];
                c.status = "False".into();
                c.message = Some("failed".into());
            },
            false,
        ),
        (
            "observedGeneration behind",
            |ss, _, _, _| ss.status.as_mut().unwrap().observed_generation = None,
            false,
        ),
        (
            "close to the size limit",
            |_, _, f, _| f.size = f.max_size - f.size_slack + 1,
            false,
        ),
        (
            "the spec changed under the same generation",
            |ss, _, _, _| {
                ss.spec.template.type_ = Some(super::decide::SERVICE_ACCOUNT_TOKEN_TYPE.into())
            },
            false,
        ),
    ];
    for (case, edit, want) in cases {
        let (mut ss, meta) = synced_pair();
        let mut meta = Some(meta);
        let mut facts = START;
        let mut key_present = true;
        edit(&mut ss, &mut meta, &mut facts, &mut key_present);
        let got = unchanged_at_start(&ss, meta, |_| key_present, facts);
        assert_eq!(got, want, "{case}");
    }
}

/// A restart keeps the metadata of the Secrets a SealedSecret may write, without
/// managedFields and the like, and nothing of other Secrets.
#[test]
fn start_secret_facts_keep_only_secrets_a_sealed_secret_may_write() {
    use super::decide::start_secret_facts;
    let (_, mut owned) = synced_pair();
    owned.managed_fields = Some(vec![Default::default()]);
    owned.resource_version = Some("7".into());
    let kept = start_secret_facts(&owned).unwrap();
    assert_eq!(kept.managed_fields, None);
    assert_eq!(kept.resource_version, None);
    assert_eq!(kept.uid.as_deref(), Some("secret-1"));
    assert_eq!(kept.owner_references, owned.owner_references);
    let mut foreign = owned.clone();
    foreign.owner_references = None;
    assert_eq!(start_secret_facts(&foreign), None, "a foreign Secret");
    for a in [
        sealed_secrets_api::annotations::MANAGED,
        sealed_secrets_api::annotations::PATCH,
    ] {
        let mut m = foreign.clone();
        m.annotations = Some(BTreeMap::from([(a.to_owned(), "true".to_owned())]));
        assert!(start_secret_facts(&m).is_some(), "annotated {a}");
    }
}
