//! Everything that talks to the cluster: building a kube-rs client from the kubeconfig plus
//! kubectl-style overrides, and reaching the controller through the API server's service proxy
//! exactly as upstream does (§6.2), or its cert ConfigMap (ours).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::{CertArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::printer::HTTP_LOG_LEVEL;

/// The API server this process talks to (one per run), for messages that must name it.
static SERVER: OnceLock<String> = OnceLock::new();

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

/// Hint for every failure to reach the controller.
pub(crate) const OFFLINE_HINT: &str = "seal offline with --cert FILE|URL (get the certificate once with `kubeseal --fetch-cert > cert.pem`), or use --cert-from-configmap";

/// The namespace Secrets without one are sealed for: `-n`, else the kubeconfig context's,
/// else `default`. Never fails: like client-go, a missing or broken kubeconfig means
/// `default` (offline sealing must work without any kubeconfig).
pub fn default_namespace(args: &KubeArgs) -> String {
    if let Some(ns) = args.namespace.as_ref().filter(|n| !n.is_empty()) {
        return ns.clone();
    }
    let kc = match &args.kubeconfig {
        Some(p) => Kubeconfig::read_from(p).ok(),
        None => Kubeconfig::read().ok(),
    };
    kc.and_then(|kc| {
        let ctx_name = args.context.clone().or(kc.current_context.clone())?;
        kc.contexts
            .into_iter()
            .find(|c| c.name == ctx_name)
            .and_then(|c| c.context)
            .and_then(|c| c.namespace)
    })
    .filter(|n| !n.is_empty())
    .unwrap_or_else(|| "default".to_owned())
}

/// Parses `--request-timeout` like kubectl: a bare number is seconds, else a Go duration
/// made of `h`, `m`, `s`, `ms` parts; `0` means none.
pub fn parse_timeout(s: &str) -> Result<Option<Duration>> {
    let bad = || CliError::InvalidFlag {
        flag: "--request-timeout",
        value: s.to_owned(),
        reason: "expected e.g. 30s, 1m, 500ms, or a number of seconds".to_owned(),
    };
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Some(Duration::from_secs(secs)));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1000.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        rest = next;
    }
    Ok((!total.is_zero()).then_some(total))
}

/// Builds the kube-rs config: the kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else
/// `~/.kube/config`, else in-cluster) with `--context/--cluster/--user`, then the kubectl
/// override flags on top. Exec plugins and tokens are kube-rs's own handling.
pub async fn config(args: &KubeArgs) -> Result<kube::Config> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: args.cluster.clone(),
        user: args.user.clone(),
    };
    let kubeconfig = match &args.kubeconfig {
        Some(p) => Some(Kubeconfig::read_from(p).map_err(|e| CliError::Kubeconfig {
            path: Some(p.clone()),
            cause: config_cause(&e),
        })?),
        None => Kubeconfig::read().ok(),
    };
    let mut config = match (kubeconfig, &args.server) {
        (Some(kc), _) => kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| CliError::Kubeconfig {
                path: None,
                cause: config_cause(&e),
            })?,
        (None, Some(server)) => kube::Config::new(parse_uri(server, "--server")?),
        (None, None) => kube::Config::incluster().map_err(|e| {
            CliError::kube("no kubeconfig found and not running in a cluster", e)
                .with_hint("set KUBECONFIG or --kubeconfig, or seal offline with --cert")
        })?,
    };
    if let Some(server) = &args.server {
        config.cluster_url = parse_uri(server, "--server")?;
    }
    if let Some(ns) = args.namespace.as_ref().filter(|n| !n.is_empty()) {
        config.default_namespace = ns.clone();
    }
    if let Some(ca) = &args.certificate_authority {
        config.root_cert_file = Some(ca.clone());
        config.root_cert = None;
    }
    if args.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(name) = &args.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(p) = &args.proxy_url {
        config.proxy_url = Some(parse_uri(p, "--proxy-url")?);
    }
    if args.disable_compression {
        config.disable_compression = true;
    }
    if let Some(t) = parse_timeout(&args.request_timeout)? {
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
        config.connect_timeout = Some(t);
    }
    apply_auth_overrides(&mut config.auth_info, args)?;
    Ok(config)
}

