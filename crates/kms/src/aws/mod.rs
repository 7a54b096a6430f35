//! The AWS KMS backend: `Encrypt`/`Decrypt` of the JSON API (`X-Amz-Target:
//! TrentService.*`), signed with SigV4, with the [`WrapContext`] as `EncryptionContext`.
//!
//! One request per call, no retries inside: the caller decides (a controller start-up retries
//! transient failures with backoff, [`WrapError::is_transient`]). Each call has one time budget
//! covering connect, request and response; responses are read up to 64 KiB.

mod config;
mod credentials;
mod sigv4;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use credentials::{
    CredentialSource, Credentials, ENV_ACCESS_KEY_ID, ENV_CREDENTIALS_FILE, ENV_PROFILE,
    ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};

use config::BACKEND;
pub use config::{AwsKmsConfig, ENV_DEFAULT_REGION, ENV_ENDPOINT, ENV_ENDPOINT_KMS, ENV_REGION};

use crate::error::{BoxError, WrapError};
use crate::wrapper::{Operation, WrapContext, WrapFuture, Wrapped, Wrapper, WrapperStats};

const MAX_RESPONSE: usize = 64 * 1024;

/// An AWS KMS key as a [`Wrapper`]. Cheap to clone; clones share one connection pool and
/// one [`WrapperStats`].
#[derive(Clone)]
pub struct AwsKms {
    inner: Arc<Inner>,
}

struct Inner {
    config: AwsKmsConfig,
    endpoint: http::Uri,
    endpoint_text: String,
    host: String,
    transport: Transport,
    stats: WrapperStats,
}

/// An `https` endpoint never falls back to plain HTTP; an `http` one never needs roots.
enum Transport {
    Https(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
    Http(Client<HttpConnector, Full<Bytes>>),
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("key_id", &self.inner.config.key_id)
            .field("region", &self.inner.config.region)
            .field("endpoint", &self.inner.endpoint_text)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// Checks the settings and builds the HTTP client. Makes no request (credentials are read
    /// at each call).
    pub fn new(config: AwsKmsConfig) -> Result<AwsKms, WrapError> {
        let bad = |reason: String| WrapError::Config {
            backend: BACKEND,
            reason,
        };
        if config.key_id.trim().is_empty() {
            return Err(bad("the KMS key ID is empty".into()));
        }
        if config.region.is_empty()
            || !config
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(format!("invalid region `{}`", config.region)));
        }
        let endpoint_text = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", config.region));
        let endpoint: http::Uri = endpoint_text
            .parse()
            .map_err(|_| bad(format!("invalid endpoint URL `{endpoint_text}`")))?;
        let host = endpoint
            .authority()
            .map(|a| a.as_str().to_owned())
            .filter(|a| !a.contains('@'))
            .ok_or_else(|| {
                bad(format!(
                    "endpoint `{endpoint_text}` has no host (or has user info)"
                ))
            })?;
        if endpoint.path() != "/" && !endpoint.path().is_empty() {
            return Err(bad(format!(
                "endpoint `{endpoint_text}` must not have a path"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.enforce_http(false);
        let transport = match endpoint.scheme_str() {
            Some("https") => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| bad(format!("cannot load the system's root certificates: {e}")))?
                    .https_only()
                    .enable_http1()
                    .wrap_connector(connector);
                Transport::Https(Client::builder(TokioExecutor::new()).build(https))
            }
            Some("http") => Transport::Http(Client::builder(TokioExecutor::new()).build(connector)),
            _ => return Err(bad(format!("endpoint `{endpoint_text}` is not http(s)"))),
        };
        Ok(AwsKms {
            inner: Arc::new(Inner {
                config,
                endpoint,
                endpoint_text,
                host,
                transport,
                stats: WrapperStats::default(),
            }),
        })
    }

    /// One signed call of a KMS action; the parsed error or the successful body.
    async fn call(
        &self,
        action: &str,
        key_id: &str,
        body: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        let inner = &self.inner;
        let creds = inner.config.credentials.load()?;
        let amz_date = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let target = format!("TrentService.{action}");
        let fixed = [
            ("host", inner.host.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let scope = sigv4::Scope {
            region: &inner.config.region,
            service: "kms",
            amz_date: &amz_date,
        };
        let signed = sigv4::sign("POST", &fixed, &body, &creds, &scope);
        let mut request = http::Request::post(inner.endpoint.clone());
        for (name, value) in fixed
            .iter()
            .map(|(n, v)| (*n, *v))
            .chain(signed.iter().map(|(n, v)| (*n, v.as_str())))
        {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| self.protocol("request could not be built"))?;
        let timeout = inner.config.timeout;
        let exchange = async {
            let response = match &inner.transport {
                Transport::Https(c) => c.request(request).await,
                Transport::Http(c) => c.request(request).await,
            }
            .map_err(|e| self.unreachable(Box::new(e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        self.protocol("response larger than 64 KiB")
                    } else {
                        self.unreachable(e)
                    }
                })?
                .to_bytes();
            Ok::<_, WrapError>((status, Zeroizing::new(body.to_vec())))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| WrapError::TimedOut {
                backend: BACKEND,
                endpoint: inner.endpoint_text.clone(),
                timeout,
            })??;
        if status.is_success() {
            return Ok(body);
        }
        Err(self.api_error(status.as_u16(), &body, key_id))
    }

    fn api_error(&self, status: u16, body: &[u8], key_id: &str) -> WrapError {
        #[derive(Deserialize)]
        struct ErrorBody {
            #[serde(rename = "__type")]
            kind: Option<String>,
        }
        let code = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.kind)
            // Some answers qualify the code: `com.amazonaws.kms#AccessDeniedException`.
            .map(|k| k.rsplit('#').next().unwrap_or_default().to_owned())
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= 128
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let key_id = key_id.to_owned();
        match code.as_str() {
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "ExpiredTokenException"
            | "NotAuthorizedException"
            | "MissingAuthenticationToken" => WrapError::Denied {
                backend: BACKEND,
                key_id,
                code,
            },
            "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
                WrapError::KeyDisabled {
                    backend: BACKEND,
                    key_id,
                    code,
                }
            }
            "NotFoundException" => WrapError::KeyNotFound {
                backend: BACKEND,
                key_id,
            },
            "InvalidCiphertextException" | "IncorrectKeyException" => {
                WrapError::InvalidCiphertext {
                    backend: BACKEND,
                    key_id,
                }
            }
            "ThrottlingException" | "LimitExceededException" | "RequestLimitExceeded" => {
                WrapError::Throttled {
                    backend: BACKEND,
                    key_id,
                    code,
                }
            }
            // The service itself failing (KMSInternalException, DependencyTimeoutException, a
            // load balancer's 503) is an outage, not a refusal: transient.
            _ if status >= 500 => self.unreachable(format!("HTTP {status} ({code})").into()),
            _ => WrapError::Rejected {
                backend: BACKEND,
                key_id,
                status,
                code,
            },
        }
    }

    fn unreachable(&self, source: BoxError) -> WrapError {
        WrapError::Unreachable {
            backend: BACKEND,
            endpoint: self.inner.endpoint_text.clone(),
            source,
        }
    }

    fn protocol(&self, reason: &'static str) -> WrapError {
        WrapError::Protocol {
            backend: BACKEND,
            endpoint: self.inner.endpoint_text.clone(),
            reason,
        }
    }

    async fn encrypt(&self, plaintext: &[u8], context: &WrapContext) -> Result<Wrapped, WrapError> {
        let key_id = &self.inner.config.key_id;
        let body = request_body(
            key_id,
            ("Plaintext", &Zeroizing::new(B64.encode(plaintext))),
            context,
        )?;
        // The request buffer holds the base64 plaintext; it is handed to hyper, which does
        // not zeroise it (docs/security.md, "Tier 2").
        let response = self.call("Encrypt", key_id, body).await?;
        #[derive(Deserialize)]
        struct EncryptResponse {
            #[serde(rename = "CiphertextBlob")]
            blob: String,
            #[serde(rename = "KeyId")]
            key_id: String,
        }
        let r: EncryptResponse = serde_json::from_slice(&response)
            .map_err(|_| self.protocol("Encrypt response is not the expected JSON"))?;
        let blob = B64
            .decode(r.blob.as_bytes())
            .map_err(|_| self.protocol("CiphertextBlob is not base64"))?;
        Ok(Wrapped {
            key_id: r.key_id,
            blob,
        })
    }

    async fn decrypt(
        &self,
        wrapped: &Wrapped,
        context: &WrapContext,
    ) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        let body = request_body(
            &wrapped.key_id,
            ("CiphertextBlob", &B64.encode(&wrapped.blob)),
            context,
        )?;
        let response = self.call("Decrypt", &wrapped.key_id, body).await?;
        #[derive(Deserialize)]
        struct DecryptResponse<'a> {
            // Borrowed from the zeroised response buffer: no unzeroised copy of the base64.
            #[serde(rename = "Plaintext", borrow)]
            plaintext: &'a str,
        }
        let r: DecryptResponse<'_> = serde_json::from_slice(&response)
            .map_err(|_| self.protocol("Decrypt response is not the expected JSON"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(r.plaintext.len()));
        B64.decode_vec(r.plaintext.as_bytes(), &mut out)
            .map_err(|_| self.protocol("Plaintext is not base64"))?;
        Ok(out)
    }
}

