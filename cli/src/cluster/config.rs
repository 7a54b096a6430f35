//! From flags to a kube-rs `Config`: the kubeconfig file and context, then kubectl's override
//! flags on top, and the namespace Secrets without one are sealed for. Kept apart from the
//! client because it is pure translation of flags (no network), and `default_namespace`
//! must work with no cluster at all (offline sealing).

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::failure::innermost;
use crate::args::KubeArgs;
use crate::error::{CliError, Result};

/// The namespace Secrets without one are sealed for: `-n`, else the kubeconfig context's,
/// else `default`. Never fails: like client-go, a missing or broken kubeconfig means
/// `default` (offline sealing must work without any kubeconfig).
pub fn default_namespace(args: &KubeArgs) -> String {
    if let Some(ns) = args.namespace.as_ref().filter(|n| !n.is_empty()) {
        return ns.clone();
    }
    let kc = match &args.kubeconfig {
        Some(p) => Kubeconfig::read_from(p).ok(),
        None => Kubeconfig::read().ok(),
    };
    kc.and_then(|kc| {
        let ctx_name = args.context.clone().or(kc.current_context.clone())?;
        kc.contexts
            .into_iter()
            .find(|c| c.name == ctx_name)
            .and_then(|c| c.context)
            .and_then(|c| c.namespace)
    })
    .filter(|n| !n.is_empty())
    .unwrap_or_else(|| "default".to_owned())
}

/// `--request-timeout`, parsed like kubectl ([`sealed_secrets_api::duration::parse_kubectl`]); `0` means none.
pub fn parse_timeout(s: &str) -> Result<Option<Duration>> {
    sealed_secrets_api::duration::parse_kubectl(s).map_err(|_| CliError::InvalidFlag {
        flag: "--request-timeout",
        value: s.to_owned(),
        reason: "expected e.g. 30s, 1m, 500ms, or a number of seconds".to_owned(),
    })
}

/// Builds the kube-rs config: the kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else
/// `~/.kube/config`, else in-cluster) with `--context/--cluster/--user`, then the kubectl
/// override flags on top. Exec plugins and tokens are kube-rs's own handling.
pub async fn config(args: &KubeArgs) -> Result<kube::Config> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: args.cluster.clone(),
        user: args.user.clone(),
    };
    let kubeconfig = match &args.kubeconfig {
        Some(p) => Some(Kubeconfig::read_from(p).map_err(|e| CliError::Kubeconfig {
            path: Some(p.clone()),
            cause: config_cause(&e),
        })?),
        None => Kubeconfig::read().ok(),
    };
    let mut config = match (kubeconfig, &args.server) {
        (Some(kc), _) => kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| CliError::Kubeconfig {
                path: None,
                cause: config_cause(&e),
            })?,
        (None, Some(server)) => kube::Config::new(parse_uri(server, "--server")?),
        (None, None) => kube::Config::incluster().map_err(|e| {
            CliError::kube("no kubeconfig found and not running in a cluster", e)
                .with_hint("set KUBECONFIG or --kubeconfig, or seal offline with --cert")
        })?,
    };
    if let Some(server) = &args.server {
        config.cluster_url = parse_uri(server, "--server")?;
    }
    if let Some(ns) = args.namespace.as_ref().filter(|n| !n.is_empty()) {
        config.default_namespace = ns.clone();
    }
    if let Some(ca) = &args.certificate_authority {
        config.root_cert_file = Some(ca.clone());
        config.root_cert = None;
    }
    if args.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(name) = &args.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(p) = &args.proxy_url {
        config.proxy_url = Some(parse_uri(p, "--proxy-url")?);
    }
    if args.disable_compression {
        config.disable_compression = true;
    }
    if let Some(t) = parse_timeout(&args.request_timeout)? {
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
        config.connect_timeout = Some(t);
    }
    apply_auth_overrides(&mut config.auth_info, args)?;
    Ok(config)
}

fn parse_uri(s: &str, flag: &'static str) -> Result<http::Uri> {
    s.parse()
        .map_err(|e: http::uri::InvalidUri| CliError::InvalidFlag {
            flag,
            value: s.to_owned(),
            reason: e.to_string(),
        })
}

/// The user-related overrides. kube-rs keeps secrets in `SecretString`; building the
/// overriding `AuthInfo` through serde avoids depending on `secrecy` directly.
fn apply_auth_overrides(auth: &mut kube::config::AuthInfo, args: &KubeArgs) -> Result<()> {
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        o.insert(k.to_owned(), v);
    };
    if let Some(t) = &args.token {
        put("token", t.clone().into());
    }
    if let Some(u) = &args.username {
        put("username", u.clone().into());
    }
    if let Some(p) = &args.password {
        put("password", p.clone().into());
    }
    if let Some(c) = &args.client_certificate {
        put("client-certificate", c.display().to_string().into());
    }
    if let Some(k) = &args.client_key {
        put("client-key", k.display().to_string().into());
    }
    if let Some(a) = &args.as_user {
        put("as", a.clone().into());
    }
    if let Some(a) = &args.as_uid {
        put("as-uid", a.clone().into());
    }
    if !args.as_group.is_empty() {
        put("as-groups", args.as_group.clone().into());
    }
    if o.is_empty() {
        return Ok(());
    }
    let over: kube::config::AuthInfo = serde_json::from_value(serde_json::Value::Object(o))
        .map_err(|e| CliError::Internal(format!("cannot apply credential flags: {e}")))?;
    if over.token.is_some() {
        // A token flag replaces whatever the kubeconfig authenticates with.
        auth.token = over.token;
        auth.token_file = None;
        auth.exec = None;
        auth.auth_provider = None;
    }
    if over.username.is_some() {
        auth.username = over.username;
    }
    if over.password.is_some() {
        auth.password = over.password;
    }
    if over.client_certificate.is_some() {
        auth.client_certificate = over.client_certificate;
        auth.client_certificate_data = None;
    }
    if over.client_key.is_some() {
        auth.client_key = over.client_key;
        auth.client_key_data = None;
    }
    if over.impersonate.is_some() {
        auth.impersonate = over.impersonate;
    }
    if over.impersonate_uid.is_some() {
        auth.impersonate_uid = over.impersonate_uid;
    }
    if over.impersonate_groups.is_some() {
        auth.impersonate_groups = over.impersonate_groups;
    }
    Ok(())
}

/// Why a kubeconfig could not be used, in one line: its deepest cause without the parser's
/// source snippet (a kubeconfig line can hold a token) and without kube's Debug-quoted path.
fn config_cause(e: &dyn std::error::Error) -> String {
    innermost(e).lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeout_parses_like_kubectl() {
        assert_eq!(parse_timeout("0").ok(), Some(None));
        assert_eq!(
            parse_timeout("1m30s").ok(),
            Some(Some(Duration::from_secs(90)))
        );
        let err = parse_timeout("soon").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid --request-timeout `soon`: expected e.g. 30s, 1m, 500ms, or a number of seconds"
            )
        );
    }
}
