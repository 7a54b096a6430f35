//! What one reconcile does, decided without I/O (§4.6): [`secret_write`] chooses the Secret
//! write from the SealedSecret, the Secret in the cluster and the Secret the SealedSecret
//! asks for; [`plan`] chooses, from the outcome of that write, the status, the metric's
//! condition, the Event and the requeue. The shell ([`super::apply`]) reads, unseals, and
//! carries both out.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::runtime::controller::Action;
use sealed_secrets_api::{CONDITION_SYNCED, SealedSecret, SealedSecretStatus};

use sealed_secrets_crypto::Fingerprint;

use super::decide::{
    Unmanaged, desired_metadata_only, differs, finish_desired, merge, next_status, refused_type,
    reusable, source_digest, violates_immutable, write_mode,
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

/// The status, condition, Event and requeue of one pass over `ss` (§4.6-§4.8): the status is
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

/// What a start-up check needs besides the SealedSecret and its Secret's metadata.
#[derive(Debug, Clone, Copy)]
pub struct StartFacts {
    /// The SealedSecret's size as listed (JSON bytes); see [`unchanged_at_start`].
    pub size: u64,
    /// `--max-sealed-secret-size` (0: no limit).
    pub max_size: u64,
    /// How far `size` may be from what a GET would serve: objects closer than that to the
    /// limit are left to a full reconcile, which measures them exactly.
    pub size_slack: u64,
    /// `--update-status`.
    pub update_status: bool,
    /// `--allow-service-account-token-secrets`.
    pub allow_service_account_tokens: bool,
}

/// Whether a reconcile of `ss` would do nothing at all (no decryption, no Secret write, no
/// status write, no Event), decided from the SealedSecret as listed and only the metadata of
/// its Secret (`secret`: `None` when there is none; taken by value, as the check builds it
/// for this call only), so that a restart need not read either
/// object again (docs/design.md, "Restarts"). It is exactly the reconcile's own decision
/// ([`super::decide::reusable`], [`secret_write`], [`plan`]) on a Secret whose data is the
/// one it holds and whose type is the one the template asks for: data is never compared when
/// the digest matches, and a Secret's type cannot change (the API server refuses), so the
/// Secret the digest names (by uid) was created or written with this generation's type.
/// `present` tells which key fingerprints are loaded. Anything else (no digest, another
/// generation, a missing or replaced Secret, metadata to restore, a status to write, a
/// refused type, an object near the size limit) is `false`: a full reconcile. Pure.
pub fn unchanged_at_start(
    ss: &SealedSecret,
    secret: Option<ObjectMeta>,
    present: impl Fn(&Fingerprint) -> bool,
    facts: StartFacts,
) -> bool {
    let Some(meta) = secret else {
        return false;
    };
    if facts.max_size != 0 && facts.size.saturating_add(facts.size_slack) > facts.max_size {
        return false;
    }
    let desired = finish_desired(desired_metadata_only(ss));
    let existing = Secret {
        metadata: meta,
        type_: desired.type_.clone(),
        immutable: None,
        data: None,
        string_data: None,
    };
    let Some(keys) = reusable(&existing, ss, &present) else {
        return false;
    };
    let object = String::new();
    let write = secret_write(
        ss,
        &object,
        Some(&existing),
        desired,
        facts.allow_service_account_tokens,
    );
    if !matches!(write, Ok(SecretWrite::Unchanged)) {
        return false;
    }
    let secret_uid = existing.metadata.uid.as_deref().unwrap_or_default();
    let digest = source_digest(ss, secret_uid, &keys);
    let now = Time(jiff::Timestamp::UNIX_EPOCH);
    let p = plan(
        ss,
        Facts {
            outcome: Ok(Written::Unchanged),
            digest: Some(&digest),
            update_status: facts.update_status,
            retrying_status: false,
            now: &now,
        },
    );
    matches!(p.status, StatusWrite::Off | StatusWrite::UpToDate) && p.event.is_none()
}
