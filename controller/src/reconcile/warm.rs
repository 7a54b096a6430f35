//! Restarts without reading each object again (docs/design.md, "Restarts"): while the
//! SealedSecret watch (metadata only) makes its first list, which queues nothing, the
//! controller lists the SealedSecrets whole, in pages decoded one object at a time, and
//! checks each against the metadata of its Secret from the Secret watch's first list
//! ([`unchanged_at_start`]). The objects a reconcile would leave as they are get their
//! metrics as a reconcile would give them and are not queued; only the others are read
//! again and reconciled. Nothing of a listed object is kept but two hashes (the "spec
//! changed" filter's entry, [`spec_hashes`]) until the watch's list is done.
//!
//! The order closes the windows in which a change could be missed: the Secret facts come
//! from the first list of the watch that reports Secret deletions, so a Secret deleted after
//! that list is reported by it (and its SealedSecret reconciled); an object is skipped only
//! when the watch's cache holds the very generation (and uid) the check found in sync, so one
//! changed after its check, or created meanwhile and not checked at all, is reconciled.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use futures::AsyncReadExt as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource as _;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use sealed_secrets_api::{SealedSecret, annotations};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::context::{Context, lock};
use super::decide::start_secret_facts;
use super::plan::{StartFacts, unchanged_at_start};
use super::spec_hash::spec_hashes;
use crate::keys::KeySnapshot;

/// SealedSecrets per page of the start-up list. The API server spends about 17 ms on each
/// page beyond its objects (at 50,000 objects: 6.4 s in pages of 500, 5.1 s in pages of
/// 2,000, 4.3 s unpaged); pages bound how long one request runs on a slow API server and
/// the page held in memory ([`PAGE_BUFFER`]).
const PAGE_SIZE: u32 = 2000;

/// Bytes of a page read whole before decoding (a page of 2,000 SealedSecrets of three
/// RSA-4096 values is about 7 MB): decoding from memory, with managedFields skipped, takes
/// about a quarter of the time a reader over the stream takes. A larger page is decoded as it arrives.
const PAGE_BUFFER: usize = 16 * 1024 * 1024;

/// Bytes of a listed object's size (its text in the list) that may differ from what a GET
/// serves: objects that close to the size limit are left to a full reconcile.
const SIZE_SLACK: u64 = 64 * 1024 + 1024;

/// Metadata of the Secrets that may be produced by a SealedSecret, by namespace and name.
pub(super) type SecretFacts = HashMap<(String, String), ObjectMeta>;

/// Collects [`SecretFacts`] from the Secret watch's first complete list and hands them over
/// once (later lists are not needed: a running controller learns of changes by events).
pub(super) struct FirstSecretList {
    facts: SecretFacts,
    done: Option<tokio::sync::oneshot::Sender<SecretFacts>>,
}

impl FirstSecretList {
    pub(super) fn new() -> (Self, tokio::sync::oneshot::Receiver<SecretFacts>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            Self {
                facts: HashMap::new(),
                done: Some(tx),
            },
            rx,
        )
    }

    pub(super) fn observe(&mut self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        if self.done.is_none() {
            return;
        }
        match event {
            // A list started again (after an error): start over.
            watcher::Event::Init => self.facts.clear(),
            watcher::Event::InitApply(s) => {
                if let Some(meta) = start_secret_facts(&s.metadata) {
                    let key = (
                        meta.namespace.clone().unwrap_or_default(),
                        meta.name.clone().unwrap_or_default(),
                    );
                    self.facts.insert(key, meta);
                }
            }
            watcher::Event::InitDone => {
                if let Some(tx) = self.done.take() {
                    // The receiver is gone only when the reconcile loop stopped.
                    let _ = tx.send(std::mem::take(&mut self.facts));
                }
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {}
        }
    }
}

/// A SealedSecret found in sync at start-up: what a reconcile would have recorded of it.
struct InSync {
    hashes: (u64, u64),
    namespace: String,
    name: String,
    instance: String,
    uid: String,
    secret_uid: String,
}

/// Checks every SealedSecret of `namespace` (`None`: all) against `secrets`; returns the
/// "spec changed" filter's entries of those found in sync (not to be reconciled). A failed
/// list only costs the shortcut: whatever was not checked is reconciled as usual.
pub(super) async fn in_sync_at_start(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    secrets: SecretFacts,
) -> HashMap<u64, u64> {
    let started = std::time::Instant::now();
    if secrets.is_empty() {
        // No Secret to be in sync with (a cold start): nothing to list.
        tracing::info!("start-up check: no Secret produced by a SealedSecret yet");
        return HashMap::new();
    }
    let secrets = Arc::new(secrets);
    let mut seed = HashMap::new();
    let mut continue_token: Option<String> = None;
    let mut listed = 0u64;
    loop {
        let page = match list_page(ctx, namespace, &secrets, continue_token.as_deref()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "start-up check of SealedSecrets failed; reconciling the rest one by one");
                break;
            }
        };
        listed += page.listed;
        for s in page.in_sync {
            record(ctx, &s);
            seed.insert(s.hashes.0, s.hashes.1);
        }
        match page.continue_token {
            Some(t) if !t.is_empty() => continue_token = Some(t),
            _ => break,
        }
    }
    tracing::info!(
        listed,
        in_sync = seed.len(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "start-up check: SealedSecrets already in sync are not read again"
    );
    seed
}

