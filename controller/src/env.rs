//! Every environment variable the controller reads, in one place.
//!
//! Each flag `--F` also reads `SEALED_SECRETS_<F upper-cased, '-' → '_'>` (the flag wins),
//! upstream's pflag/viper binding (docs/upstream.md §4.1): [`for_flag`] derives the name, and
//! [`crate::config::Config::command`] gives it to every flag, so a new flag gets its variable
//! without a line here. The others are set by the Deployment or are kube's own.

/// The prefix of every flag's variable.
pub const FLAG_PREFIX: &str = "SEALED_SECRETS_";

/// The controller's namespace (key namespace, watched namespace), set by the Deployment.
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Leader-election identity, set by the Deployment from `metadata.name`.
pub const POD_NAME: &str = "POD_NAME";
/// Standard kubeconfig variable, honoured through kube's config inference.
pub const KUBECONFIG_STD: &str = "KUBECONFIG";

/// The variable of the flag `--long`: `key-renew-period` → `SEALED_SECRETS_KEY_RENEW_PERIOD`.
pub fn for_flag(long: &str) -> String {
    format!(
        "{FLAG_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn upstream_naming() {
        assert_eq!(
            super::for_flag("key-renew-period"),
            "SEALED_SECRETS_KEY_RENEW_PERIOD"
        );
        assert_eq!(super::for_flag("my-cn"), "SEALED_SECRETS_MY_CN");
    }
}