fn parse_uri(s: &str, flag: &'static str) -> Result<http::Uri> {
    s.parse()
        .map_err(|e: http::uri::InvalidUri| CliError::InvalidFlag {
            flag,
            value: s.to_owned(),
            reason: e.to_string(),
        })
}

/// The user-related overrides. kube-rs keeps secrets in `SecretString`; building the
/// overriding `AuthInfo` through serde avoids depending on `secrecy` directly.
fn apply_auth_overrides(auth: &mut kube::config::AuthInfo, args: &KubeArgs) -> Result<()> {
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        o.insert(k.to_owned(), v);
    };
    if let Some(t) = &args.token {
        put("token", t.clone().into());
    }
    if let Some(u) = &args.username {
        put("username", u.clone().into());
    }
    if let Some(p) = &args.password {
        put("password", p.clone().into());
    }
    if let Some(c) = &args.client_certificate {
        put("client-certificate", c.display().to_string().into());
    }
    if let Some(k) = &args.client_key {
        put("client-key", k.display().to_string().into());
    }
    if let Some(a) = &args.as_user {
        put("as", a.clone().into());
    }
    if let Some(a) = &args.as_uid {
        put("as-uid", a.clone().into());
    }
    if !args.as_group.is_empty() {
        put("as-groups", args.as_group.clone().into());
    }
    if o.is_empty() {
        return Ok(());
    }
    let over: kube::config::AuthInfo = serde_json::from_value(serde_json::Value::Object(o))
        .map_err(|e| CliError::Internal(format!("cannot apply credential flags: {e}")))?;
    if over.token.is_some() {
        // A token flag replaces whatever the kubeconfig authenticates with.
        auth.token = over.token;
        auth.token_file = None;
        auth.exec = None;
        auth.auth_provider = None;
    }
    if over.username.is_some() {
        auth.username = over.username;
    }
    if over.password.is_some() {
        auth.password = over.password;
    }
    if over.client_certificate.is_some() {
        auth.client_certificate = over.client_certificate;
        auth.client_certificate_data = None;
    }
    if over.client_key.is_some() {
        auth.client_key = over.client_key;
        auth.client_key_data = None;
    }
    if over.impersonate.is_some() {
        auth.impersonate = over.impersonate;
    }
    if over.impersonate_uid.is_some() {
        auth.impersonate_uid = over.impersonate_uid;
    }
    if over.impersonate_groups.is_some() {
        auth.impersonate_groups = over.impersonate_groups;
    }
    Ok(())
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
    let _ = SERVER.set(config.cluster_url.to_string());
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

/// The API server's URL, once a client was built.
pub fn server() -> &'static str {
    SERVER.get().map_or("(unknown)", String::as_str)
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
const ATTEMPTS: u32 = 3;

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

/// What a kube-rs error means for the user, in words (kube's own `Display` of an API error
/// includes the `Debug` of the whole Status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The API server answered with an error status.
    Api {
        /// HTTP code.
        code: u16,
        /// Its reason, e.g. `NotFound`.
        reason: String,
        /// Its message.
        message: String,
    },
    /// The API server could not be reached (connection, TLS, timeout).
    Unreachable(String),
    /// Anything else (credentials, configuration).
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api {
                code,
                reason,
                message,
            } => {
                if reason.is_empty() {
                    write!(f, "{message} (HTTP {code})")
                } else {
                    write!(f, "{message} ({reason}, HTTP {code})")
                }
            }
            Failure::Unreachable(cause) => write!(
                f,
                "cannot reach the Kubernetes API server at {}: {cause}",
                server()
            ),
            Failure::Other(m) => f.write_str(m),
        }
    }
}

/// Classifies a kube-rs error.
pub fn describe(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) => Failure::Api {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::RustlsTls(_) => {
            Failure::Unreachable(innermost(e))
        }
        kube::Error::Auth(_) => Failure::Other(format!("authentication failed: {}", innermost(e))),
        other => Failure::Other(innermost(other)),
    }
}

