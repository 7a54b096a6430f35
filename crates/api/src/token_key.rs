//! The key Secret of a key held in a PKCS#11 token (docs/security.md, "Tier 1: keys held in
//! a PKCS#11 token").
//!
//! Such a Secret has the labels and annotations of any key Secret (the `active` label
//! [`SEALING_KEY_LABEL`](crate::annotations::SEALING_KEY_LABEL), so the key watcher, `keys
//! list`, the certificate ConfigMap and `/v1/cert.pem` see it), type [`TOKEN_KEY_SECRET_TYPE`]
//! and two data fields:
//!
//! - [`CERT_FIELD`] (`tls.crt`): the key's self-signed certificate (signed inside the token),
//!   as in any key Secret;
//! - [`URI_FIELD`] (`pkcs11.uri`): an RFC 7512 PKCS#11 URI naming the token and the private
//!   key object (`pkcs11:token=…;object=…;id=…;type=private`).
//!
//! It has no `tls.key` and no post-quantum identity: the private key never leaves the token,
//! so there is nothing to back up from the Secret but the certificate; what must be backed
//! up (or replicated) is the token object the URI names. Upstream's controller cannot use
//! such a Secret (it has no `tls.key`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

/// Type of a token-held key Secret. Not `kubernetes.io/tls`, whose validation requires a
/// `tls.key`.
pub const TOKEN_KEY_SECRET_TYPE: &str = "sealed-secrets-rs.dev/token-key";

/// Data field holding the PKCS#11 URI of the private key object.
pub const URI_FIELD: &str = "pkcs11.uri";

/// Data field holding the certificate, as in every key Secret.
pub const CERT_FIELD: &str = "tls.crt";

/// Data field of an in-memory key Secret's private key; a token key Secret must not have it.
pub const PRIVATE_KEY_FIELD: &str = "tls.key";

/// [`KEY_ORIGIN`](crate::annotations::KEY_ORIGIN) of a key Secret written for a key object
/// that was created outside the controller (e.g. with `pkcs11-tool --keypairgen`) and adopted.
pub const KEY_ORIGIN_ADOPTED: &str = "adopted";

/// Whether `secret` is a token-held key Secret (it has [`URI_FIELD`]). Pure.
pub fn is_token_key(secret: &Secret) -> bool {
    secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(URI_FIELD))
}

/// What a token-held key Secret says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeySecret {
    /// The PKCS#11 URI of the private key object (not yet parsed).
    pub uri: String,
    /// The certificate, PEM.
    pub cert_pem: Vec<u8>,
}

/// A token-held key Secret that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeySecretError {
    #[error("token key Secret `{secret}` has no `{field}`")]
    Missing { secret: String, field: &'static str },
    #[error("token key Secret `{secret}` has a `{URI_FIELD}` that is not UTF-8 text")]
    UriNotText { secret: String },
    /// Both a private key and a token reference: which one holds the key would be a guess.
    #[error(
        "token key Secret `{secret}` also has a `{PRIVATE_KEY_FIELD}`; a key is either in the Secret or in a token"
    )]
    AlsoPrivateKey { secret: String },
}

/// Reads a token-held key Secret. Pure.
pub fn parse(secret: &Secret) -> Result<TokenKeySecret, TokenKeySecretError> {
    let name = || secret.metadata.name.clone().unwrap_or_default();
    let field = |f: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(f))
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
            .ok_or(TokenKeySecretError::Missing {
                secret: name(),
                field: f,
            })
    };
    if secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(PRIVATE_KEY_FIELD))
    {
        return Err(TokenKeySecretError::AlsoPrivateKey { secret: name() });
    }
    let uri = std::str::from_utf8(field(URI_FIELD)?)
        .map_err(|_| TokenKeySecretError::UriNotText { secret: name() })?
        .trim()
        .to_owned();
    let cert_pem = field(CERT_FIELD)?.to_vec();
    Ok(TokenKeySecret { uri, cert_pem })
}

/// The data of a token-held key Secret: the certificate and the key object's URI. Pure.
pub fn data(cert_pem: &str, uri: &str) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (
            CERT_FIELD.to_owned(),
            ByteString(cert_pem.as_bytes().to_vec()),
        ),
        (URI_FIELD.to_owned(), ByteString(uri.as_bytes().to_vec())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(data: BTreeMap<String, ByteString>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("k".into()),
                ..Default::default()
            },
            type_: Some(TOKEN_KEY_SECRET_TYPE.into()),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn the_shape_round_trips_and_holds_no_private_key() {
        let s = secret(data("CERT", "pkcs11:token=t;object=k;type=private"));
        assert!(is_token_key(&s));
        assert_eq!(
            parse(&s),
            Ok(TokenKeySecret {
                uri: "pkcs11:token=t;object=k;type=private".into(),
                cert_pem: b"CERT".to_vec()
            })
        );
        let fields: Vec<&String> = s
            .data
            .as_ref()
            .map(|d| d.keys().collect())
            .unwrap_or_default();
        assert_eq!(fields, [URI_FIELD, CERT_FIELD]);
    }

    #[test]
    fn malformed_token_key_secrets_are_refused() {
        let mut d = data("CERT", "pkcs11:token=t");
        d.remove(CERT_FIELD);
        assert!(matches!(
            parse(&secret(d)),
            Err(TokenKeySecretError::Missing {
                field: CERT_FIELD,
                ..
            })
        ));
        let mut d = data("CERT", "pkcs11:token=t");
        d.insert(PRIVATE_KEY_FIELD.into(), ByteString(b"KEY".to_vec()));
        assert!(matches!(
            parse(&secret(d)),
            Err(TokenKeySecretError::AlsoPrivateKey { .. })
        ));
        let d = BTreeMap::from([(CERT_FIELD.to_owned(), ByteString(b"C".to_vec()))]);
        assert!(!is_token_key(&secret(d)));
    }
}
