//! The key-backend metrics, read at scrape time from the token's own counters and from the
//! key Secrets that cannot be used: calls, errors and time spent for the `pkcs11` backend
//! (in the style of the key-wrapping metrics), decryptions apart, and `key_backend_unusable`
//! per key Secret.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::TokenKeys;

/// Label pairs, the shape of `crate::metrics::Labels`.
type Labels = Vec<(&'static str, String)>;

/// The backend label of the token backend.
const BACKEND: &str = "pkcs11";

/// Where the collector finds the token backend once the controller has set it up.
pub type TokenKeysSlot = Arc<OnceLock<Arc<TokenKeys>>>;

/// Encodes the key-backend metrics (nothing for the in-memory backend).
#[derive(Debug)]
pub struct TokenKeysCollector(pub TokenKeysSlot);

impl Collector for TokenKeysCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(tk) = self.0.get() else {
            return Ok(());
        };
        let g = ConstGauge::new(0i64);
        // Also with the in-memory backend: a token key Secret it cannot use is reported.
        let mut family = encoder.encode_descriptor(
            "key_backend_unusable",
            "Active key Secrets whose key is held by the key backend and cannot be used (1 each), by Secret.",
            None,
            g.metric_type(),
        )?;
        for name in tk.unusable().into_keys() {
            let labels: Labels = vec![("backend", BACKEND.to_owned()), ("secret", name)];
            ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        }
        if !tk.enabled() {
            return Ok(());
        }
        let c = ConstCounter::new(0u64);
        let backend: Labels = vec![("backend", BACKEND.to_owned())];
        let (ops, errors, busy) = tk
            .token_stats()
            .map_or((0, 0, 0.0), |(_, o, e, b)| (o, e, b.as_secs_f64()));
        let decrypts = tk.counters().decryptions();
        let mut family = encoder.encode_descriptor(
            "key_backend_calls",
            "Calls to the key backend, by backend and operation (decrypt: one per RSA session key unwrapped; other: lookups, generations, signatures).",
            None,
            c.metric_type(),
        )?;
        for (op, n) in [
            ("decrypt", decrypts),
            ("other", ops.saturating_sub(decrypts)),
        ] {
            let labels: Labels = vec![("backend", BACKEND.to_owned()), ("operation", op.into())];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "key_backend_errors",
            "Failed calls to the key backend (a decryption with a key that does not fit included).",
            None,
            c.metric_type(),
        )?;
        ConstCounter::new(errors).encode(family.encode_family(&backend)?)?;
        let mut family = encoder.encode_descriptor(
            "key_backend_duration_seconds",
            "Time spent in the key backend, summed over calls (divide by key_backend_calls for the mean latency).",
            None,
            c.metric_type(),
        )?;
        ConstCounter::new(busy).encode(family.encode_family(&backend)?)?;
        let mut family = encoder.encode_descriptor(
            "key_backend_up",
            "1 when the key backend (the PKCS#11 token) is open, 0 when it does not open.",
            None,
            g.metric_type(),
        )?;
        let up = i64::from(tk.token_stats().is_some());
        ConstGauge::new(up).encode(family.encode_family(&backend)?)?;
        Ok(())
    }
}
