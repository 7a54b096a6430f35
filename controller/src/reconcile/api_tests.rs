//! The fast tier: one reconcile's Kubernetes I/O against a scripted API service, in
//! milliseconds and without processes (as kube-rs controller-rs does with tower-test; here a
//! hand-written `tower::Service`, which needs no extra crate). What the unit tests of
//! [`super::decide`] cannot see is checked here: the requests actually sent (create,
//! replace, status writes), the 409 retry of the status write, and the 422 an immutable
//! Secret gets from the API server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::client::Body;
use kube::runtime::controller::Action;
use sealed_secrets_api::{API_VERSION, KIND, SealedSecret, SealedSecretStatus};
use sealed_secrets_crypto::{CertParams, Certificate, PrivateKey, Scope};
use serde_json::{Value, json};

use super::{
    Context, IMMUTABLE_MESSAGE, ReconcileArgs, ReconcileError, cached_metadata,
    desired_metadata_only, error_policy, finish_desired, reconcile, reconcile_cached,
};
use crate::events::Recorder;
use crate::keys::{KeyArgs, Keys, LoadedKey};
use crate::metrics::Metrics;

const NS: &str = "ns";
const NAME: &str = "db";
const UID: &str = "ss-uid";
const SECRETS: &str = "/api/v1/namespaces/ns/secrets";
const SECRET: &str = "/api/v1/namespaces/ns/secrets/db";
const SEALED: &str = "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/db";
const STATUS: &str = "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/db/status";

/// One request the mock received.
#[derive(Debug)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
}

/// Answers (status code, JSON body) scripted for one method and path.
type Script = Vec<(Method, &'static str, VecDeque<(u16, Value)>)>;

/// A scripted API server: per (method, path) a queue of answers, consumed in order (the
/// last one repeats). Events are always accepted. Anything unscripted is a 500, and shows in
/// [`Mock::seen`].
#[derive(Clone, Default)]
struct Mock {
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    fn on(&self, method: Method, path: &'static str, answers: &[(u16, Value)]) -> &Self {
        self.script
            .lock()
            .unwrap()
            .push((method, path, answers.iter().cloned().collect()));
        self
    }

    fn answer(&self, method: &Method, path: &str, body: &Value) -> (u16, Value) {
        self.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.to_owned(),
            body: body.clone(),
        });
        if *method == Method::POST && path.ends_with("/events") {
            return (201, body.clone());
        }
        let mut script = self.script.lock().unwrap();
        let Some((_, _, answers)) = script
            .iter_mut()
            .find(|(m, p, _)| m == method && *p == path)
        else {
            return (500, status_body(500, "InternalError", "unscripted request"));
        };
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers.front().cloned().unwrap()
        }
    }

    /// The requests other than Events, as `METHOD path`.
    fn calls(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| !s.path.ends_with("/events"))
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    fn bodies(&self, method: Method, path: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .map(|s| s.body.clone())
            .collect()
    }

    fn event_reasons(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.ends_with("/events"))
            .map(|s| s.body["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn client(&self) -> kube::Client {
        let mock = self.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let mock = mock.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await?;
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, answer) = mock.answer(&parts.method, parts.uri.path(), &body);
                let resp = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap();
                Ok::<_, kube::Error>(resp)
            }
        });
        kube::Client::new(svc, "default")
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn not_found() -> (u16, Value) {
    (
        404,
        status_body(404, "NotFound", "secrets \"db\" not found"),
    )
}

/// One 2048-bit key for all tests (generating it is the slow part).
fn test_key() -> &'static (PrivateKey, Certificate) {
    static KEY: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = PrivateKey::generate(2048).unwrap();
        let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
        (key, cert)
    })
}

/// Two more keys, for the tests of the key order.
fn other_keys() -> &'static [(PrivateKey, Certificate); 2] {
    static KEYS: OnceLock<[(PrivateKey, Certificate); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [(); 2].map(|()| {
            let key = PrivateKey::generate(2048).unwrap();
            let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
            (key, cert)
        })
    })
}

