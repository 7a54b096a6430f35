//! The pure arithmetic of the benchmark's load phases (docs/benchmarks.md, "Capacity,
//! latency under load and fairness"): create rates given as multiples of the measured
//! capacity C, each object's backlog bound, and the controller's reconcile histograms read
//! from its Prometheus text. No I/O here, so that unit tests pin every figure the table shows.

/// One create rate of `BENCH_LATENCY`: a fixed rate, or a multiple of the capacity C
/// measured in the same run (`0.5C`, `C`, `1.5C`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSpec {
    PerSecond(f64),
    OfCapacity(f64),
}

impl RateSpec {
    /// The rate per second; `None` for a multiple of C when C was not measured.
    pub fn resolve(self, capacity: Option<f64>) -> Option<f64> {
        match self {
            RateSpec::PerSecond(r) => Some(r),
            RateSpec::OfCapacity(m) => capacity.filter(|c| *c > 0.0).map(|c| m * c),
        }
    }

    /// The multiple of C, for a rate derived from it.
    pub fn of_capacity(self) -> Option<f64> {
        match self {
            RateSpec::OfCapacity(m) => Some(m),
            RateSpec::PerSecond(_) => None,
        }
    }
}

/// `BENCH_LATENCY`: comma-separated rates, each a number (creates a second) or a multiple
/// of C (`0.5C`, `C`, `1.5c`); empty: no latency phase.
pub fn parse_rates(s: &str) -> Result<Vec<RateSpec>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let spec = match p.strip_suffix(['C', 'c']) {
                Some("") => RateSpec::OfCapacity(1.0),
                Some(m) => RateSpec::OfCapacity(m.trim().parse().map_err(|_| bad(p))?),
                None => RateSpec::PerSecond(p.parse().map_err(|_| bad(p))?),
            };
            match spec {
                RateSpec::PerSecond(x) | RateSpec::OfCapacity(x) if x.is_finite() && x > 0.0 => {
                    Ok(spec)
                }
                _ => Err(bad(p)),
            }
        })
        .collect()
}

fn bad(p: &str) -> String {
    format!("`{p}` is neither a rate per second nor a multiple of C (`0.5C`)")
}

/// Objects of a capacity burst: about 15 seconds at the cold start's drain rate, so that
/// the burst is long enough to saturate the controller and short enough for upstream's
/// rate-limited defaults (about 1 object a second); within 50..=2000.
pub fn capacity_burst_size(cold_drain_per_s: f64) -> usize {
    if !cold_drain_per_s.is_finite() || cold_drain_per_s <= 0.0 {
        return 50;
    }
    ((cold_drain_per_s * 15.0).round() as usize).clamp(50, 2000)
}

/// Objects a second over a span: `objects / (end - start)` (NaN for an empty span).
pub fn per_second(objects: usize, start_s: f64, end_s: f64) -> f64 {
    let span = end_s - start_s;
    if span > 0.0 {
        objects as f64 / span
    } else {
        f64::NAN
    }
}

/// Each object's backlog bound: the objects created before it and not yet served when it was
/// created, drained at `capacity`, plus one second. The figures of one latency phase against
/// that bound.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogReport {
    /// The largest backlog an object found ahead of it.
    pub max_backlog: usize,
    /// The largest bound of any object, in seconds.
    pub max_bound_s: f64,
    /// Objects served later than their own bound (or never).
    pub over_bound: usize,
    /// The largest latency, in seconds (NaN when none was served).
    pub max_latency_s: f64,
}

/// `objects`: (seconds from the phase start when its create was sent, its create-to-Secret
/// latency in seconds or `None` when its Secret never appeared), in any order.
pub fn backlog_report(objects: &[(f64, Option<f64>)], capacity: f64) -> BacklogReport {
    let mut v: Vec<(f64, Option<f64>)> = objects.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let served_at: Vec<f64> = v
        .iter()
        .map(|(sent, lat)| lat.map_or(f64::INFINITY, |l| sent + l))
        .collect();
    let mut report = BacklogReport {
        max_backlog: 0,
        max_bound_s: f64::NAN,
        over_bound: 0,
        max_latency_s: f64::NAN,
    };
    for (i, (sent, lat)) in v.iter().enumerate() {
        let backlog = served_at[..i].iter().filter(|s| **s > *sent).count();
        let bound = backlog as f64 / capacity + 1.0;
        report.max_backlog = report.max_backlog.max(backlog);
        report.max_bound_s = report.max_bound_s.max(bound);
        match lat {
            Some(l) => {
                report.max_latency_s = report.max_latency_s.max(*l);
                if *l > bound {
                    report.over_bound += 1;
                }
            }
            None => report.over_bound += 1,
        }
    }
    report
}

