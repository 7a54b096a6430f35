//! The PKCS#11 backend: data keys wrapped by an AES-256 key that never leaves a token (the
//! tier-1 token, or a network HSM), for sites whose key management service is an HSM.
//!
//! The blob is the token's `IV ‖ AES-GCM(data key) ‖ tag` with the context's canonical bytes
//! as additional data, so the token itself refuses a blob moved to another key Secret or
//! cluster, as AWS KMS does with its encryption context. The "KMS key" of a [`Wrapped`] is the
//! wrapping key's label: blobs keep opening after the configured label changes (wrapping-key
//! rotation) as long as the old key object stays in the token.

use std::time::Instant;

use sealed_secrets_pkcs11::{Pkcs11Error, Token, WrappingKey};
use zeroize::Zeroizing;

use crate::error::WrapError;
use crate::wrapper::{Operation, WrapContext, WrapFuture, Wrapped, Wrapper, WrapperStats};

/// Backend name stored in envelopes and used as metrics label.
const BACKEND: &str = "pkcs11";

/// Wraps with an AES-256 key held in a PKCS#11 token. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Pkcs11Wrapper {
    inner: std::sync::Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    token: Token,
    key: WrappingKey,
    stats: WrapperStats,
}

impl Pkcs11Wrapper {
    /// Wraps with `key` (see [`Token::find_wrapping_key`] and
    /// [`Token::generate_wrapping_key`]); unwrapping a blob that names another label looks
    /// that key up in the same token.
    pub fn new(token: Token, key: WrappingKey) -> Pkcs11Wrapper {
        Pkcs11Wrapper {
            inner: std::sync::Arc::new(Inner {
                token,
                key,
                stats: WrapperStats::default(),
            }),
        }
    }

    fn key_for(&self, label: &str) -> Result<WrappingKey, WrapError> {
        if label == self.inner.key.label() {
            return Ok(self.inner.key.clone());
        }
        self.inner
            .token
            .find_wrapping_key(label)
            .map_err(|e| self.error(label, e))
    }

    /// Maps a token failure onto the backend-independent variants the controller's retry,
    /// readiness and metrics logic keys on.
    fn error(&self, label: &str, e: Pkcs11Error) -> WrapError {
        let key_id = label.to_owned();
        match e {
            Pkcs11Error::Decrypt => WrapError::InvalidCiphertext {
                backend: BACKEND,
                key_id,
            },
            Pkcs11Error::KeyMissing { .. } => WrapError::KeyNotFound {
                backend: BACKEND,
                key_id,
            },
            Pkcs11Error::WrongPin { .. } | Pkcs11Error::PinLocked { .. } => WrapError::Denied {
                backend: BACKEND,
                key_id,
                code: "pin".to_owned(),
            },
            Pkcs11Error::KeyAmbiguous { .. }
            | Pkcs11Error::MechanismUnsupported { .. }
            | Pkcs11Error::UnusableKey { .. } => WrapError::Config {
                backend: BACKEND,
                reason: e.to_string(),
            },
            // The token or its sessions went away, or a call failed for a reason that has
            // nothing to do with the blob: a later try may succeed.
            other => WrapError::Unreachable {
                backend: BACKEND,
                endpoint: format!("token `{}`", self.inner.token.label()),
                source: Box::new(other),
            },
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        op: Operation,
        call: impl FnOnce(&Pkcs11Wrapper) -> Result<T, WrapError> + Send + 'static,
    ) -> Result<T, WrapError> {
        let started = Instant::now();
        let this = self.clone();
        // Token calls block the thread (a network HSM may take milliseconds).
        let result = tokio::task::spawn_blocking(move || call(&this))
            .await
            .unwrap_or_else(|join| {
                Err(WrapError::Unreachable {
                    backend: BACKEND,
                    endpoint: format!("token `{}`", self.inner.token.label()),
                    source: Box::new(join),
                })
            });
        self.inner.stats.record(op, started, result.is_err());
        result
    }
}

impl Wrapper for Pkcs11Wrapper {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn key_id(&self) -> &str {
        self.inner.key.label()
    }

    fn describe(&self) -> String {
        format!("PKCS#11 wrapping key {}", self.inner.key.uri())
    }

    fn stats(&self) -> &WrapperStats {
        &self.inner.stats
    }

    fn wrap<'a>(
        &'a self,
        plaintext: &'a [u8],
        context: &'a WrapContext,
    ) -> WrapFuture<'a, Wrapped> {
        let plaintext = Zeroizing::new(plaintext.to_vec());
        let aad = context.canonical_bytes();
        Box::pin(self.run(Operation::Wrap, move |this| {
            let key = &this.inner.key;
            let blob = key
                .encrypt(&aad, &plaintext)
                .map_err(|e| this.error(key.label(), e))?;
            Ok(Wrapped {
                key_id: key.label().to_owned(),
                blob,
            })
        }))
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        context: &'a WrapContext,
    ) -> WrapFuture<'a, Zeroizing<Vec<u8>>> {
        let wrapped = wrapped.clone();
        let aad = context.canonical_bytes();
        Box::pin(self.run(Operation::Unwrap, move |this| {
            let key = this.key_for(&wrapped.key_id)?;
            key.decrypt(&aad, &wrapped.blob)
                .map_err(|e| this.error(&wrapped.key_id, e))
        }))
    }
}