/// A key registry holding `keys`, registered in this order.
fn registry(keys: &[&(PrivateKey, Certificate)]) -> Arc<Keys> {
    let registry = Keys::new(
        KeyArgs::parse_for_test(&["--key-size=2048", "--key-ttl=1h"]),
        "kube-system".into(),
        Arc::new(Metrics::new()),
    );
    for (i, (key, cert)) in keys.iter().enumerate() {
        registry.register(LoadedKey {
            secret_name: format!("sealed-secrets-key{i}"),
            key: key.clone(),
            cert: cert.clone(),
            order_time: SystemTime::now(),
            foreign: false,
            future_not_before: false,
            pq: None,
            pq_error: None,
        });
    }
    registry
}

/// The SealedSecret `ns/db` with these items (strict scope, no key hint).
fn sealed_secret(items: &[(&str, String)]) -> SealedSecret {
    let mut ss = SealedSecret::new(NAME, Default::default());
    ss.metadata.namespace = Some(NS.into());
    ss.metadata.uid = Some(UID.into());
    ss.metadata.generation = Some(1);
    ss.metadata.resource_version = Some("10".into());
    for (item, value) in items {
        ss.spec.encrypted_data.insert(*item, value.as_str());
    }
    ss
}

fn seal_for(cert: &Certificate, plaintext: &[u8]) -> String {
    sealed_secrets_api::seal_raw(
        plaintext,
        &[cert.public_key()],
        Scope::Strict,
        Some(NS),
        Some(NAME),
    )
    .unwrap()
}

/// A key registry holding the test key, and a SealedSecret with one item sealed for it
/// (strict scope `ns/db`).
fn keys_and_sealed_secret() -> (Arc<Keys>, SealedSecret) {
    let value = seal_for(&test_key().1, b"hunter2");
    (
        registry(&[test_key()]),
        sealed_secret(&[("password", value)]),
    )
}

fn context(mock: &Mock, keys: Arc<Keys>) -> Arc<Context> {
    context_limited(mock, keys, super::flags::DEFAULT_MAX_SEALED_SECRET_SIZE)
}

/// [`context`] with `--max-sealed-secret-size` at `limit`.
fn context_limited(mock: &Mock, keys: Arc<Keys>, limit: u64) -> Arc<Context> {
    let client = mock.client();
    Context::new(
        client.clone(),
        keys,
        Arc::new(Metrics::new()),
        Recorder::new(client, "test".into()),
        ReconcileArgs::for_tests(1, limit),
        crate::leader::Fence::open(),
    )
}

/// The Secret this SealedSecret owns, holding `password` and marked immutable.
fn owned_immutable_secret(password: &[u8]) -> Value {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NS.into()),
            uid: Some("secret-uid".into()),
            resource_version: Some("5".into()),
            labels: Some([("stale".to_owned(), "label".to_owned())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.into(),
                kind: KIND.into(),
                name: NAME.into(),
                uid: UID.into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        immutable: Some(true),
        data: Some([("password".to_owned(), ByteString(password.to_vec()))].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    serde_json::to_value(secret).unwrap()
}

fn synced(status: &Value) -> (String, String) {
    let status: SealedSecretStatus = serde_json::from_value(status.clone()).unwrap();
    let c = &status.conditions[0];
    (c.status.clone(), c.message.clone().unwrap_or_default())
}

fn echo(body: &Value) -> Value {
    body.clone()
}

#[tokio::test]
async fn creates_the_secret_and_writes_the_status() {
    let (keys, ss) = keys_and_sealed_secret();
    let mock = Mock::default();
    let ss_json = serde_json::to_value(&ss).unwrap();
    mock.on(Method::GET, SECRET, &[not_found()])
        .on(
            Method::POST,
            SECRETS,
            &[(201, json!({"metadata": {"name": NAME}}))],
        )
        .on(Method::PUT, STATUS, &[(200, echo(&ss_json))]);
    let ctx = context(&mock, keys);

    let action = reconcile(Arc::new(ss), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        mock.calls(),
        [
            format!("GET {SECRET}"),
            format!("POST {SECRETS}"),
            format!("PUT {STATUS}")
        ]
    );
    let created: Secret =
        serde_json::from_value(mock.bodies(Method::POST, SECRETS)[0].clone()).unwrap();
    assert_eq!(
        created.data.unwrap()["password"],
        ByteString(b"hunter2".to_vec())
    );
    let owner = &created.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.uid.as_str(), owner.controller), (UID, Some(true)));
    let status = &mock.bodies(Method::PUT, STATUS)[0]["status"];
    assert_eq!(synced(status).0, "True");
    assert_eq!(mock.event_reasons(), ["Unsealed"]);
}

