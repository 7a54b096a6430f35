//! kubectl's connection flags, shared by every command that talks to a cluster.

use std::path::PathBuf;

use clap::Args;

use crate::env;

/// kubectl-style connection flags (client-go's `RecommendedConfigOverrideFlags("")`).
///
/// Not global: only the upstream modes and the `keys` subcommands talk to a cluster, so only
/// they list these 20 flags (they are flattened into each `keys` subcommand, and values given
/// before the subcommand still apply, see [`KubeArgs::or`]).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Cluster connection")]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = env::KUBECONFIG, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// If present, the namespace scope for this request.
    #[arg(short = 'n', long, env = env::NAMESPACE, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The name of the kubeconfig context to use.
    #[arg(long, env = env::CONTEXT, value_name = "NAME")]
    pub context: Option<String>,

    /// The name of the kubeconfig cluster to use.
    #[arg(long, env = env::CLUSTER, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use.
    #[arg(long, env = env::USER, value_name = "NAME")]
    pub user: Option<String>,

    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, env = env::SERVER, value_name = "URL")]
    pub server: Option<String>,

    /// Path to a cert file for the certificate authority.
    #[arg(long = "certificate-authority", env = env::CERTIFICATE_AUTHORITY, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,

    /// If true, the server's certificate will not be checked for validity (insecure).
    #[arg(long = "insecure-skip-tls-verify", env = env::INSECURE_SKIP_TLS_VERIFY)]
    pub insecure_skip_tls_verify: bool,

    /// Server name to use for server certificate validation.
    #[arg(long = "tls-server-name", env = env::TLS_SERVER_NAME, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Path to a client certificate file for TLS.
    #[arg(long = "client-certificate", env = env::CLIENT_CERTIFICATE, value_name = "FILE")]
    pub client_certificate: Option<PathBuf>,

    /// Path to a client key file for TLS.
    #[arg(long = "client-key", env = env::CLIENT_KEY, value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Bearer token for authentication to the API server.
    #[arg(long, env = env::TOKEN, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Username to impersonate for the operation.
    #[arg(long = "as", env = env::AS, value_name = "USER")]
    pub as_user: Option<String>,

    /// Group to impersonate for the operation (repeatable).
    #[arg(long = "as-group", env = env::AS_GROUP, value_name = "GROUP")]
    pub as_group: Vec<String>,

    /// UID to impersonate for the operation.
    #[arg(long = "as-uid", env = env::AS_UID, value_name = "UID")]
    pub as_uid: Option<String>,

    /// Username for basic authentication to the API server.
    #[arg(long, env = env::USERNAME, value_name = "USER")]
    pub username: Option<String>,

    /// Password for basic authentication to the API server.
    #[arg(long, env = env::PASSWORD, value_name = "PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// How long to wait for a single server request, e.g. 30s, 1m, 500ms ("0" = no timeout).
    #[arg(long = "request-timeout", env = env::REQUEST_TIMEOUT, default_value = "0", value_name = "DURATION")]
    pub request_timeout: String,

    /// Proxy URL to reach the API server.
    #[arg(long = "proxy-url", env = env::PROXY_URL, value_name = "URL")]
    pub proxy_url: Option<String>,

    /// Disable response compression for requests to the server.
    #[arg(long = "disable-compression", env = env::DISABLE_COMPRESSION)]
    pub disable_compression: bool,
}

impl KubeArgs {
    /// These flags, each falling back to `outer`'s (`kubeseal --context x keys list` and
    /// `kubeseal keys list --context x` mean the same).
    pub fn or(self, outer: &KubeArgs) -> KubeArgs {
        let o = outer.clone();
        KubeArgs {
            kubeconfig: self.kubeconfig.or(o.kubeconfig),
            namespace: self.namespace.or(o.namespace),
            context: self.context.or(o.context),
            cluster: self.cluster.or(o.cluster),
            user: self.user.or(o.user),
            server: self.server.or(o.server),
            certificate_authority: self.certificate_authority.or(o.certificate_authority),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify || o.insecure_skip_tls_verify,
            tls_server_name: self.tls_server_name.or(o.tls_server_name),
            client_certificate: self.client_certificate.or(o.client_certificate),
            client_key: self.client_key.or(o.client_key),
            token: self.token.or(o.token),
            as_user: self.as_user.or(o.as_user),
            as_group: if self.as_group.is_empty() {
                o.as_group
            } else {
                self.as_group
            },
            as_uid: self.as_uid.or(o.as_uid),
            username: self.username.or(o.username),
            password: self.password.or(o.password),
            request_timeout: if self.request_timeout == "0" {
                o.request_timeout
            } else {
                self.request_timeout
            },
            proxy_url: self.proxy_url.or(o.proxy_url),
            disable_compression: self.disable_compression || o.disable_compression,
        }
    }
}
