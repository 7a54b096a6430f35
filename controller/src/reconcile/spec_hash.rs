//! The "spec changed" filter's entry of an object, shared by the watch cache (which keeps one
//! per object) and the restart check (which fills them for objects found in sync): a leaf
//! module, so that neither has to import the other.

use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn hash_of(v: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// A hash of namespace (empty: none) and name.
pub(super) fn key_hash(namespace: &str, name: &str) -> u64 {
    hash_of((namespace, name))
}

/// A hash of uid and generation.
pub(super) fn version_hash(uid: Option<&str>, generation: Option<i64>) -> u64 {
    hash_of((uid, generation))
}

/// [`key_hash`] and [`version_hash`] of an object.
pub(super) fn spec_hashes(m: &ObjectMeta) -> (u64, u64) {
    (
        key_hash(
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default(),
        ),
        version_hash(m.uid.as_deref(), m.generation),
    )
}