/// A Prometheus histogram from the text exposition: cumulative counts by upper bound (`le`),
/// summed over label sets, with its `_sum` and `_count`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// `name`'s histogram in `text`; `None` when the exposition has no `name_count` (a
    /// build without the metric: upstream's, or ours before it had it).
    pub fn parse(text: &str, name: &str) -> Option<Histogram> {
        let mut h = Histogram::default();
        let mut found = false;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.trim().rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (metric, labels) = match series.split_once('{') {
                Some((m, l)) => (m, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let Some(suffix) = metric.strip_prefix(name) else {
                continue;
            };
            match suffix {
                "_sum" => h.sum += value,
                "_count" => {
                    h.count += value;
                    found = true;
                }
                "_bucket" => {
                    let Some(le) = label(labels, "le").and_then(|le| match le {
                        "+Inf" => Some(f64::INFINITY),
                        x => x.parse().ok(),
                    }) else {
                        continue;
                    };
                    match h.buckets.iter_mut().find(|(b, _)| *b == le) {
                        Some(b) => b.1 += value,
                        None => h.buckets.push((le, value)),
                    }
                }
                _ => {}
            }
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        found.then_some(h)
    }

    /// What was observed between `before` and `self` (two reads of one process's counters).
    pub fn since(&self, before: &Histogram) -> Histogram {
        let prior = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |b| b.1)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, c - prior(le)))
                .collect(),
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    /// Mean observation (NaN with none).
    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            f64::NAN
        }
    }

    /// The `q` quantile as Prometheus' `histogram_quantile` estimates it: linear within the
    /// bucket that holds the rank; the highest finite bound when the rank falls in `+Inf`.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count <= 0.0 || self.buckets.is_empty() {
            return f64::NAN;
        }
        let rank = q * self.count;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(le, cum) in &self.buckets {
            if cum >= rank {
                if le.is_infinite() {
                    return lower;
                }
                if cum - below <= 0.0 {
                    return le;
                }
                return lower + (le - lower) * (rank - below) / (cum - below);
            }
            lower = le;
            below = cum;
        }
        lower
    }
}

