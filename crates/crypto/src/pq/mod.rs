//! The post-quantum value format (`FORMAT.md` §3): every value a complete age v1 file whose
//! recipient stanzas are age 1.3's `mlkem768x25519` stanzas, plus two stanzas stock age
//! ignores and its header MAC authenticates: the scope binding and the key hints.
//!
//! `age -d -i IDENTITY` opens what [`seal_pq`] writes; [`crate::KeyRing`] opens it only under
//! the scope it was sealed for, trying exactly the identity the hint names.

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod cctv_tests;
mod header;
mod keys;
mod stream;

use aws_lc_rs::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine as _;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::XWing;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::error::{OpenError, SealError};
use crate::keys::{Fingerprint, Plaintext};
use header::{B64, Stanza};

pub use header::{AGE_INTRO, MAX_HEADER_BYTES, MAX_STANZAS};
pub use keys::{PqIdentity, PqKeyError, PqRecipient};

/// Type of age 1.3's post-quantum recipient stanza.
pub const MLKEM_STANZA: &str = "mlkem768x25519";
/// HPKE `info` of that stanza (age's `pqLabel`).
const HPKE_INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
/// Type of our scope stanza: its body is the scope label (`FORMAT.md` §3.2).
pub const SCOPE_STANZA: &str = "sealed-secrets-rs.dev/scope";
/// Type of our key-hint stanza: one argument per `mlkem768x25519` stanza, in order, the
/// unpadded base64 of SHA-256 over that recipient's public key (`FORMAT.md` §3.3).
pub const HINTS_STANZA: &str = "sealed-secrets-rs.dev/recipients";
/// Most recipients one value is sealed to (one per cluster). Keeps the header, and the work
/// of a reader, small: [`MAX_STANZAS`] leaves room for ours and a few unknown stanzas.
pub const MAX_PQ_RECIPIENTS: usize = 32;
const FILE_KEY_LEN: usize = 16;
/// `enc` of MLKEM768-X25519: ML-KEM-768 ciphertext (1088) ‖ X25519 share (32).
const ENC_LEN: usize = 1120;
/// The wrapped file key: 16 bytes and the ChaCha20-Poly1305 tag.
const WRAPPED_LEN: usize = FILE_KEY_LEN + 16;

/// Whether `ciphertext` is in this format (starts with age's intro line). An upstream value
/// starts with its RSA length, and `ag` would mean a 24,935-byte RSA ciphertext: no key
/// upstream or we use is that large, so the two never collide.
pub fn is_pq(ciphertext: &[u8]) -> bool {
    ciphertext.starts_with(AGE_INTRO)
}

/// Draws from aws-lc's generator for hpke's encapsulation randomness. `CryptoRng` cannot
/// fail, so a failure is recorded and the seal refused after the fact.
struct Rng {
    failed: bool,
}

impl hpke::rand_core::TryRng for Rng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        if aws_lc_rs::rand::fill(dst).is_err() {
            self.failed = true;
        }
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for Rng {}

fn header_mac_key(file_key: &[u8]) -> Option<hmac::Key> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(file_key);
    let mut key = Zeroizing::new([0u8; 32]);
    prk.expand(&[b"header"], hkdf::HKDF_SHA256)
        .ok()?
        .fill(key.as_mut())
        .ok()?;
    Some(hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()))
}