#[tokio::test]
async fn a_status_conflict_is_written_again_over_a_fresh_copy() {
    let (keys, ss) = keys_and_sealed_secret();
    let mock = Mock::default();
    let mut fresh = serde_json::to_value(&ss).unwrap();
    fresh["metadata"]["resourceVersion"] = json!("11");
    mock.on(Method::GET, SECRET, &[not_found()])
        .on(
            Method::POST,
            SECRETS,
            &[(201, json!({"metadata": {"name": NAME}}))],
        )
        .on(
            Method::PUT,
            STATUS,
            &[
                (
                    409,
                    status_body(409, "Conflict", "the object has been modified"),
                ),
                (200, fresh.clone()),
            ],
        )
        .on(Method::GET, SEALED, &[(200, fresh)]);
    let ctx = context(&mock, keys);

    let action = reconcile(Arc::new(ss), ctx).await.unwrap();

    // Written on the second try: nothing left to retry.
    assert_eq!(action, Action::await_change());
    assert_eq!(
        mock.calls(),
        [
            format!("GET {SECRET}"),
            format!("POST {SECRETS}"),
            format!("PUT {STATUS}"),
            format!("GET {SEALED}"),
            format!("PUT {STATUS}")
        ]
    );
    let puts = mock.bodies(Method::PUT, STATUS);
    assert_eq!(puts[0]["metadata"]["resourceVersion"], "10");
    assert_eq!(puts[1]["metadata"]["resourceVersion"], "11");
    assert_eq!(synced(&puts[1]["status"]).0, "True");
}

#[tokio::test]
async fn a_status_that_stays_in_conflict_is_requeued_with_backoff() {
    let (keys, ss) = keys_and_sealed_secret();
    let mock = Mock::default();
    let ss_json = serde_json::to_value(&ss).unwrap();
    mock.on(Method::GET, SECRET, &[not_found()])
        .on(
            Method::POST,
            SECRETS,
            &[(201, json!({"metadata": {"name": NAME}}))],
        )
        .on(
            Method::PUT,
            STATUS,
            &[(
                409,
                status_body(409, "Conflict", "the object has been modified"),
            )],
        )
        .on(Method::GET, SEALED, &[(200, ss_json)]);
    let ctx = context(&mock, keys);

    let action = reconcile(Arc::new(ss), ctx).await.unwrap();

    // One re-read and one more write per pass, then a requeue until the status is written.
    assert_eq!(action, Action::requeue(super::retry_backoff(1)));
    assert_eq!(mock.bodies(Method::PUT, STATUS).len(), 2);
}

#[tokio::test]
async fn the_api_servers_422_on_an_immutable_secret_is_not_retried() {
    let (keys, ss) = keys_and_sealed_secret();
    let mock = Mock::default();
    let ss_json = serde_json::to_value(&ss).unwrap();
    // Same data, other labels: the controller's own check lets the write through, and the
    // API server refuses it.
    mock.on(Method::GET, SECRET, &[(200, owned_immutable_secret(b"hunter2"))])
        .on(
            Method::PUT,
            SECRET,
            &[(
                422,
                status_body(
                    422,
                    "Invalid",
                    "Secret \"db\" is invalid: data: Forbidden: field is immutable when `immutable` is set",
                ),
            )],
        )
        .on(Method::PUT, STATUS, &[(200, ss_json)]);
    let ctx = context(&mock, keys);
    let ss = Arc::new(ss);

    let err = reconcile(ss.clone(), ctx.clone()).await.unwrap_err();

    assert!(matches!(err, ReconcileError::Immutable { .. }), "{err:?}");
    assert_eq!(
        mock.calls(),
        [
            format!("GET {SECRET}"),
            format!("PUT {SECRET}"),
            format!("PUT {STATUS}")
        ]
    );
    let (state, message) = synced(&mock.bodies(Method::PUT, STATUS)[0]["status"]);
    assert_eq!(
        (state.as_str(), message.as_str()),
        ("False", IMMUTABLE_MESSAGE)
    );
    assert_eq!(mock.event_reasons(), ["ErrUpdateFailed"]);
    // Only a change of the SealedSecret can fix it: no retry.
    assert_eq!(error_policy(ss, &err, ctx), Action::await_change());
}

