//! A minimal HTTP(S) GET for `--cert https://...` (§6.1: non-200 is an error). Uses the same
//! rustls/aws-lc-rs stack kube already links, with the system's root certificates.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};

use crate::error::{CliError, Result};

/// How long one certificate download may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches `url` and returns the body of a 200 response, refusing bodies over `max_bytes`.
pub fn get(url: &str, max_bytes: usize) -> Result<Vec<u8>> {
    crate::async_runtime::block_on(get_async(url, max_bytes))?
}

async fn get_async(url: &str, max_bytes: usize) -> Result<Vec<u8>> {
    let fail = |message: String| CliError::Http {
        url: url.to_owned(),
        message,
    };
    let uri: http::Uri = url.parse().map_err(|e| fail(format!("invalid URL: {e}")))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| fail(format!("cannot load the system's root certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(connector);
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/x-pem-file, */*")
        .body(Empty::new())
        .map_err(|e| fail(e.to_string()))?;
    let started = std::time::Instant::now();
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| fail(format!("no answer within {}s", TIMEOUT.as_secs())))?
        .map_err(|e| {
            crate::cluster::log_http(&http::Method::GET, url, "failed", started);
            fail(error_chain(&e))
        })?;
    let status = resp.status();
    crate::cluster::log_http(&http::Method::GET, url, &status.to_string(), started);
    if status != http::StatusCode::OK {
        return Err(fail(format!("server answered {status}")));
    }
    let too_large = || {
        fail(format!(
            "the answer is larger than {max_bytes} bytes, the limit for a certificate"
        ))
    };
    if resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max_bytes as u64)
    {
        return Err(too_large());
    }
    let body = tokio::time::timeout(TIMEOUT, Limited::new(resp.into_body(), max_bytes).collect())
        .await
        .map_err(|_| fail("timed out reading the body".to_owned()))?
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_large()
            } else {
                fail(e.to_string())
            }
        })?
        .to_bytes();
    Ok(body.to_vec())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
