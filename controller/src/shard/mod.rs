//! Active-active shards (`--sharding`, docs/design.md "Shards"): every replica reconciles
//! the SealedSecrets assigned to it, following the label and Lease protocol of
//! timebertt/kubernetes-controller-sharding, so that its sharder could drive us too:
//!
//! - each member holds its own Lease in the controller namespace, named after its identity
//!   and labelled `alpha.sharding.timebertt.dev/controllerring=<ring>` ([`member`]; what its
//!   reconciles do differently is in `crate::reconcile::sharded`); the
//!   Lease is renewed with the leader election's algorithm and fences the member's writes
//!   ([`crate::leader::Fence`]) exactly as the leader Lease fences the leader's;
//! - the elected leader runs the [`sharder`]: it assigns objects by consistent hashing
//!   ([`ring`]) with the label `shard.alpha.sharding.timebertt.dev/<ring>=<member>`, and moves
//!   an object away from a live member only through the drain label
//!   `drain.alpha.sharding.timebertt.dev/<ring>`, which the member acknowledges by removing
//!   both labels once no reconcile of the object runs;
//! - each member watches SealedSecrets with the selector of its own shard label, so its
//!   cache and work are about 1/members of the whole.
//!
//! Key management stays with the leader alone (single writer), as without sharding.

pub mod flags;
pub mod member;
pub mod ring;
pub mod sharder;
pub mod view;

use std::collections::BTreeMap;

/// The label on each member's Lease naming its ring.
pub const RING_LABEL: &str = "alpha.sharding.timebertt.dev/controllerring";

/// The shard label of `ring` on a sharded object; its value names the member.
pub fn shard_label(ring: &str) -> String {
    format!("shard.alpha.sharding.timebertt.dev/{ring}")
}

/// The drain label of `ring`: present asks the member to let go of the object.
pub fn drain_label(ring: &str) -> String {
    format!("drain.alpha.sharding.timebertt.dev/{ring}")
}

/// This process as a shard member: which ring, which member. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub ring: String,
    pub identity: String,
}

/// What a member does with an object it was given to reconcile. Pure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Assigned to this member and not being drained: reconcile it.
    Reconcile,
    /// The sharder asked this member to let go: remove both labels, do not reconcile.
    Drain,
    /// Assigned to another member, or to none (a stale request): leave it alone.
    NotOurs,
}

impl Member {
    /// The label selector of this member's objects.
    pub fn selector(&self) -> String {
        format!("{}={}", shard_label(&self.ring), self.identity)
    }

    /// What to do with an object carrying `labels` (read just before the reconcile).
    pub fn ownership(&self, labels: Option<&BTreeMap<String, String>>) -> Ownership {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        if get(&shard_label(&self.ring)) != Some(&self.identity) {
            Ownership::NotOurs
        } else if get(&drain_label(&self.ring)).is_some() {
            Ownership::Drain
        } else {
            Ownership::Reconcile
        }
    }

    /// Whether `labels` ask this member to drain the object.
    pub fn drain_requested(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.ownership(labels) == Ownership::Drain
    }
}

/// `selector` and `extra` as one label selector (either may be empty).
pub fn and_selector(selector: &str, extra: &str) -> String {
    match (selector.is_empty(), extra.is_empty()) {
        (true, _) => extra.to_owned(),
        (_, true) => selector.to_owned(),
        _ => format!("{selector},{extra}"),
    }
}

/// A member identity that is a valid Lease name and label value (timebertt's protocol wants
/// the Lease named after its holder): `POD_NAME` (or the host name) in lowercase letters,
/// digits and dashes, at most 54 characters, plus a random suffix so that a process started
/// again under the same name never counts as the holder of its predecessor's Lease (whose
/// objects must first be reassigned: that process may still be frozen, not gone).
pub fn identity() -> String {
    let base = crate::leader::election::identity_base();
    let suffix = crate::leader::election::identity_suffix();
    format!("{}-{suffix:08x}", dns_label(&base, 54))
}

/// `s` as a DNS-1123 label of at most `max` characters (never empty). Pure.
pub fn dns_label(s: &str, max: usize) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .take(max)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "member".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_keys_are_timebertts() {
        assert_eq!(
            shard_label("sealed-secrets-controller"),
            "shard.alpha.sharding.timebertt.dev/sealed-secrets-controller"
        );
        assert_eq!(drain_label("r"), "drain.alpha.sharding.timebertt.dev/r");
        let m = Member {
            ring: "r".into(),
            identity: "pod-1".into(),
        };
        assert_eq!(m.selector(), "shard.alpha.sharding.timebertt.dev/r=pod-1");
    }

    #[test]
    fn ownership_follows_the_labels() {
        let m = Member {
            ring: "r".into(),
            identity: "a".into(),
        };
        let shard = shard_label("r");
        let drain = drain_label("r");
        assert_eq!(m.ownership(None), Ownership::NotOurs);
        assert_eq!(
            m.ownership(Some(&labels(&[(&shard, "a")]))),
            Ownership::Reconcile
        );
        assert_eq!(
            m.ownership(Some(&labels(&[(&shard, "b")]))),
            Ownership::NotOurs
        );
        assert_eq!(
            m.ownership(Some(&labels(&[(&shard, "a"), (&drain, "")]))),
            Ownership::Drain
        );
        // Another ring's labels are not ours.
        let other = shard_label("other");
        assert_eq!(
            m.ownership(Some(&labels(&[(&other, "a")]))),
            Ownership::NotOurs
        );
    }

    #[test]
    fn identities_are_lease_names() {
        assert_eq!(
            dns_label("Sealed_Secrets.Pod-0", 54),
            "sealed-secrets-pod-0"
        );
        assert_eq!(dns_label("__", 54), "member");
        assert_eq!(dns_label(&"x".repeat(80), 54).len(), 54);
        let id = identity();
        assert!(id.len() <= 63, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn selectors_combine() {
        assert_eq!(and_selector("", "a=b"), "a=b");
        assert_eq!(and_selector("x", ""), "x");
        assert_eq!(and_selector("x", "a=b"), "x,a=b");
    }
}
