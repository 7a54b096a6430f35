//! The kube client of one run and the policies every call shares: kubectl-style logging of
//! each HTTP call (`-v 6`), which answers are retried, and `--request-timeout` bounding a
//! whole operation. One place, so no call path can retry or wait differently from another.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::config::{config, parse_timeout};
use super::failure::{describe, server, set_server};
use crate::args::KubeArgs;
use crate::error::{CliError, Result};
use crate::printer::HTTP_LOG_LEVEL;

/// Prints one HTTP call on stderr, kubectl-style (`GET URL 200 OK in 5 milliseconds`), when
/// `-v` is at least [`HTTP_LOG_LEVEL`]. Never prints headers or bodies (tokens, secrets).
pub fn log_http(method: &http::Method, uri: &str, outcome: &str, started: Instant) {
    crate::printer().verbose(
        HTTP_LOG_LEVEL,
        format_args!(
            "{method} {uri} {outcome} in {} milliseconds",
            started.elapsed().as_millis()
        ),
    );
}

/// Parses `-v`'s value (klog takes a non-negative number).
pub fn parse_verbosity(s: &str) -> Result<u8> {
    s.trim().parse::<u8>().map_err(|_| CliError::InvalidFlag {
        flag: "-v",
        value: s.to_owned(),
        reason: "expected a number (e.g. -v 6 shows every HTTP call)".to_owned(),
    })
}

/// A kube client for the given flags.
///
/// kube-rs's default retry is off: it retried a 503 from the service proxy 15 times over
/// about five minutes, in silence, while upstream fails at once with the server's reason
/// ("no endpoints available"). What is worth retrying is retried by [`retrying`], within the
/// `--request-timeout` of the whole operation ([`bounded`]).
pub async fn client(args: &KubeArgs) -> Result<kube::Client> {
    let mut config = config(args).await?;
    config.default_retry = false;
    set_server(config.cluster_url.to_string());
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| CliError::Client(describe(&e)))?;
    Ok(builder
        .with_layer(&tower::layer::layer_fn(|inner| HttpLog { inner }))
        .build())
}

/// A tower layer printing each call (see [`log_http`]).
#[derive(Debug, Clone)]
pub struct HttpLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for HttpLog<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = req.method().clone();
        // The base-URI layer runs inside this one: paths are relative to the API server here.
        let uri = match req.uri().to_string() {
            rel if rel.starts_with('/') => format!("{}{rel}", server().trim_end_matches('/')),
            abs => abs,
        };
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            match &res {
                Ok(r) => log_http(&method, &uri, &r.status().to_string(), started),
                Err(e) => log_http(&method, &uri, &format!("failed: {e}"), started),
            }
            res
        })
    }
}

/// Runs a whole cluster operation within `--request-timeout` (when set): every attempt and
/// every wait of it, not each request alone.
pub async fn bounded<T>(
    kube: &KubeArgs,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match parse_timeout(&kube.request_timeout)? {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(CliError::Timeout {
                what: what.to_string(),
                limit: kube.request_timeout.clone(),
            })
        }),
    }
}

/// Attempts of a call that may be retried.
pub(super) const ATTEMPTS: u32 = 3;

/// Whether an answer is worth asking again: the API server throttling (429) or a gateway
/// timeout (504). A 503 from the service proxy ("no endpoints available") is not: no
/// controller pod is ready, and waiting seconds rarely changes that; the reason is shown.
pub fn worth_retrying(status: u16) -> bool {
    matches!(status, 429 | 504)
}

/// Runs `op` up to `ATTEMPTS` times while it fails with a status `worth_retrying`
/// (0.5 s, then 1 s between attempts).
pub async fn retrying<T, F, Fut>(mut op: F) -> std::result::Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match op().await {
            Err(kube::Error::Api(s)) if attempt < ATTEMPTS && worth_retrying(s.code) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_what_is_worth_it() {
        assert!(worth_retrying(429));
        assert!(worth_retrying(504));
        for code in [400, 401, 403, 404, 409, 500, 503] {
            assert!(!worth_retrying(code), "{code}");
        }
    }
}
