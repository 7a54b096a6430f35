//! The HTTP servers' flags (§4.1 plus ours, docs/design.md): addresses, timeouts, rate limits
//! and connection caps, and what `/v1/verify` and `/v1/rotate` accept.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Args};
use sealed_secrets_api::UnsealOptions;

use super::listen::ConnLimits;
use crate::flags::{at_least_one, duration, parse_bool, positive_duration};
use crate::ratelimit::TrustedProxies;

/// The HTTP servers' flags.
#[derive(Clone, Debug, Args)]
pub struct ServerArgs {
    /// Number of allowed sustained request per second for verify endpoint.
    #[arg(long, default_value = "2", value_parser = at_least_one::<u32>)]
    pub rate_limit: u32,

    /// Number of requests allowed to exceed the rate limit per second for verify endpoint.
    #[arg(long, default_value_t = 2)]
    pub rate_limit_burst: u32,

    /// HTTP listen address (`:8080` listens on every interface).
    #[arg(long, default_value = ":8080", value_parser = parse_listen_addr)]
    pub listen_addr: SocketAddr,

    /// HTTP metrics listen address.
    #[arg(long, default_value = ":8081", value_parser = parse_listen_addr)]
    pub listen_metrics_addr: SocketAddr,

    /// HTTP request read timeout (both servers).
    #[arg(long, default_value = "2m0s", value_parser = duration)]
    pub read_timeout: Duration,

    /// HTTP response write timeout (both servers).
    #[arg(long, default_value = "2m0s", value_parser = duration)]
    pub write_timeout: Duration,

    /// Time a client has to send a request's headers on the HTTP server, counted from when the
    /// connection waits for a request; idle keep-alive connections are closed after it too.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub read_header_timeout: Duration,

    /// Connections the HTTP server holds open at once; beyond them a few connections are
    /// accepted for /healthz only, and further ones are closed.
    #[arg(long, default_value = "512", value_parser = at_least_one::<usize>)]
    pub max_connections: usize,

    /// Connections one client address may hold open at once on each HTTP server; further
    /// ones are closed. Addresses in --trusted-proxies are exempt.
    #[arg(long, default_value = "64", value_parser = at_least_one::<usize>)]
    pub max_connections_per_client: usize,

    /// Time a response write may make no progress (the client does not read) before the
    /// HTTP server closes the connection.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub write_stall_timeout: Duration,

    /// Time a client of /v1/verify or /v1/rotate has to send the whole request body, counted
    /// once the request has passed the rate limit; 408 and the connection closed after it.
    #[arg(long = "read-body-timeout", default_value = "10s", value_parser = positive_duration)]
    pub body_read_timeout: Duration,

    /// Comma-separated addresses or CIDR blocks of proxies (e.g. the API servers of the
    /// service proxy) whose X-Forwarded-For header names the client for rate limiting; from
    /// any other peer the header is ignored.
    #[arg(long, default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Let /v1/verify and /v1/rotate accept the deprecated whole-Secret 'data' field (only
    /// together with --accept-deprecated-v1-data). Off by default: rotate would return the
    /// decrypted Secret's metadata and verify would reveal whether a plaintext is JSON.
    #[arg(long, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub http_accept_deprecated_v1_data: bool,

    /// Number of allowed sustained requests per second for the rotate endpoint, per client.
    #[arg(long, default_value = "10", value_parser = at_least_one::<u32>)]
    pub rotate_rate_limit: u32,

    /// Number of requests allowed to exceed the rotate rate limit per second, per client.
    #[arg(long, default_value_t = 20)]
    pub rotate_rate_limit_burst: u32,
}

impl ServerArgs {
    /// Per-request timeout: `--read-timeout` plus `--write-timeout`.
    pub fn timeout(&self) -> Duration {
        self.read_timeout + self.write_timeout
    }

    /// The connection limits of both servers.
    pub fn limits(&self) -> ConnLimits {
        ConnLimits {
            header_read_timeout: self.read_header_timeout,
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            write_stall_timeout: self.write_stall_timeout,
        }
    }

    /// What `/v1/verify` and `/v1/rotate` accept: the deprecated `data` field only when the
    /// reconciler accepts it too (`accept_deprecated_v1_data`) and this flag asks for it.
    pub fn unseal_options(&self, accept_deprecated_v1_data: bool) -> UnsealOptions {
        UnsealOptions {
            accept_deprecated_v1_data: accept_deprecated_v1_data
                && self.http_accept_deprecated_v1_data,
            ..UnsealOptions::default()
        }
    }
}

/// Go's listen address: `:8080` means every interface.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    if let Ok(a) = full.parse() {
        return Ok(a);
    }
    // `localhost:8080` and other host names.
    use std::net::ToSocketAddrs as _;
    full.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| format!("invalid listen address {s:?} (expected HOST:PORT or :PORT)"))
}