/// Seals one value for `recipients` (1 to [`MAX_PQ_RECIPIENTS`], duplicates kept once) under
/// the scope `label` ([`crate::Scope::label`]): a complete age v1 file, `FORMAT.md` §3.
pub fn seal_pq(
    recipients: &[&PqRecipient],
    label: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut distinct: Vec<&PqRecipient> = Vec::with_capacity(recipients.len());
    for r in recipients {
        if !distinct.contains(r) {
            distinct.push(r);
        }
    }
    if distinct.is_empty() || distinct.len() > MAX_PQ_RECIPIENTS {
        return Err(SealError::Recipients(distinct.len()));
    }
    let mut file_key = Zeroizing::new([0u8; FILE_KEY_LEN]);
    aws_lc_rs::rand::fill(file_key.as_mut()).map_err(|_| SealError::Encrypt)?;
    let mut rng = Rng { failed: false };
    let mut out = AGE_INTRO.to_vec();
    for r in &distinct {
        let (enc, wrapped) =
            hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, XWing>(
                &OpModeS::Base,
                r.hpke_key(),
                HPKE_INFO,
                file_key.as_ref(),
                b"",
                &mut rng,
            )
            .map_err(|_| SealError::Encrypt)?;
        header::write_stanza(
            &mut out,
            MLKEM_STANZA,
            &[&B64.encode(enc.to_bytes())],
            &wrapped,
        );
    }
    if rng.failed {
        return Err(SealError::Encrypt);
    }
    header::write_stanza(&mut out, SCOPE_STANZA, &[], label);
    let hints: Vec<String> = distinct
        .iter()
        .map(|r| B64.encode(r.fingerprint().digest()))
        .collect();
    let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
    header::write_stanza(&mut out, HINTS_STANZA, &hints, &[]);
    out.extend_from_slice(b"---");
    let mac_key = header_mac_key(file_key.as_ref()).ok_or(SealError::Encrypt)?;
    let mac = hmac::sign(&mac_key, &out);
    out.push(b' ');
    out.extend_from_slice(B64.encode(mac.as_ref()).as_bytes());
    out.push(b'\n');
    stream::encrypt(file_key.as_ref(), plaintext, &mut out).ok_or(SealError::Encrypt)?;
    Ok(out)
}

/// What a post-quantum value says about itself, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PqEnvelope {
    /// The key hints, one per `mlkem768x25519` stanza; empty when the value has none (sealed by
    /// a plain age with our scope stanza added, `FORMAT.md` §3.4).
    pub recipients: Vec<Fingerprint>,
    /// The scope label the value is bound to.
    pub label: Vec<u8>,
}

/// A header checked for everything visible without a key.
struct Checked<'a> {
    header: header::Header<'a>,
    /// `enc` of each `mlkem768x25519` stanza, in header order.
    encs: Vec<Vec<u8>>,
    /// The key hints, empty or one per `enc`.
    hints: Vec<Fingerprint>,
    /// The scope stanza's label, if the value has one.
    label: Option<Vec<u8>>,
}

fn check(ciphertext: &[u8]) -> Result<Checked<'_>, OpenError> {
    let header = header::parse(ciphertext)?;
    let mut encs = Vec::new();
    let mut label = None;
    let mut hints = None;
    for s in &header.stanzas {
        match s.kind {
            MLKEM_STANZA => encs.push(check_mlkem(s)?),
            SCOPE_STANZA if label.is_none() && s.args.is_empty() => label = Some(s.body.clone()),
            HINTS_STANZA if hints.is_none() && s.body.is_empty() => {
                let mut fps = Vec::with_capacity(s.args.len());
                for arg in &s.args {
                    let digest = B64.decode(arg).ok().filter(|d| d.len() == 32);
                    let digest = digest.ok_or(OpenError::MalformedAge("malformed key hint"))?;
                    fps.push(Fingerprint::from_digest(&digest));
                }
                hints = Some(fps);
            }
            SCOPE_STANZA => return Err(OpenError::MalformedAge("malformed scope binding")),
            HINTS_STANZA => return Err(OpenError::MalformedAge("malformed key hint")),
            // Unknown stanzas (age's grease, other recipient types) are ignored, as age does;
            // the header MAC covers them all the same.
            _ => {}
        }
    }
    let hints = hints.unwrap_or_default();
    if !hints.is_empty() && hints.len() != encs.len() {
        return Err(OpenError::MalformedAge(
            "key hints do not match the stanzas",
        ));
    }
    // The smallest payload: its nonce and one chunk's tag.
    if header.payload.len() < stream::NONCE_LEN + 16 {
        return Err(OpenError::TooShort);
    }
    Ok(Checked {
        header,
        encs,
        hints,
        label,
    })
}

/// An `mlkem768x25519` stanza as age 1.3 requires it, else a header failure as in age: one
/// argument, the canonical base64 of a 1120-byte `enc` whose X25519 share is not of low
/// order, and a 32-byte body. Returns `enc`.
fn check_mlkem(s: &Stanza<'_>) -> Result<Vec<u8>, OpenError> {
    let bad = OpenError::MalformedAge("malformed mlkem768x25519 stanza");
    let [arg] = s.args.as_slice() else {
        return Err(bad);
    };
    let enc = B64.decode(arg).map_err(|_| bad.clone())?;
    if enc.len() != ENC_LEN || s.body.len() != WRAPPED_LEN {
        return Err(bad);
    }
    // A low-order X25519 share makes the X25519 shared secret all zero whatever the scalar
    // (clamped scalars are multiples of 8), which Go's crypto/ecdh and so age refuse;
    // aws-lc refuses the all-zero result too, so any ephemeral scalar tells it apart.
    let share = &enc[ENC_LEN - 32..];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let probe = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| bad.clone())?;
    agreement::agree_ephemeral(
        probe,
        UnparsedPublicKey::new(&X25519, share),
        (),
        |_| Ok(()),
    )
    .map_err(|_| bad)?;
    Ok(enc)
}

