//! Key renewal (§4.3): a key at start-up when there is none or it is older than the cutoff,
//! then one every `--key-renew-period`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::shared::Keys;
use crate::tasks::Stop;

/// Whether a key must be generated at startup (§4.3 step 3): no key, or the newest one is
/// older than the cutoff. Pure.
pub fn needs_key_at_startup(newest: Option<SystemTime>, cutoff: Option<SystemTime>) -> bool {
    match (newest, cutoff) {
        (None, _) => true,
        (Some(t), Some(c)) => t < c,
        (Some(_), None) => false,
    }
}

/// How long until the next renewal (§4.4): `period - age(newest)`, clamped at zero; `None`
/// when renewal is disabled (period 0). Pure.
pub fn next_renewal(
    newest: Option<SystemTime>,
    period: Duration,
    now: SystemTime,
) -> Option<Duration> {
    if period.is_zero() {
        return None;
    }
    let age = newest
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default();
    Some(period.saturating_sub(age))
}

/// Renews keys every period while `active` (the leader) is true: sleeps until the newest key
/// is `period` old (re-evaluated whenever the keys change), then generates one. Failures are
/// logged and retried; they never stop the process (§4.4).
pub async fn renewal_loop(
    keys: Arc<Keys>,
    client: kube::Client,
    period: Duration,
    fence: crate::leader::Fence,
    stop: Stop,
) {
    let mut changed = keys.subscribe();
    while !stop.is_requested() {
        let newest = keys.snapshot().newest().map(|k| k.order_time);
        let Some(wait) = next_renewal(newest, period, SystemTime::now()) else {
            // Renewal disabled: nothing to do but SIGUSR1 (handled elsewhere).
            return stop.requested().await;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                match keys.generate(&client, &fence).await {
                    Ok(fp) => tracing::info!(fingerprint = %fp, "key renewed"),
                    Err(e) => {
                        tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "key renewal failed; retrying in 30s");
                        stop.clone().ending(tokio::time::sleep(Duration::from_secs(30))).await;
                    }
                }
            }
            r = changed.changed() => {
                if r.is_err() {
                    return;
                }
            }
            // Only the wait is interrupted: a renewal under way finishes first.
            () = stop.clone().requested() => return,
        }
    }
}