/// `{"KeyId": ..., <field>: ..., "EncryptionContext": {...}}`.
fn request_body(
    key_id: &str,
    field: (&str, &str),
    context: &WrapContext,
) -> Result<Vec<u8>, WrapError> {
    let encryption_context: BTreeMap<&str, String> = context.pairs().into_iter().collect();
    let mut map = serde_json::Map::new();
    map.insert("KeyId".into(), key_id.into());
    map.insert(field.0.into(), field.1.into());
    map.insert(
        "EncryptionContext".into(),
        serde_json::to_value(encryption_context).map_err(|_| WrapError::Envelope {
            reason: "encryption context does not serialise".into(),
        })?,
    );
    serde_json::to_vec(&map).map_err(|_| WrapError::Envelope {
        reason: "request does not serialise".into(),
    })
}

impl Wrapper for AwsKms {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn key_id(&self) -> &str {
        &self.inner.config.key_id
    }

    fn describe(&self) -> String {
        format!(
            "AWS KMS key `{}` in {} at {}",
            self.inner.config.key_id, self.inner.config.region, self.inner.endpoint_text
        )
    }

    fn stats(&self) -> &WrapperStats {
        &self.inner.stats
    }

    fn wrap<'a>(
        &'a self,
        plaintext: &'a [u8],
        context: &'a WrapContext,
    ) -> WrapFuture<'a, Wrapped> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.encrypt(plaintext, context).await;
            self.inner
                .stats
                .record(Operation::Wrap, started, result.is_err());
            result
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a Wrapped,
        context: &'a WrapContext,
    ) -> WrapFuture<'a, Zeroizing<Vec<u8>>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.decrypt(wrapped, context).await;
            self.inner
                .stats
                .record(Operation::Unwrap, started, result.is_err());
            result
        })
    }
}

#[cfg(test)]
mod tests;
