//! Kubernetes Events on SealedSecrets (§4.7), written as core `v1` Events because that is
//! what upstream's RBAC grants (`""` events create/patch). An Event that cannot be written is
//! logged and otherwise ignored: it must never fail a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use rand::Rng as _;
use sealed_secrets_api::{API_VERSION, KIND, SealedSecret};

/// Upstream's event source component.
pub const COMPONENT: &str = "sealed-secrets";

/// Reasons upstream uses.
pub const REASON_UNSEALED: &str = "Unsealed";
pub const REASON_UNSEAL_FAILED: &str = "ErrUnsealFailed";
pub const REASON_UPDATE_FAILED: &str = "ErrUpdateFailed";

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Writes events for one controller instance.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    instance: String,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(client: kube::Client, instance: String) -> Self {
        Self { client, instance }
    }

    /// Publishes an Event about `ss`. `message` must not contain secret values (callers pass
    /// error messages, which name items and objects only).
    pub async fn publish(&self, ss: &SealedSecret, type_: EventType, reason: &str, message: &str) {
        let ns = ss.metadata.namespace.clone().unwrap_or_default();
        let name = ss.metadata.name.clone().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let suffix: u64 = rand::rng().random();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{suffix:016x}")),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(API_VERSION.to_owned()),
                kind: Some(KIND.to_owned()),
                name: Some(name),
                namespace: Some(ns.clone()),
                uid: ss.metadata.uid.clone(),
                resource_version: ss.metadata.resource_version.clone(),
                field_path: None,
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(match type_ {
                EventType::Normal => "Normal".to_owned(),
                EventType::Warning => "Warning".to_owned(),
            }),
            source: Some(EventSource {
                component: Some(COMPONENT.to_owned()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => tracing::debug!(namespace = %ns, reason, message, "event recorded"),
            Err(e) => tracing::warn!(namespace = %ns, reason, error = %e, "failed to record event"),
        }
    }
}

/// Publishes an Event about one of the controller's key Secrets in `namespace` (a key that
/// cannot be used, or can again: tiers 1 and 2 of docs/security.md), so that `kubectl
/// describe secret` shows it. `message` names the failure, never key material. Logged and
/// otherwise ignored when it cannot be written, as [`Recorder::publish`].
pub async fn publish_on_key_secret(
    client: &kube::Client,
    namespace: &str,
    secret: &Secret,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let suffix: u64 = rand::rng().random();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{suffix:016x}")),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Secret".to_owned()),
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            uid: secret.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(type_.to_owned()),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(reason, error = %e, "failed to record event");
    }
}
