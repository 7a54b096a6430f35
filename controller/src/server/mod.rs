//! The HTTP endpoints (§5): `/healthz`, `/v1/cert.pem`, `/v1/verify` and `/v1/rotate` on
//! `--listen-addr`; `/metrics` on `--listen-metrics-addr`.
//!
//! Verify and rotate **never render templates** (§9.3: that made upstream a decryption
//! oracle): they use `sealed_secrets_api::verify`/`decrypt_items`/`reseal`, and rotate takes
//! the scope from the SealedSecret's top-level metadata only.
//!
//! Everything a client controls is bounded ([`serve`]): the time to send request headers
//! (which also closes idle keep-alive connections), the time a response write may stall, the
//! requests per connection, the number of open connections overall and per client, the body
//! size and the time to send it, the time a request may take, and the RSA work verify and
//! rotate may run at once. The probes keep slots of their own ([`listen::PROBE_SLOTS`]).
//! Both are rate-limited per client (upstream limits verify only), before the body is read;
//! the client is the peer address, or the `X-Forwarded-For` entry added by a configured
//! trusted proxy ([`crate::ratelimit::client_address`]).
//!
//! - [`routes`]: the routers; [`verify`]: verify and rotate (`rotate_pq`: post-quantum values
//!   stay post-quantum); [`state`]: what handlers share;
//!   [`listen`]: the accept loop and the connection limits (`conn`: per connection); [`bind`]: binding both servers;
//!   [`flags`]: the servers' flags.

pub mod bind;
mod conn;
pub mod flags;
pub mod listen;
mod rotate_pq;
pub mod routes;
pub mod state;
pub mod verify;

pub use bind::{BindError, Listener, listen};
pub use flags::ServerArgs;
pub use listen::{
    ConnLimits, MAX_REQUESTS_PER_CONNECTION, PROBE_SLOTS, PROBE_SLOTS_PER_CLIENT, serve,
};
pub use routes::{method_label, metrics_router, probe_router, router};
pub use state::{MAX_BODY_BYTES, PeerAddr, ServerState, rsa_permits_for};
pub use verify::{BodyError, parse_one, refuse_legacy};

#[cfg(test)]
mod tests;
