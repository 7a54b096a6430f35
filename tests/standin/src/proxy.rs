//! The service proxy (`/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH`) and
//! the percent-decoding of request paths it depends on.
//!
//! Knowing differences from kube-apiserver: the target is a registered `HOST:PORT` (or the
//! Service's [`ENDPOINT_ANNOTATION`]), not an endpoint of the Service; the scheme and port of
//! the service segment are ignored (plain HTTP/1.1 to the registered address).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::header;

use super::error::ApiError;
use super::shared::{Ctx, ENDPOINT_ANNOTATION, lock};

/// Percent-decodes a URL path, as Go's `net/http` does before kube-apiserver routes on
/// `URL.Path`: `%2F` becomes a `/` that separates segments, `%3A` a `:`. The official Python
/// client escapes every path parameter this way (`http%3Asealed-secrets-controller%3A`,
/// `v1%2Fcert.pem`). Unlike a query component, `+` stays a `+`. A `%` not followed by two
/// hex digits is kept as is (Go answers 400 there; we are lenient).
pub(super) fn decode_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let hex = |c: &u8| (*c as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes a decoded path for the request line to the target (what Go's `URL.EscapedPath`
/// does for the proxied location): unreserved characters, `/` and the sub-delimiters stay.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) async fn proxy(
    ctx: &Ctx<'_>,
    ns: &str,
    svc: &str,
    rest: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    // `name`, `name:port` or `scheme:name:port`; the scheme is ignored (plain HTTP).
    let parts: Vec<&str> = svc.split(':').collect();
    let name = match parts.as_slice() {
        [name] | [name, _] | [_, name, _] => *name,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid service request {svc:?}"
            )));
        }
    };
    let registered = lock(&ctx.shared.endpoints)
        .get(&(ns.to_owned(), name.to_owned()))
        .cloned();
    let addr = match registered {
        Some(a) => a,
        None => {
            let store = lock(&ctx.shared.store);
            let rt = store.resource("", "v1", "services")?;
            let service = store.get(&rt, ns, name)?;
            service.value["metadata"]["annotations"][ENDPOINT_ANNOTATION]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::new(
                        503,
                        "ServiceUnavailable",
                        format!("no endpoints available for service \"{name}\""),
                    )
                })?
        }
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    };
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|e| unavailable(&e))?
    .map_err(|e| unavailable(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(&e))?;
    tokio::spawn(conn);
    let path = encode_path(rest);
    let uri = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut builder = http::Request::builder().method(ctx.method.clone()).uri(uri);
    for (k, v) in ctx.headers {
        // The user's credentials are for the API server, not for the service behind it.
        if k == header::HOST
            || k == header::AUTHORIZATION
            || k == header::CONNECTION
            || k == header::TRANSFER_ENCODING
        {
            continue;
        }
        builder = builder.header(k, v);
    }
    let req = builder
        .header(header::HOST, addr.as_str())
        .body(http_body_util::Full::new(ctx.body.clone()))
        .map_err(|e| ApiError::bad_request(format!("invalid proxied request: {e}")))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unavailable(&e))?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if k != header::CONNECTION && k != header::TRANSFER_ENCODING {
            out.headers_mut().append(k, v.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_like_go() {
        assert_eq!(
            decode_path(
                "/api/v1/namespaces/kube-system/services/http%3Asealed-secrets-controller%3A/proxy/v1%2Fcert.pem"
            ),
            "/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:/proxy/v1/cert.pem"
        );
        assert_eq!(decode_path("/a+b/%7e/%zz/%4"), "/a+b/~/%zz/%4");
        assert_eq!(decode_path("/caf%C3%A9"), "/caf\u{e9}");
    }

    #[test]
    fn proxied_paths_are_escaped_again() {
        assert_eq!(encode_path("/v1/cert.pem"), "/v1/cert.pem");
        assert_eq!(
            encode_path("/a b/c?d#e/caf\u{e9}"),
            "/a%20b/c%3Fd%23e/caf%C3%A9"
        );
        assert_eq!(encode_path("/x:y@z+1"), "/x:y@z+1");
    }
}
