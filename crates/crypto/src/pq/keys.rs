//! Post-quantum identities and recipients: age 1.3's `HybridIdentity` / `HybridRecipient`
//! (`AGE-SECRET-KEY-PQ-1…` / `age1pq1…`, `FORMAT.md` §3.1), an MLKEM768-X25519 (X-Wing) key
//! pair whose private half is a 32-byte seed.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::digest;
use bech32::{FromBase32, ToBase32, Variant};
use hpke::kem::XWing;
use hpke::{Deserializable, Kem as _, Serializable};
use zeroize::Zeroizing;

use crate::keys::Fingerprint;

/// Bech32 human-readable part of a recipient, as age writes it (lowercase).
pub const RECIPIENT_HRP: &str = "age1pq";
/// Bech32 human-readable part of an identity, as age writes it (uppercase).
pub const IDENTITY_HRP: &str = "AGE-SECRET-KEY-PQ-";
/// Length of an identity: the X-Wing seed.
pub const SEED_LEN: usize = 32;
/// Length of a recipient: ML-KEM-768 encapsulation key (1184) ‖ X25519 point (32).
pub const PUBLIC_KEY_LEN: usize = 1216;

/// A post-quantum key string (`age1pq1…` or `AGE-SECRET-KEY-PQ-1…`) that does not parse. The
/// input is never repeated: an identity string is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PqKeyError {
    /// Not valid Bech32 (bad character, mixed case, bad checksum, Bech32m).
    #[error("malformed {what}: invalid Bech32")]
    Bech32 {
        /// `recipient` or `identity`.
        what: &'static str,
    },
    /// Valid Bech32 with another type prefix.
    #[error("malformed {what}: expected the prefix `{expected}`")]
    WrongType {
        /// `recipient` or `identity`.
        what: &'static str,
        /// The prefix expected.
        expected: &'static str,
    },
    /// The key bytes have the wrong length.
    #[error("malformed {what}: {got} bytes, expected {expected}")]
    Length {
        /// `recipient` or `identity`.
        what: &'static str,
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The bytes are not a valid MLKEM768-X25519 public key.
    #[error("malformed recipient: not a valid MLKEM768-X25519 public key")]
    InvalidKey,
    /// The random generator failed while generating an identity.
    #[error("post-quantum key generation failed")]
    Generate,
}

/// Decodes age's Bech32: original checksum, no length limit, all one case, and the case age
/// writes (`upper` for identities), so that what we accept age accepts too.
fn decode(
    s: &str,
    hrp: &'static str,
    upper: bool,
    what: &'static str,
) -> Result<Vec<u8>, PqKeyError> {
    let s = s.trim();
    let cased = if upper {
        !s.bytes().any(|b| b.is_ascii_lowercase())
    } else {
        !s.bytes().any(|b| b.is_ascii_uppercase())
    };
    if !cased {
        return Err(PqKeyError::Bech32 { what });
    }
    let (found, data, variant) = bech32::decode(s).map_err(|_| PqKeyError::Bech32 { what })?;
    if variant != Variant::Bech32 {
        return Err(PqKeyError::Bech32 { what });
    }
    if found != hrp.to_ascii_lowercase() {
        return Err(PqKeyError::WrongType {
            what,
            expected: hrp,
        });
    }
    Vec::<u8>::from_base32(&data).map_err(|_| PqKeyError::Bech32 { what })
}

fn encode(hrp: &str, bytes: &[u8]) -> String {
    // The human-readable parts are constants that bech32 accepts, so this never fails.
    bech32::encode(
        &hrp.to_ascii_lowercase(),
        bytes.to_base32(),
        Variant::Bech32,
    )
    .unwrap_or_default()
}

/// A post-quantum recipient: the public key values are sealed to (`age1pq1…`).
#[derive(Clone)]
pub struct PqRecipient {
    key: Arc<<XWing as hpke::Kem>::PublicKey>,
    bytes: Arc<[u8]>,
    fingerprint: Fingerprint,
}