/// What a reconcile that changes nothing leaves behind: the request counted, the Synced
/// metric, and (`--old-gc-behavior`) the Secret it produced.
fn record(ctx: &Context, s: &InSync) {
    tracing::debug!(sealed_secret = %format!("{}/{}", s.namespace, s.name), "source digest matches; in sync at start-up, not read again");
    ctx.metrics.unseal_requests.inc();
    ctx.metrics
        .set_condition(&s.namespace, &s.name, &s.instance, "True");
    if ctx.settings.old_gc_behavior {
        lock(&ctx.produced).insert(
            (s.namespace.clone(), s.name.clone()),
            (s.uid.clone(), s.secret_uid.clone()),
        );
    }
}

#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error("listing SealedSecrets: {0}")]
    Api(#[from] kube::Error),
    #[error("reading the list: {0}")]
    Read(#[from] std::io::Error),
    #[error("decoding the list: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the decoding task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

struct Page {
    listed: u64,
    in_sync: Vec<InSync>,
    continue_token: Option<String>,
}

/// One page of the list, decoded on the blocking pool one object at a time. A page of up to
/// [`PAGE_BUFFER`] bytes is read whole and decoded from memory; a larger one (objects a
/// tenant made large) is decoded as it arrives, so that memory holds the buffer, one object
/// and a few chunks, whatever the page's size.
async fn list_page(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    secrets: &Arc<SecretFacts>,
    continue_token: Option<&str>,
) -> Result<Page, ListError> {
    let mut lp = ListParams::default().limit(PAGE_SIZE);
    let selector = ctx.settings.sealed_secret_selector();
    if !selector.is_empty() {
        lp = lp.labels(&selector);
    }
    if let Some(t) = continue_token {
        lp = lp.continue_token(t);
    }
    let request = kube::core::Request::new(SealedSecret::url_path(&(), namespace))
        .list(&lp)
        .map_err(kube::Error::BuildRequest)?;
    let mut body = ctx.client.request_stream(request).await?;
    let checker = Checker {
        secrets: secrets.clone(),
        keys: ctx.keys.snapshot(),
        facts: StartFacts {
            size: 0,
            max_size: ctx.settings.max_sealed_secret_size,
            size_slack: SIZE_SLACK,
            update_status: ctx.settings.update_status,
            allow_service_account_tokens: ctx.settings.allow_service_account_tokens,
        },
    };
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ended = false;
    while head.len() < PAGE_BUFFER {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            ended = true;
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if ended {
        let decode = tokio::task::spawn_blocking(move || {
            let mut de = serde_json::Deserializer::from_slice(&head);
            Ok::<_, ListError>(PageSeed { checker: &checker }.deserialize(&mut de)?)
        });
        return decode.await?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let decode = tokio::task::spawn_blocking(move || {
        let rest = ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let reader =
            std::io::BufReader::with_capacity(64 * 1024, std::io::Cursor::new(head).chain(rest));
        let mut de = serde_json::Deserializer::from_reader(reader);
        Ok::<_, ListError>(PageSeed { checker: &checker }.deserialize(&mut de)?)
    });
    let sent = async {
        loop {
            let n = body.read(&mut buf).await?;
            if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                return Ok::<_, ListError>(());
            }
        }
    }
    .await;
    drop(tx);
    let page = decode.await??;
    sent?;
    Ok(page)
}

/// What the check decodes of a listed SealedSecret: all of it but `metadata.managedFields`,
/// which nothing here reads and which would otherwise be built into JSON trees (most of the
/// time spent decoding a listed object).
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(default)]
    metadata: ListedMeta,
    spec: sealed_secrets_api::SealedSecretSpec,
    #[serde(default)]
    status: Option<sealed_secrets_api::SealedSecretStatus>,
}

/// `ObjectMeta` without `managedFields` (an unknown field, skipped unparsed).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListedMeta {
    annotations: Option<std::collections::BTreeMap<String, String>>,
    creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl From<Listed> for SealedSecret {
    fn from(l: Listed) -> Self {
        let m = l.metadata;
        SealedSecret {
            metadata: ObjectMeta {
                annotations: m.annotations,
                creation_timestamp: m.creation_timestamp,
                deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                deletion_timestamp: m.deletion_timestamp,
                finalizers: m.finalizers,
                generate_name: m.generate_name,
                generation: m.generation,
                labels: m.labels,
                managed_fields: None,
                name: m.name,
                namespace: m.namespace,
                owner_references: m.owner_references,
                resource_version: m.resource_version,
                self_link: m.self_link,
                uid: m.uid,
            },
            spec: l.spec,
            status: l.status,
        }
    }
}

/// Decides each listed object (on the blocking pool).
struct Checker {
    secrets: Arc<SecretFacts>,
    keys: Arc<KeySnapshot>,
    facts: StartFacts,
}

impl Checker {
    fn check(&self, ss: &SealedSecret, size: u64) -> Option<InSync> {
        let m = &ss.metadata;
        let key = (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        );
        let secret = self.secrets.get(&key);
        let facts = StartFacts { size, ..self.facts };
        let present = |fp: &_| self.keys.ring.holds(fp);
        if !unchanged_at_start(ss, secret, present, facts) {
            return None;
        }
        Some(InSync {
            hashes: spec_hashes(m),
            instance: m
                .labels
                .as_ref()
                .and_then(|l| l.get(annotations::APP_INSTANCE_LABEL))
                .cloned()
                .unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            secret_uid: secret.and_then(|s| s.uid.clone()).unwrap_or_default(),
            namespace: key.0,
            name: key.1,
        })
    }
}

/// A blocking reader over the chunks the async side receives.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The list object: `items` decoded one by one, `metadata.continue` kept, the rest skipped.
struct PageSeed<'a> {
    checker: &'a Checker,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = Page;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Page, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = Page;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a SealedSecretList")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
        let mut page = Page {
            listed: 0,
            in_sync: Vec::new(),
            continue_token: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" => map.next_value_seed(Items {
                    checker: self.checker,
                    page: &mut page,
                })?,
                "metadata" => {
                    let meta: ListMetaContinue = map.next_value()?;
                    page.continue_token = meta.continue_;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

#[derive(serde::Deserialize)]
struct ListMetaContinue {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

struct Items<'a, 'p> {
    checker: &'a Checker,
    page: &'p mut Page,
}

impl<'de> DeserializeSeed<'de> for Items<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of SealedSecrets")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Each object is taken as the text it was listed as (its size), then decoded. One
        // that does not decode fails the page: the rest is reconciled one by one (and that
        // reconcile reports the object).
        while let Some(raw) = seq.next_element::<Box<serde_json::value::RawValue>>()? {
            self.page.listed += 1;
            let size = u64::try_from(raw.get().len()).unwrap_or(u64::MAX);
            let listed: Listed =
                serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
            if let Some(s) = self.checker.check(&listed.into(), size) {
                self.page.in_sync.push(s);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listed object as the API server serves it, with every metadata field set.
    fn listed_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {
                "annotations": {"sealedsecrets.bitnami.com/managed": "true"},
                "creationTimestamp": "2026-12-07T06:14:05Z",
                "deletionGracePeriodSeconds": 30,
                "deletionTimestamp": "2026-12-07T07:14:05Z",
                "finalizers": ["example.com/keep"],
                "generateName": "s-",
                "generation": 3,
                "labels": {"app.kubernetes.io/instance": "web"},
                "managedFields": [{"apiVersion": "bitnami.com/v1alpha1", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:encryptedData": {"f:a": {}}}},
                    "manager": "kubectl", "operation": "Update", "time": "2026-12-07T06:14:05Z"}],
                "name": "s-1",
                "namespace": "team",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1"}],
                "resourceVersion": "42",
                "selfLink": "/apis/bitnami.com/v1alpha1/namespaces/team/sealedsecrets/s-1",
                "uid": "0b0c7d9e-2f0a-4a53-9d4f-5b6f1f4b9f10"
            },
            "spec": {"encryptedData": {"a": "AgBy3i4OJSWK+PiTySYZZA=="},
                     "template": {"metadata": {"name": "s-1", "labels": {"x": "y"}}, "type": "Opaque"}},
            "status": {"conditions": [{"status": "True", "type": "Synced"}], "observedGeneration": 3}
        })
    }

    #[test]
    fn a_listed_object_is_the_whole_object_but_its_managed_fields() {
        let json = listed_json();
        let mut whole: SealedSecret = serde_json::from_value(json.clone()).unwrap();
        let listed: Listed = serde_json::from_value(json).unwrap();
        let listed = SealedSecret::from(listed);
        assert!(whole.metadata.managed_fields.take().is_some());
        assert_eq!(listed, whole);
    }
}
