//! The hybrid RSA-OAEP + AES-256-GCM value format: upstream's (§1.1) and our opt-in
//! multi-recipient one (see `FORMAT.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hkdf;
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use base64::Engine as _;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use crate::error::{DecodeError, OpenError, SealError};
use crate::keys::{Fingerprint, Plaintext, PrivateKey, PublicKey};

const SESSION_KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
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
const MULTI_FIXED_HEADER: usize = 2 + 4 + 1 + 1;
const DIGEST_LEN: usize = 32;
/// Length of the version-2 key commitment.
const COMMITMENT_LEN: usize = 32;
/// HKDF-SHA256 `info` strings deriving, from the session key, the commitment stored in the
/// header and the AES-256-GCM key of the body (`FORMAT.md` §2.1).
const COMMIT_INFO: &[u8] = b"sealed-secrets-rs multi-recipient v2 key commitment";
const ENCRYPT_INFO: &[u8] = b"sealed-secrets-rs multi-recipient v2 encryption key";

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

fn session_key() -> Result<Zeroizing<[u8; SESSION_KEY_LEN]>, SealError> {
    let mut key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| SealError::Encrypt)?;
    Ok(key)
}

/// AES-256-GCM with the all-zero nonce. Safe only because every session key encrypts exactly
/// one message; this is upstream's construction and must stay for wire compatibility.
fn gcm(key: &[u8; SESSION_KEY_LEN]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

/// HKDF-SHA256 (no salt) of the session key, expanded with `info` to 32 bytes.
fn derive(session: &[u8; SESSION_KEY_LEN], info: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
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
fn commitment(session: &[u8; SESSION_KEY_LEN]) -> Option<Zeroizing<[u8; 32]>> {
    derive(session, COMMIT_INFO)
}

/// The body key of version 2, independent of the commitment.
fn body_key(session: &[u8; SESSION_KEY_LEN]) -> Option<Zeroizing<[u8; 32]>> {
    derive(session, ENCRYPT_INFO)
}

fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; NONCE_LEN])
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

/// How many multi-recipient version-1 values rings sharing this tally met, by outcome
/// (the controller exports them as a metric for the migration window).
#[derive(Debug, Default)]
pub struct MultiV1Tally {
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl MultiV1Tally {
    /// Version-1 values opened (or tried) because the policy accepted them.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Version-1 values refused before any key was tried.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// What a [`KeyRing`] does with multi-recipient version-1 values, which have no key commitment
/// and so can open to a different plaintext for each recipient (`FORMAT.md` §2.1). The default
/// refuses them ([`OpenError::MultiV1Refused`], before any RSA work); accepting them is a
/// migration switch (controller `--accept-multi-recipient-v1`). Every version-1 value met is
/// counted in the policy's [`MultiV1Tally`], which clones of the policy share.
#[derive(Debug, Clone, Default)]
pub struct MultiV1Policy {
    accept: bool,
    tally: Arc<MultiV1Tally>,
}

impl MultiV1Policy {
    /// Refuse version 1 (the default), counting into `tally`.
    pub fn refuse(tally: Arc<MultiV1Tally>) -> MultiV1Policy {
        MultiV1Policy {
            accept: false,
            tally,
        }
    }

    /// Accept version 1 (a migration window), counting into `tally`.
    pub fn accept(tally: Arc<MultiV1Tally>) -> MultiV1Policy {
        MultiV1Policy {
            accept: true,
            tally,
        }
    }

    /// Whether version-1 values are opened.
    pub fn accepts(&self) -> bool {
        self.accept
    }

    /// The counts of version-1 values met.
    pub fn tally(&self) -> &Arc<MultiV1Tally> {
        &self.tally
    }

    /// Counts one version-1 value and says whether it may be opened.
    fn admit(&self) -> Result<(), OpenError> {
        if self.accept {
            self.tally.accepted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            self.tally.refused.fetch_add(1, Ordering::Relaxed);
            Err(OpenError::MultiV1Refused)
        }
    }
}

/// The structure of a sealed value, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Envelope {
    /// Upstream's format, with the RSA ciphertext length from the prefix (the sealing key's
    /// modulus size in bytes).
    Upstream {
        /// Length prefix.
        rsa_len: usize,
    },
    /// Our multi-recipient format.
    Multi {
        /// Fingerprints of the keys that can open it, in header order.
        recipients: Vec<Fingerprint>,
    },
}

struct Wrap<'a> {
    digest: &'a [u8],
    rsa: &'a [u8],
}

