//! Sealing scopes and the OAEP labels that bind a ciphertext to them (upstream §1.3).
//!
//! Which Kubernetes annotation selects a scope is metadata, owned by
//! `sealed_secrets_api::annotations`; this crate knows nothing about Kubernetes objects.

use std::fmt;
use std::str::FromStr;

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

    /// The OAEP label for an object named `name` in `namespace` under this scope.
    pub fn label(self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Scope::Strict => format!("{namespace}/{name}").into_bytes(),
            Scope::NamespaceWide => namespace.as_bytes().to_vec(),
            Scope::ClusterWide => Vec::new(),
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

    #[test]
    fn labels_match_upstream_encryption_label_test() {
        assert_eq!(Scope::Strict.label("myns", "myname"), b"myns/myname");
        assert_eq!(Scope::NamespaceWide.label("myns", "myname"), b"myns");
        assert_eq!(Scope::ClusterWide.label("myns", "myname"), b"");
    }

    #[test]
    fn parse_and_display_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.to_string().parse::<Scope>(), Ok(scope));
        }
        assert!("Strict".parse::<Scope>().is_err());
        assert_eq!(Scope::default(), Scope::Strict);
    }
}