impl PqRecipient {
    /// Reads the raw 1216-byte public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<PqRecipient, PqKeyError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(PqKeyError::Length {
                what: "recipient",
                got: bytes.len(),
                expected: PUBLIC_KEY_LEN,
            });
        }
        let key = <XWing as hpke::Kem>::PublicKey::from_bytes(bytes)
            .map_err(|_| PqKeyError::InvalidKey)?;
        Ok(PqRecipient::new(key))
    }

    fn new(key: <XWing as hpke::Kem>::PublicKey) -> PqRecipient {
        let bytes: Arc<[u8]> = key.to_bytes().as_slice().into();
        let fingerprint =
            Fingerprint::from_digest(digest::digest(&digest::SHA256, &bytes).as_ref());
        PqRecipient {
            key: Arc::new(key),
            bytes,
            fingerprint,
        }
    }

    /// The raw public key (ML-KEM-768 encapsulation key ‖ X25519 point).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `SHA256:` and the unpadded base64 of SHA-256 over the raw public key: the key hint a
    /// value carries (`FORMAT.md` §3.3), and the key's name in annotations, metrics and
    /// reports, like an RSA key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    pub(crate) fn hpke_key(&self) -> &<XWing as hpke::Kem>::PublicKey {
        &self.key
    }
}

impl fmt::Display for PqRecipient {
    /// The `age1pq1…` string that `age -r` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode(RECIPIENT_HRP, &self.bytes))
    }
}

impl fmt::Debug for PqRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PqRecipient({})", self.fingerprint)
    }
}

impl PartialEq for PqRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PqRecipient {}

impl FromStr for PqRecipient {
    type Err = PqKeyError;

    /// Parses `age1pq1…` exactly as age 1.3's `ParseHybridRecipient` does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode(s, RECIPIENT_HRP, false, "recipient")?;
        PqRecipient::from_bytes(&bytes)
    }
}

/// A post-quantum identity (`AGE-SECRET-KEY-PQ-1…`): a 32-byte seed from which the ML-KEM-768
/// and X25519 keys are derived (SHAKE256, as X-Wing specifies). `Debug` shows only the
/// fingerprint; the seed is zeroized on drop.
#[derive(Clone)]
pub struct PqIdentity {
    seed: Arc<Zeroizing<[u8; SEED_LEN]>>,
    key: Arc<<XWing as hpke::Kem>::PrivateKey>,
    recipient: PqRecipient,
}

impl PqIdentity {
    /// A fresh identity from the system random generator.
    pub fn generate() -> Result<PqIdentity, PqKeyError> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        aws_lc_rs::rand::fill(seed.as_mut()).map_err(|_| PqKeyError::Generate)?;
        PqIdentity::from_seed(seed.as_slice())
    }

    /// The identity with this seed (what the `AGE-SECRET-KEY-PQ-1…` string encodes).
    pub fn from_seed(seed: &[u8]) -> Result<PqIdentity, PqKeyError> {
        let seed: [u8; SEED_LEN] = seed.try_into().map_err(|_| PqKeyError::Length {
            what: "identity",
            got: seed.len(),
            expected: SEED_LEN,
        })?;
        let seed = Zeroizing::new(seed);
        // Any 32 bytes are a valid X-Wing seed; the length was checked above.
        let key = <XWing as hpke::Kem>::PrivateKey::from_bytes(seed.as_ref()).map_err(|_| {
            PqKeyError::Length {
                what: "identity",
                got: SEED_LEN,
                expected: SEED_LEN,
            }
        })?;
        let recipient = PqRecipient::new(XWing::sk_to_pk(&key));
        Ok(PqIdentity {
            seed: Arc::new(seed),
            key: Arc::new(key),
            recipient,
        })
    }

    /// The `AGE-SECRET-KEY-PQ-1…` string (secret) that `age -d -i FILE` reads.
    pub fn to_age_string(&self) -> Zeroizing<String> {
        Zeroizing::new(encode(IDENTITY_HRP, self.seed.as_slice()).to_ascii_uppercase())
    }

    /// The 32-byte seed (secret).
    pub fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    /// The matching recipient.
    pub fn recipient(&self) -> &PqRecipient {
        &self.recipient
    }

    /// Shorthand for `recipient().fingerprint()`.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.recipient.fingerprint()
    }

    pub(crate) fn hpke_key(&self) -> &<XWing as hpke::Kem>::PrivateKey {
        &self.key
    }
}

