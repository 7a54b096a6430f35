//! The flags that change reconciling (§4.1): what is unsealed, how the Secret and the status
//! are written, retries, and how many reconciles run at once.

use clap::{ArgAction, Args};

use crate::flags::{at_least_one, parse_bool};

/// Default of `--max-sealed-secret-size`: 1.5 MiB, etcd's default request limit, so that
/// every SealedSecret a default cluster can store is processed, including one that seals a
/// Secret of Kubernetes' full 1 MiB (base64 makes it about 1.4 MB).
pub const DEFAULT_MAX_SEALED_SECRET_SIZE: u64 = 1536 * 1024;

/// Switches that change reconciling.
#[derive(Clone, Debug, Args)]
pub struct ReconcileArgs {
    /// Accept deprecated 'data' field (whole-Secret v1 format).
    #[arg(long, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub accept_deprecated_v1_data: bool,

    /// Label selector which can be used to filter sealed secrets (and the Secrets watched for recreation).
    #[arg(long, default_value = "")]
    pub label_selector: String,

    /// Delete the Secret explicitly when its SealedSecret is deleted (instead of ownerRef GC).
    #[arg(long, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub old_gc_behavior: bool,

    /// Write the SealedSecret status subresource.
    #[arg(long, default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub update_status: bool,

    /// Do not watch Secrets, so deleted Secrets are not recreated (needs fewer RBAC rights).
    #[arg(long, default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub skip_recreate: bool,

    /// Max unseal retries before giving up on a SealedSecret (until its next change);
    /// transient API failures (429, 5xx, connection errors) are retried without counting.
    #[arg(long, default_value_t = 5)]
    pub max_unseal_retries: u32,

    /// SealedSecrets reconciled concurrently.
    #[arg(long, default_value = "8", value_parser = at_least_one::<u16>)]
    pub concurrency: u16,

    /// Decryptions run at once, of each class: those of a namespace with nothing else
    /// decrypting, and those of a namespace's backlog (at lower CPU priority while another
    /// namespace decrypts; docs/design.md, "Reconcile queue"). It is also the most reconciles
    /// a namespace with a backlog runs at once for 10 s after another namespace's reconcile
    /// started with nothing else of its own to run.
    /// 0: one per core this process may use. Raise it when the keys are in a network HSM
    /// (`--key-backend=pkcs11`), whose decryptions wait on the network rather than use a core.
    #[arg(long, default_value_t = 0)]
    pub unseal_concurrency: u16,

    /// Unseal SealedSecrets whose template asks for a Secret of type
    /// kubernetes.io/service-account-token. Off by default (unlike upstream): such a Secret
    /// gets a long-lived token of any ServiceAccount in the namespace, so whoever may create
    /// SealedSecrets would get tokens without any right on Secrets.
    #[arg(long = "allow-service-account-token-secrets", default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub allow_service_account_tokens: bool,

    /// Largest SealedSecret (bytes of JSON, as the API server serves it) the controller
    /// processes; larger ones get Synced=False naming this limit. 0: no limit. The default,
    /// 1.5 MiB, is etcd's default request limit: every SealedSecret a default cluster stores.
    #[arg(long, default_value_t = DEFAULT_MAX_SEALED_SECRET_SIZE)]
    pub max_sealed_secret_size: u64,

    /// With `--sharding`: this replica as a shard member, whose SealedSecret watch and
    /// start-up list select its own objects only (not a flag: set from [`crate::shard`]).
    #[arg(skip)]
    pub shard: Option<crate::shard::Member>,
}

impl ReconcileArgs {
    /// The label selector of SealedSecret lists and watches: `--label-selector` and, for a
    /// shard member, its shard label. Secrets are watched with `--label-selector` alone.
    pub fn sealed_secret_selector(&self) -> String {
        match &self.shard {
            Some(m) => crate::shard::and_selector(&self.label_selector, &m.selector()),
            None => self.label_selector.clone(),
        }
    }
}

#[cfg(test)]
impl ReconcileArgs {
    /// The flags' defaults as the tests need them: status updates on, no selector, no shard.
    pub(crate) fn for_tests(concurrency: u16, max_sealed_secret_size: u64) -> Self {
        Self {
            update_status: true,
            old_gc_behavior: false,
            accept_deprecated_v1_data: false,
            max_unseal_retries: 5,
            skip_recreate: false,
            label_selector: String::new(),
            concurrency,
            unseal_concurrency: 0,
            allow_service_account_tokens: false,
            max_sealed_secret_size,
            shard: None,
        }
    }
}