struct ParsedMulti<'a> {
    header: &'a [u8],
    wraps: Vec<Wrap<'a>>,
    /// Version 2's key commitment; `None` for version 1.
    commitment: Option<&'a [u8]>,
    body: &'a [u8],
}

fn parse_multi(ct: &[u8]) -> Result<ParsedMulti<'_>, OpenError> {
    if ct.len() < MULTI_FIXED_HEADER {
        return Err(OpenError::TooShort);
    }
    if ct[2..6] != MULTI_MAGIC {
        return Err(OpenError::MalformedHeader("unknown magic"));
    }
    let version = ct[6];
    if version != MULTI_VERSION && version != MULTI_VERSION_V1 {
        return Err(OpenError::MalformedHeader("unsupported version"));
    }
    let count = usize::from(ct[7]);
    if count == 0 {
        return Err(OpenError::MalformedHeader("no recipients"));
    }
    let mut pos = MULTI_FIXED_HEADER;
    let mut wraps = Vec::with_capacity(count);
    for _ in 0..count {
        let fixed = ct
            .get(pos..pos + DIGEST_LEN + 2)
            .ok_or(OpenError::TooShort)?;
        let rsa_len = usize::from(u16::from_be_bytes([
            fixed[DIGEST_LEN],
            fixed[DIGEST_LEN + 1],
        ]));
        if rsa_len == 0 {
            return Err(OpenError::MalformedHeader("empty key wrap"));
        }
        let start = pos + DIGEST_LEN + 2;
        let rsa = ct.get(start..start + rsa_len).ok_or(OpenError::TooShort)?;
        wraps.push(Wrap {
            digest: &fixed[..DIGEST_LEN],
            rsa,
        });
        pos = start + rsa_len;
    }
    let commitment = if version == MULTI_VERSION {
        let c = ct
            .get(pos..pos + COMMITMENT_LEN)
            .ok_or(OpenError::TooShort)?;
        pos += COMMITMENT_LEN;
        Some(c)
    } else {
        None
    };
    if ct.len() < pos + TAG_LEN {
        return Err(OpenError::TooShort);
    }
    Ok(ParsedMulti {
        header: &ct[..pos],
        wraps,
        commitment,
        body: &ct[pos..],
    })
}

fn parse_upstream(ct: &[u8]) -> Result<(&[u8], &[u8]), OpenError> {
    let prefix = ct.get(..2).ok_or(OpenError::TooShort)?;
    let rsa_len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    let rsa = ct.get(2..2 + rsa_len).ok_or(OpenError::TooShort)?;
    Ok((rsa, &ct[2 + rsa_len..]))
}

/// Reads the structure of a sealed value without decrypting it (for offline validation and
/// for finding which keys a multi-recipient value was sealed to).
pub fn envelope(ciphertext: &[u8]) -> Result<Envelope, OpenError> {
    if ciphertext.starts_with(&MULTI_MARKER) {
        let parsed = parse_multi(ciphertext)?;
        return Ok(Envelope::Multi {
            recipients: parsed
                .wraps
                .iter()
                .map(|w| Fingerprint::from_digest(w.digest))
                .collect(),
        });
    }
    let (rsa, _) = parse_upstream(ciphertext)?;
    Ok(Envelope::Upstream { rsa_len: rsa.len() })
}

/// A successfully opened value, the key that opened it and what opening it cost.
#[derive(Debug)]
pub struct Opened {
    /// The decrypted bytes.
    pub plaintext: Plaintext,
    /// Fingerprint of the key that opened it (for per-key usage metrics).
    pub key: Fingerprint,
    /// RSA private-key operations this open performed (1 when the first key tried was the
    /// right one): the unit of unseal cost, for metrics and benchmarks.
    pub rsa_operations: u64,
}

/// A bound on the RSA private-key operations a caller lets [`KeyRing::open_within`] perform,
/// and the count of those performed so far.
///
/// The count is the caller's record of the work done whatever the outcome: a value no key
/// opens costs one operation per key tried, and [`OpenError`] deliberately says nothing, so
/// the cost of a failed open is read here ([`RsaBudget::spent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RsaBudget {
    limit: u64,
    spent: u64,
}

