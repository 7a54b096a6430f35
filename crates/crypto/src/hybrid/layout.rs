//! The constants and primitives every part of the hybrid format shares (`FORMAT.md` §1, §2):
//! the header layout, the session key, AES-256-GCM with upstream's zero nonce, and the
//! version-2 key derivations. A leaf module, so sealing, reading and opening import it
//! without importing each other.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::error::SealError;
use crate::keys::Plaintext;

pub(super) const SESSION_KEY_LEN: usize = 32;
pub(super) const TAG_LEN: usize = 16;
/// First two bytes of a multi-recipient value. Upstream reads them as the RSA ciphertext
/// length, and an RSA ciphertext is never empty, so no upstream value starts this way.
pub const MULTI_MARKER: [u8; 2] = [0x00, 0x00];
/// Magic after the marker, so a stray zero prefix is not mistaken for our format.
pub const MULTI_MAGIC: [u8; 4] = *b"ssrs";
/// Version byte of the multi-recipient format [`seal_multi`] writes (`FORMAT.md` §2): version
/// 2, with a key commitment.
pub const MULTI_VERSION: u8 = 2;
/// The first multi-recipient version, without key commitment (`FORMAT.md` §2.2): never
/// written, and refused by every [`KeyRing`] unless its [`MultiV1Policy`] accepts it.
pub const MULTI_VERSION_V1: u8 = 1;
pub(super) const MULTI_FIXED_HEADER: usize = 2 + 4 + 1 + 1;
pub(super) const DIGEST_LEN: usize = 32;
/// Length of the version-2 key commitment.
pub(super) const COMMITMENT_LEN: usize = 32;
/// HKDF-SHA256 `info` strings deriving, from the session key, the commitment stored in the
/// header and the AES-256-GCM key of the body (`FORMAT.md` §2.1).
pub(super) const COMMIT_INFO: &[u8] = b"sealed-secrets-rs multi-recipient v2 key commitment";
pub(super) const ENCRYPT_INFO: &[u8] = b"sealed-secrets-rs multi-recipient v2 encryption key";

pub(super) fn session_key() -> Result<Zeroizing<[u8; SESSION_KEY_LEN]>, SealError> {
    let mut key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| SealError::Encrypt)?;
    Ok(key)
}

/// AES-256-GCM with the all-zero nonce. Safe only because every session key encrypts exactly
/// one message; this is upstream's construction and must stay for wire compatibility.
pub(super) fn gcm(key: &[u8; SESSION_KEY_LEN]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

/// HKDF-SHA256 (no salt) of the session key, expanded with `info` to 32 bytes.
pub(super) fn derive(session: &[u8; SESSION_KEY_LEN], info: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(session);
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&[info], hkdf::HKDF_SHA256)
        .ok()?
        .fill(out.as_mut())
        .ok()?;
    Some(out)
}

/// The key commitment of version 2: a value only this session key produces (finding two keys
/// with the same commitment means an HMAC-SHA256 collision).
pub(super) fn commitment(session: &[u8; SESSION_KEY_LEN]) -> Option<Zeroizing<[u8; 32]>> {
    derive(session, COMMIT_INFO)
}

/// The body key of version 2, independent of the commitment.
pub(super) fn body_key(session: &[u8; SESSION_KEY_LEN]) -> Option<Zeroizing<[u8; 32]>> {
    derive(session, ENCRYPT_INFO)
}

pub(super) fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; NONCE_LEN])
}

pub(super) fn open_body(
    session: &[u8; SESSION_KEY_LEN],
    aad: Aad<&[u8]>,
    body: &[u8],
) -> Option<Plaintext> {
    let cipher = gcm(session)?;
    let mut buf = body.to_vec();
    let len = cipher
        .open_in_place(zero_nonce(), aad, &mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(Plaintext::new(buf))
}
