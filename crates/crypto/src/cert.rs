//! Certificates: loading what `kubeseal --cert` is given (upstream §1.7) and generating the
//! self-signed certificate the controller publishes for each key (upstream §1.6).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as ParsedPublicKey;

use crate::error::{CertError, KeyError};
use crate::keys::{PrivateKey, PublicKey};

const CERT_TAG: &str = "CERTIFICATE";

/// A parsed X.509 certificate holding an RSA public key.
#[derive(Clone)]
pub struct Certificate {
    pem: Arc<str>,
    public_key: PublicKey,
    not_before: SystemTime,
    not_after: SystemTime,
    /// `not_after` rendered as Go's `January 2, 2006`, for upstream's expiry message.
    not_after_text: Arc<str>,
}

impl Certificate {
    /// Reads the **first** PEM `CERTIFICATE` block, as upstream's `ParseKey` does; later blocks
    /// are ignored. Validity is not checked here: see [`Certificate::check_not_expired`].
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Certificate, CertError> {
        Certificate::all_from_pem(pem_bytes)?
            .into_iter()
            .next()
            .ok_or(CertError::NoCertificate)
    }

    /// Reads every PEM `CERTIFICATE` block (at least one), in file order.
    pub fn all_from_pem(pem_bytes: &[u8]) -> Result<Vec<Certificate>, CertError> {
        let blocks = pem::parse_many(pem_bytes).map_err(|_| CertError::NoCertificate)?;
        let certs = blocks
            .iter()
            .filter(|b| b.tag() == CERT_TAG)
            .map(|b| Certificate::from_der(b.contents()))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(CertError::NoCertificate);
        }
        Ok(certs)
    }

    /// Reads one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let (_, x509) = X509Certificate::from_der(der).map_err(|_| CertError::Malformed)?;
        let spki = x509.public_key();
        match spki.parsed() {
            Ok(ParsedPublicKey::RSA(_)) => {}
            Ok(other) => {
                return Err(CertError::NotRsa {
                    found: key_kind(&other).to_owned(),
                });
            }
            Err(_) => return Err(CertError::Malformed),
        }
        let public_key = PublicKey::from_spki_der(spki.raw).map_err(|e| match e {
            KeyError::NotRsa => CertError::NotRsa {
                found: "unknown".to_owned(),
            },
            _ => CertError::Malformed,
        })?;
        let validity = x509.validity();
        let not_before = to_system_time(validity.not_before.timestamp());
        let after = validity.not_after.to_datetime();
        let not_after_text = format!("{} {}, {}", after.month(), after.day(), after.year());
        let pem = pem::encode_config(
            &pem::Pem::new(CERT_TAG, der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(Certificate {
            pem: pem.into(),
            public_key,
            not_before,
            not_after: to_system_time(validity.not_after.timestamp()),
            not_after_text: not_after_text.into(),
        })
    }

    /// Fails with upstream's message when `now` is past `NotAfter` (upstream #818). Nothing
    /// else is checked, as upstream: the certificate is the cluster's public key, not a trust
    /// anchor.
    pub fn check_not_expired(&self, now: SystemTime) -> Result<(), CertError> {
        if now > self.not_after {
            return Err(CertError::Expired {
                not_after: self.not_after_text.to_string(),
            });
        }
        Ok(())
    }

    /// The certificate's RSA key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Start of validity; upstream's default order of "newest key".
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The certificate as one PEM block with a trailing newline.
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("fingerprint", self.public_key.fingerprint())
            .field("not_after", &self.not_after_text)
            .finish_non_exhaustive()
    }
}