#[tokio::test]
async fn changed_data_of_an_immutable_secret_is_refused_without_a_write() {
    let (keys, ss) = keys_and_sealed_secret();
    let mock = Mock::default();
    let ss_json = serde_json::to_value(&ss).unwrap();
    mock.on(
        Method::GET,
        SECRET,
        &[(200, owned_immutable_secret(b"old"))],
    )
    .on(Method::PUT, STATUS, &[(200, ss_json)]);
    let ctx = context(&mock, keys);

    let err = reconcile(Arc::new(ss), ctx).await.unwrap_err();

    assert!(matches!(err, ReconcileError::Immutable { .. }), "{err:?}");
    assert_eq!(
        mock.calls(),
        [format!("GET {SECRET}"), format!("PUT {STATUS}")]
    );
}

#[tokio::test]
async fn transient_api_failures_do_not_use_up_the_retries() {
    let (keys, ss) = keys_and_sealed_secret();
    let mock = Mock::default();
    let ctx = context(&mock, keys);
    let ss = Arc::new(ss);
    let transient = || ReconcileError::Get {
        object: format!("{NS}/{NAME}"),
        source: kube::Error::Api(Box::new(kube::core::Status {
            code: 500,
            ..Default::default()
        })),
    };
    let lasting = || ReconcileError::Unmanaged { name: NAME.into() };
    // The retries (5) are used up by a lasting failure...
    for _ in 0..5 {
        assert_ne!(
            error_policy(ss.clone(), &lasting(), ctx.clone()),
            Action::await_change()
        );
    }
    // ...but a 500 at the last retry is retried again, however often it comes,
    for _ in 0..10 {
        assert_ne!(
            error_policy(ss.clone(), &transient(), ctx.clone()),
            Action::await_change()
        );
    }
    // and the next lasting failure gives up, leaving its own reason in the status.
    assert_eq!(
        error_policy(ss.clone(), &lasting(), ctx.clone()),
        Action::await_change()
    );
}

/// The key-order data path: the reconciler passes its key order as a typed option, the
/// unseal reports its RSA operations, and the metric counts them where the work was asked
/// for. An object without a key hint, three values sealed with the last of three keys: the
/// first pass tries all three keys for the first value and the key that opened it for the
/// others (3 + 1 + 1); the next pass starts with the key the namespace last used (1 + 1 + 1).
#[tokio::test]
async fn rsa_operations_are_counted_and_the_key_order_is_remembered() {
    let [k1, k2] = other_keys();
    let keys = registry(&[test_key(), k1, k2]);
    let items: Vec<(&str, String)> = ["a", "b", "c"]
        .into_iter()
        .map(|item| (item, seal_for(&k2.1, item.as_bytes())))
        .collect();
    let ss = Arc::new(sealed_secret(&items));
    let mock = Mock::default();
    let ss_json = serde_json::to_value(&*ss).unwrap();
    mock.on(Method::GET, SECRET, &[not_found()])
        .on(
            Method::POST,
            SECRETS,
            &[(201, json!({"metadata": {"name": NAME}}))],
        )
        .on(Method::PUT, STATUS, &[(200, ss_json)]);
    let ctx = context(&mock, keys);

    reconcile(ss.clone(), ctx.clone()).await.unwrap();
    assert_eq!(ctx.metrics.rsa_decryptions.get(), 3 + 1 + 1);
    reconcile(ss, ctx.clone()).await.unwrap();
    assert_eq!(ctx.metrics.rsa_decryptions.get(), 5 + 3);
}

