//! The key-wrapping metrics, read at scrape time from the backend's own counters
//! ([`Wrapper::stats`](sealed_secrets_kms::Wrapper::stats)) and from the keys that do not
//! open: calls, errors and time spent per backend, and `keys_unusable` per key Secret.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::KeyWrap;

/// Label pairs, the shape of `crate::metrics::Labels` (not imported: the metrics registry
/// imports this module's collector).
type Labels = Vec<(&'static str, String)>;

/// Where the collector finds the key-wrapping state once the controller has set it up.
pub type KeyWrapSlot = Arc<OnceLock<Arc<KeyWrap>>>;

/// Encodes the key-wrapping metrics (nothing before the slot is set).
#[derive(Debug)]
pub struct KeyWrapCollector(pub KeyWrapSlot);

impl Collector for KeyWrapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(kw) = self.0.get() else {
            return Ok(());
        };
        if let Some(w) = kw.wrapper() {
            let stats = w.stats();
            let backend = w.backend().to_owned();
            let c = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "key_wrap_calls",
                "Calls to the key-wrapping backend, by backend and operation (wrap, unwrap).",
                None,
                c.metric_type(),
            )?;
            for (op, n) in [("wrap", stats.wraps()), ("unwrap", stats.unwraps())] {
                let labels: Labels = vec![("backend", backend.clone()), ("operation", op.into())];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
            let mut family = encoder.encode_descriptor(
                "key_wrap_errors",
                "Failed calls to the key-wrapping backend.",
                None,
                c.metric_type(),
            )?;
            let labels: Labels = vec![("backend", backend.clone())];
            ConstCounter::new(stats.errors()).encode(family.encode_family(&labels)?)?;
            let mut family = encoder.encode_descriptor(
                "key_wrap_duration_seconds",
                "Time spent waiting for the key-wrapping backend, summed over calls (divide by key_wrap_calls for the mean latency).",
                None,
                c.metric_type(),
            )?;
            ConstCounter::new(stats.busy().as_secs_f64()).encode(family.encode_family(&labels)?)?;
        }
        let unusable = kw.unusable();
        let g = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "keys_unusable",
            "Active key Secrets whose wrapped key does not open (1 each), by Secret and whether retrying may succeed by itself.",
            None,
            g.metric_type(),
        )?;
        for (name, u) in unusable {
            let labels: Labels = vec![("secret", name), ("transient", u.transient.to_string())];
            ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
