//! The key ring: the private keys a controller or `--recovery-unseal` holds, and opening values
//! with them.

use std::collections::HashMap;

use aws_lc_rs::aead::Aad;
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use zeroize::Zeroizing;

use crate::error::OpenError;
use crate::keys::{Fingerprint, KeyMaterial, Plaintext, PrivateKey};
use crate::pq::{self, PqIdentity};

use super::envelope::{ValueFormat, parse_multi, parse_upstream, value_format};
use super::layout::{SESSION_KEY_LEN, body_key, commitment, open_body};
use super::policy::MultiV1Policy;

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
///
/// The ring also holds post-quantum identities ([`KeyRing::insert_pq`]); a post-quantum value
/// (`FORMAT.md` §3) names its keys and costs one X-Wing decapsulation and no RSA operation.
#[derive(Debug, Default, Clone)]
pub struct KeyRing {
    keys: Vec<PrivateKey>,
    index: HashMap<Fingerprint, usize>,
    multi_v1: MultiV1Policy,
    pq: Vec<PqIdentity>,
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

    /// Adds a post-quantum identity; one already present (same fingerprint) is kept once.
    /// Returns whether it was new.
    pub fn insert_pq(&mut self, identity: PqIdentity) -> bool {
        if self.get_pq(identity.fingerprint()).is_some() {
            return false;
        }
        self.pq.push(identity);
        true
    }

    /// Removes a post-quantum identity; returns it when it was present.
    pub fn remove_pq(&mut self, fingerprint: &Fingerprint) -> Option<PqIdentity> {
        let pos = self
            .pq
            .iter()
            .position(|i| i.fingerprint() == fingerprint)?;
        Some(self.pq.remove(pos))
    }

    /// The post-quantum identity with this fingerprint.
    pub fn get_pq(&self, fingerprint: &Fingerprint) -> Option<&PqIdentity> {
        self.pq.iter().find(|i| i.fingerprint() == fingerprint)
    }

    /// Whether an RSA key or a post-quantum identity with this fingerprint is in the ring:
    /// what a Secret produced by a value of either format needs to be reused rather than
    /// opened again.
    pub fn holds(&self, fingerprint: &Fingerprint) -> bool {
        self.get(fingerprint).is_some() || self.get_pq(fingerprint).is_some()
    }

    /// Post-quantum identities in insertion order. ([`KeyRing::len`], [`KeyRing::keys`] and
    /// [`KeyRing::fingerprints`] count and list the RSA keys only.)
    pub fn pq_identities(&self) -> impl Iterator<Item = &PqIdentity> {
        self.pq.iter()
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
        match key.material() {
            KeyMaterial::Local { oaep, .. } => {
                let mut buf = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
                let Ok(session) = oaep.decrypt(&OAEP_SHA256_MGF1SHA256, rsa, &mut buf, Some(label))
                else {
                    return Ok(None);
                };
                Ok(<[u8; SESSION_KEY_LEN]>::try_from(&*session)
                    .ok()
                    .map(Zeroizing::new))
            }
            // A token key: one call to its holder, which keeps the private half.
            KeyMaterial::External(holder) => {
                let Some(session) = holder.decrypt_oaep(label, rsa) else {
                    return Ok(None);
                };
                Ok(<[u8; SESSION_KEY_LEN]>::try_from(session.as_slice())
                    .ok()
                    .map(Zeroizing::new))
            }
        }
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
        let mut opened = match value_format(ciphertext) {
            ValueFormat::PostQuantum => {
                // No RSA work: hints are in the value, the scope is checked before any key.
                let (plaintext, key) = pq::open(self.pq.iter(), label, ciphertext)?;
                Opened {
                    plaintext,
                    key,
                    rsa_operations: 0,
                }
            }
            ValueFormat::Multi => self.open_multi(label, ciphertext, rsa_budget)?,
            ValueFormat::Upstream => self.open_upstream(label, ciphertext, hints, rsa_budget)?,
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
