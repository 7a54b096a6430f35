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
use std::sync::atomic::{AtomicU64, Ordering};

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

/// SealedSecrets per page of the start-up list: each is decoded and dropped in turn, so the
/// page size bounds requests, not memory. The API server spends about 17 ms on each page
/// beyond its objects (at 50,000 objects: 6.4 s in pages of 500, 4.9 s in pages of 5,000,
/// 4.3 s unpaged); pages still bound how long one request runs on a slow API server.
const PAGE_SIZE: u32 = 5000;

/// Bytes of a listed object's size that may differ from what a GET serves (the reader's
/// buffer, below, and the list's formatting): objects that close to the size limit are left
/// to a full reconcile.
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

/// One page of the list, read as it arrives and decoded on the blocking pool one object at
/// a time, so that memory holds one object and a few chunks, whatever the page's size.
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
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
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
    let decode = tokio::task::spawn_blocking(move || {
        let read = Arc::new(AtomicU64::new(0));
        let reader = std::io::BufReader::with_capacity(
            64 * 1024,
            ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
                read: read.clone(),
            },
        );
        let mut de = serde_json::Deserializer::from_reader(reader);
        let page = PageSeed {
            checker: &checker,
            read: &read,
        }
        .deserialize(&mut de)?;
        Ok::<_, ListError>(page)
    });
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

/// A blocking reader over the chunks the async side receives; counts the bytes it hands out.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    read: Arc<AtomicU64>,
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
        self.read
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        Ok(n)
    }
}

/// The list object: `items` decoded one by one, `metadata.continue` kept, the rest skipped.
struct PageSeed<'a> {
    checker: &'a Checker,
    read: &'a AtomicU64,
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
                    read: self.read,
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
    read: &'a AtomicU64,
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
        loop {
            let before = self.read.load(Ordering::Relaxed);
            // An object that does not decode fails the page: the rest is reconciled one by one
            // (and that reconcile reports the object).
            let Some(ss) = seq.next_element::<SealedSecret>()? else {
                return Ok(());
            };
            self.page.listed += 1;
            let size = self.read.load(Ordering::Relaxed).saturating_sub(before);
            if let Some(s) = self.checker.check(&ss, size) {
                self.page.in_sync.push(s);
            }
        }
    }
}
