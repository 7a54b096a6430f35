//! The wrapped private key as it sits in the key Secret (docs/security.md, "Tier 2: key
//! Secrets wrapped by a KMS").
//!
//! Envelope encryption: a fresh random 256-bit data key encrypts the private key locally with
//! AES-256-GCM; the KMS wraps only the data key. So every backend sees 32 bytes (RSA-OAEP
//! wrapping keys and 4 KiB request limits fit), and the envelope authenticates the backend,
//! the KMS key and the [`WrapContext`] itself even for services without authenticated context.
//!
//! Version 1, all integers big-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | magic `SSKW` |
//! | 1 | version, `1` |
//! | 1 + n | backend name length `n` (1..=32), backend name (ASCII, e.g. `aws-kms`) |
//! | 2 + n | KMS key ID length `n` (1..=2048), KMS key ID (UTF-8; the key that wrapped the data key) |
//! | 2 + n | wrapped data key length `n` (1..=8192), the backend's blob |
//! | 12 | AES-GCM nonce |
//! | rest | AES-256-GCM ciphertext of the private key, then the 16-byte tag |
//!
//! The GCM additional data is every byte before the nonce followed by
//! [`WrapContext::canonical_bytes`]. The whole envelope is at most [`MAX_ENVELOPE_LEN`] bytes.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::WrapError;
use crate::wrapper::{WrapContext, Wrapped, Wrapper};

/// Annotation of the key Secret naming the backend (for people and `kubectl`; the envelope
/// carries its own copy, which is what unwrapping trusts).
pub const BACKEND_ANNOTATION: &str = "sealed-secrets-rs.dev/key-wrap-backend";
/// Annotation of the key Secret naming the KMS key that wrapped it.
pub const KMS_KEY_ANNOTATION: &str = "sealed-secrets-rs.dev/key-wrap-kms-key";

/// Largest envelope accepted: a 16 KiB private key plus the largest header.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;

const MAGIC: &[u8; 4] = b"SSKW";
const VERSION: u8 = 1;
const MAX_BACKEND_LEN: usize = 32;
const MAX_KEY_ID_LEN: usize = 2048;
const MAX_BLOB_LEN: usize = 8192;
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;

