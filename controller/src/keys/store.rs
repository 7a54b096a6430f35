//! Key Secret storage: the start-up load (§4.2), the watcher that follows key Secrets
//! added, removed or relabelled at runtime, and writing a newly generated key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use sealed_secrets_api::annotations::{
    KEY_ORIGIN, KEY_ORIGIN_GENERATED, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE,
};
use sealed_secrets_crypto::{CertParams, Certificate, Fingerprint, PrivateKey};

use super::flags::KeyArgs;
use super::registry::{LoadedKey, active_selector};
use super::renewal::startup_backoff;
use super::{KeyApiError, Keys};

/// Generating or storing a new key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenError {
    #[error("failed to generate a {bits}-bit RSA key")]
    Generate {
        bits: usize,
        #[source]
        source: sealed_secrets_crypto::KeyError,
    },
    #[error("failed to create the certificate of a new key")]
    Cert(#[source] sealed_secrets_crypto::CertError),
    #[error("failed to write the new key Secret in namespace `{namespace}`")]
    Write {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("key generation task failed")]
    Join(#[source] tokio::task::JoinError),
    #[error(transparent)]
    NotLeading(#[from] crate::leader::NotLeading),
}

impl Keys {
    /// Startup load (§4.2): every `active` key Secret sorted by creationTimestamp, plus the
    /// legacy Secret named exactly `<prefix>`.
    pub async fn initial_load(&self, client: &kube::Client) -> Result<(), KeyApiError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let list = api
            .list(&ListParams::default().labels(&active_selector()))
            .await
            .map_err(|source| KeyApiError::List {
                namespace: self.namespace.clone(),
                source,
            })?;
        let mut items = list.items;
        items.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        for s in &items {
            self.track_rotation_request(s);
            self.load_and_register(s);
        }
        match api.get_opt(&self.args.prefix).await {
            Ok(Some(legacy)) => self.load_and_register(&legacy),
            Ok(None) => {}
            // Upstream's key-admin Role grants get on that one name only; a failure here is
            // not fatal, the labelled keys are what matter.
            Err(e) => {
                tracing::warn!(error = %e, secret = %self.args.prefix, "cannot read the legacy key Secret")
            }
        }
        Ok(())
    }

    /// [`Self::initial_load`], retried with exponential backoff (0.5 s doubling to 30 s) until
    /// it succeeds: one API error at start (an API server restarting, a webhook timing out)
    /// must not exit the process, and a missing RBAC grant is logged until it is fixed.
    /// Nothing is served before the keys are loaded, so no client sees a half-loaded state.
    pub async fn initial_load_with_retry(&self, client: &kube::Client) {
        let mut attempt = 0u32;
        loop {
            match self.initial_load(client).await {
                Ok(()) => return,
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    let wait = startup_backoff(attempt);
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string),
                        attempt, retry_in = ?wait, "cannot load the keys; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Watches `active` key Secrets until the stream ends: adds, removes and relabels are
    /// applied to the registry. Runs on every replica.
    pub async fn watch(self: Arc<Self>, client: kube::Client) {
        let api: Api<Secret> = Api::namespaced(client, &self.namespace);
        let cfg = watcher::Config::default().labels(&active_selector());
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut init_seq = 0;
        let mut stream = watcher(api, cfg).boxed();
        let mut backoff = Duration::from_millis(500);
        loop {
            match stream.try_next().await {
                Ok(Some(ev)) => {
                    backoff = Duration::from_millis(500);
                    match ev {
                        watcher::Event::Init => {
                            seen.clear();
                            init_seq = self.seq();
                        }
                        watcher::Event::InitApply(s) => {
                            if let Some(n) = &s.metadata.name {
                                seen.insert(n.clone());
                            }
                            self.track_rotation_request(&s);
                            self.load_and_register(&s);
                        }
                        watcher::Event::InitDone => {
                            self.retain_rotation_requests(&seen);
                            self.retain(&seen, &self.args.prefix, init_seq)
                        }
                        watcher::Event::Apply(s) => {
                            self.track_rotation_request(&s);
                            self.load_and_register(&s)
                        }
                        watcher::Event::Delete(s) => {
                            if let Some(n) = &s.metadata.name {
                                self.forget_rotation_request(n);
                                self.unregister(n);
                            }
                        }
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "key Secret watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Generates a key, writes its Secret, and registers it only once the write succeeded
    /// (§4.3 step 3). Its ordering time is now. `fence` is checked just before the write, so
    /// that a leader frozen past its lease (SIGSTOP) and resumed at a renewal time does not
    /// add a key another leader may be adding too.
    pub async fn generate(
        &self,
        client: &kube::Client,
        fence: &crate::leader::Fence,
    ) -> Result<Fingerprint, KeyGenError> {
        let s = self.args.clone();
        let bits = s.bits;
        let (key, cert) = tokio::task::spawn_blocking(move || {
            let key = PrivateKey::generate(bits)
                .map_err(|source| KeyGenError::Generate { bits, source })?;
            let params = CertParams {
                common_name: s.common_name.clone(),
                not_before: SystemTime::now(),
                validity: s.ttl,
            };
            let cert = key
                .self_signed_certificate(&params)
                .map_err(KeyGenError::Cert)?;
            Ok::<_, KeyGenError>((key, cert))
        })
        .await
        .map_err(KeyGenError::Join)??;
        let secret = key_secret(&self.args, &self.namespace, &key, &cert);
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        fence.check()?;
        let created = api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|source| KeyGenError::Write {
                namespace: self.namespace.clone(),
                source,
            })?;
        let fp = key.fingerprint().clone();
        let name = created.metadata.name.unwrap_or_default();
        tracing::info!(secret = %name, fingerprint = %fp, "new key written");
        self.register_inner(
            LoadedKey {
                secret_name: name,
                key,
                cert,
                order_time: SystemTime::now(),
                foreign: false,
                future_not_before: false,
            },
            true,
        );
        Ok(fp)
    }
}

/// The key Secret upstream writes (§4.2): generateName `<prefix>`, label `active` plus
/// `--privatekey-labels` (which cannot override it), `--privatekey-annotations`,
/// `kubernetes.io/tls` with PKCS#1 `tls.key` and `tls.crt`.
pub fn key_secret(s: &KeyArgs, namespace: &str, key: &PrivateKey, cert: &Certificate) -> Secret {
    let mut labels: BTreeMap<String, String> = s.labels.0.iter().cloned().collect();
    labels.insert(
        SEALING_KEY_LABEL.to_owned(),
        SEALING_KEY_LABEL_ACTIVE.to_owned(),
    );
    let mut annotations: BTreeMap<String, String> = s.annotations.0.iter().cloned().collect();
    annotations.insert(KEY_ORIGIN.to_owned(), KEY_ORIGIN_GENERATED.to_owned());
    let mut data = BTreeMap::new();
    data.insert(
        "tls.key".to_owned(),
        ByteString(key.to_pkcs1_pem().as_bytes().to_vec()),
    );
    data.insert(
        "tls.crt".to_owned(),
        ByteString(cert.pem().as_bytes().to_vec()),
    );
    Secret {
        metadata: ObjectMeta {
            generate_name: Some(s.prefix.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}
