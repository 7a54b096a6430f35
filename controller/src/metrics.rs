//! Prometheus metrics: upstream's names and labels (§5), the project's key and leader
//! metrics (docs/design.md), and cheap process metrics read from `/proc` at scrape time.
//!
//! No label ever carries a secret value: labels are namespaces, names, fingerprints (public),
//! paths and error categories.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use sealed_secrets_crypto::MultiV1Tally;

use crate::format_census::{CensusCollector, FormatCensus};
use crate::version::{GIT_COMMIT, VERSION};

/// A label set: static keys, owned values.
pub type Labels = Vec<(&'static str, String)>;

/// Prefix of every controller metric.
pub const PREFIX: &str = "sealed_secrets_controller";

/// Upstream's default histogram buckets (Go client's `DefBuckets`).
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

/// Buckets of the reconcile queue's histograms: upstream's, then up to 10 minutes, the
/// queue wait of a large backlog (a cold start, a burst of creates).
const QUEUE_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0,
];

/// The `format` label values of `format_values_opened_total` (`ValueFormat::as_str`).
const VALUE_FORMATS: [&str; 3] = ["rsa", "rsa-multi", "post-quantum"];

/// Why a reconcile failed, as upstream's `reason` label (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReason {
    Fetch,
    Unseal,
    Update,
    Unmanaged,
    Status,
}

