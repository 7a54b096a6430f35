//! Annotation and label keys read or written by Sealed Secrets (§3), plus the ones this project
//! adds under its own `sealed-secrets-rs.dev/` prefix (docs/design.md).

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

/// Ours: comma-separated fingerprints of the key(s) the values were sealed with, on the
/// SealedSecret's top-level metadata only. A hint, never trusted for security.
pub const SEALING_KEY: &str = "sealed-secrets-rs.dev/sealing-key";
/// Ours: on a produced Secret, digest of what it was produced from.
pub const SOURCE_DIGEST: &str = "sealed-secrets-rs.dev/source-digest";

/// Annotations kubeseal strips from the template because they may hold plaintext.
pub const LAST_APPLIED: [&str; 2] = [KUBECTL_LAST_APPLIED, KUBECFG_LAST_APPLIED];

/// True when `annotations[key] == "true"` exactly, as upstream compares.
pub fn is_true(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    key: &str,
) -> bool {
    annotations
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == "true")
}
