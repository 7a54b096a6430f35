//! Reading a value's structure without a key: dispatch on the first bytes (`FORMAT.md` §0) and
//! the parsers of the upstream and multi-recipient layouts.

use crate::error::OpenError;
use crate::keys::Fingerprint;

use super::layout::{
    COMMITMENT_LEN, DIGEST_LEN, MULTI_FIXED_HEADER, MULTI_MAGIC, MULTI_MARKER, MULTI_VERSION,
    MULTI_VERSION_V1, TAG_LEN,
};

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
    /// Our post-quantum format, an age v1 file (`FORMAT.md` §3).
    PostQuantum {
        /// Fingerprints of the post-quantum keys that can open it, in header order (empty
        /// when the value carries no key hints).
        recipients: Vec<Fingerprint>,
        /// The scope label it is bound to (`Scope::label`): public, in the header.
        label: Vec<u8>,
    },
}

/// Which format a sealed value is in, told by its first bytes alone (`FORMAT.md` §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueFormat {
    /// Upstream's RSA-OAEP + AES-GCM value (anything not below).
    Upstream,
    /// Our multi-recipient RSA value (marker `00 00`).
    Multi,
    /// Our post-quantum value (age's intro line `age-encryption.org/v1`).
    PostQuantum,
}

impl ValueFormat {
    /// A short name for metrics and reports: `rsa`, `rsa-multi`, `post-quantum`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::Upstream => "rsa",
            ValueFormat::Multi => "rsa-multi",
            ValueFormat::PostQuantum => "post-quantum",
        }
    }
}

/// The format of a sealed value, from its first bytes (no parsing, no key).
pub fn value_format(ciphertext: &[u8]) -> ValueFormat {
    if crate::pq::is_pq(ciphertext) {
        ValueFormat::PostQuantum
    } else if ciphertext.starts_with(&MULTI_MARKER) {
        ValueFormat::Multi
    } else {
        ValueFormat::Upstream
    }
}

pub(super) struct Wrap<'a> {
    pub(super) digest: &'a [u8],
    pub(super) rsa: &'a [u8],
}

pub(super) struct ParsedMulti<'a> {
    pub(super) header: &'a [u8],
    pub(super) wraps: Vec<Wrap<'a>>,
    /// Version 2's key commitment; `None` for version 1.
    pub(super) commitment: Option<&'a [u8]>,
    pub(super) body: &'a [u8],
}

pub(super) fn parse_multi(ct: &[u8]) -> Result<ParsedMulti<'_>, OpenError> {
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

pub(super) fn parse_upstream(ct: &[u8]) -> Result<(&[u8], &[u8]), OpenError> {
    let prefix = ct.get(..2).ok_or(OpenError::TooShort)?;
    let rsa_len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    let rsa = ct.get(2..2 + rsa_len).ok_or(OpenError::TooShort)?;
    Ok((rsa, &ct[2 + rsa_len..]))
}

/// Reads the structure of a sealed value without decrypting it (for offline validation and
/// for finding which keys a multi-recipient or post-quantum value was sealed to). A
/// post-quantum value's header is checked completely (bounds, stanzas, scope binding).
pub fn envelope(ciphertext: &[u8]) -> Result<Envelope, OpenError> {
    if crate::pq::is_pq(ciphertext) {
        let pq = crate::pq::envelope(ciphertext)?;
        return Ok(Envelope::PostQuantum {
            recipients: pq.recipients,
            label: pq.label,
        });
    }
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