impl ErrorReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Unseal => "unseal",
            Self::Update => "update",
            Self::Unmanaged => "unmanaged",
            Self::Status => "status",
        }
    }
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub unseal_requests: Counter,
    unseal_errors: Family<Labels, Counter>,
    condition_info: Family<Labels, Gauge>,
    http_requests: Family<Labels, Counter>,
    http_duration: Family<Labels, Histogram, fn() -> Histogram>,
    key_values_opened: Family<Labels, Counter>,
    format_values_opened: Family<Labels, Counter>,
    key_created: Family<Labels, Gauge>,
    pub keys_active: Gauge,
    pub keys_foreign: Gauge,
    pub keys_post_quantum: Gauge,
    pub leader: Gauge,
    /// With `--sharding`, on the leader: the live shard members its sharder assigns to.
    pub shard_members: Gauge,
    pub rsa_decryptions: Counter,
    /// From a reconcile request entering the queue (or its requeue falling due) to its
    /// reconcile starting (docs/design.md, "Reconcile queue").
    pub reconcile_queue_wait: Histogram,
    /// One reconcile, start to end.
    pub reconcile_duration: Histogram,
    /// A decryption's wait for a core (docs/design.md, "Reconcile queue").
    pub unseal_cpu_wait: Histogram,
    /// Multi-recipient version-1 values met by the key rings (`FORMAT.md` §2.2), read at
    /// scrape time by [`MultiV1Collector`].
    multi_v1: Arc<MultiV1Tally>,
    /// The key-wrapping state, set at start-up when keys are wrapped
    /// ([`crate::keywrap::metrics`]).
    pub key_wrap: crate::keywrap::metrics::KeyWrapSlot,
    /// The key backend's state, read at scrape time ([`crate::tokenkeys::metrics`]).
    pub token_keys: crate::tokenkeys::metrics::TokenKeysSlot,
    /// Values per format of every reconciled SealedSecret, read at scrape time by
    /// [`CensusCollector`].
    census: Arc<FormatCensus>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let reg = root.sub_registry_with_prefix(PREFIX);

        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![
                ("revision", VERSION.to_owned()),
                ("commit", GIT_COMMIT.to_owned()),
            ])
            .set(1);
        // prometheus-client appends the final period to every registered help text.
        reg.register("build_info", "Build information", build_info);

        let unseal_requests = Counter::default();
        reg.register(
            "unseal_requests",
            "Total number of sealed secret unseal requests",
            unseal_requests.clone(),
        );
        let unseal_errors = Family::<Labels, Counter>::default();
        reg.register(
            "unseal_errors",
            "Total number of sealed secret unseal errors by reason",
            unseal_errors.clone(),
        );
        let condition_info = Family::<Labels, Gauge>::default();
        reg.register(
            "condition_info",
            "Current SealedSecret condition status. Values are -1 (false), 0 (unknown or absent), 1 (true)",
            condition_info.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        reg.register(
            "http_requests",
            "Total number of HTTP requests by path, code and method",
            http_requests.clone(),
        );
        let http_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        reg.register(
            "http_request_duration_seconds",
            "Latency of HTTP requests by path and method",
            http_duration.clone(),
        );

        let key_values_opened = Family::<Labels, Counter>::default();
        reg.register(
            "key_values_opened",
            "Values decrypted by each key",
            key_values_opened.clone(),
        );
        let format_values_opened = Family::<Labels, Counter>::default();
        // Every format's series exists from the start, so that a dashboard's ratio of
        // post-quantum to RSA values reads 0, not "no data", before the first of each.
        for format in VALUE_FORMATS {
            drop(format_values_opened.get_or_create(&vec![("format", format.to_owned())]));
        }
        reg.register(
            "format_values_opened",
            "Values decrypted by unsealing, by format (rsa, rsa-multi, post-quantum)",
            format_values_opened.clone(),
        );
        let key_created = Family::<Labels, Gauge>::default();
        reg.register(
            "key_created_timestamp_seconds",
            "Ordering time (cert NotBefore or Secret creation) of each active key",
            key_created.clone(),
        );
        let keys_active = Gauge::default();
        reg.register("keys_active", "Number of active keys", keys_active.clone());
        let keys_foreign = Gauge::default();
        reg.register(
            "keys_foreign",
            "Number of active keys the controller did not generate (no sealed-secrets-rs.dev/key-origin annotation)",
            keys_foreign.clone(),
        );
        let keys_post_quantum = Gauge::default();
        reg.register(
            "keys_post_quantum",
            "Number of active keys with a post-quantum identity (age.key in their key Secret)",
            keys_post_quantum.clone(),
        );
        let leader = Gauge::default();
        reg.register(
            "leader",
            "1 on the elected leader, 0 otherwise",
            leader.clone(),
        );
        let shard_members = Gauge::default();
        reg.register(
            "shard_members",
            "With --sharding, on the leader: live shard members that SealedSecrets are assigned to",
            shard_members.clone(),
        );
        let rsa_decryptions = Counter::default();
        reg.register(
            "rsa_decryptions",
            "RSA private-key operations performed",
            rsa_decryptions.clone(),
        );
        let reconcile_queue_wait = Histogram::new(QUEUE_BUCKETS);
        reg.register(
            "reconcile_queue_wait_seconds",
            "Time from a reconcile request entering the queue to its reconcile starting",
            reconcile_queue_wait.clone(),
        );
        let reconcile_duration = Histogram::new(QUEUE_BUCKETS);
        reg.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile, start to end",
            reconcile_duration.clone(),
        );
        let unseal_cpu_wait = Histogram::new(QUEUE_BUCKETS);
        reg.register(
            "unseal_cpu_wait_seconds",
            "Time a reconcile's decryption waited for a core (one decryption per core and class at a time)",
            unseal_cpu_wait.clone(),
        );

        let multi_v1 = Arc::new(MultiV1Tally::default());
        reg.register_collector(Box::new(MultiV1Collector(multi_v1.clone())));
        let key_wrap = crate::keywrap::metrics::KeyWrapSlot::default();
        reg.register_collector(Box::new(crate::keywrap::metrics::KeyWrapCollector(
            key_wrap.clone(),
        )));
        let token_keys = crate::tokenkeys::metrics::TokenKeysSlot::default();
        reg.register_collector(Box::new(crate::tokenkeys::metrics::TokenKeysCollector(
            token_keys.clone(),
        )));
        let census = Arc::new(FormatCensus::default());
        reg.register_collector(Box::new(CensusCollector(census.clone())));

        Self {
            registry: root,
            unseal_requests,
            unseal_errors,
            condition_info,
            http_requests,
            http_duration,
            key_values_opened,
            format_values_opened,
            key_created,
            keys_active,
            keys_foreign,
            keys_post_quantum,
            leader,
            shard_members,
            rsa_decryptions,
            reconcile_queue_wait,
            reconcile_duration,
            unseal_cpu_wait,
            multi_v1,
            key_wrap,
            token_keys,
            census,
        }
    }

    /// The tally the key rings count multi-recipient version-1 values into.
    pub fn multi_v1_tally(&self) -> Arc<MultiV1Tally> {
        self.multi_v1.clone()
    }

    /// Text exposition (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn unseal_error(&self, reason: ErrorReason, namespace: &str) {
        self.unseal_errors
            .get_or_create(&vec![
                ("reason", reason.as_str().to_owned()),
                ("namespace", namespace.to_owned()),
            ])
            .inc();
    }

    /// Sets `condition_info` for one SealedSecret: 1 True, -1 False, 0 Unknown.
    pub fn set_condition(&self, namespace: &str, name: &str, instance: &str, status: &str) {
        let value = match status {
            "True" => 1,
            "False" => -1,
            _ => 0,
        };
        self.condition_info
            .get_or_create(&condition_labels(namespace, name, instance))
            .set(value);
    }

    /// Drops what is kept per SealedSecret once it is deleted: its condition series and its
    /// values in `sealed_values` ([`FormatCensus`]).
    pub fn remove_condition(&self, namespace: &str, name: &str, instance: &str) {
        self.condition_info
            .remove(&condition_labels(namespace, name, instance));
        self.census.forget(namespace, name);
    }

    /// Records the values per format of `ss` (`namespace/name`) as of this reconcile, for
    /// `sealed_values{format}` (reads the values' first bytes only), and the keys that opened
    /// it for `sealed_objects{fingerprint}` (`None`: this reconcile did not open it).
    pub fn record_value_formats(
        &self,
        namespace: &str,
        name: &str,
        ss: &sealed_secrets_api::SealedSecret,
        keys: Option<&std::collections::BTreeSet<sealed_secrets_crypto::Fingerprint>>,
    ) {
        self.census.record(
            namespace,
            name,
            crate::format_census::value_formats(ss),
            keys,
        );
    }

    pub fn observe_http(&self, path: &str, method: &str, code: u16, seconds: f64) {
        let method = method.to_ascii_lowercase();
        self.http_requests
            .get_or_create(&vec![
                ("path", path.to_owned()),
                ("code", code.to_string()),
                ("method", method.clone()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&vec![("path", path.to_owned()), ("method", method)])
            .observe(seconds);
    }

    pub fn values_opened(&self, fingerprint: &str, count: u64) {
        self.key_values_opened
            .get_or_create(&vec![("fingerprint", fingerprint.to_owned())])
            .inc_by(count);
    }

    /// Counts values opened by unsealing, per format (`format_values_opened_total`): how many
    /// values still depend on RSA alone, the migration view of `FORMAT.md` §3.
    pub fn values_opened_by_format(&self, formats: &std::collections::BTreeMap<&'static str, u64>) {
        for (format, count) in formats {
            self.format_values_opened
                .get_or_create(&vec![("format", (*format).to_owned())])
                .inc_by(*count);
        }
    }

    /// Replaces the per-key gauges with the current set of keys.
    pub fn set_keys(&self, keys: &[(String, i64)]) {
        self.key_created.clear();
        for (fp, created) in keys {
            self.key_created
                .get_or_create(&vec![("fingerprint", fp.clone())])
                .set(*created);
        }
        self.keys_active
            .set(i64::try_from(keys.len()).unwrap_or(i64::MAX));
    }
}

fn condition_labels(namespace: &str, name: &str, instance: &str) -> Labels {
    vec![
        ("namespace", namespace.to_owned()),
        ("name", name.to_owned()),
        ("condition", sealed_secrets_api::CONDITION_SYNCED.to_owned()),
        ("ss_app_kubernetes_io_instance", instance.to_owned()),
    ]
}

/// `process_*` metrics from `/proc/self` (Linux); absent elsewhere.
#[derive(Debug)]
struct ProcessCollector;

struct ProcStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    start_time_seconds: i64,
    open_fds: i64,
}

