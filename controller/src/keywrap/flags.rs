//! The key-wrapping flags: defined once in `sealed_secrets_kms::settings`, where kubeseal's
//! `keys wrap` / `keys unwrap` take them from too, so both sides build the same backend.

pub use sealed_secrets_kms::settings::{KeyWrapArgs, WrapBackend, WrapConfigError};
