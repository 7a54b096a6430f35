//! How a reconcile reads: from the API server's watch cache, no older than what the watches
//! already reported, instead of a quorum read from etcd (docs/design.md, "Reads").
//!
//! A GET without `resourceVersion` goes to etcd as a linearizable read: on the benchmark's
//! two cores etcd and the API server run beside the controller, and every reconcile made two
//! such reads. A GET with `resourceVersion=N` ("not older than N") is answered from the
//! watch cache, which the watches that queued the reconcile were fed from, so it is as
//! fresh as anything the controller knows of: for the SealedSecret, N is the version its
//! watch last reported; for its Secret, the newest version the Secret watch reported (so a
//! deletion that queued the reconcile is seen). Every write stays conditional on what was
//! read, so a read that is older than the object's newest version makes a write conflict
//! and be retried, as it would if the object had changed just after a quorum read.

use std::sync::atomic::{AtomicU64, Ordering};

use kube::api::{Api, GetParams};

/// A resourceVersion as the cache keeps it: etcd's revision, which the API server hands out
/// as a decimal number; 0 when it is not one (resourceVersions are opaque to clients, and
/// such a read falls back to a quorum read). Pure.
pub(super) fn version_number(rv: Option<&str>) -> u64 {
    rv.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The GET parameters of a read not older than `version` (0: unknown, a quorum read). Pure.
pub(super) fn not_older_than(version: u64) -> GetParams {
    match version {
        0 => GetParams::default(),
        v => GetParams::at(&v.to_string()),
    }
}

/// Whether a read from the cache failed in a way a quorum read may not: the cache did not
/// reach the version in time (504, "Too large resource version") or the version is gone
/// (410). Pure.
pub(super) fn retry_as_quorum_read(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 504 || s.code == 410)
}

/// `read` with the parameters of a read not older than `version`, and once more as a quorum
/// read if the cache could not answer; a 404 is `None`.
pub(super) async fn read_at<T, F, Fut>(version: u64, read: F) -> Result<Option<T>, kube::Error>
where
    F: Fn(GetParams) -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let result = match read(not_older_than(version)).await {
        Err(e) if version != 0 && retry_as_quorum_read(&e) => read(GetParams::default()).await,
        other => other,
    };
    match result {
        Ok(o) => Ok(Some(o)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// `name` read not older than `version` ([`read_at`]; `None`: not found).
pub(super) async fn get_opt_at<K>(
    api: &Api<K>,
    name: &str,
    version: u64,
) -> Result<Option<K>, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    read_at(version, |params| async move {
        api.get_with(name, &params).await
    })
    .await
}

/// The newest resourceVersion a watch reported, shared by the reconciles that read what it
/// watches.
#[derive(Debug, Default)]
pub struct Newest(AtomicU64);

impl Newest {
    /// Takes in the resourceVersion of one object the watch delivered.
    pub(super) fn observe(&self, rv: Option<&str>) {
        let v = version_number(rv);
        if v != 0 {
            self.0.fetch_max(v, Ordering::Relaxed);
        }
    }

    /// The newest version seen (0: none yet).
    pub(super) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_decimal_versions_are_kept() {
        assert_eq!(version_number(Some("123456")), 123_456);
        assert_eq!(version_number(Some("")), 0);
        assert_eq!(version_number(Some("abc")), 0);
        assert_eq!(version_number(Some("-4")), 0);
        assert_eq!(version_number(None), 0);
    }

    #[test]
    fn unknown_versions_read_from_etcd() {
        assert_eq!(not_older_than(0).resource_version, None);
        assert_eq!(not_older_than(42).resource_version.as_deref(), Some("42"));
    }

    #[test]
    fn only_a_cache_that_cannot_answer_is_retried() {
        let status = |code| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "y").with_code(code),
            ))
        };
        assert!(retry_as_quorum_read(&status(504)));
        assert!(retry_as_quorum_read(&status(410)));
        assert!(!retry_as_quorum_read(&status(404)));
        assert!(!retry_as_quorum_read(&status(500)));
        assert!(!retry_as_quorum_read(&status(403)));
    }

    #[test]
    fn the_newest_version_wins() {
        let n = Newest::default();
        assert_eq!(n.get(), 0);
        n.observe(Some("10"));
        n.observe(Some("7"));
        n.observe(Some("junk"));
        n.observe(None);
        assert_eq!(n.get(), 10);
        n.observe(Some("11"));
        assert_eq!(n.get(), 11);
    }
}
