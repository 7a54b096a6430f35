//! The migration view of the post-quantum format (`crates/crypto/FORMAT.md` §3): how many
//! values of the SealedSecrets this controller reconciles are in each format right now, the
//! gauge `sealed_values{format}`. Each object's values are counted at each of its reconciles
//! and forgotten when it is deleted, so the sum is exact whatever the number of objects and
//! whether or not a value opens; a restart recounts every object as it reconciles them. The
//! format is read from each value's first bytes (`FORMAT.md` §0): no key, no decryption.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{decode_base64, value_format};

/// The `format` label values, in the order of [`Counts`] (`ValueFormat::as_str`).
pub const FORMATS: [&str; 3] = ["rsa", "rsa-multi", "post-quantum"];

/// Values per format, indexed like [`FORMATS`].
pub type Counts = [u64; 3];

/// Base64 characters read from each value: 32 decode to 24 bytes, enough to tell every
/// format apart (age's 22-byte intro line is the longest marker).
const PREFIX_CHARS: usize = 32;

/// The values of `ss` per format. The legacy `spec.data` blob counts as one RSA value (its
/// items are only known once decrypted); a value that is not base64 is not counted. Pure.
pub fn value_formats(ss: &SealedSecret) -> Counts {
    let mut counts = [0; 3];
    let legacy = ss.spec.data.iter().map(String::as_str);
    let values = ss.spec.encrypted_data.iter().map(|(_, v)| v).chain(legacy);
    for value in values {
        let prefix: String = value
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .take(PREFIX_CHARS)
            .collect();
        let Ok(bytes) = decode_base64(&prefix) else {
            continue;
        };
        let format = value_format(&bytes).as_str();
        if let Some(i) = FORMATS.iter().position(|f| *f == format) {
            counts[i] += 1;
        }
    }
    counts
}

/// The current values per format of every reconciled SealedSecret.
#[derive(Debug, Default)]
pub struct FormatCensus {
    objects: Mutex<HashMap<(String, String), Counts>>,
}

impl FormatCensus {
    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Counts>> {
        match self.objects.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records the values of `ns/name` as of this reconcile.
    pub fn record(&self, ns: &str, name: &str, counts: Counts) {
        self.objects()
            .insert((ns.to_owned(), name.to_owned()), counts);
    }

    /// Forgets a deleted SealedSecret.
    pub fn forget(&self, ns: &str, name: &str) {
        self.objects().remove(&(ns.to_owned(), name.to_owned()));
    }

    /// The sum over every object.
    pub fn totals(&self) -> Counts {
        let mut sum = [0; 3];
        for counts in self.objects().values() {
            for (s, c) in sum.iter_mut().zip(counts) {
                *s += c;
            }
        }
        sum
    }
}

/// Encodes the census as the gauge `sealed_values{format}` at scrape time.
#[derive(Debug)]
pub struct CensusCollector(pub Arc<FormatCensus>);

impl Collector for CensusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "sealed_values",
            "Values in the SealedSecrets this controller reconciles, by format (rsa, rsa-multi, post-quantum), as of each one's last reconcile.",
            None,
            gauge.metric_type(),
        )?;
        for (format, count) in FORMATS.iter().zip(self.0.totals()) {
            let labels: Vec<(&str, String)> = vec![("format", (*format).to_owned())];
            ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sealed_secrets_crypto::{
        PqIdentity, PrivateKey, Scope, encode_base64, seal, seal_multi, seal_pq,
    };

    use super::*;

    #[test]
    fn values_are_counted_by_format_and_objects_replaced_and_forgotten() {
        let rsa = PrivateKey::generate(2048).unwrap();
        let pq = PqIdentity::generate().unwrap();
        let label = Scope::Strict.label("ns", "db");
        let mut ss = SealedSecret::new("db", Default::default());
        let pq_value = || encode_base64(&seal_pq(&[pq.recipient()], &label, b"v").unwrap());
        ss.spec.encrypted_data.insert("a", pq_value());
        ss.spec.encrypted_data.insert("b", pq_value());
        ss.spec.encrypted_data.insert(
            "c",
            encode_base64(&seal(rsa.public_key(), &label, b"v").unwrap()),
        );
        ss.spec.encrypted_data.insert(
            "d",
            encode_base64(&seal_multi(&[rsa.public_key()], &label, b"v").unwrap()),
        );
        ss.spec.encrypted_data.insert("e", "not base64!");
        assert_eq!(value_formats(&ss), [1, 1, 2]);

        let census = FormatCensus::default();
        census.record("ns", "db", value_formats(&ss));
        census.record("ns", "other", [3, 0, 0]);
        assert_eq!(census.totals(), [4, 1, 2]);
        census.record("ns", "db", [0, 0, 5]);
        assert_eq!(
            census.totals(),
            [3, 0, 5],
            "a reconcile replaces the object's counts"
        );
        census.forget("ns", "other");
        assert_eq!(census.totals(), [0, 0, 5]);
    }
}
