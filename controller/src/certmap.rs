//! Publishes the certificates to a ConfigMap in the controller namespace (docs/design.md:
//! `cert.pem` = newest, `certs.pem` = all active, newest first, and `age-recipient.txt` = the
//! newest key's post-quantum recipient when it has one), so that `kubeseal
//! --cert-from-configmap` needs only `get configmaps` instead of the service proxy, which
//! breaks on private GKE and firewalled control planes (§9.1, upstream #368).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use sealed_secrets_api::seal::AGE_RECIPIENT_CONFIGMAP_KEY;

use crate::keys::{KeySnapshot, Keys};

/// Where the certificates are published.
#[derive(Clone, Debug, clap::Args)]
pub struct CertMapArgs {
    /// ConfigMap in the controller namespace to publish the certificates to (empty disables).
    #[arg(long = "cert-configmap", default_value = "sealed-secrets-cert")]
    pub name: String,
}

impl CertMapArgs {
    /// The ConfigMap's name; `None` when publishing is disabled.
    pub fn configmap(&self) -> Option<&str> {
        Some(self.name.as_str()).filter(|s| !s.is_empty())
    }
}

/// Data key of the newest certificate.
pub const CERT_KEY: &str = "cert.pem";
/// Data key of every active certificate, newest first.
pub const CERTS_KEY: &str = "certs.pem";

/// The ConfigMap data for a key snapshot; `None` when there is no key yet. Pure.
pub fn configmap_data(snap: &KeySnapshot) -> Option<BTreeMap<String, String>> {
    let newest = snap.newest()?;
    let mut all = String::new();
    for c in snap.certs_newest_first() {
        all.push_str(c.pem());
        if !all.ends_with('\n') {
            all.push('\n');
        }
    }
    let mut data = BTreeMap::from([
        (CERT_KEY.to_owned(), newest.cert.pem().to_owned()),
        (CERTS_KEY.to_owned(), all),
    ]);
    // Absent (not empty) when the newest key is RSA-only, as `/v1/age-recipient.txt` answers
    // 404 then: a reader never takes an older key's recipient for the newest.
    if let Some(r) = &newest.pq_recipient {
        data.insert(AGE_RECIPIENT_CONFIGMAP_KEY.to_owned(), format!("{r}\n"));
    }
    Some(data)
}

async fn publish_once(
    api: &Api<ConfigMap>,
    name: &str,
    data: BTreeMap<String, String>,
) -> Result<bool, kube::Error> {
    match api.get_opt(name).await? {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(BTreeMap::from([(
                        sealed_secrets_api::annotations::MANAGED_BY_LABEL.to_owned(),
                        "sealed-secrets-controller".to_owned(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            api.create(&PostParams::default(), &cm).await?;
            Ok(true)
        }
        Some(mut cm) => {
            if cm.data.as_ref() == Some(&data) {
                return Ok(false);
            }
            cm.data = Some(data);
            api.replace(name, &PostParams::default(), &cm).await?;
            Ok(true)
        }
    }
}

/// Keeps the ConfigMap in step with the keys (runs on the leader only).
pub async fn run(client: kube::Client, namespace: String, name: String, keys: Arc<Keys>) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let mut changed = keys.subscribe();
    let mut backoff = Duration::from_secs(2);
    loop {
        if let Some(data) = configmap_data(&keys.snapshot()) {
            match publish_once(&api, &name, data).await {
                Ok(written) => {
                    backoff = Duration::from_secs(2);
                    if written {
                        tracing::info!(configmap = %format!("{namespace}/{name}"), "published certificates");
                    }
                }
                Err(e) => {
                    if matches!(&e, kube::Error::Api(s) if s.code == 403) {
                        tracing::error!(error = %e,
                            "cannot publish the certificate ConfigMap `{name}` in namespace `{namespace}`: the controller needs get, \
                             create and update on that ConfigMap; grant them (deploy/base/rbac-controller.yaml does) or disable \
                             publication with --cert-configmap=\"\"");
                    } else {
                        tracing::warn!(error = %e, "failed to publish the certificate ConfigMap; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use sealed_secrets_crypto::{CertParams, PqIdentity, PrivateKey};

    use super::*;
    use crate::keys::{KeyArgs, LoadedKey};

    fn keys_with(pq: Option<PqIdentity>) -> Arc<Keys> {
        let keys = Keys::new(
            KeyArgs::parse_for_test(&["--key-size=2048", "--key-ttl=1h"]),
            "kube-system".into(),
            Arc::new(crate::metrics::Metrics::new()),
        );
        let key = PrivateKey::generate(2048).unwrap();
        let cert = key.self_signed_certificate(&CertParams::default()).unwrap();
        keys.register(LoadedKey {
            secret_name: "k".into(),
            key,
            cert,
            order_time: SystemTime::now(),
            foreign: false,
            future_not_before: false,
            pq,
            pq_error: None,
        });
        keys
    }

    #[test]
    fn the_newest_keys_recipient_is_published_beside_the_certificates_when_it_has_one() {
        let id = PqIdentity::generate().unwrap();
        let data = configmap_data(&keys_with(Some(id.clone())).snapshot()).unwrap();
        assert_eq!(
            data[AGE_RECIPIENT_CONFIGMAP_KEY],
            format!("{}\n", id.recipient())
        );
        assert!(data[AGE_RECIPIENT_CONFIGMAP_KEY].starts_with("age1pq1"));
        assert!(data.contains_key(CERT_KEY) && data.contains_key(CERTS_KEY));

        let rsa_only = configmap_data(&keys_with(None).snapshot()).unwrap();
        assert_eq!(
            rsa_only.keys().map(String::as_str).collect::<Vec<_>>(),
            [CERT_KEY, CERTS_KEY]
        );
    }
}
