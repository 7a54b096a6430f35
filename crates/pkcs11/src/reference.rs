//! Key references: where a key object lives, as an RFC 7512 PKCS#11 URI (the text the key
//! Secret would store instead of a private key).

use std::fmt;
use std::str::FromStr;

use cryptoki::object::{Attribute, KeyType, ObjectClass};

use crate::error::Pkcs11Error;

/// Where a key lives: token label plus the key object's label and/or `CKA_ID`.
///
/// Its text form is an RFC 7512 PKCS#11 URI, e.g.
/// `pkcs11:token=sealed-secrets;object=sealed-secrets-key2x8fz;id=%3a%01...;type=private`,
/// which `pkcs11-tool`, p11-kit and OpenSSL's pkcs11 providers understand too. Keys we make
/// carry both label and ID; an adopted key may be named by either.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// Label of the token holding the key.
    pub token: String,
    /// The key object's `CKA_LABEL`.
    pub label: Option<String>,
    /// The key object's `CKA_ID`.
    pub id: Option<Vec<u8>>,
}

impl KeyRef {
    /// A reference by object label.
    pub fn by_label(token: impl Into<String>, label: impl Into<String>) -> KeyRef {
        KeyRef {
            token: token.into(),
            label: Some(label.into()),
            id: None,
        }
    }

    /// A reference by `CKA_ID`.
    pub fn by_id(token: impl Into<String>, id: impl Into<Vec<u8>>) -> KeyRef {
        KeyRef {
            token: token.into(),
            label: None,
            id: Some(id.into()),
        }
    }

    pub(crate) fn template(&self) -> Vec<Attribute> {
        let mut t = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
        ];
        if let Some(label) = &self.label {
            t.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &self.id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }

    pub(crate) fn described(&self) -> String {
        match (&self.label, &self.id) {
            (Some(l), Some(id)) => format!("`{l}` (id {})", hex(id)),
            (Some(l), None) => format!("`{l}`"),
            (None, Some(id)) => format!("with id {}", hex(id)),
            (None, None) => "(any)".to_owned(),
        }
    }
}

impl fmt::Display for KeyRef {
    /// The RFC 7512 URI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkcs11:token={}", pct_encode(self.token.as_bytes()))?;
        if let Some(label) = &self.label {
            write!(f, ";object={}", pct_encode(label.as_bytes()))?;
        }
        if let Some(id) = &self.id {
            f.write_str(";id=")?;
            for b in id {
                write!(f, "%{b:02x}")?;
            }
        }
        f.write_str(";type=private")
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({self})")
    }
}

impl FromStr for KeyRef {
    type Err = Pkcs11Error;

    /// Reads the path attributes `token` (required), `object`, `id` and `type` (`private`
    /// if present) of an RFC 7512 URI; a query part (`?pin-source=...`) is refused, since
    /// PINs come from the configured file only.
    fn from_str(s: &str) -> Result<KeyRef, Pkcs11Error> {
        let bad = |reason| Pkcs11Error::BadReference {
            uri: s.to_owned(),
            reason,
        };
        let path = s
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("it does not start with `pkcs11:`"))?;
        if path.contains('?') {
            return Err(bad(
                "query attributes (such as a PIN source) are not accepted",
            ));
        }
        let (mut token, mut label, mut id) = (None, None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad("an attribute has no `=`"))?;
            let value = pct_decode(value).ok_or_else(|| bad("bad percent-encoding"))?;
            let text = || String::from_utf8(value.clone()).map_err(|_| bad("not UTF-8"));
            match name {
                "token" => token = Some(text()?),
                "object" => label = Some(text()?),
                "id" => id = Some(value),
                "type" if value == b"private" => {}
                "type" => return Err(bad("only `type=private` keys are used")),
                _ => return Err(bad("unknown attribute")),
            }
        }
        let token = token.ok_or_else(|| bad("no `token=` attribute"))?;
        if label.is_none() && id.is_none() {
            return Err(bad("neither `object=` nor `id=` names the key"));
        }
        Ok(KeyRef { token, label, id })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 7512 §2.3).
pub(crate) fn pct_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(pair, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trip() {
        let r = KeyRef {
            token: "sealed secrets".into(),
            label: Some("sealed-secrets-key;x".into()),
            id: Some(vec![0x00, 0xab, 0x10]),
        };
        let text = r.to_string();
        assert_eq!(
            text,
            "pkcs11:token=sealed%20secrets;object=sealed-secrets-key%3Bx;id=%00%ab%10;type=private"
        );
        assert_eq!(text.parse::<KeyRef>().ok(), Some(r));
    }

    #[test]
    fn uri_refusals() {
        for bad in [
            "token=x;object=y",
            "pkcs11:object=y",
            "pkcs11:token=x",
            "pkcs11:token=x;object=y?pin-value=1234",
            "pkcs11:token=x;object=y;type=secret-key",
            "pkcs11:token=x;id=%zz",
            "pkcs11:token=x;serial=1;object=y",
        ] {
            assert!(bad.parse::<KeyRef>().is_err(), "{bad}");
        }
        // pkcs11-tool style: id only.
        let r: KeyRef = "pkcs11:token=t;id=%01%02"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.id, Some(vec![1, 2]));
    }
}
