//! The key-backend flags (docs/security.md, "Tier 1: keys held in a PKCS#11 token"): where
//! new RSA keys are generated and held.
//!
//! The PIN never comes from a flag value (which `ps` and pod specs show): only from a file,
//! a mounted Secret.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sealed_secrets_pkcs11::TokenConfig;

/// Where the controller's RSA keys are generated and held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum KeyBackend {
    /// In the controller's memory, stored in key Secrets (`tls.key`), as upstream.
    #[default]
    Memory,
    /// In a PKCS#11 token: generated there, never extractable; key Secrets hold the
    /// certificate and the key object's PKCS#11 URI.
    Pkcs11,
}

/// The key-backend settings.
#[derive(Clone, Debug, Default, Args)]
pub struct TokenKeyArgs {
    /// Where new RSA keys are generated and held: `memory` (key Secrets hold `tls.key`, as
    /// upstream) or `pkcs11` (keys generated inside a PKCS#11 token, never extractable; every
    /// decryption is done by the token).
    #[arg(long = "key-backend", value_enum, default_value = "memory")]
    pub key_backend: KeyBackend,

    /// pkcs11: path of the PKCS#11 module (shared library).
    #[arg(long = "key-pkcs11-module")]
    pub key_pkcs11_module: Option<PathBuf>,

    /// pkcs11: label of the token holding the keys.
    #[arg(long = "key-pkcs11-token", default_value = "")]
    pub key_pkcs11_token: String,

    /// pkcs11: file holding the token's user PIN (a mounted Secret; trailing newlines ignored).
    #[arg(long = "key-pkcs11-pin-file")]
    pub key_pkcs11_pin_file: Option<PathBuf>,

    /// pkcs11: label of a key object created outside the controller (e.g. `pkcs11-tool
    /// --keypairgen --key-type rsa:4096 --label LABEL`) to adopt: the leader writes a key
    /// Secret for it, with a certificate signed in the token. Repeatable; a key already in a
    /// key Secret is not adopted twice.
    #[arg(long = "key-pkcs11-adopt")]
    pub key_pkcs11_adopt: Vec<String>,
}

/// The key-backend settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyBackendConfigError {
    #[error("--key-backend=pkcs11 needs {0}")]
    Missing(&'static str),
    #[error("{0} is only used with --key-backend=pkcs11")]
    Unused(&'static str),
}

impl TokenKeyArgs {
    /// The token to open, `None` for the in-memory backend; the settings' problems. Pure.
    pub fn token_config(&self) -> Result<Option<TokenConfig>, KeyBackendConfigError> {
        match self.key_backend {
            KeyBackend::Memory => {
                if self.key_pkcs11_module.is_some() {
                    return Err(KeyBackendConfigError::Unused("--key-pkcs11-module"));
                }
                if !self.key_pkcs11_token.is_empty() {
                    return Err(KeyBackendConfigError::Unused("--key-pkcs11-token"));
                }
                if self.key_pkcs11_pin_file.is_some() {
                    return Err(KeyBackendConfigError::Unused("--key-pkcs11-pin-file"));
                }
                if !self.key_pkcs11_adopt.is_empty() {
                    return Err(KeyBackendConfigError::Unused("--key-pkcs11-adopt"));
                }
                Ok(None)
            }
            KeyBackend::Pkcs11 => {
                let Some(module) = &self.key_pkcs11_module else {
                    return Err(KeyBackendConfigError::Missing("--key-pkcs11-module"));
                };
                if self.key_pkcs11_token.trim().is_empty() {
                    return Err(KeyBackendConfigError::Missing("--key-pkcs11-token"));
                }
                let Some(pin) = &self.key_pkcs11_pin_file else {
                    return Err(KeyBackendConfigError::Missing("--key-pkcs11-pin-file"));
                };
                Ok(Some(TokenConfig::new(
                    module.clone(),
                    self.key_pkcs11_token.clone(),
                    pin.clone(),
                )))
            }
        }
    }
}
