//! The key's self-signed certificate, signed inside the token.
//!
//! The certificate's content mirrors `sealed_secrets_crypto::PrivateKey::self_signed_certificate`
//! (upstream §1.6: empty or `--my-cn` subject, random 128-bit serial, KeyUsage encipherOnly
//! critical, BasicConstraints CA:TRUE critical, a SubjectKeyIdentifier,
//! sha256WithRSAEncryption); only the signer differs. The integration test
//! `token_certificate_matches_in_memory_certificate` compares the two field by field, so a
//! change to one that the other misses fails.

use std::cell::RefCell;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use sealed_secrets_crypto::{CertParams, Certificate};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::der;
use crate::error::Pkcs11Error;
use crate::key::TokenKey;

/// rcgen's view of the token key: the public key it embeds, and a signature made by the
/// token. rcgen's `sign` can only return its own error type, so the token's error is kept
/// aside and reported instead.
struct TokenSigner<'a> {
    key: &'a TokenKey,
    pkcs1: Vec<u8>,
    failure: RefCell<Option<Pkcs11Error>>,
}

impl rcgen::PublicKeyData for TokenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.pkcs1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for TokenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.sign_sha256(msg).map_err(|e| {
            *self.failure.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

impl TokenKey {
    /// The self-signed certificate upstream's controller publishes for a key (upstream §1.6),
    /// signed by the token with `CKM_SHA256_RSA_PKCS`. The signature is checked against the
    /// key before the certificate is returned.
    pub fn self_signed_certificate(&self, params: &CertParams) -> Result<Certificate, Pkcs11Error> {
        let cert_err = || Pkcs11Error::Certificate {
            key: self.reference().to_string(),
        };
        let pkcs1 = pkcs1_of(self.public_key().spki_der()).ok_or_else(cert_err)?;
        let signer = TokenSigner {
            key: self,
            pkcs1,
            failure: RefCell::new(None),
        };
        let cert = params.to_rcgen().map_err(|_| cert_err())?;
        let signed = match cert.self_signed(&signer) {
            Ok(c) => c,
            Err(_) => return Err(signer.failure.into_inner().unwrap_or_else(cert_err)),
        };
        verify_self_signature(signed.der(), &signer.pkcs1).ok_or_else(cert_err)?;
        Certificate::from_der(signed.der()).map_err(|_| cert_err())
    }
}

/// The `RSAPublicKey` inside an RSA `SubjectPublicKeyInfo`.
fn pkcs1_of(spki: &[u8]) -> Option<Vec<u8>> {
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    let x509_parser::public_key::PublicKey::RSA(rsa) = info.parsed().ok()? else {
        return None;
    };
    Some(der::rsa_public_key(rsa.modulus, rsa.exponent))
}

/// A token that signs with the wrong key or a broken mechanism must not produce a
/// certificate clients then trust.
fn verify_self_signature(der: &[u8], pkcs1: &[u8]) -> Option<()> {
    let (_, x509) = X509Certificate::from_der(der).ok()?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1)
        .verify(x509.tbs_certificate.as_ref(), &x509.signature_value.data)
        .ok()
}
