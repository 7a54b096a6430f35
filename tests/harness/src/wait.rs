//! Waiting for what another process writes (objects, logs, metrics): every suite polls through
//! these, never asserts on the first look, because CI machines are busy 2-core boxes where the
//! controller may write a moment after the change a test already saw.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] and [`eventually_blocking`] look again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Some`, and returns that; panics after `timeout`, naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for tests that block (no async runtime, or a blocking client).
pub fn eventually_blocking<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// The sum of every sample of metric `name` (all label sets) in a Prometheus text exposition;
/// 0 when there is none.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_every_label_set_and_only_that_metric() {
        let text = "# HELP m x\nm{a=\"1\"} 2\nm{a=\"2\"} 3.5\nm_total 7\nm 1\n";
        assert_eq!(metric_sum(text, "m"), 6.5);
        assert_eq!(metric_sum(text, "m_total"), 7.0);
        assert_eq!(metric_sum(text, "absent"), 0.0);
    }

    #[test]
    fn eventually_blocking_returns_the_first_value_and_times_out_naming_what() {
        let mut n = 0;
        assert_eq!(
            eventually_blocking("n to reach 3", Duration::from_secs(5), || {
                n += 1;
                (n >= 3).then_some(n)
            }),
            3
        );
        let panic = std::panic::catch_unwind(|| {
            eventually_blocking::<()>("never", Duration::from_millis(120), || None)
        })
        .unwrap_err();
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("waiting for never"), "{msg}");
    }
}
