//! Annotation and label keys read or written by Sealed Secrets (§3), plus the ones this project
//! adds under its own `sealed-secrets-rs.dev/` prefix (docs/design.md).
//!
//! This module is the single owner of every such name: the crypto crate knows scopes only as
//! OAEP labels, and the controller and kubeseal import the names from here, so a reader who
//! changes an annotation changes it in this file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use sealed_secrets_crypto::Scope;

/// `"true"` on a SealedSecret's top-level metadata selects cluster-wide scope (label `""`).
pub const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// `"true"` selects namespace-wide scope (label `<namespace>`).
pub const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// On an existing Secret: `"true"` lets the controller take it over.
pub const MANAGED: &str = "sealedsecrets.bitnami.com/managed";
/// On an existing Secret: `"true"` merges into it instead of overwriting.
pub const PATCH: &str = "sealedsecrets.bitnami.com/patch";
/// In `spec.template.metadata.annotations`: `"true"` means the produced Secret gets no
/// ownerReference.
pub const SKIP_SET_OWNER_REFERENCES: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";
/// Label on key Secrets in the controller namespace; value [`SEALING_KEY_LABEL_ACTIVE`] loads
/// the key.
pub const SEALING_KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// The only value of [`SEALING_KEY_LABEL`] that makes a key active.
pub const SEALING_KEY_LABEL_ACTIVE: &str = "active";
/// Stripped by kubeseal from the template: it holds the whole plaintext Secret (#227).
pub const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Stripped by kubeseal from the template, like [`KUBECTL_LAST_APPLIED`].
pub const KUBECFG_LAST_APPLIED: &str = "kubecfg.ksonnet.io/last-applied-configuration";
/// Label copied into the metric label `ss_app_kubernetes_io_instance`.
pub const APP_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label (the Kubernetes recommended one) on objects the controller creates for itself, such as
/// its certificate ConfigMap, so an operator can tell who owns them.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Ours: comma-separated fingerprints of the key(s) the values were sealed with, on the
/// SealedSecret's top-level metadata only. A hint, never trusted for security.
pub const SEALING_KEY: &str = "sealed-secrets-rs.dev/sealing-key";
/// Ours: on a produced Secret, digest of what it was produced from.
pub const SOURCE_DIGEST: &str = "sealed-secrets-rs.dev/source-digest";
/// Ours: the controller puts it on the key Secrets it generates (value
/// [`KEY_ORIGIN_GENERATED`]). An active key Secret without it was added by someone else (a
/// restored backup, an upstream controller, or an intruder with `create secrets` in the
/// controller namespace): it is used, like upstream, but logged and counted (`keys_foreign`,
/// alert `SealedSecretsForeignKey`). An operator acknowledges a key they restored by setting it
/// to any value (e.g. `restored`). It is a tripwire, not a proof: whoever can create Secrets can
/// set it too.
pub const KEY_ORIGIN: &str = "sealed-secrets-rs.dev/key-origin";
/// Ours: `kubeseal keys restore` puts it on every key Secret it creates, with the time of the
/// restore (RFC 3339). It marks the key as restored from a backup whatever the backup said:
/// restore copies no label or annotation from the backup but the active label, so a backup
/// cannot pass its key off as generated here ([`KEY_ORIGIN`] is left unset, and the controller
/// reports the key as foreign until an operator acknowledges it).
pub const RESTORED_AT: &str = "sealed-secrets-rs.dev/restored-at";
/// [`KEY_ORIGIN`]'s value on keys the controller generated.
pub const KEY_ORIGIN_GENERATED: &str = "generated";
/// Ours: on an active key Secret, an operator's request for a new key (`kubeseal keys rotate`,
/// docs/design.md); the value is a [`RotateRequest`]. It goes through `patch secrets` in the
/// controller namespace (operators only) rather than an HTTP endpoint, which anyone allowed to
/// reach the service proxy could call.
pub const ROTATE_REQUEST: &str = "sealed-secrets-rs.dev/rotate-requested-at";

/// Annotations kubeseal strips from the template because they may hold plaintext.
pub const LAST_APPLIED: [&str; 2] = [KUBECTL_LAST_APPLIED, KUBECFG_LAST_APPLIED];

/// True when `annotations[key] == "true"` exactly, as upstream compares.
pub fn is_true(annotations: Option<&BTreeMap<String, String>>, key: &str) -> bool {
    annotations
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == "true")
}

/// The scope an object's annotations select, exactly as upstream's `SecretScope`: the value
/// must be the string `"true"`, and cluster-wide wins over namespace-wide. Pure.
pub fn scope(annotations: Option<&BTreeMap<String, String>>) -> Scope {
    if is_true(annotations, CLUSTER_WIDE) {
        Scope::ClusterWide
    } else if is_true(annotations, NAMESPACE_WIDE) {
        Scope::NamespaceWide
    } else {
        Scope::Strict
    }
}

/// The annotation (set to `"true"`) that selects `scope`; `None` for strict, which is the
/// absence of both scope annotations.
pub fn scope_annotation(scope: Scope) -> Option<&'static str> {
    match scope {
        Scope::Strict => None,
        Scope::NamespaceWide => Some(NAMESPACE_WIDE),
        Scope::ClusterWide => Some(CLUSTER_WIDE),
    }
}

/// The value of [`ROTATE_REQUEST`]: when an operator asked the controller for a new key.
///
/// The controller orders keys by certificate NotBefore in whole seconds and answers a request
/// stamped strictly later than its newest key. So kubeseal stamps whole seconds, in a second
/// after every existing key Secret was created ([`RotateRequest::stamp`]): the request is then
/// later than all of them, and the key it causes (generated after it) is not older than it, so
/// it is answered exactly once. Any RFC 3339 time is accepted when reading, so an operator may
/// also write the annotation by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RotateRequest(jiff::Timestamp);

