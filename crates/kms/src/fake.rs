//! An in-memory [`Wrapper`] for the tests of the crates that use this one (feature `fake`):
//! binds blobs to the context by prefixing its bytes (no secrecy), counts its calls like a real
//! backend, and can be made to fail like an unreachable service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use zeroize::Zeroizing;

use crate::{Operation, WrapContext, WrapError, WrapFuture, Wrapped, Wrapper, WrapperStats};

/// A test backend named `fake` with the key `fake-key`.
#[derive(Debug, Default)]
pub struct FakeWrapper {
    stats: WrapperStats,
    wraps_down: AtomicBool,
    unwraps_down: AtomicBool,
}

impl FakeWrapper {
    /// Makes every call fail as with an unreachable service (or work again).
    pub fn set_down(&self, down: bool) {
        self.wraps_down.store(down, Ordering::SeqCst);
        self.unwraps_down.store(down, Ordering::SeqCst);
    }

    /// Makes unwraps alone fail (wraps keep working): a service lost between two calls.
    pub fn set_unwraps_down(&self, down: bool) {
        self.unwraps_down.store(down, Ordering::SeqCst);
    }

    fn unreachable() -> WrapError {
        WrapError::Unreachable {
            backend: "fake",
            endpoint: "http://fake".into(),
            source: "connection refused".into(),
        }
    }
}

impl Wrapper for FakeWrapper {
    fn backend(&self) -> &'static str {
        "fake"
    }
    fn key_id(&self) -> &str {
        "fake-key"
    }
    fn describe(&self) -> String {
        "fake".into()
    }
    fn stats(&self) -> &WrapperStats {
        &self.stats
    }
    fn wrap<'a>(&'a self, plaintext: &'a [u8], ctx: &'a WrapContext) -> WrapFuture<'a, Wrapped> {
        Box::pin(async move {
            let started = Instant::now();
            if self.wraps_down.load(Ordering::SeqCst) {
                self.stats.record(Operation::Wrap, started, true);
                return Err(Self::unreachable());
            }
            let mut blob = ctx.canonical_bytes();
            blob.extend_from_slice(plaintext);
            self.stats.record(Operation::Wrap, started, false);
            Ok(Wrapped {
                key_id: "fake-key".into(),
                blob,
            })
        })
    }
    fn unwrap<'a>(
        &'a self,
        w: &'a Wrapped,
        ctx: &'a WrapContext,
    ) -> WrapFuture<'a, Zeroizing<Vec<u8>>> {
        Box::pin(async move {
            let started = Instant::now();
            if self.unwraps_down.load(Ordering::SeqCst) {
                self.stats.record(Operation::Unwrap, started, true);
                return Err(Self::unreachable());
            }
            let prefix = ctx.canonical_bytes();
            let ok = w.blob.starts_with(&prefix);
            self.stats.record(Operation::Unwrap, started, !ok);
            if !ok {
                return Err(WrapError::InvalidCiphertext {
                    backend: "fake",
                    key_id: w.key_id.clone(),
                });
            }
            Ok(Zeroizing::new(w.blob[prefix.len()..].to_vec()))
        })
    }
}
