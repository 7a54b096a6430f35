//! How the SealedSecret watches (the reconcile loop's and the sharder's) take their first
//! list (docs/design.md, "Restarts"): as a stream of events (`sendInitialEvents`, the API
//! server's WatchList feature) where the API server serves that, else in pages.
//!
//! A stream is decoded one object at a time, so no page of a tenant's objects is held whole
//! while decoded, and it costs no per-page overhead: at 50,000 SealedSecrets their metadata
//! comes in about 3 s where pages of 100 (small, because a page is held whole) take about
//! 10 s, each page costing the API server a fixed 15-20 ms. API servers before Kubernetes
//! 1.27, or with the feature gate off, refuse such a watch (`resourceVersionMatch` or
//! `sendInitialEvents` forbidden); one that ignored the parameters would never send the
//! bookmark that ends the initial events. So the controller asks, with a selector that
//! matches no object, and takes pages whenever the answer is anything but that bookmark. A
//! "yes" holds for the process (it is the API server's property, not a watch's): the watch
//! of each leadership term and the sharder do not ask again; a "no", perhaps an error of the
//! moment, is asked again next time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

/// Matches no object by construction (the label both set to a value and absent), so the
/// answer to the probe is the end-of-initial-events bookmark alone.
const MATCHES_NOTHING: &str = "sealedsecrets.bitnami.com/streaming-list-probe=x,!sealedsecrets.bitnami.com/streaming-list-probe";

/// How long the API server may take to answer the probe before pages are chosen.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an earlier probe of this process found that the API server streams.
static STREAMS: AtomicBool = AtomicBool::new(false);

/// The annotation of the bookmark that ends a watch's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// How a watch's first list is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialList {
    /// A watch with `sendInitialEvents=true`: objects one by one from the watch cache.
    Stream,
    /// Paged lists (`limit`/`continue`), then a watch.
    Pages,
}

impl InitialList {
    /// `config` set to take its first list this way.
    pub fn apply(self, config: watcher::Config) -> watcher::Config {
        match self {
            Self::Stream => config.streaming_lists(),
            Self::Pages => config,
        }
    }

    /// For logs and the documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Pages => "pages",
        }
    }
}

/// Asks the API server, through `api`, whether it serves a watch's first list as a stream
/// (a stand-in for the API server's own feature gate, which clients cannot read).
pub async fn probe<K>(api: &Api<K>) -> InitialList
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    if STREAMS.load(Ordering::Relaxed) {
        return InitialList::Stream;
    }
    let params = WatchParams::streaming_lists()
        .labels(MATCHES_NOTHING)
        .timeout(u32::try_from(PROBE_TIMEOUT.as_secs()).unwrap_or(10));
    let first = tokio::time::timeout(PROBE_TIMEOUT, async {
        match api.watch(&params, "0").await {
            Ok(stream) => Some(stream.boxed().next().await),
            Err(e) => {
                tracing::debug!(error = %e, "streaming list probe refused");
                None
            }
        }
    })
    .await;
    let answer = match first {
        Ok(Some(Some(event))) => decide(&event),
        // Refused, closed without an event, or no answer in time.
        Ok(_) | Err(_) => InitialList::Pages,
    };
    STREAMS.store(answer == InitialList::Stream, Ordering::Relaxed);
    tracing::info!(
        first_lists = %answer.as_str(),
        "how the watches take their first list"
    );
    answer
}

/// The probe's first answer: only the bookmark that ends the initial events shows that the
/// API server streams them (any object, error or other bookmark does not).
fn decide<K>(first: &Result<WatchEvent<K>, kube::Error>) -> InitialList {
    match first {
        Ok(WatchEvent::Bookmark(b)) if b.metadata.annotations.contains_key(INITIAL_EVENTS_END) => {
            InitialList::Stream
        }
        Ok(WatchEvent::Error(e)) => {
            tracing::debug!(code = e.code, reason = %e.reason, "the streaming list probe was answered with an error");
            InitialList::Pages
        }
        _ => InitialList::Pages,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::watch::{Bookmark, BookmarkMeta};
    use kube::core::{Status, TypeMeta};

    use super::*;

    type Meta = kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>;

    fn bookmark(annotations: &[(&str, &str)]) -> Result<WatchEvent<Meta>, kube::Error> {
        Ok(WatchEvent::Bookmark(Bookmark {
            types: TypeMeta::default(),
            metadata: BookmarkMeta {
                resource_version: "7".into(),
                annotations: annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            },
        }))
    }

    #[test]
    fn only_the_end_of_initial_events_chooses_the_stream() {
        assert_eq!(
            decide(&bookmark(&[(INITIAL_EVENTS_END, "true")])),
            InitialList::Stream
        );
        // A periodic bookmark: the server may have ignored `sendInitialEvents`.
        assert_eq!(decide(&bookmark(&[])), InitialList::Pages);
        // An object: the selector was ignored, or the parameters were.
        assert_eq!(
            decide(&Ok(WatchEvent::Added(Meta::default()))),
            InitialList::Pages
        );
        // What an API server without the feature answers.
        let refused = Status::failure(
            "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            "Invalid",
        )
        .with_code(422);
        assert_eq!(
            decide::<Meta>(&Ok(WatchEvent::Error(refused.boxed()))),
            InitialList::Pages
        );
    }
}
