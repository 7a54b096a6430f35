//! Restarts without reading each object again (docs/design.md, "Restarts"): while the
//! SealedSecret watch (metadata only) makes its first list, which queues nothing, the
//! controller lists the SealedSecrets whole, in pages split into objects as they arrive, and
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
use std::sync::Arc;

use futures::AsyncReadExt as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource as _;
use kube::api::ListParams;
use kube::runtime::watcher;
use sealed_secrets_api::list_items::{FeedError, ListSplitError, ListSplitter};
use sealed_secrets_api::{SealedSecret, annotations};

use super::context::{Context, lock};
use super::decide::start_secret_facts;
use super::lean_meta::{LeanMeta, MetaWithoutManagedFields};
use super::plan::{StartFacts, unchanged_at_start};
use super::spec_hash::spec_hashes;
use crate::keys::KeySnapshot;

/// SealedSecrets per page of the start-up list. The API server spends about 17 ms on each
/// page beyond its objects (at 50,000 objects: 6.4 s in pages of 500, 5.1 s in pages of
/// 2,000, 4.3 s unpaged); pages bound how long one request runs on a slow API server. A
/// page is never held whole ([`list_page`]).
const PAGE_SIZE: u32 = 2000;

/// Bytes one listed object may have in the start-up check's split ([`ListSplitter`]): far
/// above etcd's default request limit (1.5 MiB), so that in practice only a broken list meets
/// it (then the check stops and the rest is reconciled one by one).
const ITEM_LIMIT: usize = 32 * 1024 * 1024;

/// Bytes of a listed object's size (its text in the list) that may differ from what a GET
/// serves: objects that close to the size limit are left to a full reconcile.
const SIZE_SLACK: u64 = 64 * 1024 + 1024;

/// Metadata of the Secrets that may be produced by a SealedSecret, by namespace and name.
pub(super) type SecretFacts = HashMap<(String, String), SecretFact>;

/// What the start-up check reads of a Secret's metadata ([`start_secret_facts`]), its name and
/// namespace being the map's key. A whole `ObjectMeta` has eleven fields more and is several
/// times its size, and the map holds one for every Secret at the restart's peak (at 10,000
/// objects its table was 7 MB of the peak, a third of it empty slots).
#[derive(Debug)]
pub(super) struct SecretFact {
    uid: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
    owner_references: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
}

impl SecretFact {
    fn new(meta: ObjectMeta) -> ((String, String), Self) {
        let key = (
            meta.namespace.unwrap_or_default(),
            meta.name.unwrap_or_default(),
        );
        let fact = Self {
            uid: meta.uid,
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: meta.owner_references,
        };
        (key, fact)
    }

    /// The metadata [`start_secret_facts`] kept, as the check reads it.
    fn meta(&self, (namespace, name): &(String, String)) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: self.uid.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            owner_references: self.owner_references.clone(),
            ..ObjectMeta::default()
        }
    }
}

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

    pub(super) fn observe(&mut self, event: &watcher::Event<LeanMeta<Secret>>) {
        if self.done.is_none() {
            return;
        }
        match event {
            // A list started again (after an error): start over.
            watcher::Event::Init => self.facts.clear(),
            watcher::Event::InitApply(s) => {
                if let Some(meta) = start_secret_facts(&s.metadata) {
                    let (key, fact) = SecretFact::new(meta);
                    self.facts.insert(key, fact);
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
    #[error("splitting the list: {0}")]
    Split(#[from] ListSplitError),
    #[error("the decoding task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

struct Page {
    listed: u64,
    in_sync: Vec<InSync>,
    continue_token: Option<String>,
}

/// One page of the list, split into its objects as it arrives ([`ListSplitter`]), each
/// decoded from its own bytes and checked on the blocking pool: memory holds a few chunks and
/// one object, whatever the page's size, and decoding from memory takes about a quarter of
/// the time a reader over the stream takes.
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
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let decode = tokio::task::spawn_blocking(move || check_page(rx, &checker));
    let mut buf = vec![0u8; 64 * 1024];
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

/// Splits the chunks of one page as they arrive and checks each object (blocking).
fn check_page(
    mut chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    checker: &Checker,
) -> Result<Page, ListError> {
    let mut split = ListSplitter::new(ITEM_LIMIT);
    let mut in_sync = Vec::new();
    while let Some(chunk) = chunks.blocking_recv() {
        // An object that does not decode fails the page: the rest is reconciled one by one
        // (and that reconcile reports the object).
        split
            .feed(&chunk, |object| {
                let size = u64::try_from(object.len()).unwrap_or(u64::MAX);
                let listed: Listed = serde_json::from_slice(object)?;
                if let Some(s) = checker.check(&listed.into(), size) {
                    in_sync.push(s);
                }
                Ok(())
            })
            .map_err(|e| match e {
                FeedError::List(e) => ListError::Split(e),
                FeedError::Item(e) => ListError::Decode(e),
            })?;
    }
    let listed = split.items();
    let rest: ListRest = serde_json::from_slice(&split.finish()?)?;
    Ok(Page {
        listed,
        in_sync,
        continue_token: rest.metadata.continue_,
    })
}

/// The list without its items: `metadata.continue` is all the check reads of it.
#[derive(serde::Deserialize)]
struct ListRest {
    #[serde(default)]
    metadata: ListMetaContinue,
}

#[derive(serde::Deserialize, Default)]
struct ListMetaContinue {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

/// What the check decodes of a listed SealedSecret: all of it but `metadata.managedFields`,
/// which nothing here reads and which would otherwise be built into JSON trees (most of the
/// time spent decoding a listed object).
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(default)]
    metadata: MetaWithoutManagedFields,
    spec: sealed_secrets_api::SealedSecretSpec,
    #[serde(default)]
    status: Option<sealed_secrets_api::SealedSecretStatus>,
}

impl From<Listed> for SealedSecret {
    fn from(l: Listed) -> Self {
        SealedSecret {
            metadata: l.metadata.into(),
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
        let fact = self.secrets.get(&key);
        let facts = StartFacts { size, ..self.facts };
        let present = |fp: &_| self.keys.ring.holds(fp);
        if !unchanged_at_start(ss, fact.map(|f| f.meta(&key)), present, facts) {
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
            secret_uid: fact.and_then(|f| f.uid.clone()).unwrap_or_default(),
            namespace: key.0,
            name: key.1,
        })
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
            "metadata": super::super::lean_meta::full_metadata_json(),
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

    /// The check sees exactly what [`start_secret_facts`] keeps of a Secret, though the map
    /// holds less.
    #[test]
    fn a_secret_fact_gives_back_the_kept_metadata() {
        let secret: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "s-1",
            "namespace": "team",
            "uid": "9d1c0c1e-5b7e-4b8e-8d43-0f3c2a9f6c11",
            "resourceVersion": "77",
            "generation": 1,
            "labels": {"app": "web"},
            "annotations": {"sealedsecrets.bitnami.com/managed": "true"},
            "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                "name": "s-1", "uid": "0b0c7d9e", "controller": true}],
            "managedFields": [{"manager": "sealed-secrets", "operation": "Update"}]
        }))
        .unwrap();
        let kept = start_secret_facts(&secret).unwrap();
        let (key, fact) = SecretFact::new(kept.clone());
        assert_eq!(key, ("team".to_owned(), "s-1".to_owned()));
        assert_eq!(fact.meta(&key), kept);
    }
}
