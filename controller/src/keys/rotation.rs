//! Rotation requests: `kubeseal keys rotate` annotates an active key Secret and the leader
//! generates a new key (beyond upstream, docs/design.md). The annotation and its value format
//! (`RotateRequest`) are owned by `sealed_secrets_api::annotations`, shared with kubeseal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::shared::Keys;
use crate::tasks::Stop;

/// Whether a rotation request must produce a key now. Pure.
///
/// Only a request later than the newest key's ordering time counts, so once a key answered
/// it (its ordering time is after the request) the annotation, which is left in place, is
/// inert on every replica and across restarts. `handled` (the latest request this process
/// already answered) also stops a request stamped in the future by a skewed clock from
/// producing a key on every evaluation. Without any key there is nothing to rotate: startup
/// generates the first key (§4.3 step 3).
pub fn should_rotate(
    requested: Option<SystemTime>,
    newest: Option<SystemTime>,
    handled: Option<SystemTime>,
) -> bool {
    match (requested, newest) {
        (Some(r), Some(n)) => r > n && handled.is_none_or(|h| r > h),
        _ => false,
    }
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Answers rotation requests while this replica leads: whenever a request appears or
/// changes, generates a key exactly like a renewal tick when [`should_rotate`] says so.
/// Failures are logged and retried; they never stop the process.
pub async fn rotation_loop(
    keys: Arc<Keys>,
    client: kube::Client,
    fence: crate::leader::Fence,
    stop: Stop,
) {
    let mut requests = keys.rotation_requests_changed();
    let mut handled: Option<SystemTime> = None;
    while !stop.is_requested() {
        requests.borrow_and_update();
        let requested = keys.latest_rotation_request();
        let newest = keys.snapshot().newest().map(|k| k.order_time);
        if should_rotate(requested, newest, handled) {
            let at = requested.map(rfc3339).unwrap_or_default();
            tracing::info!(requested_at = %at, "key rotation requested: generating a new key");
            match keys.generate(&client, &fence).await {
                Ok(fp) => {
                    tracing::info!(fingerprint = %fp, requested_at = %at, "key rotated on request");
                    handled = requested;
                }
                Err(e) => {
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key rotation failed; retrying in 5s");
                    stop.clone()
                        .ending(tokio::time::sleep(Duration::from_secs(5)))
                        .await;
                    continue;
                }
            }
        }
        // Only the wait is interrupted: a rotation under way finishes first.
        tokio::select! {
            r = requests.changed() => if r.is_err() { return },
            () = stop.clone().requested() => return,
        }
    }
}
