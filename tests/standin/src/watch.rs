//! Watch streams: the initial events or the history replay, then the live changes filtered
//! per watcher, bookmarks, and the stream's end (timeout, injected cut, shutdown).
//!
//! Fan-out costs one filter check per watcher of the changed resource and no copy: every
//! change is one `Arc` broadcast to all watchers, and the object's serialisation is made once
//! (`Obj::json`) and framed into each watcher's event line.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use futures::SinkExt as _;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::list::selectors;
use super::resources::ResourceType;
use super::select::{FieldSelector, LabelSelector};
use super::shared::{Ctx, is_true, lock, render_json, render_metadata_json, wants_metadata};
use super::store::{Change, ChangeKind, Obj};

struct WatchFilter {
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event a watcher with this filter sees for `change`, if any.
    fn classify<'c>(&self, change: &'c Change) -> Option<(&'static str, &'c Obj)> {
        let now = self.matches(&change.object.value);
        match change.kind {
            ChangeKind::Added => now.then_some(("ADDED", &change.object)),
            ChangeKind::Deleted => now.then_some(("DELETED", &change.object)),
            ChangeKind::Modified => {
                let before = change.old.as_ref().is_some_and(|o| self.matches(&o.value));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", &change.object)),
                    (false, true) => Some(("ADDED", &change.object)),
                    (true, false) => Some(("DELETED", &change.object)),
                    (false, false) => None,
                }
            }
        }
    }
}

fn event_line(kind: &str, obj: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": obj}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// `{"type":KIND,"object":OBJECT}` and a newline, around an already serialised object.
fn framed_event(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + kind.len() + 24);
    line.extend_from_slice(br#"{"type":""#);
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(br#"","object":"#);
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

pub(super) fn watch(
    ctx: &Ctx<'_>,
    rt: &ResourceType,
    version: &str,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let q = ctx.query;
    let (labels, fields) = selectors(q)?;
    let filter = WatchFilter {
        ns: ns.filter(|_| rt.namespaced).map(str::to_owned),
        labels,
        fields,
    };
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let bookmarks = is_true(q, "allowWatchBookmarks");
    let send_initial = is_true(q, "sendInitialEvents");
    if send_initial && lock(&ctx.shared.faults).faults.refuse_streaming_lists {
        return Err(ApiError::new(
            422,
            "Invalid",
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0);
    let cut = lock(&ctx.shared.faults).faults.watch_cut_seconds;
    let lifetime = [timeout, (cut > 0).then_some(cut)]
        .into_iter()
        .flatten()
        .min()
        .map(Duration::from_secs)
        // kube-apiserver's default is a random 30-60 minutes; we pick the low end.
        .unwrap_or(Duration::from_secs(1800));
    ctx.shared
        .watches
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let start = lock(&ctx.shared.store).watch(
        rt,
        ns.filter(|_| rt.namespaced),
        if send_initial { None } else { from },
    );
    let rt = rt.clone();
    let version = version.to_owned();
    let metadata_only = wants_metadata(ctx.headers);
    let serialise = move |obj: &Obj, rt: &ResourceType, version: &str| {
        if metadata_only {
            render_metadata_json(obj)
        } else {
            render_json(obj, rt, version)
        }
    };
    let interval = ctx.shared.bookmark_interval;
    let mut shutdown = ctx.shared.shutdown.subscribe();
    tokio::spawn(async move {
        let mut tx = tx;
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            event_line(
                "BOOKMARK",
                json!({"kind": rt.kind, "apiVersion": rt.api_version(&version), "metadata": meta}),
            )
        };
        let start = match start {
            Ok(s) => s,
            Err(e) => {
                // kube-apiserver answers 200 and sends the error as an ERROR event.
                let _ = tx.send(Ok(event_line("ERROR", e.to_status()))).await;
                return;
            }
        };
        let mut last_rv = start.last_rv;
        for change in &start.initial {
            if let Some((kind, obj)) = filter.classify(change)
                && tx
                    .send(Ok(framed_event(kind, &serialise(obj, &rt, &version))))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(Ok(bookmark(last_rv, true))).await.is_err() {
            return;
        }
        let mut events = start.rx;
        let deadline = tokio::time::sleep(lifetime);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(change) => {
                        last_rv = change.rv;
                        if change.res.1 != rt.plural || change.res.0 != rt.group {
                            continue;
                        }
                        if let Some((kind, obj)) = filter.classify(&change)
                            && tx.send(Ok(framed_event(kind, &serialise(obj, &rt, &version)))).await.is_err() {
                                return;
                            }
                    }
                    // A watcher too slow for the broadcast buffer is cut, like an apiserver
                    // dropping a blocked watcher; the client resumes from its last version.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(Ok(bookmark(last_rv, false))).await.is_err() {
                        return;
                    }
                }
                () = &mut deadline => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    let body = Body::from_stream(rx);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
