//! The "spec changed" filter's entry of an object, shared by the watch (which keeps one per
//! object) and the restart check (which fills them for objects found in sync): a leaf module,
//! so that neither has to import the other.

use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn hash_of(v: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// A hash of namespace and name, and one of uid and generation.
pub(super) fn spec_hashes(m: &ObjectMeta) -> (u64, u64) {
    (
        hash_of((&m.namespace, &m.name)),
        hash_of((&m.uid, m.generation)),
    )
}
