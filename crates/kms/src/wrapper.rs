//! The backend interface: what a key management service must do to wrap keys.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::WrapError;

/// The future a [`Wrapper`] returns: boxed so that `dyn Wrapper` works (the controller picks
/// the backend from its settings at start-up).
pub type WrapFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, WrapError>> + Send + 'a>>;

/// What a wrapped blob is bound to: the cluster and the key Secret it belongs to. Backends
/// send it as authenticated context (AWS `EncryptionContext`, GCP `additionalAuthenticatedData`,
/// Vault Transit `associated_data`), so a blob copied into another key Secret or cluster does
/// not open, and the KMS audit log names which key Secret was unwrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapContext {
    cluster: String,
    namespace: String,
    name: String,
}

impl WrapContext {
    /// Context key naming the cluster (an operator-chosen name, e.g. `prod-eu-1`).
    pub const CLUSTER: &'static str = "sealed-secrets-rs.dev/cluster";
    /// Context key naming the key Secret as `namespace/name`.
    pub const KEY_SECRET: &'static str = "sealed-secrets-rs.dev/key";

    /// The context of the key Secret `namespace/name` in `cluster`.
    pub fn new(
        cluster: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> WrapContext {
        WrapContext {
            cluster: cluster.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The key Secret as `namespace/name`.
    pub fn key_secret(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The context as key/value pairs, sorted by key (the order backends and the envelope's
    /// authenticated data use).
    pub fn pairs(&self) -> [(&'static str, String); 2] {
        [
            (Self::CLUSTER, self.cluster.clone()),
            (Self::KEY_SECRET, self.key_secret()),
        ]
    }

    /// An unambiguous byte encoding of [`pairs`](Self::pairs) (each key and value prefixed
    /// with its length as a big-endian u32), for backends whose context is one byte string.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in self.pairs() {
            for part in [k.as_bytes(), v.as_bytes()] {
                out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }
}

/// A blob a backend wrapped, with the KMS key that wrapped it (as the service names it, e.g.
/// the key ARN behind an alias). Unwrapping asks for that key, so blobs keep opening after
/// the configured key (or alias target) changes, as long as the old key stays enabled.
#[derive(Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The KMS key that wrapped the blob.
    pub key_id: String,
    /// The service's ciphertext, opaque to everyone else.
    pub blob: Vec<u8>,
}

impl fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wrapped")
            .field("key_id", &self.key_id)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// A key management service that wraps (encrypts) and unwraps small secrets under a key it
/// never releases. One method call is one request to the service: the envelope
/// ([`WrappedKey`](crate::WrappedKey)) makes one `unwrap` call per key Secret.
///
/// Adding a backend (GCP KMS `encrypt`/`decrypt`, Azure Key Vault `wrapKey`/`unwrapKey`, Vault
/// Transit `encrypt`/`decrypt`) means implementing these methods on top of that service's
/// HTTP API and mapping its errors onto [`WrapError`]'s variants; the envelope format, the
/// context binding and the statistics stay as they are. Plaintexts a backend sees are 32-byte
/// data keys, within every service's limit (Azure's RSA-OAEP wrap included). A backend whose
/// service has no authenticated context (Azure) still gets the binding from the envelope,
/// which authenticates the context itself.
pub trait Wrapper: Send + Sync + fmt::Debug {
    /// The backend's name as stored in envelopes and used as metrics label, e.g. `aws-kms`.
    fn backend(&self) -> &'static str;

    /// The KMS key new wraps use, as configured (an ID, ARN or alias).
    fn key_id(&self) -> &str;

    /// One line for logs and readiness messages: backend, key, region/endpoint. Never
    /// credentials.
    fn describe(&self) -> String;

    /// Calls, errors and time spent so far, for metrics.
    fn stats(&self) -> &WrapperStats;

    /// Wraps `plaintext` under [`key_id`](Self::key_id), bound to `context`.
    fn wrap<'a>(&'a self, plaintext: &'a [u8], context: &'a WrapContext)
    -> WrapFuture<'a, Wrapped>;

    /// Unwraps a blob this backend wrapped, if `context` is the one it was wrapped with.
    fn unwrap<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        context: &'a WrapContext,
    ) -> WrapFuture<'a, Zeroizing<Vec<u8>>>;
}

/// Calls to a backend so far: each `wrap` or `unwrap` is one call, failed ones included.
/// Shared by the backend's clones; read by the controller's metrics.
#[derive(Debug, Default)]
pub struct WrapperStats {
    wraps: AtomicU64,
    unwraps: AtomicU64,
    errors: AtomicU64,
    busy_micros: AtomicU64,
}

impl WrapperStats {
    /// `wrap` calls.
    pub fn wraps(&self) -> u64 {
        self.wraps.load(Ordering::Relaxed)
    }

    /// `unwrap` calls.
    pub fn unwraps(&self) -> u64 {
        self.unwraps.load(Ordering::Relaxed)
    }

    /// All calls.
    pub fn calls(&self) -> u64 {
        self.wraps() + self.unwraps()
    }

    /// Calls that failed, whatever the reason.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Time spent waiting for the service, summed over calls.
    pub fn busy(&self) -> Duration {
        Duration::from_micros(self.busy_micros.load(Ordering::Relaxed))
    }

    /// Records one call; backends call this once per `wrap`/`unwrap`.
    pub fn record(&self, op: Operation, started: Instant, failed: bool) {
        let counter = match op {
            Operation::Wrap => &self.wraps,
            Operation::Unwrap => &self.unwraps,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Which method a call to a backend was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// [`Wrapper::wrap`].
    Wrap,
    /// [`Wrapper::unwrap`].
    Unwrap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_are_length_prefixed_and_sorted() {
        let ctx = WrapContext::new("c1", "kube-system", "k");
        let mut want = Vec::new();
        for part in [
            WrapContext::CLUSTER,
            "c1",
            WrapContext::KEY_SECRET,
            "kube-system/k",
        ] {
            want.extend_from_slice(&(part.len() as u32).to_be_bytes());
            want.extend_from_slice(part.as_bytes());
        }
        assert_eq!(ctx.canonical_bytes(), want);
        assert!(WrapContext::CLUSTER < WrapContext::KEY_SECRET);
        // A value's bytes cannot spill into the next field.
        assert_ne!(
            WrapContext::new("ab", "n", "k").canonical_bytes(),
            WrapContext::new("a", "bn", "k").canonical_bytes()
        );
    }
}
