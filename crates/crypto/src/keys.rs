//! RSA keys, their upstream-compatible fingerprints, and the redacting plaintext type.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyError;

/// PEM tag of a PKCS#1 RSA private key, the encoding upstream stores in `tls.key`.
const PKCS1_TAG: &str = "RSA PRIVATE KEY";
/// PEM tag of a PKCS#8 private key, which upstream also accepts when loading.
const PKCS8_TAG: &str = "PRIVATE KEY";

/// Identifies an RSA public key: `SHA256:` + unpadded base64 of SHA-256 over the SSH wire
/// encoding of the key, byte-for-byte what upstream's `ssh.FingerprintSHA256` prints.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The textual form, e.g. `SHA256:n1Zf...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 raw digest bytes (as embedded in the multi-recipient format).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Some(b64) = self.0.strip_prefix("SHA256:")
            && let Ok(bytes) = STANDARD_NO_PAD.decode(b64)
            && bytes.len() == 32
        {
            out.copy_from_slice(&bytes);
        }
        out
    }

    pub(crate) fn from_digest(digest: &[u8]) -> Fingerprint {
        Fingerprint(format!("SHA256:{}", STANDARD_NO_PAD.encode(digest)))
    }

    /// Fingerprint of an RSA key given its big-endian modulus and exponent.
    fn of_rsa(modulus: &[u8], exponent: &[u8]) -> Fingerprint {
        let mut wire = Vec::with_capacity(modulus.len() + 32);
        put_ssh_string(&mut wire, b"ssh-rsa");
        put_ssh_mpint(&mut wire, exponent);
        put_ssh_mpint(&mut wire, modulus);
        Fingerprint::from_digest(digest::digest(&digest::SHA256, &wire).as_ref())
    }
}

fn put_ssh_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // RSA moduli are far below 4 GiB, so the length always fits.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// RFC 4251 mpint of a non-negative integer: minimal big-endian, with a leading zero byte
/// when the high bit is set.
fn put_ssh_mpint(out: &mut Vec<u8>, unsigned_be: &[u8]) {
    let first = unsigned_be
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(unsigned_be.len());
    let digits = &unsigned_be[first..];
    let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
    let mut body = Vec::with_capacity(digits.len() + 1);
    if pad {
        body.push(0);
    }
    body.extend_from_slice(digits);
    put_ssh_string(out, &body);
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// A string that is not `SHA256:` followed by 43 characters of unpadded base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key fingerprint `{0}` (expected `SHA256:` and 43 base64 characters)")]
pub struct ParseFingerprintError(pub String);

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let ok = s
            .strip_prefix("SHA256:")
            .and_then(|b64| STANDARD_NO_PAD.decode(b64).ok())
            .is_some_and(|d| d.len() == 32);
        if ok {
            Ok(Fingerprint(s.to_owned()))
        } else {
            Err(ParseFingerprintError(s.to_owned()))
        }
    }
}

/// An RSA public key that values are sealed to.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<OaepPublicEncryptingKey>,
    fingerprint: Fingerprint,
    spki_der: Arc<[u8]>,
}

impl PublicKey {
    /// Reads an X.509 `SubjectPublicKeyInfo` (DER) holding an RSA key.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::NotRsa)?;
        let Ok(ParsedPublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(KeyError::NotRsa);
        };
        let fingerprint = Fingerprint::of_rsa(rsa.modulus, rsa.exponent);
        let key = PublicEncryptingKey::from_der(der).map_err(|_| KeyError::Unsupported)?;
        let inner = OaepPublicEncryptingKey::new(key).map_err(|_| KeyError::Unsupported)?;
        Ok(PublicKey {
            inner: Arc::new(inner),
            fingerprint,
            spki_der: der.into(),
        })
    }

    /// Fingerprint used for key hints, reports and the multi-recipient format.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Modulus size in bytes: the RSA ciphertext length, and so the length prefix upstream
    /// writes in front of every value (512 for RSA-4096).
    pub fn modulus_len(&self) -> usize {
        self.inner.key_size_bytes()
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.inner.key_size_bits()
    }

    /// The key as DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub(crate) fn oaep(&self) -> &OaepPublicEncryptingKey {
        &self.inner
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.bits())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for PublicKey {}