/// The value of label `name` in `a="x",le="0.5"`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_numbers_or_multiples_of_capacity() {
        assert_eq!(
            parse_rates("0.5C, C,1.5c,10").unwrap(),
            vec![
                RateSpec::OfCapacity(0.5),
                RateSpec::OfCapacity(1.0),
                RateSpec::OfCapacity(1.5),
                RateSpec::PerSecond(10.0)
            ]
        );
        assert_eq!(parse_rates("").unwrap(), vec![]);
        assert!(parse_rates("fast").is_err());
        assert!(parse_rates("0C").is_err());
        assert!(parse_rates("-5").is_err());
        assert_eq!(RateSpec::OfCapacity(1.5).resolve(Some(20.0)), Some(30.0));
        assert_eq!(RateSpec::OfCapacity(1.5).resolve(None), None);
        assert_eq!(RateSpec::PerSecond(10.0).resolve(None), Some(10.0));
    }

    #[test]
    fn capacity_is_objects_over_the_span_and_the_burst_lasts_about_15_seconds() {
        assert_eq!(per_second(300, 2.0, 14.0), 25.0);
        assert!(per_second(300, 2.0, 2.0).is_nan());
        assert_eq!(capacity_burst_size(25.0), 375);
        assert_eq!(capacity_burst_size(1.2), 50);
        assert_eq!(capacity_burst_size(500.0), 2000);
        assert_eq!(capacity_burst_size(f64::NAN), 50);
    }

    #[test]
    fn each_object_is_held_to_its_own_backlog_drained_at_capacity_plus_a_second() {
        // C = 2/s. Four objects sent together at t=0: the k-th finds k ahead of it, bound
        // k/2 + 1 s. The fourth is served at 3.0 s, over its bound of 2.5 s; a fifth, sent
        // at 10 s, finds none ahead (all served) and is never served.
        let objects = [
            (0.0, Some(0.5)),
            (0.0, Some(1.0)),
            (0.0, Some(1.9)),
            (0.0, Some(3.0)),
            (10.0, None),
        ];
        let r = backlog_report(&objects, 2.0);
        assert_eq!(r.max_backlog, 3);
        assert_eq!(r.max_bound_s, 2.5);
        assert_eq!(r.max_latency_s, 3.0);
        assert_eq!(r.over_bound, 2, "{r:?}");
        // At an even pace below capacity nobody waits: backlog 0, bound 1 s.
        let paced: Vec<(f64, Option<f64>)> = (0..10).map(|i| (f64::from(i), Some(0.2))).collect();
        let r = backlog_report(&paced, 2.0);
        assert_eq!((r.max_backlog, r.max_bound_s, r.over_bound), (0, 1.0, 0));
    }

    const TEXT: &str = "\
# HELP sealed_secrets_controller_reconcile_queue_wait_seconds time in queue
# TYPE sealed_secrets_controller_reconcile_queue_wait_seconds histogram
sealed_secrets_controller_reconcile_queue_wait_seconds_bucket{le=\"0.01\"} 10
sealed_secrets_controller_reconcile_queue_wait_seconds_bucket{le=\"0.1\"} 50
sealed_secrets_controller_reconcile_queue_wait_seconds_bucket{le=\"1\"} 90
sealed_secrets_controller_reconcile_queue_wait_seconds_bucket{le=\"+Inf\"} 100
sealed_secrets_controller_reconcile_queue_wait_seconds_sum 30
sealed_secrets_controller_reconcile_queue_wait_seconds_count 100
sealed_secrets_controller_reconcile_duration_seconds_bucket{le=\"0.1\"} 4
sealed_secrets_controller_reconcile_duration_seconds_count 4
sealed_secrets_controller_reconcile_duration_seconds_sum 0.2
";

    #[test]
    fn histograms_are_read_from_prometheus_text_and_estimated_as_prometheus_does() {
        let name = "sealed_secrets_controller_reconcile_queue_wait_seconds";
        let h = Histogram::parse(TEXT, name).unwrap();
        assert_eq!(
            h.buckets,
            vec![
                (0.01, 10.0),
                (0.1, 50.0),
                (1.0, 90.0),
                (f64::INFINITY, 100.0)
            ]
        );
        assert_eq!((h.sum, h.count, h.mean()), (30.0, 100.0, 0.3));
        // Rank 50 is the top of the 0.1 bucket; rank 70 halfway through (0.1, 1]; rank 99
        // falls in +Inf: the highest finite bound.
        assert!((h.quantile(0.5) - 0.1).abs() < 1e-9, "{}", h.quantile(0.5));
        assert!((h.quantile(0.7) - 0.55).abs() < 1e-9, "{}", h.quantile(0.7));
        assert_eq!(h.quantile(0.99), 1.0);
        // A prefix of another metric's name is not that metric.
        let d =
            Histogram::parse(TEXT, "sealed_secrets_controller_reconcile_duration_seconds").unwrap();
        assert_eq!((d.count, d.sum), (4.0, 0.2));
        assert!(Histogram::parse(TEXT, "sealed_secrets_controller_reconcile").is_none());
        // Absent (upstream, an older build): None, not zeros.
        assert!(Histogram::parse("other_metric 1\n", name).is_none());
    }

    #[test]
    fn histogram_deltas_cover_one_phase_and_label_sets_add_up() {
        let before = "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n";
        let after = "h_bucket{a=\"x\",le=\"1\"} 5\nh_bucket{a=\"y\",le=\"1\"} 1\n\
                     h_bucket{a=\"x\",le=\"+Inf\"} 9\nh_bucket{a=\"y\",le=\"+Inf\"} 1\n\
                     h_sum{a=\"x\"} 10\nh_sum{a=\"y\"} 0.5\nh_count{a=\"x\"} 9\nh_count{a=\"y\"} 1\n";
        let (b, a) = (
            Histogram::parse(before, "h").unwrap(),
            Histogram::parse(after, "h").unwrap(),
        );
        let d = a.since(&b);
        assert_eq!(d.buckets, vec![(1.0, 4.0), (f64::INFINITY, 7.0)]);
        assert_eq!((d.sum, d.count), (6.5, 7.0));
        assert!(Histogram::default().quantile(0.99).is_nan());
        assert!(Histogram::default().mean().is_nan());
    }
}