/// A [`ROTATE_REQUEST`] value that is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "annotation `{ROTATE_REQUEST}` is `{value}`, not an RFC 3339 time such as `2026-01-31T12:00:00Z`"
)]
pub struct InvalidRotateRequest {
    /// The value as found (it is a time, never secret).
    pub value: String,
}

impl RotateRequest {
    /// The request on an object with these annotations: `None` without [`ROTATE_REQUEST`],
    /// an error when its value is not an RFC 3339 time. Pure.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Option<Result<RotateRequest, InvalidRotateRequest>> {
        annotations?.get(ROTATE_REQUEST).map(|v| v.parse())
    }

    /// A request kubeseal may write at `now` when the newest key Secret was created at
    /// `newest_key_created`: `now` truncated to whole seconds, or `None` while `now` is still
    /// in the same second as (or before) that key, in which case the caller waits and asks
    /// again. Pure.
    pub fn stamp(now: SystemTime, newest_key_created: Option<SystemTime>) -> Option<RotateRequest> {
        let second = |t: SystemTime| jiff::Timestamp::try_from(t).ok().map(|t| t.as_second());
        let now = second(now)?;
        if newest_key_created
            .and_then(second)
            .is_some_and(|k| now <= k)
        {
            return None;
        }
        jiff::Timestamp::from_second(now).ok().map(RotateRequest)
    }

    /// The requested time.
    pub fn at(self) -> SystemTime {
        SystemTime::from(self.0)
    }
}

impl std::str::FromStr for RotateRequest {
    type Err = InvalidRotateRequest;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        value
            .trim()
            .parse::<jiff::Timestamp>()
            .map(RotateRequest)
            .map_err(|_| InvalidRotateRequest {
                value: value.to_owned(),
            })
    }
}

/// The annotation value kubeseal writes: RFC 3339 in UTC, whole seconds (`…T12:00:00Z`).
impl fmt::Display for RotateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn scope_from_annotations() {
        assert_eq!(scope(None), Scope::Strict);
        let a = annotations(&[(NAMESPACE_WIDE, "true")]);
        assert_eq!(scope(Some(&a)), Scope::NamespaceWide);
        let a = annotations(&[(CLUSTER_WIDE, "true")]);
        assert_eq!(scope(Some(&a)), Scope::ClusterWide);
        let both = annotations(&[(NAMESPACE_WIDE, "true"), (CLUSTER_WIDE, "true")]);
        assert_eq!(scope(Some(&both)), Scope::ClusterWide);
        for not_true in ["True", "1", "yes", "", "false"] {
            let a = annotations(&[(CLUSTER_WIDE, not_true)]);
            assert_eq!(scope(Some(&a)), Scope::Strict, "{not_true}");
        }
    }

    #[test]
    fn scope_annotation_selects_the_scope_back() {
        assert_eq!(scope_annotation(Scope::Strict), None);
        for s in Scope::ALL {
            let a = scope_annotation(s).map(|k| annotations(&[(k, "true")]));
            assert_eq!(scope(a.as_ref()), s);
        }
    }

    #[test]
    fn rotate_request_parsing() {
        let req =
            |v: &str| RotateRequest::from_annotations(Some(&annotations(&[(ROTATE_REQUEST, v)])));
        assert_eq!(RotateRequest::from_annotations(None), None);
        assert_eq!(
            RotateRequest::from_annotations(Some(&annotations(&[(MANAGED, "true")]))),
            None
        );
        assert_eq!(
            req("1970-01-01T00:16:40Z").map(|r| r.map(RotateRequest::at)),
            Some(Ok(t(1000)))
        );
        assert_eq!(
            req(" 1970-01-01T01:16:40+01:00\n").map(|r| r.map(RotateRequest::at)),
            Some(Ok(t(1000)))
        );
        let err = req("yesterday").and_then(Result::err);
        assert_eq!(
            err,
            Some(InvalidRotateRequest {
                value: "yesterday".into()
            })
        );
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(ROTATE_REQUEST) && msg.contains("`yesterday`"),
            "{msg}"
        );
    }

    #[test]
    fn rotate_request_formats_whole_utc_seconds_and_round_trips() {
        let r = RotateRequest::stamp(t(1_700_000_000) + Duration::from_millis(999), None);
        let r = r.expect("no key, no wait");
        assert_eq!(r.to_string(), "2023-11-14T22:13:20Z");
        assert_eq!(r.at(), t(1_700_000_000));
        assert_eq!(r.to_string().parse::<RotateRequest>(), Ok(r));
    }

    #[test]
    fn rotate_request_is_stamped_a_second_after_the_newest_key() {
        let key = t(1000) + Duration::from_millis(200);
        // Same second as the newest key, or before it: wait.
        assert_eq!(RotateRequest::stamp(t(1000), Some(key)), None);
        assert_eq!(
            RotateRequest::stamp(t(1000) + Duration::from_millis(900), Some(key)),
            None
        );
        assert_eq!(RotateRequest::stamp(t(999), Some(key)), None);
        // The next second: stamped, in whole seconds, strictly later than the key's second.
        let r = RotateRequest::stamp(t(1001) + Duration::from_millis(1), Some(key));
        assert_eq!(r.map(RotateRequest::at), Some(t(1001)));
        assert!(r.is_some_and(|r| r.at() > t(1000)));
    }
}
