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
use super::plan::{Facts, Plan, SecretWrite, StatusWrite, Written, plan, secret_write};
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