impl RsaBudget {
    /// A budget of at most `limit` operations.
    pub const fn new(limit: u64) -> RsaBudget {
        RsaBudget { limit, spent: 0 }
    }

    /// No bound: only counts.
    pub const fn unlimited() -> RsaBudget {
        RsaBudget::new(u64::MAX)
    }

    /// Operations performed so far.
    pub const fn spent(&self) -> u64 {
        self.spent
    }

    /// Operations still allowed.
    pub const fn remaining(&self) -> u64 {
        self.limit - self.spent
    }

    /// Takes one operation, or refuses with [`OpenError::WorkLimit`] when none is left.
    fn spend(&mut self) -> Result<(), OpenError> {
        if self.spent >= self.limit {
            return Err(OpenError::WorkLimit);
        }
        self.spent += 1;
        Ok(())
    }
}

/// The private keys a controller or `--recovery-unseal` holds, indexed by fingerprint.
///
/// A plain value: opening reads the ring only, and reports its cost in the result
/// ([`Opened::rsa_operations`], [`RsaBudget::spent`]) rather than in hidden state.
///
/// Opening tries the keys named in the caller's order first, so a value sealed by our CLI
/// (which records the key) costs one RSA operation whatever the number of keys; a
/// multi-recipient value names its keys and costs one too. Values from upstream's kubeseal
/// carry no hint and cost one RSA operation per key tried, as upstream, unless the caller
/// guesses the key (the controller orders keys by what opened similar values).
#[derive(Debug, Default, Clone)]
pub struct KeyRing {
    keys: Vec<PrivateKey>,
    index: HashMap<Fingerprint, usize>,
    multi_v1: MultiV1Policy,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Adds a key; a key already present (same fingerprint) is kept once. Returns whether
    /// the key was new.
    pub fn insert(&mut self, key: PrivateKey) -> bool {
        if self.index.contains_key(key.fingerprint()) {
            return false;
        }
        self.index
            .insert(key.fingerprint().clone(), self.keys.len());
        self.keys.push(key);
        true
    }

    /// Removes a key; returns it when it was present.
    pub fn remove(&mut self, fingerprint: &Fingerprint) -> Option<PrivateKey> {
        let pos = self.index.remove(fingerprint)?;
        let key = self.keys.remove(pos);
        for idx in self.index.values_mut() {
            if *idx > pos {
                *idx -= 1;
            }
        }
        Some(key)
    }