/// Reads the key hints and scope of a post-quantum value without decrypting it.
pub(crate) fn envelope(ciphertext: &[u8]) -> Result<PqEnvelope, OpenError> {
    let checked = check(ciphertext)?;
    Ok(PqEnvelope {
        label: checked
            .label
            .ok_or(OpenError::MalformedAge("no scope binding"))?,
        recipients: checked.hints,
    })
}

/// Opens a post-quantum value with `identities` under the scope `label`. A value without a
/// scope binding is refused, and one bound to another scope is refused before any key is
/// used; each identity is tried at most once per stanza, and only on the stanza its hint names
/// when the value has hints (one X-Wing decapsulation for a value we sealed). Returns the
/// plaintext and the identity that opened it.
pub(crate) fn open<'a>(
    identities: impl Iterator<Item = &'a PqIdentity> + Clone,
    label: &[u8],
    ciphertext: &[u8],
) -> Result<(Plaintext, Fingerprint), OpenError> {
    let checked = check(ciphertext)?;
    let bound = checked
        .label
        .as_deref()
        .ok_or(OpenError::MalformedAge("no scope binding"))?;
    // The scope is public in the header, so refusing a moved value here tells nothing a
    // reader does not see; it is the same uniform error as a wrong RSA-OAEP label.
    if bound != label {
        return Err(OpenError::NoKey);
    }
    decrypt(&checked, identities)
}

/// Any age file with `mlkem768x25519` stanzas, with or without our stanzas, as `age -d` reads
/// it: for the C2SP vectors.
#[cfg(test)]
pub(crate) fn open_unscoped<'a>(
    identities: impl Iterator<Item = &'a PqIdentity> + Clone,
    ciphertext: &[u8],
) -> Result<(Plaintext, Fingerprint), OpenError> {
    decrypt(&check(ciphertext)?, identities)
}

fn decrypt<'a>(
    checked: &Checked<'_>,
    identities: impl Iterator<Item = &'a PqIdentity> + Clone,
) -> Result<(Plaintext, Fingerprint), OpenError> {
    let bodies = checked
        .header
        .stanzas
        .iter()
        .filter(|s| s.kind == MLKEM_STANZA)
        .map(|s| s.body.as_slice());
    for (i, (enc, body)) in checked.encs.iter().zip(bodies).enumerate() {
        let hint = checked.hints.get(i);
        for id in identities.clone() {
            if hint.is_some_and(|h| h != id.fingerprint()) {
                continue;
            }
            let Some(file_key) = unwrap_file_key(id, enc, body) else {
                continue;
            };
            // The first stanza that unwraps decides, as in age: a wrong header MAC or payload
            // is a failure, not a reason to try further keys.
            let mac_key = header_mac_key(file_key.as_ref()).ok_or(OpenError::NoKey)?;
            hmac::verify(&mac_key, checked.header.mac_input, &checked.header.mac)
                .map_err(|_| OpenError::NoKey)?;
            let plaintext = stream::decrypt(file_key.as_ref(), checked.header.payload)
                .ok_or(OpenError::NoKey)?;
            return Ok((Plaintext::new(plaintext.to_vec()), id.fingerprint().clone()));
        }
    }
    Err(OpenError::NoKey)
}

/// HPKE-opens one wrapped file key; `None` when this identity is not the recipient.
fn unwrap_file_key(id: &PqIdentity, enc: &[u8], body: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let enc = <XWing as hpke::Kem>::EncappedKey::from_bytes(enc).ok()?;
    let key = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, XWing>(
        &OpModeR::Base,
        id.hpke_key(),
        &enc,
        HPKE_INFO,
        body,
        b"",
    )
    .ok()?;
    (key.len() == FILE_KEY_LEN).then(|| Zeroizing::new(key))
}
