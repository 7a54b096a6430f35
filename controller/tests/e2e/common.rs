//! Shared setup for the controller e2e tests: a stand-in (or real cluster) with the CRD, a
//! controller namespace, the real `sealed-secrets-controller` binary as a process, a tiny
//! HTTP client, sealing helpers and polling with timeouts (never bare sleeps).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use harness::cluster::{Cluster, Process, TestNamespace, free_port, wait_for_port};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use sealed_secrets_api::{SealOptions, SealedSecret};
use sealed_secrets_crypto::{CertParams, Certificate, PrivateKey, PublicKey, Scope};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub use harness::wait::{eventually, metric_sum};

pub const TIMEOUT: Duration = Duration::from_secs(30);
pub use sealed_secrets_api::annotations::SEALING_KEY_LABEL as KEY_LABEL;

/// A controller process and its ports.
pub struct Controller {
    pub process: Process,
    pub http: String,
    pub metrics: String,
}

impl Controller {
    pub fn pid(&self) -> u32 {
        self.process.id().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http(&self.http, "GET", path, &[], b"").await
    }

    pub async fn post(&self, path: &str, body: &[u8]) -> HttpResponse {
        http(&self.http, "POST", path, &[], body).await
    }

    pub async fn metrics_text(&self) -> String {
        http(&self.metrics, "GET", "/metrics", &[], b"")
            .await
            .body_text()
    }

    /// Sum of every sample of `name` (any labels); 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.metrics_text().await, name)
    }

    pub async fn cert(&self) -> Option<String> {
        let r = self.get("/v1/cert.pem").await;
        (r.status == 200).then(|| r.body_text())
    }
}

/// A test environment: cluster, client, a test namespace, the controller namespace.
/// Fields drop in order: the namespaces (dumped on a failure) before the cluster, whose
/// control plane goes away with it.
pub struct Env {
    pub ns: TestNamespace,
    pub ctrl_ns: TestNamespace,
    pub client: kube::Client,
    pub cluster: Cluster,
}

pub fn controller_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sealed-secrets-controller"))
}

impl Env {
    pub async fn new() -> Self {
        Self::on(Cluster::start().unwrap()).await
    }

    /// An environment on `cluster` (e.g. [`Cluster::start_counting_gets`]).
    pub async fn on(cluster: Cluster) -> Self {
        let client = cluster.client().await.unwrap();
        install_crd(&client).await;
        let ns = cluster.namespace("e2e").await.unwrap();
        let ctrl_ns = cluster.namespace("ctrl").await.unwrap();
        Self {
            cluster,
            client,
            ns,
            ctrl_ns,
        }
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    pub fn ctrl(&self) -> &str {
        self.ctrl_ns.name()
    }

    /// Starts the controller with test defaults (2048-bit keys, no leader election, debug
    /// logs) plus `extra` args, and waits until it serves a certificate (unless
    /// `wait_cert` is false).
    pub async fn start_controller_with(&self, extra: &[&str], wait_cert: bool) -> Controller {
        let mut c = self.spawn_controller(extra);
        if let Err(e) = wait_for_port(&c.http, TIMEOUT) {
            panic!("controller did not listen: {e}\n{}", c.process.log());
        }
        assert!(c.process.is_running());
        if wait_cert {
            eventually("the controller to serve a certificate", TIMEOUT, || async {
                c.cert().await
            })
            .await;
        }
        c
    }

    /// Starts the controller with test defaults plus `extra` args and returns at once (the
    /// HTTP servers start only once the keys are loaded).
    pub fn spawn_controller(&self, extra: &[&str]) -> Controller {
        self.spawn_controller_env(extra, &[])
    }

    /// [`Self::spawn_controller`] with extra environment variables (e.g. a PKCS#11 module's
    /// configuration).
    pub fn spawn_controller_env(&self, extra: &[&str], vars: &[(&str, &str)]) -> Controller {
        let http = format!("127.0.0.1:{}", free_port().unwrap());
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let mut cmd = Command::new(controller_binary());
        cmd.env("KUBECONFIG", self.cluster.kubeconfig())
            .env("POD_NAMESPACE", self.ctrl())
            .env("RUST_LOG", "warn,sealed_secrets_controller=debug")
            .args([
                "--listen-addr",
                &http,
                "--listen-metrics-addr",
                &metrics,
                "--key-size",
                "2048",
            ])
            .args(["--leader-election=false", "--log-info-stdout=false"])
            .args(extra)
            .envs(vars.iter().copied());
        let process = Process::spawn(cmd, self.cluster.temp_dir()).unwrap();
        Controller {
            process,
            http,
            metrics,
        }
    }

    pub async fn start_controller(&self, extra: &[&str]) -> Controller {
        self.start_controller_with(extra, true).await
    }

    pub fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn sealed(&self, ns: &str) -> Api<SealedSecret> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns).await.unwrap();
    }

    pub async fn create_ss(&self, ss: &SealedSecret) -> SealedSecret {
        let ns = ss.metadata.namespace.clone().unwrap();
        self.sealed(&ns)
            .create(&PostParams::default(), ss)
            .await
            .unwrap()
    }

    pub async fn wait_secret(&self, ns: &str, name: &str) -> Secret {
        let api = self.secrets(ns);
        eventually(&format!("Secret {ns}/{name}"), TIMEOUT, || {
            let api = api.clone();
            async move { api.get_opt(name).await.unwrap() }
        })
        .await
    }

    /// Waits until the Secret satisfies `pred`.
    pub async fn wait_secret_where(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&Secret) -> bool,
    ) -> Secret {
        let api = self.secrets(ns);
        let pred = &pred;
        eventually(what, TIMEOUT, || {
            let api = api.clone();
            async move { api.get_opt(name).await.unwrap().filter(|s| pred(s)) }
        })
        .await
    }

    /// Deletes the Secret `old` and waits until the controller has recreated it (a new uid).
    pub async fn delete_and_wait_recreated(&self, ns: &str, old: &Secret, what: &str) -> Secret {
        let name = old.metadata.name.clone().unwrap();
        self.secrets(ns)
            .delete(&name, &kube::api::DeleteParams::default())
            .await
            .unwrap();
        self.wait_secret_where(ns, &name, what, |n| n.metadata.uid != old.metadata.uid)
            .await
    }

    pub async fn wait_ss_where(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&SealedSecret) -> bool,
    ) -> SealedSecret {
        let api = self.sealed(ns);
        let pred = &pred;
        eventually(what, TIMEOUT, || {
            let api = api.clone();
            async move { api.get_opt(name).await.unwrap().filter(|s| pred(s)) }
        })
        .await
    }

    /// Events about object `name` in `ns` with `reason`.
    pub async fn events(&self, ns: &str, name: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect()
    }

    pub async fn wait_event(&self, ns: &str, name: &str, reason: &str) -> Event {
        eventually(
            &format!("event {reason} on {ns}/{name}"),
            TIMEOUT,
            || async { self.events(ns, name, reason).await.into_iter().next() },
        )
        .await
    }

    /// Active key Secrets in the controller namespace.
    pub async fn key_secrets(&self) -> Vec<Secret> {
        self.secrets(self.ctrl())
            .list(&ListParams::default().labels(&format!("{KEY_LABEL}=active")))
            .await
            .unwrap()
            .items
    }

    /// The public key of the certificate the controller serves.
    pub async fn served_key(&self, c: &Controller) -> PublicKey {
        let pem = c.cert().await.expect("certificate");
        Certificate::from_pem(pem.as_bytes())
            .unwrap()
            .public_key()
            .clone()
    }

    /// Writes a key Secret (as upstream's controller or a backup restore would).
    pub async fn put_key_secret(
        &self,
        name: &str,
        key_pem: &[u8],
        cert_pem: &[u8],
        active: bool,
    ) -> Secret {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(self.ctrl().into()),
                labels: Some(
                    [(
                        KEY_LABEL.to_owned(),
                        if active { "active" } else { "compromised" }.to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                ("tls.key".to_owned(), ByteString(key_pem.to_vec())),
                ("tls.crt".to_owned(), ByteString(cert_pem.to_vec())),
            ])),
            ..Default::default()
        };
        self.secrets(self.ctrl())
            .create(&PostParams::default(), &s)
            .await
            .unwrap()
    }
}

