//! The key-wrapping flags (docs/security.md, "Tier 2: key Secrets wrapped by a KMS"): which
//! backend wraps the private keys in key Secrets, under which key, for which cluster. One
//! definition for both binaries: the controller wraps and unwraps with them, `kubeseal keys
//! wrap` / `keys unwrap` convert existing key Secrets with the same backend and binding.
//!
//! Credentials and PINs never come from flag values (which `ps` and pod specs show): the AWS
//! backend reads the standard `AWS_*` variables and credential files, the PKCS#11 backend a
//! PIN file (a mounted Secret).

use std::path::PathBuf;
use std::sync::Arc;

use crate::{AwsKms, AwsKmsConfig, Pkcs11Wrapper, WrapError, Wrapper};
use clap::{Args, ValueEnum};
use sealed_secrets_pkcs11::{Token, TokenConfig};

/// Which service wraps the private keys of key Secrets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum WrapBackend {
    /// Plain `tls.key`, as upstream writes it.
    #[default]
    None,
    /// The AWS KMS API (`Encrypt`/`Decrypt`); region, endpoint and credentials from the
    /// standard `AWS_*` variables.
    AwsKms,
    /// An AES-256 wrapping key held in a PKCS#11 token.
    Pkcs11,
}

/// How private keys are wrapped at rest. Each flag's id is its long name, so that the group
/// flattens beside others with fields of the same name (kubeseal's `--cluster`).
#[derive(Clone, Debug, Default, Args)]
pub struct KeyWrapArgs {
    /// Store every new private key wrapped by this key management service (`tls.key.wrapped`
    /// instead of `tls.key`) and unwrap wrapped keys with it. `none` writes upstream's plain
    /// key Secrets; a wrapped key Secret is then reported as unusable.
    #[arg(
        id = "key-wrap-backend",
        long = "key-wrap-backend",
        value_enum,
        default_value = "none"
    )]
    pub backend: WrapBackend,

    /// The wrapping key: for aws-kms a key ID, key ARN, alias name (`alias/...`) or alias ARN;
    /// for pkcs11 the label of the AES wrapping key in the token.
    #[arg(id = "key-wrap-key", long = "key-wrap-key", default_value = "")]
    pub key: String,

    /// Name of this cluster, bound into every wrapped key (with the key Secret's namespace and
    /// name) so that a wrapped key copied to another Secret or cluster does not open.
    #[arg(id = "key-wrap-cluster", long = "key-wrap-cluster", default_value = "")]
    pub cluster: String,

    /// pkcs11: path of the PKCS#11 module (shared library).
    #[arg(id = "key-wrap-pkcs11-module", long = "key-wrap-pkcs11-module")]
    pub pkcs11_module: Option<PathBuf>,

    /// pkcs11: label of the token holding the wrapping key.
    #[arg(
        id = "key-wrap-pkcs11-token",
        long = "key-wrap-pkcs11-token",
        default_value = ""
    )]
    pub pkcs11_token: String,

    /// pkcs11: file holding the token's user PIN (a mounted Secret; trailing newlines ignored).
    #[arg(id = "key-wrap-pkcs11-pin-file", long = "key-wrap-pkcs11-pin-file")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

/// The key-wrapping settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WrapConfigError {
    #[error("--key-wrap-backend={backend} needs {flag}")]
    Missing {
        backend: &'static str,
        flag: &'static str,
    },
    #[error("no key-wrapping backend: pass --key-wrap-backend=aws-kms or pkcs11")]
    NoBackend,
    #[error("cannot set up the key-wrapping backend")]
    Backend(#[source] WrapError),
    #[error("cannot open the PKCS#11 token or find its wrapping key `{label}`")]
    Token {
        label: String,
        #[source]
        source: sealed_secrets_pkcs11::Pkcs11Error,
    },
}

impl KeyWrapArgs {
    /// The settings' problems a backend is not even tried with. Pure.
    pub fn check(&self) -> Result<(), WrapConfigError> {
        let backend = match self.backend {
            WrapBackend::None => return Ok(()),
            WrapBackend::AwsKms => "aws-kms",
            WrapBackend::Pkcs11 => "pkcs11",
        };
        let missing = |flag| Err(WrapConfigError::Missing { backend, flag });
        if self.key.trim().is_empty() {
            return missing("--key-wrap-key");
        }
        if self.cluster.trim().is_empty() {
            return missing("--key-wrap-cluster");
        }
        if self.backend == WrapBackend::Pkcs11 {
            if self.pkcs11_module.is_none() {
                return missing("--key-wrap-pkcs11-module");
            }
            if self.pkcs11_token.trim().is_empty() {
                return missing("--key-wrap-pkcs11-token");
            }
            if self.pkcs11_pin_file.is_none() {
                return missing("--key-wrap-pkcs11-pin-file");
            }
        }
        Ok(())
    }

    /// The configured backend, refusing `--key-wrap-backend=none` (for the commands that
    /// convert keys, which have nothing to do without one).
    pub fn build_required(&self) -> Result<Arc<dyn Wrapper>, WrapConfigError> {
        self.build()?.ok_or(WrapConfigError::NoBackend)
    }

    /// The configured backend, `None` for `--key-wrap-backend=none`. Opening the PKCS#11 token
    /// logs in once; the AWS backend makes no call until the first wrap or unwrap.
    pub fn build(&self) -> Result<Option<Arc<dyn Wrapper>>, WrapConfigError> {
        self.check()?;
        match self.backend {
            WrapBackend::None => Ok(None),
            WrapBackend::AwsKms => {
                let config =
                    AwsKmsConfig::from_env(self.key.clone()).map_err(WrapConfigError::Backend)?;
                let kms = AwsKms::new(config).map_err(WrapConfigError::Backend)?;
                Ok(Some(Arc::new(kms)))
            }
            WrapBackend::Pkcs11 => {
                let (Some(module), Some(pin)) = (&self.pkcs11_module, &self.pkcs11_pin_file) else {
                    return Ok(None);
                };
                let token_err = |source| WrapConfigError::Token {
                    label: self.key.clone(),
                    source,
                };
                let token = Token::open(&TokenConfig::new(
                    module.clone(),
                    self.pkcs11_token.clone(),
                    pin.clone(),
                ))
                .map_err(token_err)?;
                let key = token.find_wrapping_key(&self.key).map_err(token_err)?;
                Ok(Some(Arc::new(Pkcs11Wrapper::new(token, key))))
            }
        }
    }
}
