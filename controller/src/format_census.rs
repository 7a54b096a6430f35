//! The migration view of the post-quantum format (`crates/crypto/FORMAT.md` §3): how many
//! values of the SealedSecrets this controller reconciles are in each format right now, the
//! gauge `sealed_values{format}`, and how many of them each key still serves, the gauge
//! `sealed_objects{fingerprint}`. Each object is recorded at each of its reconciles and
//! forgotten when it is deleted, so the sums are exact whatever the number of objects; a
//! restart recounts every object as it reconciles them. The format is read from each value's
//! first bytes (`FORMAT.md` §0): no key, no decryption. The keys of an object are the ones
//! its last reconcile opened its values with, the same set its `status.sourceDigest` records
//! (docs/design.md "Keys an object needs"); they are known without decrypting at a warm
//! restart too, which a per-value count of keys would not be.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use sealed_secrets_api::SealedSecret;
use sealed_secrets_crypto::{Fingerprint, decode_base64, value_format};

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

/// The `fingerprint` label of `sealed_objects` for objects whose keys are not known: their
/// last reconcile did not open them (a fingerprint always starts with `SHA256:`).
pub const UNKNOWN_KEY: &str = "unknown";

/// What the census keeps of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    formats: Counts,
    /// The keys that opened its values at its last reconcile; `None` when it did not open.
    keys: Option<BTreeSet<Fingerprint>>,
}

/// The current values per format, and the keys, of every reconciled SealedSecret.
#[derive(Debug, Default)]
pub struct FormatCensus {
    objects: Mutex<HashMap<(String, String), Entry>>,
}

impl FormatCensus {
    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        match self.objects.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records the values of `ns/name` as of this reconcile, and the keys that opened them
    /// (`None`: the reconcile did not open the object).
    pub fn record(
        &self,
        ns: &str,
        name: &str,
        formats: Counts,
        keys: Option<&BTreeSet<Fingerprint>>,
    ) {
        let entry = Entry {
            formats,
            keys: keys.cloned(),
        };
        self.objects()
            .insert((ns.to_owned(), name.to_owned()), entry);
    }

    /// Forgets a deleted SealedSecret.
    pub fn forget(&self, ns: &str, name: &str) {
        self.objects().remove(&(ns.to_owned(), name.to_owned()));
    }

    /// The sum over every object.
    pub fn totals(&self) -> Counts {
        let mut sum = [0; 3];
        for entry in self.objects().values() {
            for (s, c) in sum.iter_mut().zip(&entry.formats) {
                *s += c;
            }
        }
        sum
    }

    /// Objects per key that opened them: an object opened by two keys (an RSA and a
    /// post-quantum item, or items sealed before and after a rotation) counts under both;
    /// objects whose last reconcile did not open them count under [`UNKNOWN_KEY`] (present
    /// only when there are any).
    pub fn objects_per_key(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for entry in self.objects().values() {
            match &entry.keys {
                Some(keys) => {
                    for fp in keys {
                        *out.entry(fp.as_str().to_owned()).or_insert(0) += 1;
                    }
                }
                None => *out.entry(UNKNOWN_KEY.to_owned()).or_insert(0) += 1,
            }
        }
        out
    }
}

