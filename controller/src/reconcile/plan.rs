//! What one reconcile does, decided without I/O (§4.6): [`secret_write`] chooses the Secret
//! write from the SealedSecret, the Secret in the cluster and the Secret the SealedSecret
//! asks for; [`plan`] chooses, from the outcome of that write, the status, the metric's
//! condition, the Event and the requeue. The shell ([`super::apply`]) reads, unseals, and
//! carries both out.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use sealed_secrets_api::{CONDITION_SYNCED, SealedSecret, SealedSecretStatus};

use super::decide::{
    Unmanaged, differs, merge, next_status, refused_type, violates_immutable, write_mode,
};
use super::error::ReconcileError;
use crate::events::{EventType, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED};

/// What a successful pass did to the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

/// How the Secret is brought in line with its SealedSecret.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretWrite {
    /// There is none: create this one.
    Create(Secret),
    /// Replace the Secret with this one (the existing one merged with the desired one).
    Replace(Secret),
    /// The Secret is already right.
    Unchanged,
}

impl SecretWrite {
    /// What carrying this write out did.
    pub fn written(&self) -> Written {
        match self {
            Self::Create(_) => Written::Created,
            Self::Replace(_) => Written::Updated,
            Self::Unchanged => Written::Unchanged,
        }
    }
}

/// The write that makes `existing` (`None`: there is no Secret) what `ss` asks for
/// (`desired`, finished). In upstream's order: a refused Secret type, then ownership (a
/// Secret this SealedSecret does not manage is left alone), then an immutable Secret whose
/// content would change. `object` is `namespace/name`, for the errors. Pure.
pub fn secret_write(
    ss: &SealedSecret,
    object: &str,
    existing: Option<&Secret>,
    desired: Secret,
    allow_service_account_tokens: bool,
) -> Result<SecretWrite, ReconcileError> {
    if refused_type(&desired, allow_service_account_tokens) {
        return Err(ReconcileError::RefusedType {
            object: object.to_owned(),
        });
    }
    let Some(existing) = existing else {
        return Ok(SecretWrite::Create(desired));
    };
    let uid = ss.metadata.uid.as_deref().unwrap_or_default();
    let mode =
        write_mode(&existing.metadata, uid).map_err(|Unmanaged| ReconcileError::Unmanaged {
            name: ss.metadata.name.clone().unwrap_or_default(),
        })?;
    let merged = merge(existing, &desired, mode);
    if !differs(existing, &merged) {
        return Ok(SecretWrite::Unchanged);
    }
    if violates_immutable(existing, &merged) {
        return Err(ReconcileError::Immutable {
            object: object.to_owned(),
        });
    }
    Ok(SecretWrite::Replace(merged))
}

/// What the status subresource gets.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusWrite {
    /// `--update-status=false`: never written.
    Off,
    /// Already right: nothing to write (and no status write is pending any more).
    UpToDate,
    /// Write this status.
    Write(SealedSecretStatus),
}

/// An Event to publish about the SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// Everything a reconcile does after its Secret write, decided by [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub status: StatusWrite,
    /// The `condition_info` metric's `status` label: `True` or `False`.
    pub condition: &'static str,
    pub event: Option<PlannedEvent>,
    /// Success: the retry count is cleared and the object waits for its next change, unless
    /// the status write fails (see [`Plan::requeue`]). Failure: `error_policy` decides.
    pub succeeded: bool,
}

impl Plan {
    /// The requeue of a successful pass: when its status write failed (`status_retry`, the
    /// backoff), it comes back until the status is written, since a status-only change never
    /// triggers a reconcile by itself; otherwise it waits for the next change.
    pub fn requeue(status_retry: Option<Duration>) -> Action {
        status_retry.map_or_else(Action::await_change, Action::requeue)
    }
}

/// The facts a plan is made of, besides the SealedSecret.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// What the Secret write did, or why the pass failed.
    pub outcome: Result<Written, &'a ReconcileError>,
    /// The source digest the status records (`None`: not recorded).
    pub digest: Option<&'a str>,
    /// `--update-status`.
    pub update_status: bool,
    /// A status write of an earlier pass failed and is being retried.
    pub retrying_status: bool,
    pub now: &'a Time,
}

/// The status, condition, Event and requeue of one pass over `ss` (§4.6, §4.8): the status is
/// written when it changes; an Event is published when the Secret was written or the Synced
/// condition turned, but not twice for a pass that only retries a status write; a failure
/// always publishes a Warning, `ErrUnsealFailed` when the values could not be opened or used,
/// `ErrUpdateFailed` otherwise. Pure.
pub fn plan(ss: &SealedSecret, facts: Facts<'_>) -> Plan {
    let message = facts.outcome.err().map(ReconcileError::message);
    let synced = if message.is_none() { "True" } else { "False" };
    let (status, transitioned) = if !facts.update_status {
        (StatusWrite::Off, false)
    } else {
        match next_status(
            ss.status.as_ref(),
            ss.metadata.generation,
            message.as_deref(),
            facts.digest,
            facts.now,
        ) {
            None => (StatusWrite::UpToDate, false),
            Some(next) => {
                let before = ss
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_SYNCED))
                    .map(|c| c.status.as_str());
                (StatusWrite::Write(next), before != Some(synced))
            }
        }
    };
    let event = match facts.outcome {
        Ok(written) => {
            let status_only = facts.retrying_status && written == Written::Unchanged;
            ((written != Written::Unchanged || transitioned) && !status_only).then(|| {
                PlannedEvent {
                    type_: EventType::Normal,
                    reason: REASON_UNSEALED,
                    message: "SealedSecret unsealed successfully".to_owned(),
                }
            })
        }
        Err(e) => {
            let msg = message.unwrap_or_default();
            let (reason, message) = if e.is_unseal_failure() {
                (REASON_UNSEAL_FAILED, format!("Failed to unseal: {msg}"))
            } else {
                (REASON_UPDATE_FAILED, msg)
            };
            Some(PlannedEvent {
                type_: EventType::Warning,
                reason,
                message,
            })
        }
    };
    Plan {
        status,
        condition: synced,
        event,
        succeeded: facts.outcome.is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use sealed_secrets_api::{SealedSecretCondition, SealedSecretSpec};

    use super::*;

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
        sa_token.type_ = Some(super::super::decide::SERVICE_ACCOUNT_TOKEN_TYPE.into());
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
        for (case, prior, outcome, update_status, retrying_status, status, condition, event) in rows
        {
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
}