fn key_kind(key: &ParsedPublicKey<'_>) -> &'static str {
    match key {
        ParsedPublicKey::RSA(_) => "RSA",
        ParsedPublicKey::EC(_) => "ECDSA",
        ParsedPublicKey::DSA(_) => "DSA",
        ParsedPublicKey::GostR3410(_) | ParsedPublicKey::GostR3410_2012(_) => "GOST",
        _ => "unknown",
    }
}

fn to_system_time(unix_seconds: i64) -> SystemTime {
    match u64::try_from(unix_seconds) {
        Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => SystemTime::UNIX_EPOCH - Duration::from_secs(unix_seconds.unsigned_abs()),
    }
}

/// What the generated certificate says besides the key (upstream §1.6).
#[derive(Debug, Clone)]
pub struct CertParams {
    /// Subject and issuer CN; upstream's `--my-cn`, empty by default (an empty DN).
    pub common_name: String,
    /// Start of validity; also upstream's default "newest key" ordering time.
    pub not_before: SystemTime,
    /// Validity length; upstream's `--key-ttl`, 87600h by default.
    pub validity: Duration,
}

impl CertParams {
    /// The certificate upstream's controller makes for a key, ready for any signer (the
    /// in-memory key here, a PKCS#11 token elsewhere): random 128-bit serial, KeyUsage
    /// encipherOnly (critical), BasicConstraints CA:TRUE (critical), a SubjectKeyIdentifier.
    pub fn to_rcgen(&self) -> Result<rcgen::CertificateParams, CertError> {
        let mut cert = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        if !self.common_name.is_empty() {
            dn.push(rcgen::DnType::CommonName, self.common_name.as_str());
        }
        cert.distinguished_name = dn;
        let mut serial = [0u8; 16];
        aws_lc_rs::rand::fill(&mut serial).map_err(|_| CertError::Sign)?;
        cert.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let not_after = self
            .not_before
            .checked_add(self.validity)
            .ok_or(CertError::Sign)?;
        cert.not_before = time::OffsetDateTime::from(self.not_before);
        cert.not_after = time::OffsetDateTime::from(not_after);
        cert.key_usages = vec![rcgen::KeyUsagePurpose::EncipherOnly];
        cert.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Ok(cert)
    }
}

/// Upstream's default `--key-ttl`: 87600h, ten 365-day years.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(87_600 * 3600);

impl Default for CertParams {
    fn default() -> Self {
        CertParams {
            common_name: String::new(),
            not_before: SystemTime::now(),
            validity: DEFAULT_KEY_TTL,
        }
    }
}

impl PrivateKey {
    /// Self-signs a certificate for this key with upstream's properties: random 128-bit
    /// serial, KeyUsage encipherOnly (critical), BasicConstraints CA:TRUE (critical), a
    /// SubjectKeyIdentifier, sha256WithRSAEncryption.
    pub fn self_signed_certificate(&self, params: &CertParams) -> Result<Certificate, CertError> {
        let signer = rcgen::KeyPair::try_from(self.pkcs8_der().ok_or(CertError::Sign)?)
            .map_err(|_| CertError::Sign)?;
        let signed = params
            .to_rcgen()?
            .self_signed(&signer)
            .map_err(|_| CertError::Sign)?;
        Certificate::from_der(signed.der())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;

    #[test]
    fn generated_certificate_has_upstream_properties() {
        let key = PrivateKey::generate(2048).unwrap();
        let cert = key
            .self_signed_certificate(&CertParams {
                common_name: "sealed-secrets".into(),
                ..CertParams::default()
            })
            .unwrap();
        assert_eq!(cert.public_key(), key.public_key());
        let der = pem::parse(cert.pem()).unwrap();
        let (_, x509) = X509Certificate::from_der(der.contents()).unwrap();
        assert_eq!(x509.subject().to_string(), "CN=sealed-secrets");
        assert_eq!(x509.issuer(), x509.subject());
        assert!(x509.raw_serial().len() <= 17);
        let mut saw_ku = false;
        let mut saw_bc = false;
        for ext in x509.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::KeyUsage(ku) => {
                    saw_ku = true;
                    assert!(ext.critical);
                    assert!(ku.encipher_only());
                    assert!(!ku.key_cert_sign());
                }
                ParsedExtension::BasicConstraints(bc) => {
                    saw_bc = true;
                    assert!(ext.critical);
                    assert!(bc.ca);
                }
                _ => {}
            }
        }
        assert!(saw_ku && saw_bc);
        let years = cert
            .not_after()
            .duration_since(cert.not_before())
            .unwrap()
            .as_secs();
        assert!(years.abs_diff(87_600 * 3600) <= 1);
        cert.check_not_expired(SystemTime::now()).unwrap();
    }

    #[test]
    fn empty_cn_gives_empty_subject() {
        let key = PrivateKey::generate(2048).unwrap();
        let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
        let der = pem::parse(cert.pem()).unwrap();
        let (_, x509) = X509Certificate::from_der(der.contents()).unwrap();
        assert_eq!(x509.subject().iter().count(), 0);
    }

    #[test]
    fn expired_certificate_names_the_date() {
        let key = PrivateKey::generate(2048).unwrap();
        let cert = key
            .self_signed_certificate(&CertParams {
                common_name: String::new(),
                not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
                validity: Duration::from_secs(86_400),
            })
            .unwrap();
        let err = cert.check_not_expired(SystemTime::now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to encrypt using an expired certificate on September 14, 2020"
        );
    }

    #[test]
    fn no_certificate_in_pem() {
        let err = Certificate::from_pem(b"hello").unwrap_err();
        assert!(matches!(err, CertError::NoCertificate));
    }
}
