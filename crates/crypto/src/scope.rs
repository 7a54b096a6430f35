//! Sealing scopes and the OAEP labels that bind a ciphertext to them (upstream §1.3).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Annotation selecting the cluster-wide scope when its value is exactly `"true"`.
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Annotation selecting the namespace-wide scope when its value is exactly `"true"`.
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";

/// Where a sealed value may be unsealed.
///
/// The scope is not stored in the ciphertext: it is enforced by the RSA-OAEP label, so a value
/// sealed for `team-a/db` simply fails to decrypt under any other namespace or name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Bound to namespace and name (label `"<ns>/<name>"`). Upstream's default.
    #[default]
    Strict,
    /// Bound to the namespace only (label `"<ns>"`): the SealedSecret may be renamed.
    NamespaceWide,
    /// Bound to nothing (empty label): may be unsealed anywhere in the cluster.
    ClusterWide,
}

impl Scope {
    /// All scopes, in upstream's documentation order.
    pub const ALL: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

    /// Reads the scope from an object's annotations exactly as upstream's `SecretScope`:
    /// the value must be the string `"true"`, and cluster-wide wins over namespace-wide.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Scope {
        let is_true = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .is_some_and(|v| v == "true")
        };
        if is_true(CLUSTER_WIDE_ANNOTATION) {
            Scope::ClusterWide
        } else if is_true(NAMESPACE_WIDE_ANNOTATION) {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// The OAEP label for an object named `name` in `namespace` under this scope.
    pub fn label(self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Scope::Strict => format!("{namespace}/{name}").into_bytes(),
            Scope::NamespaceWide => namespace.as_bytes().to_vec(),
            Scope::ClusterWide => Vec::new(),
        }
    }

    /// The annotation (set to `"true"`) that selects this scope; `None` for strict, which is
    /// the absence of both annotations.
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Scope::Strict => None,
            Scope::NamespaceWide => Some(NAMESPACE_WIDE_ANNOTATION),
            Scope::ClusterWide => Some(CLUSTER_WIDE_ANNOTATION),
        }
    }

    /// The name used by `kubeseal --scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A `--scope` value that is none of `strict`, `namespace-wide`, `cluster-wide`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}` (expected strict, namespace-wide or cluster-wide)")]
pub struct ParseScopeError(pub String);

impl FromStr for Scope {
    type Err = ParseScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ParseScopeError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn labels_match_upstream_encryption_label_test() {
        assert_eq!(Scope::Strict.label("myns", "myname"), b"myns/myname");
        assert_eq!(Scope::NamespaceWide.label("myns", "myname"), b"myns");
        assert_eq!(Scope::ClusterWide.label("myns", "myname"), b"");
    }

    #[test]
    fn scope_from_annotations() {
        assert_eq!(Scope::from_annotations(None), Scope::Strict);
        let a = annotations(&[(NAMESPACE_WIDE_ANNOTATION, "true")]);
        assert_eq!(Scope::from_annotations(Some(&a)), Scope::NamespaceWide);
        let a = annotations(&[(CLUSTER_WIDE_ANNOTATION, "true")]);
        assert_eq!(Scope::from_annotations(Some(&a)), Scope::ClusterWide);
        let both = annotations(&[
            (NAMESPACE_WIDE_ANNOTATION, "true"),
            (CLUSTER_WIDE_ANNOTATION, "true"),
        ]);
        assert_eq!(Scope::from_annotations(Some(&both)), Scope::ClusterWide);
        for not_true in ["True", "1", "yes", "", "false"] {
            let a = annotations(&[(CLUSTER_WIDE_ANNOTATION, not_true)]);
            assert_eq!(
                Scope::from_annotations(Some(&a)),
                Scope::Strict,
                "{not_true}"
            );
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.to_string().parse::<Scope>(), Ok(scope));
        }
        assert!("Strict".parse::<Scope>().is_err());
        assert_eq!(Scope::default(), Scope::Strict);
        assert_eq!(Scope::Strict.annotation(), None);
    }
}