impl PqIdentity {
    /// Reads an age identity file (`age-keygen` output, `kubeseal keys backup`): every
    /// `AGE-SECRET-KEY-PQ-1…` line, skipping empty lines and `#` comments. Any other line is
    /// an error, as in age (classic `AGE-SECRET-KEY-1…` keys cannot open these values).
    pub fn parse_file(text: &str) -> Result<Vec<PqIdentity>, PqKeyError> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::parse)
            .collect()
    }
}

impl FromStr for PqIdentity {
    type Err = PqKeyError;

    /// Parses `AGE-SECRET-KEY-PQ-1…` exactly as age 1.3's `ParseHybridIdentity` does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let seed = Zeroizing::new(decode(s, IDENTITY_HRP, true, "identity")?);
        PqIdentity::from_seed(&seed)
    }
}

impl fmt::Debug for PqIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PqIdentity")
            .field("fingerprint", self.fingerprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_string() {
        let id = PqIdentity::generate().unwrap();
        let text = id.to_age_string();
        assert!(text.starts_with("AGE-SECRET-KEY-PQ-1"), "{}", &text[..20]);
        let back: PqIdentity = text.parse().unwrap();
        assert_eq!(back.recipient(), id.recipient());
        let r = id.recipient().to_string();
        assert!(r.starts_with("age1pq1"));
        assert_eq!(r.parse::<PqRecipient>().unwrap(), *id.recipient());
        assert!(!format!("{id:?}").contains(&text[20..40]));
        let file = format!("# created: now\n# public key: {r}\n\n{}\n", text.as_str());
        let ids = PqIdentity::parse_file(&file).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].recipient(), id.recipient());
        assert!(PqIdentity::parse_file("AGE-SECRET-KEY-1QQQQ\n").is_err());
    }

    #[test]
    fn key_strings_are_refused_with_typed_errors() {
        let id = PqIdentity::generate().unwrap();
        let r = id.recipient().to_string();
        let upper = r.to_ascii_uppercase();
        assert!(matches!(
            upper.parse::<PqRecipient>(),
            Err(PqKeyError::Bech32 { .. })
        ));
        let lower = id.to_age_string().to_ascii_lowercase();
        assert!(matches!(
            lower.parse::<PqIdentity>(),
            Err(PqKeyError::Bech32 { .. })
        ));
        let mut bad = r.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'q' { b'p' } else { b'q' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(matches!(
            bad.parse::<PqRecipient>(),
            Err(PqKeyError::Bech32 { .. })
        ));
        assert!(matches!(
            id.to_age_string().parse::<PqRecipient>(),
            Err(PqKeyError::Bech32 { .. }) | Err(PqKeyError::WrongType { .. })
        ));
        let short = encode(RECIPIENT_HRP, &[1u8; 40]);
        assert!(matches!(
            short.parse::<PqRecipient>(),
            Err(PqKeyError::Length { got: 40, .. })
        ));
        let x25519 = encode("age", &[1u8; 32]);
        assert!(matches!(
            x25519.parse::<PqRecipient>(),
            Err(PqKeyError::WrongType { .. })
        ));
        assert!(matches!(
            "".parse::<PqRecipient>(),
            Err(PqKeyError::Bech32 { .. })
        ));
    }
}
