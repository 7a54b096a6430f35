//! AES-256 wrapping keys held in the token: the second backend of KMS-wrapped key Secrets
//! (docs/security.md, "Tier 2"), for sites whose key management service is an HSM rather than
//! a cloud KMS. The key Secret keeps a private key encrypted by the token; the plaintext
//! private key exists only in the controller's memory, and only the token can produce it.
//!
//! A wrap is `C_Encrypt` with `CKM_AES_GCM` (96-bit random IV, 128-bit tag) and the caller's
//! additional data, which names the cluster and key Secret: a blob copied into another key
//! Secret does not open. The blob is `IV ‖ ciphertext ‖ tag`, the layout of AES-GCM in every
//! PKCS#11 2.40 module, so another client of the token can open it in a disaster (the tests
//! do so with PyKCS11, `tests/hsm/gcm_open.py`).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use crate::error::Pkcs11Error;
use crate::token::Token;

/// Bytes of the random GCM IV at the front of each blob.
pub const WRAP_IV_LEN: usize = 12;
/// Bytes of the GCM tag at the end of each blob.
pub const WRAP_TAG_LEN: usize = 16;
/// Bytes of the AES keys generated for wrapping.
const AES_256: u64 = 32;

/// An AES-256 secret key object in the token, allowed to encrypt and decrypt only,
/// `CKA_SENSITIVE` and never extractable. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct WrappingKey {
    token: Token,
    label: String,
    /// Token object handles are valid in every session; looked up again if forgotten.
    handle: Arc<Mutex<ObjectHandle>>,
}

impl fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappingKey")
            .field("token", &self.token.label())
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

fn template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

impl Token {
    /// Generates an AES-256 wrapping key inside the token, labelled `label`: a token object,
    /// sensitive, not extractable, encrypt/decrypt only. Refuses a label that is taken, so
    /// that two keys never answer to one name.
    ///
    /// Errors: [`Pkcs11Error::KeyAmbiguous`] when the label exists,
    /// [`Pkcs11Error::MechanismUnsupported`] for a token without `CKM_AES_KEY_GEN`.
    pub fn generate_wrapping_key(&self, label: &str) -> Result<WrappingKey, Pkcs11Error> {
        let existing = self.find_secret_keys(label)?;
        if !existing.is_empty() {
            return Err(Pkcs11Error::KeyAmbiguous {
                token: self.label().to_owned(),
                key: format!("`{label}` (a wrapping key with this label exists)"),
                count: existing.len(),
            });
        }
        let mut attributes = template(label);
        attributes.extend([
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::ValueLen(AES_256.into()),
        ]);
        let handle = self.with_session(
            |s| s.generate_key(&Mechanism::AesKeyGen, &attributes),
            |e| match e {
                CkError::Pkcs11(RvError::MechanismInvalid, _) => {
                    Pkcs11Error::MechanismUnsupported {
                        token: self.label().to_owned(),
                        mechanism: "CKM_AES_KEY_GEN",
                        source: e,
                    }
                }
                e => self.failure("generating a wrapping key", e),
            },
        )?;
        Ok(WrappingKey {
            token: self.clone(),
            label: label.to_owned(),
            handle: Arc::new(Mutex::new(handle)),
        })
    }

    /// Finds (adopts) the one AES secret key labelled `label`, e.g. one made with
    /// `pkcs11-tool --keygen --key-type AES:32`.
    ///
    /// Errors: [`Pkcs11Error::KeyMissing`], [`Pkcs11Error::KeyAmbiguous`].
    pub fn find_wrapping_key(&self, label: &str) -> Result<WrappingKey, Pkcs11Error> {
        let handle = self.find_one_secret_key(label)?;
        Ok(WrappingKey {
            token: self.clone(),
            label: label.to_owned(),
            handle: Arc::new(Mutex::new(handle)),
        })
    }

    fn find_secret_keys(&self, label: &str) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
        let t = template(label);
        self.with_session(
            |s| s.find_objects(&t),
            |e| self.failure("looking up a wrapping key", e),
        )
    }

    fn find_one_secret_key(&self, label: &str) -> Result<ObjectHandle, Pkcs11Error> {
        let handles = self.find_secret_keys(label)?;
        match handles.as_slice() {
            [one] => Ok(*one),
            [] => Err(Pkcs11Error::KeyMissing {
                token: self.label().to_owned(),
                key: format!("`{label}` (an AES wrapping key)"),
            }),
            many => Err(Pkcs11Error::KeyAmbiguous {
                token: self.label().to_owned(),
                key: format!("`{label}` (an AES wrapping key)"),
                count: many.len(),
            }),
        }
    }
}

/// What one GCM call failed of: the object handle was forgotten (look it up again) or
/// anything else.
enum GcmFailure {
    HandleGone,
    Other(Pkcs11Error),
}