/// A private key wrapped for one key Secret. Holds ciphertext only; safe to log by `Debug`
/// (which shows lengths, not bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    backend: String,
    data_key: Wrapped,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("backend", &self.backend)
            .field("kms_key", &self.data_key.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl WrappedKey {
    /// Encrypts `private_key` under a fresh data key and has `wrapper` wrap the data key,
    /// bound to `context`. One call to the service.
    pub async fn seal(
        wrapper: &dyn Wrapper,
        private_key: &[u8],
        context: &WrapContext,
    ) -> Result<WrappedKey, WrapError> {
        let backend = wrapper.backend();
        check_backend_name(backend)?;
        let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(data_key.as_mut())?;
        fill_random(&mut nonce)?;
        let wrapped = wrapper.wrap(data_key.as_ref(), context).await?;
        let mut envelope = WrappedKey {
            backend: backend.to_owned(),
            data_key: wrapped,
            nonce,
            ciphertext: Vec::new(),
        };
        envelope.check_header()?;
        let aad = envelope.additional_data(context);
        let key = gcm_key(&data_key)?;
        let mut in_out = private_key.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| envelope_err("AES-GCM encryption failed"))?;
        envelope.ciphertext = in_out;
        if envelope.encoded_len() > MAX_ENVELOPE_LEN {
            return Err(envelope_err("the private key is too large to wrap"));
        }
        Ok(envelope)
    }

    /// Unwraps the data key with `wrapper` (one call to the service) and decrypts the private
    /// key, if `context` is the one it was sealed with. Every refusal after parsing is
    /// [`WrapError::InvalidCiphertext`], whichever layer refused.
    pub async fn open(
        &self,
        wrapper: &dyn Wrapper,
        context: &WrapContext,
    ) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        if wrapper.backend() != self.backend {
            return Err(WrapError::Envelope {
                reason: format!(
                    "the key was wrapped by the {} backend, not {}",
                    self.backend,
                    wrapper.backend()
                ),
            });
        }
        let data_key = wrapper.unwrap(&self.data_key, context).await?;
        let refused = || WrapError::InvalidCiphertext {
            backend: wrapper.backend(),
            key_id: self.data_key.key_id.clone(),
        };
        let data_key: &[u8; DATA_KEY_LEN] =
            data_key.as_slice().try_into().map_err(|_| refused())?;
        let key = gcm_key(data_key)?;
        let mut in_out = Zeroizing::new(self.ciphertext.clone());
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(self.additional_data(context)),
                &mut in_out,
            )
            .map_err(|_| refused())?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }

    /// Parses an envelope read from the key Secret's data field (`sealed_secrets_api::wrapped_key::WRAPPED_KEY_FIELD`).
    pub fn from_bytes(bytes: &[u8]) -> Result<WrappedKey, WrapError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(envelope_err("larger than 64 KiB"));
        }
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(envelope_err("not a wrapped key (bad magic)"));
        }
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(WrapError::Envelope {
                reason: format!(
                    "unsupported version {version} (this build reads version {VERSION})"
                ),
            });
        }
        let n = usize::from(r.take(1)?[0]);
        let backend = std::str::from_utf8(r.take(n)?)
            .map_err(|_| envelope_err("backend name is not UTF-8"))?
            .to_owned();
        let n = r.len16()?;
        let key_id = std::str::from_utf8(r.take(n)?)
            .map_err(|_| envelope_err("KMS key ID is not UTF-8"))?
            .to_owned();
        let n = r.len16()?;
        let blob = r.take(n)?.to_vec();
        let nonce: [u8; NONCE_LEN] = r
            .take(NONCE_LEN)?
            .try_into()
            .map_err(|_| envelope_err("truncated"))?;
        let ciphertext = r.0.to_vec();
        if ciphertext.len() < TAG_LEN {
            return Err(envelope_err("truncated"));
        }
        let envelope = WrappedKey {
            backend,
            data_key: Wrapped { key_id, blob },
            nonce,
            ciphertext,
        };
        envelope.check_header()?;
        Ok(envelope)
    }

    /// The envelope's bytes, for the key Secret's data field (`sealed_secrets_api::wrapped_key::WRAPPED_KEY_FIELD`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// The backend that wrapped the data key.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The KMS key that wrapped the data key.
    pub fn kms_key_id(&self) -> &str {
        &self.data_key.key_id
    }

    /// The key Secret's annotations describing this envelope ([`BACKEND_ANNOTATION`],
    /// [`KMS_KEY_ANNOTATION`]).
    pub fn annotations(&self) -> [(&'static str, String); 2] {
        [
            (BACKEND_ANNOTATION, self.backend.clone()),
            (KMS_KEY_ANNOTATION, self.data_key.key_id.clone()),
        ]
    }

    fn header(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(64 + self.data_key.key_id.len() + self.data_key.blob.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // Lengths were checked by check_header (u8/u16 ranges), so these casts cannot clip.
        out.push(u8::try_from(self.backend.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.backend.as_bytes());
        for field in [self.data_key.key_id.as_bytes(), &self.data_key.blob] {
            out.extend_from_slice(&u16::try_from(field.len()).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    fn encoded_len(&self) -> usize {
        self.header().len() + NONCE_LEN + self.ciphertext.len()
    }

    fn additional_data(&self, context: &WrapContext) -> Vec<u8> {
        let mut aad = self.header();
        aad.extend_from_slice(&context.canonical_bytes());
        aad
    }

    fn check_header(&self) -> Result<(), WrapError> {
        check_backend_name(&self.backend)?;
        let key_id = &self.data_key.key_id;
        if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
            return Err(envelope_err(
                "KMS key ID is empty or longer than 2048 bytes",
            ));
        }
        let blob = &self.data_key.blob;
        if blob.is_empty() || blob.len() > MAX_BLOB_LEN {
            return Err(envelope_err(
                "wrapped data key is empty or longer than 8192 bytes",
            ));
        }
        Ok(())
    }
}

fn check_backend_name(name: &str) -> Result<(), WrapError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BACKEND_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(envelope_err(
            "backend name must be 1-32 characters of [a-z0-9-]",
        ))
    }
}

fn gcm_key(data_key: &[u8; DATA_KEY_LEN]) -> Result<LessSafeKey, WrapError> {
    UnboundKey::new(&AES_256_GCM, data_key)
        .map(LessSafeKey::new)
        .map_err(|_| envelope_err("AES-256-GCM key setup failed"))
}

fn fill_random(buf: &mut [u8]) -> Result<(), WrapError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| envelope_err("the system random generator failed"))
}

fn envelope_err(reason: &str) -> WrapError {
    WrapError::Envelope {
        reason: reason.to_owned(),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WrapError> {
        if self.0.len() < n {
            return Err(envelope_err("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn len16(&mut self) -> Result<usize, WrapError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

#[cfg(test)]
mod tests;
