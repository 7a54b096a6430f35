//! Settings of the AWS KMS backend and the standard AWS variables they are read from.

use std::time::Duration;

use super::credentials::CredentialSource;
use crate::error::WrapError;

/// The backend name in errors, logs and metrics.
pub(crate) const BACKEND: &str = "aws-kms";

/// Region variable.
pub const ENV_REGION: &str = "AWS_REGION";
/// Fallback region variable (the AWS CLI's).
pub const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Endpoint override for KMS only (VPC endpoints, FIPS endpoints, local-kms).
pub const ENV_ENDPOINT_KMS: &str = "AWS_ENDPOINT_URL_KMS";
/// Endpoint override for every AWS service.
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL";

/// Settings of the AWS KMS backend, parsed once at start-up.
#[derive(Debug, Clone)]
pub struct AwsKmsConfig {
    /// KMS key for new wraps: key ID, key ARN, alias name (`alias/...`) or alias ARN.
    pub key_id: String,
    /// Region, e.g. `eu-west-1` (part of the signature scope and of the default endpoint).
    pub region: String,
    /// Endpoint URL; `https://kms.<region>.amazonaws.com` when `None`. `http://` is for
    /// local test servers only.
    pub endpoint: Option<String>,
    /// Where credentials come from.
    pub credentials: CredentialSource,
    /// Budget of one call: connect, send, and the whole response.
    pub timeout: Duration,
}

impl AwsKmsConfig {
    /// Settings for `key_id` in `region`, credentials from the environment, a 10 s budget.
    pub fn new(key_id: impl Into<String>, region: impl Into<String>) -> AwsKmsConfig {
        AwsKmsConfig {
            key_id: key_id.into(),
            region: region.into(),
            endpoint: None,
            credentials: CredentialSource::Environment,
            timeout: Duration::from_secs(10),
        }
    }

    /// Settings for `key_id` with region, endpoint override and credential source read from
    /// the standard AWS variables ([`ENV_REGION`], [`ENV_DEFAULT_REGION`], [`ENV_ENDPOINT_KMS`],
    /// [`ENV_ENDPOINT`], [`CredentialSource::from_env`]).
    pub fn from_env(key_id: impl Into<String>) -> Result<AwsKmsConfig, WrapError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let region = var(ENV_REGION)
            .or_else(|| var(ENV_DEFAULT_REGION))
            .ok_or_else(|| WrapError::Config {
                backend: BACKEND,
                reason: format!("no region: set {ENV_REGION}"),
            })?;
        let mut config = AwsKmsConfig::new(key_id, region);
        config.endpoint = var(ENV_ENDPOINT_KMS).or_else(|| var(ENV_ENDPOINT));
        config.credentials = CredentialSource::from_env();
        Ok(config)
    }
}