/// Why a kubeconfig could not be used, in one line: its deepest cause without the parser's
/// source snippet (a kubeconfig line can hold a token) and without kube's Debug-quoted path.
fn config_cause(e: &dyn std::error::Error) -> String {
    innermost(e).lines().next().unwrap_or_default().to_owned()
}

/// The deepest cause of an error chain, lower-cased like Go's messages (the outer layers of
/// kube's errors are "ServiceError: client error (Connect)" and the like).
fn innermost(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !t.is_empty() {
            last = t;
        }
        cur = c.source();
    }
    let mut chars = last.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => last,
    }
}

/// A failed API call as a [`CliError`]: `context: what the server said`, or that the server
/// could not be reached (with a hint about the connection, not about `api_hint`).
pub fn api_error(context: impl Into<String>, e: &kube::Error, api_hint: Option<&str>) -> CliError {
    let failure = describe(e);
    let hint = match (&failure, api_hint) {
        (Failure::Unreachable(_), _) => Some(UNREACHABLE_HINT),
        (_, h) => h,
    };
    let err = CliError::Api {
        context: context.into(),
        failure,
    };
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Hint for an API server that cannot be reached.
const UNREACHABLE_HINT: &str = "check the cluster your kubeconfig points at (--kubeconfig, --context, --server); to seal without the cluster use --cert FILE";

/// The message of an error answer: a Kubernetes `Status` (what the API server and its
/// service proxy send) gives its `message`, anything else its text, shortened.
pub fn reason_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && v.get("kind").and_then(|k| k.as_str()) == Some("Status")
        && let Some(m) = v.get("message").and_then(|m| m.as_str())
    {
        return m.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// The controller's Service, reached through the API server proxy (§6.2).
#[derive(Clone)]
pub struct Controller {
    client: kube::Client,
    namespace: String,
    name: String,
    port: String,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A response from the controller: status and body.
#[derive(Debug)]
pub struct ProxyResponse {
    /// HTTP status as seen through the proxy.
    pub status: http::StatusCode,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Controller {
    /// Looks up the Service and its first port's name, as upstream does.
    pub async fn connect(kube: &KubeArgs, namespace: &str, name: &str) -> Result<Controller> {
        let client = client(kube).await?;
        Self::with_client(client, namespace, name).await
    }

    /// Same, with an existing client.
    pub async fn with_client(
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Controller> {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let svc = retrying(|| services.get(name))
            .await
            .map_err(|e| match describe(&e) {
                // Upstream's message, for what the flags can fix.
                Failure::Api {
                    code: 404, message, ..
                } => CliError::ServiceNotFound { message },
                _ => api_error(
                    format!("cannot get sealed secret service `{namespace}/{name}`"),
                    &e,
                    Some(OFFLINE_HINT),
                ),
            })?;
        let port = svc
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.into_iter().next())
            .and_then(|p| p.name)
            .unwrap_or_default();
        Ok(Controller {
            client,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
        })
    }

    /// `/api/v1/namespaces/<ns>/services/http:<name>:<port>/proxy<path>`.
    pub fn proxy_path(&self, path: &str) -> String {
        format!(
            "/api/v1/namespaces/{}/services/http:{}:{}/proxy{}",
            self.namespace, self.name, self.port, path
        )
    }

    /// One request through the proxy; any status is returned (callers map 409 etc.).
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<ProxyResponse> {
        call_path(&self.client, method, &self.proxy_path(path), body).await
    }
}

/// A raw request to the API server; any status is returned.
pub async fn call_path(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<ProxyResponse> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let mut req = http::Request::builder().method(method.clone()).uri(path);
        if method == http::Method::GET {
            req = req.header(http::header::ACCEPT, "application/x-pem-file, */*");
        } else {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(kube::client::Body::from(body.clone()))
            .map_err(|e| CliError::Internal(format!("cannot build request: {e}")))?;
        let resp = client
            .send(req)
            .await
            .map_err(|e| api_error(format!("cannot call {path}"), &e, Some(OFFLINE_HINT)))?;
        let status = resp.status();
        if attempt < ATTEMPTS && worth_retrying(status.as_u16()) {
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
            continue;
        }
        let body = resp
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| api_error(format!("cannot read the answer of {path}"), &e, None))?;
        return Ok(ProxyResponse {
            status,
            body: body.to_vec(),
        });
    }
}

/// The controller's certificate: from the ConfigMap (`--cert-from-configmap`) or
/// `GET /v1/cert.pem` through the service proxy.
pub fn fetch_cert(cert: &CertArgs, kube: &KubeArgs) -> Result<Vec<u8>> {
    crate::runtime::block_on(bounded(
        kube,
        "cannot fetch certificate",
        fetch_cert_async(cert, kube),
    ))?
}

async fn fetch_cert_async(cert: &CertArgs, kube: &KubeArgs) -> Result<Vec<u8>> {
    if cert.cert_from_configmap {
        let client = client(kube).await?;
        let api: Api<ConfigMap> = Api::namespaced(client, &cert.controller_namespace);
        let cm = retrying(|| api.get(&cert.cert_configmap))
            .await
            .map_err(|e| {
                api_error(
                    format!(
                        "cannot get ConfigMap `{}/{}`",
                        cert.controller_namespace, cert.cert_configmap
                    ),
                    &e,
                    Some(
                        "check --controller-namespace and --cert-configmap, or drop --cert-from-configmap",
                    ),
                )
            })?;
        let pem = cm
            .data
            .and_then(|mut d| d.remove("cert.pem"))
            .map(String::into_bytes)
            .ok_or_else(|| CliError::ConfigMapWithoutCert {
                namespace: cert.controller_namespace.clone(),
                name: cert.cert_configmap.clone(),
            })?;
        return check_cert_size(
            pem,
            &format!(
                "ConfigMap `{}/{}`",
                cert.controller_namespace, cert.cert_configmap
            ),
        );
    }
    let controller =
        Controller::connect(kube, &cert.controller_namespace, &cert.controller_name).await?;
    let resp = controller
        .call(http::Method::GET, "/v1/cert.pem", Vec::new())
        .await?;
    if !resp.status.is_success() {
        return Err(CliError::ControllerStatus {
            action: "cannot fetch certificate",
            reason: reason_of(&resp.body),
            status: resp.status.as_u16(),
        }
        .with_hint(OFFLINE_HINT));
    }
    check_cert_size(resp.body, "the controller")
}

/// Refuses a certificate over [`crate::certs::MAX_CERT_BYTES`], naming size and limit.
fn check_cert_size(pem: Vec<u8>, from: &str) -> Result<Vec<u8>> {
    if pem.len() > crate::certs::MAX_CERT_BYTES {
        return Err(CliError::CertTooLarge {
            from: from.to_owned(),
            size: pem.len(),
            limit: crate::certs::MAX_CERT_BYTES,
        });
    }
    Ok(pem)
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

    #[test]
    fn server_reason_from_status_or_text() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"x\"","reason":"ServiceUnavailable","code":503}"#;
        assert_eq!(
            reason_of(status),
            "no endpoints available for service \"x\""
        );
        assert_eq!(reason_of(b"  plain text\n"), "plain text");
        assert!(reason_of(&[b'a'; 1000]).ends_with("..."));
    }

    #[test]
    fn api_failures_have_no_debug_output() {
        let e = kube::Error::Api(Box::new(
            kube::core::Status::failure("services \"x\" not found", "NotFound").with_code(404),
        ));
        let text = describe(&e).to_string();
        assert_eq!(text, "services \"x\" not found (NotFound, HTTP 404)");
    }

    #[test]
    fn request_timeout_parses_like_kubectl() {
        assert_eq!(parse_timeout("0").ok(), Some(None));
        assert_eq!(parse_timeout("5").ok(), Some(Some(Duration::from_secs(5))));
        assert_eq!(
            parse_timeout("1m30s").ok(),
            Some(Some(Duration::from_secs(90)))
        );
        assert_eq!(
            parse_timeout("500ms").ok(),
            Some(Some(Duration::from_millis(500)))
        );
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("5d").is_err());
    }
}