    /// The key with this fingerprint.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&PrivateKey> {
        self.index.get(fingerprint).map(|i| &self.keys[*i])
    }

    /// Sets what this ring does with multi-recipient version-1 values (refused by default).
    pub fn set_multi_v1_policy(&mut self, policy: MultiV1Policy) {
        self.multi_v1 = policy;
    }

    /// What this ring does with multi-recipient version-1 values.
    pub fn multi_v1_policy(&self) -> &MultiV1Policy {
        &self.multi_v1
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Fingerprints in insertion order.
    pub fn fingerprints(&self) -> impl Iterator<Item = &Fingerprint> {
        self.keys.iter().map(PrivateKey::fingerprint)
    }

    /// Keys in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &PrivateKey> {
        self.keys.iter()
    }

    /// One RSA private-key operation, taken from `rsa_budget` first.
    fn unwrap_session(
        key: &PrivateKey,
        label: &[u8],
        rsa: &[u8],
        rsa_budget: &mut RsaBudget,
    ) -> Result<Option<Zeroizing<[u8; SESSION_KEY_LEN]>>, OpenError> {
        rsa_budget.spend()?;
        let oaep = key.oaep();
        let mut buf = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let Ok(session) = oaep.decrypt(&OAEP_SHA256_MGF1SHA256, rsa, &mut buf, Some(label)) else {
            return Ok(None);
        };
        let Ok(session) = <[u8; SESSION_KEY_LEN]>::try_from(&*session) else {
            return Ok(None);
        };
        Ok(Some(Zeroizing::new(session)))
    }

    /// Opens one sealed value under `label`. `hints` name keys to try first, in order (our
    /// CLI records the sealing key; the controller adds its guesses); unknown hints are
    /// ignored, and the other keys are tried after them in insertion order. Every
    /// cryptographic failure is [`OpenError::NoKey`]; use [`KeyRing::open_within`] to learn
    /// what a failure cost.
    pub fn open(
        &self,
        label: &[u8],
        ciphertext: &[u8],
        hints: &[Fingerprint],
    ) -> Result<Opened, OpenError> {
        self.open_within(label, ciphertext, hints, &mut RsaBudget::unlimited())
    }

    /// [`KeyRing::open`] taking every RSA operation it performs from `rsa_budget`: a caller
    /// opening many values bounds their total cost with one budget, and reads their total
    /// cost, failures included, from [`RsaBudget::spent`]. When the budget runs out before
    /// the value opened the result is [`OpenError::WorkLimit`].
    pub fn open_within(
        &self,
        label: &[u8],
        ciphertext: &[u8],
        hints: &[Fingerprint],
        rsa_budget: &mut RsaBudget,
    ) -> Result<Opened, OpenError> {
        let before = rsa_budget.spent();
        let mut opened = if ciphertext.starts_with(&MULTI_MARKER) {
            self.open_multi(label, ciphertext, rsa_budget)?
        } else {
            self.open_upstream(label, ciphertext, hints, rsa_budget)?
        };
        opened.rsa_operations = rsa_budget.spent() - before;
        Ok(opened)
    }

    fn open_upstream(
        &self,
        label: &[u8],
        ciphertext: &[u8],
        hints: &[Fingerprint],
        rsa_budget: &mut RsaBudget,
    ) -> Result<Opened, OpenError> {
        let (rsa, body) = parse_upstream(ciphertext)?;
        let hinted = hints.iter().filter_map(|fp| self.index.get(fp).copied());
        let mut order: Vec<usize> = Vec::with_capacity(self.keys.len());
        for idx in hinted.chain(0..self.keys.len()) {
            if !order.contains(&idx) {
                order.push(idx);
            }
        }
        for idx in order {
            let key = &self.keys[idx];
            let Some(session) = Self::unwrap_session(key, label, rsa, rsa_budget)? else {
                continue;
            };
            if let Some(plaintext) = open_body(&session, Aad::from(&[][..]), body) {
                return Ok(Opened {
                    plaintext,
                    key: key.fingerprint().clone(),
                    rsa_operations: 0,
                });
            }
        }
        Err(OpenError::NoKey)
    }

    fn open_multi(
        &self,
        label: &[u8],
        ciphertext: &[u8],
        rsa_budget: &mut RsaBudget,
    ) -> Result<Opened, OpenError> {
        let parsed = parse_multi(ciphertext)?;
        if parsed.commitment.is_none() {
            // Version 1: refused before any RSA work unless the policy accepts it.
            self.multi_v1.admit()?;
        }
        // At most one unwrap attempt per key we hold: a sealer may name our key in all 255
        // wraps, and a key that failed once fails again (or opens the same session key).
        let mut tried: Vec<usize> = Vec::new();
        for wrap in &parsed.wraps {
            let fingerprint = Fingerprint::from_digest(wrap.digest);
            let Some(&idx) = self.index.get(&fingerprint) else {
                continue;
            };
            if tried.contains(&idx) {
                continue;
            }
            tried.push(idx);
            let key = &self.keys[idx];
            let Some(session) = Self::unwrap_session(key, label, wrap.rsa, rsa_budget)? else {
                continue;
            };
            let body_key = match parsed.commitment {
                // Version 1: the session key is the body key, and nothing stops a sealer from
                // giving each recipient a different one (FORMAT.md §2.1).
                None => session,
                Some(expected) => {
                    let Some(actual) = commitment(&session) else {
                        continue;
                    };
                    if verify_slices_are_equal(actual.as_ref(), expected).is_err() {
                        continue;
                    }
                    let Some(k) = body_key(&session) else {
                        continue;
                    };
                    k
                }
            };
            if let Some(plaintext) = open_body(&body_key, Aad::from(parsed.header), parsed.body) {
                return Ok(Opened {
                    plaintext,
                    key: fingerprint,
                    rsa_operations: 0,
                });
            }
        }
        Err(OpenError::NoKey)
    }
}

fn open_body(session: &[u8; SESSION_KEY_LEN], aad: Aad<&[u8]>, body: &[u8]) -> Option<Plaintext> {
    let cipher = gcm(session)?;
    let mut buf = body.to_vec();
    let len = cipher
        .open_in_place(zero_nonce(), aad, &mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(Plaintext::new(buf))
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