fn read_proc() -> Option<ProcStats> {
    // Linux defaults; reading sysconf would need libc.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_SIZE: i64 = 4096;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state); utime = field 14, stime = 15, starttime = 22, vsize = 23, rss = 24.
    let get = |n: usize| fields.get(n - 3).and_then(|s| s.parse::<i64>().ok());
    let utime = get(14)?;
    let stime = get(15)?;
    let start_ticks = get(22)?;
    let vsize = get(23)?;
    let rss = get(24)?;
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<i64>().ok())
    })?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    Some(ProcStats {
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
        resident_bytes: rss * PAGE_SIZE,
        virtual_bytes: vsize,
        start_time_seconds: boot_time + (start_ticks as f64 / TICKS_PER_SECOND) as i64,
        open_fds: i64::try_from(open_fds).unwrap_or(0),
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read_proc() else { return Ok(()) };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(Unit::Bytes),
                p.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(Unit::Bytes),
                p.virtual_bytes,
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
                Some(Unit::Seconds),
                p.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                p.open_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?)?;
        }
        Ok(())
    }
}

/// `multi_recipient_v1_values_total{outcome="accepted|refused"}`: multi-recipient version-1
/// values (no key commitment) the controller was asked to open, by unsealing, `/v1/verify`
/// or `/v1/rotate`. Refused unless `--accept-multi-recipient-v1`; while that migration
/// window is open, `accepted` says whether any such value is still in use.
#[derive(Debug)]
struct MultiV1Collector(Arc<MultiV1Tally>);

