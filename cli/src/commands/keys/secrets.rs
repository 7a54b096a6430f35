//! Reading the controller's key Secrets from the cluster, and what one of them holds. Every
//! `keys` subcommand that talks to the cluster starts here, so "which Secrets are keys" and
//! "which key is active" are answered once, as the controller answers them (§4.2).

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use sealed_secrets_api::annotations::{SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE};
use sealed_secrets_api::wrapped_key::is_wrapped;
use sealed_secrets_crypto::{Certificate, Fingerprint, PrivateKey};

use crate::args::{ControllerArgs, KubeArgs};
use crate::cluster;
use crate::error::Result;

/// Name of upstream's legacy key Secret.
const LEGACY_KEY_SECRET: &str = "sealed-secrets-key";

/// Type of a key Secret whose private key never leaves a PKCS#11 token (docs/security.md,
/// "Tier 1"): `tls.crt` and a reference to the token object, no private key.
use sealed_secrets_api::token_key::TOKEN_KEY_SECRET_TYPE;

/// Where a key Secret's private key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// `tls.key` in the clear, as upstream stores it.
    Plain,
    /// Wrapped by a key management service (`tls.key.wrapped`).
    Wrapped,
    /// In a PKCS#11 token; the Secret holds none.
    Token,
}

impl Held {
    /// How `keys list` shows it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Held::Plain => "plain",
            Held::Wrapped => "wrapped",
            Held::Token => "in token",
        }
    }
}

/// Where the private key of a key Secret is. Pure.
pub(super) fn held(s: &Secret) -> Held {
    if token_held(s) {
        Held::Token
    } else if is_wrapped(s) {
        Held::Wrapped
    } else {
        Held::Plain
    }
}

/// Whether the key Secret's private key is held in a PKCS#11 token. Pure.
pub(super) fn token_held(s: &Secret) -> bool {
    s.type_.as_deref() == Some(TOKEN_KEY_SECRET_TYPE)
}

/// Every key Secret (labelled with any value, plus the legacy one), oldest first.
pub(super) async fn key_secrets(
    controller: &ControllerArgs,
    kube: &KubeArgs,
) -> Result<Vec<Secret>> {
    let client = cluster::client(kube).await?;
    key_secrets_with(&client, &controller.controller_namespace).await
}

pub(super) async fn key_secrets_with(client: &kube::Client, ns: &str) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let fail = |e: kube::Error| {
        cluster::api_error(
            format!("cannot list key Secrets in namespace `{ns}`"),
            &e,
            Some(
                "this needs `list secrets` in the controller namespace; check --controller-namespace",
            ),
        )
    };
    let params = ListParams::default().labels(SEALING_KEY_LABEL);
    let mut list = cluster::retrying(|| api.list(&params))
        .await
        .map_err(fail)?
        .items;
    if !list
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(LEGACY_KEY_SECRET))
        && let Some(legacy) = cluster::retrying(|| api.get_opt(LEGACY_KEY_SECRET))
            .await
            .map_err(fail)?
    {
        list.push(legacy);
    }
    list.sort_by(|a, b| {
        let t = |s: &Secret| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then(a.metadata.name.cmp(&b.metadata.name))
    });
    Ok(list)
}

/// One key Secret, read.
pub(super) struct KeyInfo {
    pub(super) name: String,
    pub(super) fingerprint: Option<Fingerprint>,
    pub(super) created: String,
    pub(super) not_after: Option<SystemTime>,
    pub(super) active: bool,
    pub(super) held: Held,
}

pub(super) fn key_info(s: &Secret) -> KeyInfo {
    let data = s.data.clone().unwrap_or_default();
    let fingerprint = fingerprint_of(s);
    let not_after = data
        .get("tls.crt")
        .and_then(|c| Certificate::from_pem(&c.0).ok())
        .map(|c| c.not_after());
    KeyInfo {
        name: s.metadata.name.clone().unwrap_or_default(),
        fingerprint,
        created: s
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        not_after,
        active: s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SEALING_KEY_LABEL))
            .is_some_and(|v| v == SEALING_KEY_LABEL_ACTIVE)
            || s.metadata.name.as_deref() == Some(LEGACY_KEY_SECRET),
        held: held(s),
    }
}

/// The fingerprint of the key Secret's key: from `tls.key` when it holds one, else (a wrapped
/// or token-held key) from its certificate.
pub(super) fn fingerprint_of(s: &Secret) -> Option<Fingerprint> {
    let data = s.data.as_ref()?;
    match data.get("tls.key") {
        Some(k) => PrivateKey::from_pem(&k.0)
            .ok()
            .map(|k| k.fingerprint().clone()),
        None => data
            .get("tls.crt")
            .and_then(|c| Certificate::from_pem(&c.0).ok())
            .map(|c| c.public_key().fingerprint().clone()),
    }
}
