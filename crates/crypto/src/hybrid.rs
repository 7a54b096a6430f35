//! The hybrid RSA-OAEP + AES-256-GCM value format: upstream's (§1.1) and our opt-in
//! multi-recipient one (see `FORMAT.md`). Sealing lives here; reading a value's structure in
//! `envelope`, opening it in `ring`, the version-1 policy in `policy`.

mod envelope;
mod layout;
mod policy;
mod ring;

use aws_lc_rs::aead::Aad;
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use crate::error::{DecodeError, SealError};
use crate::keys::PublicKey;

pub use envelope::{Envelope, ValueFormat, envelope, value_format};
use layout::{
    MULTI_FIXED_HEADER, SESSION_KEY_LEN, TAG_LEN, body_key, commitment, gcm, session_key,
    zero_nonce,
};
pub use layout::{MULTI_MAGIC, MULTI_MARKER, MULTI_VERSION, MULTI_VERSION_V1};
pub use policy::{MultiV1Policy, MultiV1Tally};
pub use ring::{KeyRing, Opened, RsaBudget};

/// Go's `base64.StdEncoding`: standard alphabet, padding required, lenient trailing bits.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Encodes a sealed value as upstream stores it in `spec.encryptedData`.
pub fn encode_base64(bytes: &[u8]) -> String {
    GO_STD.encode(bytes)
}

/// Decodes a `spec.encryptedData` value; embedded `\r` and `\n` are ignored as Go does.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, DecodeError> {
    let cleaned: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.bytes()
            .filter(|b| *b != b'\r' && *b != b'\n')
            .collect(),
    );
    GO_STD
        .decode(cleaned.as_slice())
        .map_err(|e| DecodeError(e.to_string()))
}

fn rsa_wrap(key: &PublicKey, label: &[u8], session: &[u8]) -> Result<Vec<u8>, SealError> {
    let oaep = key.oaep();
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let written = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, session, &mut out, Some(label))
        .map_err(|_| SealError::Encrypt)?
        .len();
    out.truncate(written);
    Ok(out)
}

/// Seals one value in upstream's format (§1.1):
/// `u16be(len) ‖ RSA-OAEP-SHA256(session key, label) ‖ AES-256-GCM(plaintext)`.
/// A fresh 32-byte session key is drawn for every call.
pub fn seal(key: &PublicKey, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let session = session_key()?;
    let wrapped = rsa_wrap(key, label, session.as_ref())?;
    let len = u16::try_from(wrapped.len()).map_err(|_| SealError::Encrypt)?;
    let mut out = Vec::with_capacity(2 + wrapped.len() + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&wrapped);
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    let cipher = gcm(&session).ok_or(SealError::Encrypt)?;
    let mut body = out.split_off(body_start);
    cipher
        .seal_in_place_append_tag(zero_nonce(), Aad::empty(), &mut body)
        .map_err(|_| SealError::Encrypt)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Seals one value for several keys at once (our multi-recipient format version 2,
/// `FORMAT.md`): one AES-GCM body, the session key wrapped for each key and tagged with its
/// fingerprint, a commitment to the session key, the whole header authenticated as AAD. Any
/// one of the keys opens it, and all of them open it to the same plaintext.
pub fn seal_multi(
    keys: &[&PublicKey],
    label: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut distinct: Vec<&PublicKey> = Vec::with_capacity(keys.len());
    for key in keys {
        if !distinct
            .iter()
            .any(|k| k.fingerprint() == key.fingerprint())
        {
            distinct.push(key);
        }
    }
    let session = session_key()?;
    let mut out = multi_header(MULTI_VERSION, &distinct, label, &session)?;
    out.extend_from_slice(commitment(&session).ok_or(SealError::Encrypt)?.as_ref());
    let body_key = body_key(&session).ok_or(SealError::Encrypt)?;
    let cipher = gcm(&body_key).ok_or(SealError::Encrypt)?;
    let mut body = plaintext.to_vec();
    cipher
        .seal_in_place_append_tag(zero_nonce(), Aad::from(out.as_slice()), &mut body)
        .map_err(|_| SealError::Encrypt)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// The multi-recipient header up to the recipients' end (`FORMAT.md` §2): marker, magic,
/// `version`, count, then per recipient its fingerprint and `session` wrapped to it.
fn multi_header(
    version: u8,
    keys: &[&PublicKey],
    label: &[u8],
    session: &[u8; SESSION_KEY_LEN],
) -> Result<Vec<u8>, SealError> {
    let count = u8::try_from(keys.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or(SealError::Recipients(keys.len()))?;
    let mut out = Vec::new();
    out.extend_from_slice(&MULTI_MARKER);
    out.extend_from_slice(&MULTI_MAGIC);
    out.push(version);
    out.push(count);
    for key in keys {
        let wrapped = rsa_wrap(key, label, session)?;
        let len = u16::try_from(wrapped.len()).map_err(|_| SealError::Encrypt)?;
        out.extend_from_slice(&key.fingerprint().digest());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&wrapped);
    }
    Ok(out)
}

/// Seals one value in multi-recipient version 1 (`FORMAT.md` §2.2, no key commitment), for
/// tests and fixtures of the refusal only: nothing we ship writes this format. Compiled only
/// with the `multi-v1-writer` feature, which only dev-dependencies enable.
#[cfg(feature = "multi-v1-writer")]
pub fn seal_multi_v1(
    keys: &[&PublicKey],
    label: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let session = session_key()?;
    let mut out = multi_header(MULTI_VERSION_V1, keys, label, &session)?;
    let cipher = gcm(&session).ok_or(SealError::Encrypt)?;
    let mut body = plaintext.to_vec();
    cipher
        .seal_in_place_append_tag(zero_nonce(), Aad::from(out.as_slice()), &mut body)
        .map_err(|_| SealError::Encrypt)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// True when `ciphertext` claims to be a multi-recipient value of version 1 (marker, magic and
/// version byte; nothing else is checked). Needs no key, so `kubeseal audit` and `scan` can
/// report such values, and telling it is no oracle: the version byte is public.
pub fn is_multi_v1(ciphertext: &[u8]) -> bool {
    ciphertext.len() > MULTI_FIXED_HEADER - 2
        && ciphertext.starts_with(&MULTI_MARKER)
        && ciphertext[2..6] == MULTI_MAGIC
        && ciphertext[6] == MULTI_VERSION_V1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_go_compat() {
        assert_eq!(encode_base64(b"ab"), "YWI=");
        assert_eq!(decode_base64("YW\nI=\r\n").unwrap(), b"ab");
        assert!(decode_base64("YWI").is_err());
        assert!(decode_base64("!!!!").is_err());
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod commitment_tests;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod external_tests;