/// Encodes the census as the gauges `sealed_values{format}` and
/// `sealed_objects{fingerprint}` at scrape time.
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
        let mut family = encoder.encode_descriptor(
            "sealed_objects",
            "SealedSecrets this controller reconciles, by fingerprint of a key their last reconcile opened them with (an object opened by several keys counts under each; \"unknown\": not opened).",
            None,
            gauge.metric_type(),
        )?;
        for (fingerprint, count) in self.0.objects_per_key() {
            let labels: Vec<(&str, String)> = vec![("fingerprint", fingerprint)];
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
        census.record("ns", "db", value_formats(&ss), None);
        census.record("ns", "other", [3, 0, 0], None);
        assert_eq!(census.totals(), [4, 1, 2]);
        census.record("ns", "db", [0, 0, 5], None);
        assert_eq!(
            census.totals(),
            [3, 0, 5],
            "a reconcile replaces the object's counts"
        );
        census.forget("ns", "other");
        assert_eq!(census.totals(), [0, 0, 5]);
    }

    fn fp(n: usize) -> Fingerprint {
        let digest = encode_base64(&[u8::try_from(n).unwrap(); 32]);
        format!("SHA256:{}", digest.trim_end_matches('='))
            .parse()
            .unwrap()
    }

    fn keys(fps: &[usize]) -> BTreeSet<Fingerprint> {
        fps.iter().map(|n| fp(*n)).collect()
    }

    /// 10,000 objects recorded from four threads (reconciles run concurrently), then
    /// updated, deleted, and moved to a new key by a rotation and a re-encryption: the
    /// per-key counts are exact after each step.
    #[test]
    fn objects_per_key_are_exact_at_ten_thousand_objects() {
        let census = Arc::new(FormatCensus::default());
        // Object i: RSA key 0 for even i, RSA key 1 for odd i; every third also holds a
        // post-quantum item opened by identity 2; every hundredth did not open.
        let initial = |i: usize| -> Option<BTreeSet<Fingerprint>> {
            if i.is_multiple_of(100) {
                return None;
            }
            let mut k = keys(&[i % 2]);
            if i.is_multiple_of(3) {
                k.insert(fp(2));
            }
            Some(k)
        };
        std::thread::scope(|s| {
            for t in 0..4 {
                let census = &census;
                s.spawn(move || {
                    for i in (t..10_000).step_by(4) {
                        census.record("ns", &format!("o{i}"), [1, 0, 0], initial(i).as_ref());
                    }
                });
            }
        });
        let count = |pred: &dyn Fn(usize) -> bool| (0..10_000).filter(|i| pred(*i)).count() as u64;
        let expect = |k0, k1, k2, unknown| {
            let mut m = BTreeMap::new();
            for (label, n) in [
                (fp(0).as_str().to_owned(), k0),
                (fp(1).as_str().to_owned(), k1),
                (fp(2).as_str().to_owned(), k2),
                (UNKNOWN_KEY.to_owned(), unknown),
            ] {
                if n > 0 {
                    m.insert(label, n);
                }
            }
            m
        };
        let k0 = count(&|i| !i.is_multiple_of(100) && i.is_multiple_of(2));
        let k1 = count(&|i| !i.is_multiple_of(100) && i % 2 == 1);
        let k2 = count(&|i| !i.is_multiple_of(100) && i.is_multiple_of(3));
        assert_eq!((k0, k1, k2), (4_900, 5_000, 3_300));
        assert_eq!(census.objects_per_key(), expect(k0, k1, k2, 100));
        assert_eq!(census.totals(), [10_000, 0, 0]);

        // Updates: the objects that did not open now open with key 1.
        for i in (0..10_000).step_by(100) {
            census.record("ns", &format!("o{i}"), [1, 0, 0], Some(&keys(&[1])));
        }
        assert_eq!(census.objects_per_key(), expect(k0, k1 + 100, k2, 0));
        // Deletes: the first 1,000 objects go (490 of key 0, 510 of key 1, 330 of identity 2).
        for i in 0..1_000 {
            census.forget("ns", &format!("o{i}"));
        }
        let (k0, k1, k2) = (k0 - 490, k1 + 100 - 510, k2 - 330);
        assert_eq!(census.objects_per_key(), expect(k0, k1, k2, 0));
        // A rotation brings key 3; re-encrypting every object of key 0 to post-quantum
        // identity 4 leaves key 0 serving none, and the series goes.
        for i in (1_000..10_000_usize).filter(|i| i.is_multiple_of(2)) {
            census.record("ns", &format!("o{i}"), [0, 0, 1], Some(&keys(&[4])));
        }
        let moved_from_2 = count(&|i| {
            i >= 1_000 && i.is_multiple_of(2) && i.is_multiple_of(3) && !i.is_multiple_of(100)
        });
        let got = census.objects_per_key();
        assert!(!got.contains_key(fp(0).as_str()), "{got:?}");
        // Key 1 keeps the odd objects only (the even ones it had gained went to identity 4).
        assert_eq!(got.get(fp(1).as_str()), Some(&(k1 - 90)));
        assert_eq!(k1 - 90, 4_500);
        assert_eq!(got.get(fp(2).as_str()), Some(&(k2 - moved_from_2)));
        assert_eq!(got.get(fp(4).as_str()), Some(&4_500));
        assert_eq!(census.totals(), [4_500, 0, 4_500]);
    }
}
