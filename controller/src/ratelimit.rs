//! GCRA rate limiting for `/v1/verify`, with the arithmetic and response headers of the
//! `throttled` library upstream uses (§5): limit = burst + 1, tolerance = period × limit,
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` and, when refused,
//! `Retry-After`, all in whole seconds rounded up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Upstream's memstore size.
const MAX_KEYS: usize = 65536;

/// The verdict for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The headers throttled sets, in its order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| d.as_secs_f64().ceil() as u64;
        let mut h = vec![
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", secs(self.reset_after).to_string()),
        ];
        if let Some(r) = self.retry_after {
            h.push(("Retry-After", secs(r).to_string()));
        }
        h
    }
}

/// A GCRA limiter keyed by string (request path + `X-Forwarded-For`, as upstream).
/// Times are integer nanoseconds since `origin`, so that the boundary cases are exact.
#[derive(Debug)]
pub struct Gcra {
    emission: i128,
    tolerance: i128,
    limit: u32,
    origin: Instant,
    /// Theoretical arrival time per key.
    tats: HashMap<String, i128>,
}

fn to_duration(nanos: i128) -> Duration {
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

impl Gcra {
    /// `rate` requests per second sustained, `burst` more allowed at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        let emission = 1_000_000_000i128 / i128::from(rate.max(1));
        let limit = burst.saturating_add(1);
        Self {
            emission,
            tolerance: emission * i128::from(limit),
            limit,
            origin: Instant::now(),
            tats: HashMap::new(),
        }
    }

    /// Decides one request for `key` at `now`.
    pub fn check(&mut self, key: &str, now: Instant) -> Decision {
        let now_n = i128::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(i128::MAX / 4);
        let tat = self.tats.get(key).copied().unwrap_or(now_n);
        let new_tat = tat.max(now_n) + self.emission;
        let allow_at = new_tat - self.tolerance;
        let diff = now_n - allow_at;
        let (allowed, ttl, retry_after) = if diff < 0 {
            let retry = (self.emission <= self.tolerance).then(|| to_duration(-diff));
            (false, tat - now_n, retry)
        } else {
            if self.tats.len() >= MAX_KEYS && !self.tats.contains_key(key) {
                self.tats.retain(|_, t| *t > now_n);
                if self.tats.len() >= MAX_KEYS {
                    self.tats.clear();
                }
            }
            self.tats.insert(key.to_owned(), new_tat);
            (true, new_tat - now_n, None)
        };
        let next = self.tolerance - ttl;
        let remaining = if next > -self.emission {
            u32::try_from((next / self.emission).max(0)).unwrap_or(0)
        } else {
            0
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining,
            reset_after: to_duration(ttl),
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_quota_allows_three_then_limits() {
        let mut g = Gcra::new(2, 2);
        let t0 = Instant::now();
        let d: Vec<Decision> = (0..4).map(|_| g.check("/v1/verify", t0)).collect();
        assert!(d[0].allowed && d[1].allowed && d[2].allowed);
        assert!(!d[3].allowed);
        assert_eq!(d[0].limit, 3);
        assert_eq!((d[0].remaining, d[1].remaining, d[2].remaining), (2, 1, 0));
        let retry = d[3].retry_after.unwrap();
        assert_eq!(retry, Duration::from_millis(500));
        let h = d[3].headers();
        assert!(h.contains(&("Retry-After", "1".to_owned())));
        assert!(h.contains(&("X-RateLimit-Limit", "3".to_owned())));
        // After half a second (one emission interval) one more request is allowed.
        assert!(
            g.check("/v1/verify", t0 + Duration::from_millis(510))
                .allowed
        );
        // Keys are independent.
        assert!(g.check("/v1/verify10.0.0.1", t0).allowed);
    }
}
