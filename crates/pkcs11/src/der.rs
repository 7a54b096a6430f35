//! The few DER structures a token's RSA key needs to become a `SubjectPublicKeyInfo`
//! (RFC 8017 A.1.1 `RSAPublicKey`, RFC 5280 section 4.1.2.7).

/// `AlgorithmIdentifier { rsaEncryption, NULL }`.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
        return;
    }
    let bytes = len.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    out.push(0x80 | u8::try_from(bytes.len() - first).unwrap_or(0));
    out.extend_from_slice(&bytes[first..]);
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    push_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes (as PKCS#11 returns them).
fn uint(be: &[u8]) -> Vec<u8> {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = &be[first..];
    let mut body = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(digits);
    tlv(0x02, &body)
}

/// DER `RSAPublicKey` (PKCS#1), the bytes inside the SPKI bit string.
pub(crate) fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut body = uint(modulus);
    body.extend(uint(exponent));
    tlv(0x30, &body)
}

/// DER `SubjectPublicKeyInfo` of an RSA key.
pub(crate) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend(rsa_public_key(modulus, exponent));
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_of_a_generated_key_reads_back() {
        let key =
            sealed_secrets_crypto::PrivateKey::generate(2048).unwrap_or_else(|e| panic!("{e}"));
        let spki = key.public_key().spki_der();
        use x509_parser::prelude::FromDer;
        let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
            .unwrap_or_else(|e| panic!("{e}"));
        let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = info.parsed() else {
            panic!("not RSA")
        };
        assert_eq!(rsa_spki(rsa.modulus, rsa.exponent), spki);
    }

    #[test]
    fn integers_get_a_sign_byte() {
        assert_eq!(
            uint(&[0x00, 0x01, 0x00, 0x01]),
            [0x02, 0x03, 0x01, 0x00, 0x01]
        );
        assert_eq!(uint(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        let mut long = Vec::new();
        push_len(&mut long, 513);
        assert_eq!(long, [0x82, 0x02, 0x01]);
    }
}
