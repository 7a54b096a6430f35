//! Reading a key object's attributes from the token: what the key says of itself (label, ID,
//! public half, protection flags) before any check decides whether it is usable.

use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use sealed_secrets_crypto::PublicKey;

use crate::der;
use crate::reference::KeyRef;

/// How a key object is protected, as the token reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// `CKA_SENSITIVE`: the private parts cannot be read in plaintext.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key can be wrapped (exported encrypted).
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`: sensitive since it was made.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: never was extractable.
    pub never_extractable: bool,
}

impl Protection {
    /// The key cannot leave the token and never could: what keys we generate have. An
    /// adopted key without it (e.g. imported from a file) may exist in copies elsewhere.
    pub fn is_non_exportable(&self) -> bool {
        self.sensitive && !self.extractable && self.always_sensitive && self.never_extractable
    }
}

/// What a private key object's attributes say, before checks.
pub(crate) struct Described {
    pub(crate) label: Option<String>,
    pub(crate) id: Option<Vec<u8>>,
    pub(crate) decrypt: bool,
    pub(crate) protection: Protection,
}

impl Described {
    pub(crate) fn reference_described(&self, token: &str) -> String {
        KeyRef {
            token: token.to_owned(),
            label: self.label.clone(),
            id: self.id.clone(),
        }
        .described()
    }
}

/// Reads a key object's attributes. Attributes the token withholds read as absent/false, so
/// a key with unreadable protection flags never looks better protected than it is.
pub(crate) fn describe(s: &Session, handle: ObjectHandle) -> (Described, Option<PublicKey>) {
    let wanted = [
        AttributeType::Label,
        AttributeType::Id,
        AttributeType::Modulus,
        AttributeType::PublicExponent,
        AttributeType::Decrypt,
        AttributeType::Sensitive,
        AttributeType::Extractable,
        AttributeType::AlwaysSensitive,
        AttributeType::NeverExtractable,
    ];
    let mut d = Described {
        label: None,
        id: None,
        decrypt: false,
        protection: Protection {
            sensitive: false,
            extractable: true,
            always_sensitive: false,
            never_extractable: false,
        },
    };
    let (mut modulus, mut exponent) = (None, None);
    for attr in s.get_attributes(handle, &wanted).unwrap_or_default() {
        match attr {
            Attribute::Label(l) => d.label = String::from_utf8(l).ok(),
            Attribute::Id(id) => d.id = Some(id),
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            Attribute::Decrypt(b) => d.decrypt = b,
            Attribute::Sensitive(b) => d.protection.sensitive = b,
            Attribute::Extractable(b) => d.protection.extractable = b,
            Attribute::AlwaysSensitive(b) => d.protection.always_sensitive = b,
            Attribute::NeverExtractable(b) => d.protection.never_extractable = b,
            _ => {}
        }
    }
    let public = modulus
        .zip(exponent)
        .and_then(|(n, e)| PublicKey::from_spki_der(&der::rsa_spki(&n, &e)).ok());
    (d, public)
}