/// A value no loaded key opens still cost one RSA operation per key, and is counted.
#[tokio::test]
async fn failed_unseals_count_their_rsa_operations() {
    let [k1, k2] = other_keys();
    let keys = registry(&[test_key(), k1]);
    let items: Vec<(&str, String)> = ["a", "b", "c"]
        .into_iter()
        .map(|item| (item, seal_for(&k2.1, item.as_bytes())))
        .collect();
    let ss = sealed_secret(&items);
    let mock = Mock::default();
    let ss_json = serde_json::to_value(&ss).unwrap();
    mock.on(Method::GET, SECRET, &[not_found()])
        .on(Method::PUT, STATUS, &[(200, ss_json)]);
    let ctx = context(&mock, keys);

    let err = reconcile(Arc::new(ss), ctx.clone()).await.unwrap_err();

    assert!(matches!(err, ReconcileError::Unseal(_)), "{err:?}");
    assert_eq!(ctx.metrics.rsa_decryptions.get(), 2 * 3);
}

/// Key Secrets are written behind the leader's fence too: a replica no longer sure to lead
/// (closed fence: frozen past its lease) sends nothing, where an open fence writes the key.
#[tokio::test]
async fn key_generation_is_fenced() {
    const KEYS: &str = "/api/v1/namespaces/kube-system/secrets";
    let mock = Mock::default();
    mock.on(
        Method::POST,
        KEYS,
        &[(
            201,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sealed-secrets-keyabcde", "namespace": "kube-system"}}),
        )],
    );
    let keys = registry(&[]);

    let closed = crate::leader::Fence::elected();
    let err = keys.generate(&mock.client(), &closed).await.unwrap_err();
    assert!(
        matches!(err, crate::keys::KeyGenError::NotLeading(_)),
        "{err:?}"
    );
    assert!(mock.calls().is_empty(), "{:?}", mock.calls());
    assert!(keys.snapshot().keys.is_empty());

    keys.generate(&mock.client(), &crate::leader::Fence::open())
        .await
        .unwrap();
    assert_eq!(mock.calls(), vec![format!("POST {KEYS}")]);
    assert_eq!(keys.snapshot().keys.len(), 1);
}

/// What the watch cache hands a reconcile: metadata only.
fn cached(ss: &SealedSecret) -> Arc<kube::core::PartialObjectMeta<SealedSecret>> {
    use kube::core::PartialObjectMetaExt as _;
    Arc::new(cached_metadata(ss.metadata.clone()).into_request_partial::<SealedSecret>())
}

