//! What a key Secret looks like (§4.2): the Secret a generated key is written to, the
//! errors of writing one, and the back-off of the start-up load.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_api::annotations::{
    KEY_ORIGIN, KEY_ORIGIN_GENERATED, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE,
};
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_crypto::{Certificate, PqIdentity, PrivateKey};

use super::flags::KeyArgs;

/// Generating or storing a new key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyGenError {
    #[error("failed to generate a {bits}-bit RSA key")]
    Generate {
        bits: usize,
        #[source]
        source: sealed_secrets_crypto::KeyError,
    },
    #[error("failed to generate the post-quantum identity of a new key")]
    GeneratePq(#[source] sealed_secrets_crypto::PqKeyError),
    #[error("failed to create the certificate of a new key")]
    Cert(#[source] sealed_secrets_crypto::CertError),
    #[error("failed to write the new key Secret in namespace `{namespace}`")]
    Write {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Wrap(#[from] crate::keywrap::SealError),
    #[error("failed to make a key in the PKCS#11 token")]
    Token(#[from] crate::tokenkeys::TokenKeyError),
    #[error("key generation task failed")]
    Join(#[source] tokio::task::JoinError),
    #[error(transparent)]
    NotLeading(#[from] crate::leader::NotLeading),
}

/// The key Secret upstream writes (§4.2): generateName `<prefix>`, label `active` plus
/// `--privatekey-labels` (which cannot override it), `--privatekey-annotations`,
/// `kubernetes.io/tls` with PKCS#1 `tls.key` and `tls.crt`; plus ours, the post-quantum
/// identity in [`AGE_KEY_FIELD`] (one `AGE-SECRET-KEY-PQ-1…` line, what `age -d -i`
/// reads). Upstream's controller reads only the two TLS fields and ignores the extra one.
pub fn key_secret(
    s: &KeyArgs,
    namespace: &str,
    key: &PrivateKey,
    cert: &Certificate,
    pq: &PqIdentity,
) -> Secret {
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
    let mut line = pq.to_age_string().as_bytes().to_vec();
    line.push(b'\n');
    data.insert(AGE_KEY_FIELD.to_owned(), ByteString(line));
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

/// Delay before retry `attempt` (1-based) of a start-up call: 0.5 s doubling, at most 30 s.
/// Pure.
pub fn startup_backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(Duration::from_secs(30))
}