async fn install_crd(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    if api
        .get_opt(sealed_secrets_api::CRD_NAME)
        .await
        .unwrap()
        .is_none()
    {
        api.create(&PostParams::default(), &sealed_secrets_api::crd())
            .await
            .unwrap();
    }
}

/// A fresh key with a certificate starting at `not_before`.
pub fn make_key(not_before: SystemTime) -> (PrivateKey, Certificate) {
    let k = PrivateKey::generate(2048).unwrap();
    let c = k
        .self_signed_certificate(&CertParams {
            not_before,
            ..Default::default()
        })
        .unwrap();
    (k, c)
}

/// Seals a Secret given as JSON (kubeseal's path).
pub fn seal_json(secret: serde_json::Value, key: &PublicKey) -> SealedSecret {
    let input = serde_json::to_vec(&secret).unwrap();
    let opts = SealOptions {
        default_namespace: "default".into(),
        ..Default::default()
    };
    sealed_secrets_api::seal_manifests(&input, &[key], &opts)
        .unwrap()
        .pop()
        .unwrap()
}

/// Seals `data` (stringData) for `ns/name` with extra Secret fields merged in.
pub fn seal(
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
    key: &PublicKey,
    extra: serde_json::Value,
) -> SealedSecret {
    let mut secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": data.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
    });
    merge_json(&mut secret, extra);
    seal_json(secret, key)
}

pub fn merge_json(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge_json(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// One raw value (upstream `HybridEncrypt` with label per scope) in base64.
pub fn seal_value(key: &PublicKey, scope: Scope, ns: &str, name: &str, value: &str) -> String {
    let ct = sealed_secrets_crypto::seal(key, &scope.label(ns, name), value.as_bytes()).unwrap();
    sealed_secrets_crypto::encode_base64(&ct)
}

pub fn data_of(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A tiny HTTP client (the controller answers with Content-Length bodies).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// [`http`], with a connection that is refused or reset as an error instead of a panic: for
/// tests that wait for a server to take connections again.
pub async fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    // A connection closed without a whole response (a server shedding load closes what it
    // cannot serve) is an error for the caller to retry or report, not a panic.
    let incomplete = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{method} {path}: {what} in {} bytes of response", raw.len()),
        )
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| incomplete("no end of the HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| incomplete("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// The real `kubeseal` binary (build it with `cargo build -p kubeseal`; the harness error
/// says so when it is missing), pointed at the test cluster.
pub fn kubeseal(env: &Env) -> Command {
    let path = harness::cluster::binary_path("kubeseal").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(path);
    cmd.env("KUBECONFIG", env.cluster.kubeconfig())
        .env("NO_COLOR", "1");
    cmd
}

/// Runs kubeseal with `args` and `stdin` off the async runtime; returns (success, stdout,
/// stderr).
pub async fn run_kubeseal(env: &Env, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write as _;
    let mut cmd = kubeseal(env);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}
