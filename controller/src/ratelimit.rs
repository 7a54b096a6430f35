//! GCRA rate limiting for `/v1/verify`, with the arithmetic and response headers of the
//! `throttled` library upstream uses (§5): limit = burst + 1, tolerance = period × limit,
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` and, when refused,
//! `Retry-After`, all in whole seconds rounded up. Unlike upstream the key is the path plus
//! the client's address, never a header the client chooses ([`client_address`]).

use std::collections::HashMap;
use std::net::IpAddr;
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

/// A CIDR block (`10.0.0.0/8`, `fd00::/8`) or a single address, for `--trusted-proxies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!("invalid address or CIDR block {s:?} (e.g. 10.0.0.0/8, 192.0.2.1, fd00::/8)")
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| err())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

/// `--trusted-proxies`: comma-separated addresses or CIDR blocks, parsed once at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_trusted_proxies(s).map(Self)
    }
}

fn parse_trusted_proxies(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

/// The client a request is accounted to. Pure.
///
/// A peer that is not a trusted proxy is the client, whatever `X-Forwarded-For` says (any
/// client can write that header: upstream keys its limiter on it, so 20 made-up addresses
/// were 20 budgets). Behind trusted proxies, the client is the right-most forwarded address
/// that is not itself a trusted proxy: each proxy appends the address it received the request
/// from, so entries left of the first untrusted one are the client's own claims. An
/// unparsable entry stops the walk at the last trusted hop.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// A GCRA limiter keyed by string (request path + client address, see [`client_address`]).
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.255.0.1")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
        let one: IpNet = "192.0.2.1".parse().unwrap();
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        assert_eq!(parse_trusted_proxies(" , ").unwrap(), vec![]);
        assert!(parse_trusted_proxies("10.0.0.0/8,bad").is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = parse_trusted_proxies("10.0.0.0/8").unwrap();
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            client_address(ip("192.0.2.7"), &["203.0.113.1"], &trusted),
            ip("192.0.2.7")
        );
        assert_eq!(
            client_address(ip("192.0.2.7"), &["203.0.113.1"], &[]),
            ip("192.0.2.7")
        );
        // Trusted proxy: the right-most untrusted hop; earlier entries are client claims.
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &["1.2.3.4, 203.0.113.1, 10.0.0.9"],
                &trusted
            ),
            ip("203.0.113.1")
        );
        // Several headers are one list.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["1.2.3.4", "203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), &[], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["garbage"], &trusted),
            ip("10.0.0.2")
        );
    }
}
