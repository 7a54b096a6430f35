//! AWS Signature Version 4 for JSON requests with no query string (all the KMS API needs),
//! written from AWS's specification ("Create a signed AWS API request", IAM user guide) and
//! checked against the published SigV4 test suite below.

use aws_lc_rs::{digest, hmac};
use zeroize::Zeroizing;

use super::credentials::Credentials;

/// What the signature is scoped to.
pub(crate) struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, UTC.
    pub amz_date: &'a str,
}

/// Signs a request to path `/` with no query string. `headers` must include `host`; this adds
/// `x-amz-date` and, with temporary credentials, `x-amz-security-token` (both signed), and
/// returns every header to send besides `headers`, `authorization` last.
pub(crate) fn sign(
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials,
    scope: &Scope<'_>,
) -> Vec<(&'static str, String)> {
    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", scope.amz_date.to_owned())];
    if let Some(token) = credentials.session_token() {
        added.push(("x-amz-security-token", token.to_owned()));
    }
    let mut canonical: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), canonical_value(v)))
        .chain(
            added
                .iter()
                .map(|(n, v)| ((*n).to_owned(), canonical_value(v))),
        )
        .collect();
    canonical.sort();
    let signed_headers = canonical
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut request = format!("{method}\n/\n\n");
    for (n, v) in &canonical {
        request.push_str(n);
        request.push(':');
        request.push_str(v);
        request.push('\n');
    }
    request.push('\n');
    request.push_str(&signed_headers);
    request.push('\n');
    request.push_str(&hex(digest::digest(&digest::SHA256, body).as_ref()));

    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        hex(digest::digest(&digest::SHA256, request.as_bytes()).as_ref())
    );
    let mut secret = Zeroizing::new(b"AWS4".to_vec());
    secret.extend_from_slice(credentials.secret_access_key().as_bytes());
    let k_date = hmac_sha256(&secret, date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), scope.region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), scope.service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    let signature = hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());
    added.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            credentials.access_key_id()
        ),
    ));
    added
}

/// Trimmed, with runs of spaces collapsed to one (the spec's canonical header value).
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    Zeroizing::new(hmac::sign(&key, data).as_ref().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    //! Known answers from the AWS SigV4 test suite (credentials `AKIDEXAMPLE`, scope
    //! `20150830/us-east-1/service`), the cases that fit requests without a query string.

    use super::*;

    const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn authorization(headers: &[(&str, &str)], body: &str, token: Option<&str>) -> String {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
        );
        let scope = Scope {
            region: "us-east-1",
            service: "service",
            amz_date: "20150830T123600Z",
        };
        let mut all = vec![("Host", "example.amazonaws.com")];
        all.extend_from_slice(headers);
        let added = sign("POST", &all, body.as_bytes(), &creds, &scope);
        assert_eq!(added[0], ("x-amz-date", "20150830T123600Z".to_owned()));
        added.last().map(|(_, v)| v.clone()).unwrap_or_default()
    }

    fn expected(signed: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed}, Signature={signature}"
        )
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            authorization(&[], "", None),
            expected(
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn post_header_value_case() {
        assert_eq!(
            authorization(&[("My-Header1", "VALUE1")], "", None),
            expected(
                "host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        assert_eq!(
            authorization(
                &[("Content-Type", "application/x-www-form-urlencoded")],
                "Param1=value1",
                None
            ),
            expected(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded_parameters() {
        assert_eq!(
            authorization(
                &[(
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf8"
                )],
                "Param1=value1",
                None
            ),
            expected(
                "content-type;host;x-amz-date",
                "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"
            )
        );
    }

    #[test]
    fn post_sts_header_before() {
        // Temporary credentials: the session token is sent and signed.
        assert_eq!(
            authorization(&[], "", Some(TOKEN)),
            expected(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        assert_eq!(canonical_value("  a   b  c "), "a b c");
    }
}
