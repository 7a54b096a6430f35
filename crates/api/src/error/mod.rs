//! Error types, one per operation. Messages name the document or object and the item, never
//! a secret value (values are not even reachable from these types).
//!
//! - `manifest`: reading a stream ([`ManifestError`]) and writing output ([`OutputError`]);
//! - `sealing`: [`SealingError`];
//! - `unseal`: [`UnsealError`] and its per-item [`ItemError`], with the work and message bounds.

mod manifest;
mod sealing;
mod unseal;

pub use manifest::{ManifestError, OutputError};
pub use sealing::SealingError;
pub use unseal::{ItemError, MAX_MESSAGE_LEN, MAX_RSA_OPERATIONS, UnsealError};