/// An RSA private key held outside this process (a PKCS#11 token, docs/security.md "Tier 1"):
/// it performs the one private-key operation unsealing needs, RSA-OAEP decryption with
/// SHA-256, MGF1-SHA-256 and `label` as the source data, and never hands out the key.
pub trait ExternalRsaKey: Send + Sync + fmt::Debug {
    /// Decrypts one RSA-OAEP block under `label`; `None` for any failure (a wrong key, a
    /// wrong label, a token that does not answer), which callers treat like a key that does
    /// not fit, so no failure detail becomes a padding or label oracle. Implementations
    /// report their own errors (logs, metrics).
    fn decrypt_oaep(&self, label: &[u8], block: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
}

/// Where a [`PrivateKey`]'s private half is.
#[derive(Clone)]
pub(crate) enum KeyMaterial {
    /// In this process's memory.
    Local {
        oaep: Arc<OaepPrivateDecryptingKey>,
        /// PKCS#8 DER, kept to re-encode as PKCS#1 and to sign the certificate.
        pkcs8: Arc<Zeroizing<Vec<u8>>>,
    },
    /// Elsewhere; only decryption is possible.
    External(Arc<dyn ExternalRsaKey>),
}

/// An RSA private key. `Debug` shows only the fingerprint; key bytes held here are zeroized
/// when dropped (aws-lc frees its own copy with `OPENSSL_cleanse`). A key built with
/// [`PrivateKey::external`] holds no key bytes at all: it decrypts through its holder and
/// cannot be encoded ([`PrivateKey::to_pkcs1_pem`]) or sign certificates here.
#[derive(Clone)]
pub struct PrivateKey {
    material: KeyMaterial,
    public: PublicKey,
}

impl PrivateKey {
    /// Generates a fresh RSA key. Sizes supported by the backend: 2048, 3072, 4096, 8192.
    pub fn generate(bits: usize) -> Result<PrivateKey, KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            other => return Err(KeyError::UnsupportedSize(other)),
        };
        let key = PrivateDecryptingKey::generate(size).map_err(|_| KeyError::Generate)?;
        let der: Pkcs8V1Der<'static> = key.as_der().map_err(|_| KeyError::Generate)?;
        PrivateKey::from_pkcs8_der(der.as_ref())
    }

    /// Reads a PEM private key: PKCS#1 `RSA PRIVATE KEY` (what upstream writes) or PKCS#8
    /// `PRIVATE KEY` (which upstream also accepts). The first key block found is used.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<PrivateKey, KeyError> {
        let blocks = pem::parse_many(pem_bytes).map_err(|_| KeyError::NoPrivateKey)?;
        for block in blocks {
            match block.tag() {
                PKCS1_TAG => return PrivateKey::from_pkcs1_der(block.contents()),
                PKCS8_TAG => return PrivateKey::from_pkcs8_der(block.contents()),
                _ => continue,
            }
        }
        Err(KeyError::NoPrivateKey)
    }

    /// Reads a DER PKCS#1 `RSAPrivateKey`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let pair = KeyPair::from_der(der).map_err(|_| KeyError::Malformed)?;
        let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeyError::Malformed)?;
        PrivateKey::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Reads a DER PKCS#8 `PrivateKeyInfo` holding an RSA key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|_| KeyError::Malformed)?;
        if info.algorithm.oid != pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1") {
            return Err(KeyError::NotRsa);
        }
        let key = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| KeyError::Malformed)?;
        let public_der: PublicKeyX509Der<'static> =
            key.public_key().as_der().map_err(|_| KeyError::Malformed)?;
        let public = PublicKey::from_spki_der(public_der.as_ref())?;
        let oaep = OaepPrivateDecryptingKey::new(key).map_err(|_| KeyError::Unsupported)?;
        Ok(PrivateKey {
            material: KeyMaterial::Local {
                oaep: Arc::new(oaep),
                pkcs8: Arc::new(Zeroizing::new(der.to_vec())),
            },
            public,
        })
    }

    /// A key whose private half stays with `holder` (e.g. a PKCS#11 token); `public` is its
    /// public half, read from the holder or from the key's certificate.
    pub fn external(public: PublicKey, holder: Arc<dyn ExternalRsaKey>) -> PrivateKey {
        PrivateKey {
            material: KeyMaterial::External(holder),
            public,
        }
    }

    /// Whether the private half is held outside this process ([`PrivateKey::external`]).
    pub fn is_external(&self) -> bool {
        matches!(self.material, KeyMaterial::External(_))
    }

    /// PEM `RSA PRIVATE KEY` (PKCS#1), the encoding upstream stores in `tls.key`. Empty for
    /// an [`external`](PrivateKey::external) key, which has no bytes here to encode.
    pub fn to_pkcs1_pem(&self) -> Zeroizing<String> {
        let KeyMaterial::Local { pkcs8, .. } = &self.material else {
            return Zeroizing::new(String::new());
        };
        // The PKCS#8 document was validated on construction, so it parses again.
        let pkcs1 = pkcs8::PrivateKeyInfo::try_from(pkcs8.as_slice())
            .map(|info| Zeroizing::new(info.private_key.to_vec()))
            .unwrap_or_default();
        let block = pem::Pem::new(PKCS1_TAG, pkcs1.to_vec());
        let text = Zeroizing::new(pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ));
        // `pem::Pem` has no zeroizing drop of its own.
        let mut contents = block.into_contents();
        contents.zeroize();
        text
    }

    /// PKCS#8 DER of the key (secret; for signing certificates); `None` for an external key.
    pub(crate) fn pkcs8_der(&self) -> Option<&[u8]> {
        match &self.material {
            KeyMaterial::Local { pkcs8, .. } => Some(pkcs8),
            KeyMaterial::External(_) => None,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Shorthand for `public_key().fingerprint()`.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.public.fingerprint()
    }

    pub(crate) fn material(&self) -> &KeyMaterial {
        &self.material
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.public.bits())
            .field("fingerprint", self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Decrypted secret bytes: `Debug` prints only the length, and the memory is zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// Wraps bytes that must not be logged.
    pub fn new(bytes: Vec<u8>) -> Plaintext {
        Plaintext(Zeroizing::new(bytes))
    }

    /// The secret bytes. Callers must not log or format them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Unwraps into a zeroizing buffer.
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Plaintext::new(bytes)
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext([REDACTED; {} bytes])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_encoding() {
        let mut out = Vec::new();
        put_ssh_mpint(&mut out, &[0x00, 0x01, 0x00, 0x01]);
        assert_eq!(out, [0, 0, 0, 3, 0x01, 0x00, 0x01]);
        let mut out = Vec::new();
        put_ssh_mpint(&mut out, &[0x80]);
        assert_eq!(out, [0, 0, 0, 2, 0x00, 0x80]);
    }

    #[test]
    fn plaintext_debug_is_redacted() {
        let p = Plaintext::new(b"hunter2".to_vec());
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("7 bytes"));
    }

    #[test]
    fn fingerprint_parse() {
        let fp = Fingerprint::from_digest(&[7u8; 32]);
        assert_eq!(fp.as_str().parse::<Fingerprint>(), Ok(fp.clone()));
        assert_eq!(fp.digest(), [7u8; 32]);
        assert!("SHA256:abc".parse::<Fingerprint>().is_err());
        assert!("MD5:aa".parse::<Fingerprint>().is_err());
    }
}
