//! What a test says to a fault proxy and what it reads back: the faults to inject, the
//! counters, and the request journal.

use std::time::Duration;

use http::Method;

/// Largest request body forwarded (kube-apiserver's own limit is 3 MiB per object; lists of
/// objects are never sent).
pub(super) const MAX_REQUEST_BODY: usize = 64 << 20;

/// Which faults to inject. Fractions are probabilities in `[0, 1]`, drawn per resource
/// request from a generator seeded with `seed`.
#[derive(Clone, Debug, Default)]
pub struct FaultSpec {
    /// Fraction of resource requests answered `500 InternalError`.
    pub error500: f64,
    /// Fraction of resource requests answered `429 TooManyRequests` with `Retry-After: 1`.
    pub error429: f64,
    /// Fraction of updates (PUT, PATCH) answered `409 Conflict`.
    pub conflict409_on_update: f64,
    /// End every watch stream this long after it starts (`None`: never).
    pub watch_cut: Option<Duration>,
    /// Seed of the fault dice; the same seed and the same request sequence give the same
    /// faults.
    pub seed: u64,
}

/// What a proxy has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received (all paths).
    pub requests: u64,
    /// Of those, resource requests (the ones faults apply to).
    pub resource_requests: u64,
    /// Injected `500 InternalError` answers.
    pub error500: u64,
    /// Injected `429 TooManyRequests` answers.
    pub error429: u64,
    /// Injected `409 Conflict` answers.
    pub conflict409: u64,
    /// Watch streams passed through.
    pub watches: u64,
    /// Watch streams the proxy ended because `watch_cut` elapsed.
    pub watch_cuts: u64,
    /// Requests the upstream API server did not answer (answered 503 by the proxy).
    pub upstream_errors: u64,
}

/// Requests kept in the journal ([`FaultProxy::journal`]); older ones are dropped first.
pub const JOURNAL_LIMIT: usize = 200_000;

/// Who answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The upstream API server (whatever its status).
    Upstream,
    /// The proxy, with an injected fault.
    Injected,
    /// The proxy, because the upstream API server could not be reached (503).
    Unreachable,
    /// The proxy, because the request itself was unusable (400).
    Proxy,
}

/// One request through the proxy. With one proxy per client (e.g. per controller replica),
/// the journal says who wrote what when, without the client's cooperation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the request arrived.
    pub received: std::time::SystemTime,
    /// When its answer's status and headers were ready (a watch's stream goes on after).
    pub answered: std::time::SystemTime,
    pub method: Method,
    /// Path and query, as the client sent them.
    pub path: String,
    /// The client's `User-Agent` header.
    pub user_agent: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    pub origin: Origin,
}