impl Collector for MultiV1Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "multi_recipient_v1_values",
            "Multi-recipient version-1 values (no key commitment) met, by outcome (accepted with --accept-multi-recipient-v1, else refused).",
            None,
            counter.metric_type(),
        )?;
        for (outcome, value) in [
            ("accepted", self.0.accepted()),
            ("refused", self.0.refused()),
        ] {
            let labels: Labels = vec![("outcome", outcome.to_owned())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_upstream_names() {
        let m = Metrics::new();
        m.unseal_requests.inc();
        m.unseal_error(ErrorReason::Unmanaged, "ns1");
        m.set_condition("ns1", "s1", "app", "False");
        m.observe_http("/v1/verify", "POST", 409, 0.01);
        m.values_opened("SHA256:abc", 3);
        m.values_opened_by_format(&[("post-quantum", 2), ("rsa", 1)].into_iter().collect());
        m.values_opened_by_format(&[("post-quantum", 1)].into_iter().collect());
        let text = m.encode();
        for needle in [
            "sealed_secrets_controller_build_info{revision=\"v",
            "sealed_secrets_controller_unseal_requests_total 1",
            "sealed_secrets_controller_unseal_errors_total{reason=\"unmanaged\",namespace=\"ns1\"} 1",
            "sealed_secrets_controller_condition_info{namespace=\"ns1\",name=\"s1\",condition=\"Synced\",ss_app_kubernetes_io_instance=\"app\"} -1",
            "sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"409\",method=\"post\"} 1",
            "sealed_secrets_controller_http_request_duration_seconds_bucket{",
            "sealed_secrets_controller_key_values_opened_total{fingerprint=\"SHA256:abc\"} 3",
            "sealed_secrets_controller_format_values_opened_total{format=\"post-quantum\"} 3",
            "sealed_secrets_controller_format_values_opened_total{format=\"rsa\"} 1",
            "sealed_secrets_controller_format_values_opened_total{format=\"rsa-multi\"} 0",
            "sealed_secrets_controller_sealed_values{format=\"rsa\"} 0",
            "sealed_secrets_controller_sealed_values{format=\"post-quantum\"} 0",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "sealed_secrets_controller_multi_recipient_v1_values_total{outcome=\"accepted\"} 0",
            "sealed_secrets_controller_multi_recipient_v1_values_total{outcome=\"refused\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.remove_condition("ns1", "s1", "app");
        assert!(!m.encode().contains("condition_info{"));
    }

    #[test]
    fn help_texts_end_in_one_period_and_build_info_names_the_commit() {
        let text = Metrics::new().encode();
        let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP")).collect();
        assert!(helps.len() > 10, "{text}");
        for h in helps {
            assert!(h.ends_with('.') && !h.ends_with(".."), "{h}");
        }
        assert!(
            text.contains(&format!(
                "sealed_secrets_controller_build_info{{revision=\"{VERSION}\",commit=\"{GIT_COMMIT}\"}} 1"
            )),
            "{text}"
        );
        assert!(!GIT_COMMIT.is_empty());
    }
}