impl WrappingKey {
    /// The key object's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        self.token.label()
    }

    /// The key as an RFC 7512 URI (`pkcs11:token=…;object=…;type=secret-key`), for logs and
    /// for the envelope's record of which key wrapped a blob. Never a PIN.
    pub fn uri(&self) -> String {
        format!(
            "pkcs11:token={};object={};type=secret-key",
            crate::reference::pct_encode(self.token.label().as_bytes()),
            crate::reference::pct_encode(self.label.as_bytes())
        )
    }

    /// Operation counts of the token this key lives in.
    pub fn stats(&self) -> &crate::TokenStats {
        self.token.stats()
    }

    /// Encrypts `plaintext` under this key with AES-256-GCM inside the token, authenticating
    /// `aad`. Returns `IV ‖ ciphertext ‖ tag` with a fresh random IV (a wrap happens once per
    /// key Secret, far below GCM's random-IV limit).
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let mut iv = [0u8; WRAP_IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| Pkcs11Error::UnusableKey {
            token: self.token.label().to_owned(),
            key: format!("`{}`", self.label),
            reason: "no random IV could be drawn",
        })?;
        let sealed = self.retrying(|handle| {
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, aad, ((WRAP_TAG_LEN * 8) as u64).into())
                .map_err(|e| GcmFailure::Other(self.token.failure("encrypting", e)))?;
            let mut gone = false;
            let out = self.token.with_session(
                |s| s.encrypt(&Mechanism::AesGcm(params), handle, plaintext),
                |e| {
                    gone = handle_gone(&e);
                    match e {
                        CkError::Pkcs11(RvError::MechanismInvalid, _) => {
                            Pkcs11Error::MechanismUnsupported {
                                token: self.token.label().to_owned(),
                                mechanism: "CKM_AES_GCM",
                                source: e,
                            }
                        }
                        e => self.token.failure("encrypting with a wrapping key", e),
                    }
                },
            );
            out.map_err(|e| {
                if gone {
                    GcmFailure::HandleGone
                } else {
                    GcmFailure::Other(e)
                }
            })
        })?;
        let mut blob = Vec::with_capacity(WRAP_IV_LEN + sealed.len());
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a blob [`encrypt`](Self::encrypt) made, if `aad` is the data it authenticated.
    /// Every failure that depends on the blob or `aad` is the uniform
    /// [`Pkcs11Error::Decrypt`].
    pub fn decrypt(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, Pkcs11Error> {
        if blob.len() < WRAP_IV_LEN + WRAP_TAG_LEN {
            return Err(Pkcs11Error::Decrypt);
        }
        let (iv, sealed) = blob.split_at(WRAP_IV_LEN);
        self.retrying(|handle| {
            let mut iv = <[u8; WRAP_IV_LEN]>::try_from(iv)
                .map_err(|_| GcmFailure::Other(Pkcs11Error::Decrypt))?;
            let params = GcmParams::new(&mut iv, aad, ((WRAP_TAG_LEN * 8) as u64).into())
                .map_err(|_| GcmFailure::Other(Pkcs11Error::Decrypt))?;
            let mut gone = false;
            let out = self.token.with_session(
                |s| {
                    s.decrypt(&Mechanism::AesGcm(params), handle, sealed)
                        .map(Zeroizing::new)
                },
                |e| {
                    gone = handle_gone(&e);
                    match e {
                        // Once C_Decrypt runs, a failure may depend on the blob: one answer.
                        CkError::Pkcs11(RvError::EncryptedDataInvalid, _)
                        | CkError::Pkcs11(RvError::EncryptedDataLenRange, _)
                        | CkError::Pkcs11(_, Function::Decrypt) => Pkcs11Error::Decrypt,
                        e => self.token.failure("decrypting with a wrapping key", e),
                    }
                },
            );
            out.map_err(|e| {
                if gone {
                    GcmFailure::HandleGone
                } else {
                    GcmFailure::Other(e)
                }
            })
        })
    }

    /// Runs `op` with the cached handle, and once more with a fresh lookup if the token
    /// forgot the handle (a token that was re-inserted or restarted).
    fn retrying<T>(
        &self,
        op: impl Fn(ObjectHandle) -> Result<T, GcmFailure>,
    ) -> Result<T, Pkcs11Error> {
        let cached = *self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        match op(cached) {
            Ok(v) => Ok(v),
            Err(GcmFailure::Other(e)) => Err(e),
            Err(GcmFailure::HandleGone) => {
                let fresh = self.token.find_one_secret_key(&self.label)?;
                *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
                match op(fresh) {
                    Ok(v) => Ok(v),
                    Err(GcmFailure::Other(e)) => Err(e),
                    Err(GcmFailure::HandleGone) => Err(Pkcs11Error::KeyMissing {
                        token: self.token.label().to_owned(),
                        key: format!("`{}` (an AES wrapping key)", self.label),
                    }),
                }
            }
        }
    }
}

fn handle_gone(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _)
    )
}