#[tokio::test]
async fn the_whole_object_is_read_at_reconcile_and_one_above_the_limit_is_not_unsealed() {
    let (keys, ss) = keys_and_sealed_secret();
    let ss_json = serde_json::to_value(&ss).unwrap();
    let size = u64::try_from(serde_json::to_vec(&ss_json).unwrap().len()).unwrap();

    // One byte above the limit: read, refused, reported; nothing decrypted, no Secret
    // written (its Secret is read beside it, before the size is known).
    let mock = Mock::default();
    mock.on(Method::GET, SEALED, &[(200, ss_json.clone())]).on(
        Method::PUT,
        STATUS,
        &[(200, echo(&ss_json))],
    );
    let ctx = context_limited(&mock, keys.clone(), size - 1);
    let err = reconcile_cached(cached(&ss), ctx.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReconcileError::TooLarge { size: s, limit: l, .. } if s == size && l == size - 1),
        "{err:?}"
    );
    let mut calls = mock.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            format!("GET {SECRET}"),
            format!("GET {SEALED}"),
            format!("PUT {STATUS}")
        ]
    );
    let (value, message) = synced(&mock.bodies(Method::PUT, STATUS)[0]["status"]);
    assert_eq!(value, "False");
    assert!(
        message.contains(&format!(
            "is {size} bytes, above this controller's limit of {} bytes (--max-sealed-secret-size)",
            size - 1
        )),
        "{message}"
    );
    assert_eq!(mock.event_reasons(), ["ErrUnsealFailed"]);
    assert_eq!(ctx.metrics.rsa_decryptions.get(), 0);
    assert_eq!(
        error_policy(cached(&ss), &err, ctx),
        Action::await_change(),
        "not retried until it changes"
    );

    // At the limit: unsealed as usual, from the object read (the cache has no values).
    let mock = Mock::default();
    mock.on(Method::GET, SEALED, &[(200, ss_json.clone())])
        .on(Method::GET, SECRET, &[not_found()])
        .on(
            Method::POST,
            SECRETS,
            &[(
                201,
                json!({"metadata": {"name": NAME, "uid": "secret-uid"}}),
            )],
        )
        .on(Method::PUT, STATUS, &[(200, echo(&ss_json))]);
    let ctx = context_limited(&mock, keys, size);
    reconcile_cached(cached(&ss), ctx).await.unwrap();
    let created: Secret =
        serde_json::from_value(mock.bodies(Method::POST, SECRETS)[0].clone()).unwrap();
    assert_eq!(
        created.data.unwrap()["password"],
        ByteString(b"hunter2".to_vec())
    );
    assert_eq!(
        created.metadata.annotations, None,
        "nothing of ours on the Secret"
    );

    // Deleted meanwhile: nothing to do, nothing written (the Secret was read beside it).
    let mock = Mock::default();
    mock.on(Method::GET, SEALED, &[not_found()]);
    let (keys, _) = keys_and_sealed_secret();
    let ctx = context(&mock, keys);
    assert_eq!(
        reconcile_cached(cached(&ss), ctx).await.unwrap(),
        Action::await_change()
    );
    let mut calls = mock.calls();
    calls.sort();
    assert_eq!(calls, [format!("GET {SECRET}"), format!("GET {SEALED}")]);
}

#[tokio::test]
async fn a_crd_that_prunes_the_status_digest_is_noticed_and_costs_no_status_writes() {
    let (keys, ss) = keys_and_sealed_secret();
    let ss_json = serde_json::to_value(&ss).unwrap();
    // The Secret as created, for the second pass.
    let mut existing = finish_desired(desired_metadata_only(&ss));
    existing.data = Some([("password".to_owned(), ByteString(b"hunter2".to_vec()))].into());
    existing.metadata.uid = Some("secret-uid".into());
    let mock = Mock::default();
    mock.on(
        Method::GET,
        SECRET,
        &[not_found(), (200, serde_json::to_value(&existing).unwrap())],
    )
    .on(
        Method::POST,
        SECRETS,
        &[(
            201,
            json!({"metadata": {"name": NAME, "uid": "secret-uid"}}),
        )],
    )
    // Upstream's CRD: the answer has the status without the field we sent.
    .on(Method::PUT, STATUS, &[(200, echo(&ss_json))]);
    let ctx = context(&mock, keys);
    assert!(ctx.records_digest());
    reconcile(Arc::new(ss.clone()), ctx.clone()).await.unwrap();
    let sent: SealedSecretStatus =
        serde_json::from_value(mock.bodies(Method::PUT, STATUS)[0]["status"].clone()).unwrap();
    assert!(
        sent.source_digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{sent:?}"
    );
    assert!(!ctx.records_digest(), "the pruned field was noticed");

    // The next pass (a restart's, say) finds the status as the API server kept it: it
    // decrypts again, as upstream does, and writes no status only to record a digest.
    let mut stored = ss;
    stored.status = Some(SealedSecretStatus {
        source_digest: None,
        ..sent
    });
    reconcile(Arc::new(stored), ctx.clone()).await.unwrap();
    assert_eq!(
        mock.bodies(Method::PUT, STATUS).len(),
        1,
        "{:?}",
        mock.calls()
    );
    assert_eq!(ctx.metrics.rsa_decryptions.get(), 2);
}
