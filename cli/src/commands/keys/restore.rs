//! `kubeseal keys restore`: put a backup's key Secrets back into the controller namespace.
//! A key already present (same fingerprint, any name) is left alone; a Secret of the same
//! name holding another key is a conflict, never overwritten.
//!
//! A backup is untrusted input: whoever could write the file chose its keys, and a restored key
//! whose certificate is the newest becomes the key every new seal goes to. So, before anything
//! is written to the cluster: an unencrypted backup is refused unless `--insecure-plaintext`;
//! every key must come with its own certificate, not dated ahead of now (beyond
//! [`MAX_CLOCK_SKEW`]); the keys, their validity and which one would become the sealing key are
//! listed, and the operator confirms on the terminal (or with `--yes`). What is written is
//! built from the backup's keys alone ([`restored_secret`]): only the active label is carried
//! over, and every key is marked [`RESTORED_AT`].

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use sealed_secrets_api::annotations::{RESTORED_AT, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE};
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_api::wrapped_key::{WRAPPED_KEY_FIELD, WRAPPED_SECRET_TYPE};
use sealed_secrets_crypto::{Certificate, Fingerprint, PqIdentity, PrivateKey};
use sealed_secrets_kms::{BACKEND_ANNOTATION, KMS_KEY_ANNOTATION, WrappedKey};

use super::secrets::{fingerprint_of, key_secrets_with};
use crate::args::{ControllerArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, printer};

/// How far ahead of this machine's clock a restored certificate's NotBefore may be: clocks
/// drift a little, and a controller dates its certificates "now", never ahead.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Type of the key Secrets (§4.2), whatever the backup says.
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// What the operator must say yes to, and what `--yes` skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// `--yes`.
    Given,
    /// Ask on the terminal (refused without one).
    Ask,
}

/// One key of a backup, checked.
#[derive(Clone, Debug)]
pub struct BackupKey {
    /// Name of the Secret in the backup (kept: the controller's names carry its prefix).
    pub name: String,
    pub fingerprint: Fingerprint,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The backup's own active label; a key without the label is restored active (upstream
    /// backups made with `kubectl get secret -l ...` always have it).
    pub active: bool,
    key_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    /// The key's post-quantum identity line (`age.key`), when the backup has one: restored
    /// with the key, or the post-quantum values sealed to it would no longer open.
    age_key: Option<Vec<u8>>,
    /// A key wrapped by a KMS: restored wrapped (`key_pem` and `age_key` are then empty).
    wrapped: Option<WrappedPart>,
}

/// What a wrapped key Secret carries instead of its private fields.
#[derive(Clone, Debug)]
struct WrappedPart {
    /// `tls.key.wrapped`.
    envelope: Vec<u8>,
    /// The envelope's annotations (backend, KMS key), for people and `kubectl`.
    annotations: BTreeMap<String, String>,
    /// The namespace it was wrapped in, bound into the envelope.
    namespace: Option<String>,
}

impl BackupKey {
    /// Whether the key is wrapped by a KMS.
    pub fn is_wrapped(&self) -> bool {
        self.wrapped.is_some()
    }
}

/// Refuses an unencrypted backup unless `insecure_plaintext`. Pure.
pub fn check_encryption(path: &Path, raw: &[u8], insecure_plaintext: bool) -> Result<()> {
    if crate::backup_encryption::is_encrypted(raw) || insecure_plaintext {
        return Ok(());
    }
    Err(CliError::BackupPlaintext {
        path: path.to_owned(),
    })
}

/// Checks every key Secret of a backup read at `now`: a readable private key, a certificate of
/// that key, not valid only in the future. Pure.
pub fn check_keys(secrets: &[Secret], now: SystemTime) -> Result<Vec<BackupKey>> {
    let latest_start = now + MAX_CLOCK_SKEW;
    let mut out = Vec::with_capacity(secrets.len());
    for s in secrets {
        let name = s.metadata.name.clone().unwrap_or_default();
        let data = s.data.clone().unwrap_or_default();
        let bad_cert = |problem| CliError::BackupBadCertificate {
            name: name.clone(),
            problem,
        };
        if let Some(envelope) = data.get(WRAPPED_KEY_FIELD) {
            out.push(check_wrapped(s, &name, envelope.0.clone(), latest_start)?);
            continue;
        }
        let key_pem = data.get("tls.key").map(|b| b.0.clone()).unwrap_or_default();
        let key = PrivateKey::from_pem(&key_pem)
            .map_err(|_| CliError::BackupUnreadableKey { name: name.clone() })?;
        let cert_pem = data
            .get("tls.crt")
            .map(|b| b.0.clone())
            .ok_or_else(|| bad_cert("no data[\"tls.crt\"] (the certificate)"))?;
        let cert = Certificate::from_pem(&cert_pem)
            .map_err(|_| bad_cert("tls.crt is not a readable certificate"))?;
        // The controller serves tls.crt: a certificate of another key would send new seals to
        // whoever holds that key.
        if cert.public_key().fingerprint() != key.fingerprint() {
            return Err(bad_cert(
                "tls.crt is the certificate of another key than tls.key",
            ));
        }
        let age_key = data.get(AGE_KEY_FIELD).map(|b| b.0.clone());
        if let Some(line) = &age_key {
            std::str::from_utf8(line)
                .ok()
                .and_then(|t| t.trim().parse::<PqIdentity>().ok())
                .ok_or_else(|| {
                    bad_cert("age.key is not a post-quantum identity (AGE-SECRET-KEY-PQ-1...)")
                })?;
        }
        if cert.not_before() > latest_start {
            return Err(CliError::BackupFutureKey {
                name,
                not_before: format_time(cert.not_before()),
            });
        }
        out.push(BackupKey {
            name,
            fingerprint: key.fingerprint().clone(),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
            active: is_active(s),
            key_pem,
            cert_pem,
            age_key,
            wrapped: None,
        });
    }
    Ok(out)
}

/// The backup's own active label; a key without the label is active. Pure.
fn is_active(s: &Secret) -> bool {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SEALING_KEY_LABEL))
        .is_none_or(|v| v == SEALING_KEY_LABEL_ACTIVE)
}

/// Checks a wrapped key Secret of a backup: a readable envelope and certificate, not dated
/// ahead. Whether the envelope holds the certificate's key only the controller can tell, with
/// the KMS: it refuses a key Secret whose certificate is not its key's. Pure.
fn check_wrapped(
    s: &Secret,
    name: &str,
    envelope: Vec<u8>,
    latest_start: SystemTime,
) -> Result<BackupKey> {
    let bad = |problem| CliError::BackupBadCertificate {
        name: name.to_owned(),
        problem,
    };
    WrappedKey::from_bytes(&envelope).map_err(|_| bad("tls.key.wrapped is not a wrapped key"))?;
    let data = s.data.as_ref().ok_or(bad("no data"))?;
    let cert_pem = data
        .get("tls.crt")
        .map(|b| b.0.clone())
        .ok_or(bad("no data[\"tls.crt\"] (the certificate)"))?;
    let cert = Certificate::from_pem(&cert_pem)
        .map_err(|_| bad("tls.crt is not a readable certificate"))?;
    if cert.not_before() > latest_start {
        return Err(CliError::BackupFutureKey {
            name: name.to_owned(),
            not_before: format_time(cert.not_before()),
        });
    }
    let annotations = s
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| [BACKEND_ANNOTATION, KMS_KEY_ANNOTATION].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(BackupKey {
        name: name.to_owned(),
        fingerprint: cert.public_key().fingerprint().clone(),
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        active: is_active(s),
        key_pem: Vec::new(),
        cert_pem,
        age_key: None,
        wrapped: Some(WrappedPart {
            envelope,
            annotations,
            namespace: s.metadata.namespace.clone(),
        }),
    })
}

/// The key Secret restore creates for `key` in `namespace` at `now`: nothing from the backup
/// but the key, its certificate, its name and whether it is active. Pure.
pub fn restored_secret(key: &BackupKey, namespace: &str, now: SystemTime) -> Secret {
    let label = if key.active {
        SEALING_KEY_LABEL_ACTIVE
    } else {
        // Any other value keeps the key out of the controller's keys (§4.2), as in the backup.
        "inactive"
    };
    let mut annotations = BTreeMap::from([(RESTORED_AT.to_owned(), format_time(now))]);
    let (type_, data) = match &key.wrapped {
        Some(w) => {
            annotations.extend(w.annotations.clone());
            (
                WRAPPED_SECRET_TYPE,
                BTreeMap::from([
                    ("tls.crt".to_owned(), ByteString(key.cert_pem.clone())),
                    (WRAPPED_KEY_FIELD.to_owned(), ByteString(w.envelope.clone())),
                ]),
            )
        }
        None => (TLS_SECRET_TYPE, plain_data(key)),
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                SEALING_KEY_LABEL.to_owned(),
                label.to_owned(),
            )])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The data of a plain key Secret: the key, its certificate, its post-quantum identity. Pure.
fn plain_data(key: &BackupKey) -> BTreeMap<String, ByteString> {
    {
        let mut data = BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(key.cert_pem.clone())),
            ("tls.key".to_owned(), ByteString(key.key_pem.clone())),
        ]);
        if let Some(line) = &key.age_key {
            data.insert(AGE_KEY_FIELD.to_owned(), ByteString(line.clone()));
        }
        data
    }
}

/// What restore does with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Create,
    /// Already present under this Secret name.
    Present(String),
}

pub(super) async fn restore(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    keys: Vec<BackupKey>,
    confirm: Confirm,
) -> Result<Outcome> {
    let client = cluster::client(kube).await?;
    let ns = &controller.controller_namespace;
    let existing = key_secrets_with(&client, ns).await?;
    let present: BTreeMap<Fingerprint, String> = existing
        .iter()
        .filter_map(|s| {
            Some((
                fingerprint_of(s)?,
                s.metadata.name.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let newest_present = existing
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("tls.crt"))
        .filter_map(|c| Certificate::from_pem(&c.0).ok())
        .map(|c| c.not_before())
        .max();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);

    // Every decision before the first write: a conflict on the last key must not leave the
    // first ones restored.
    let mut plan = Vec::with_capacity(keys.len());
    for k in keys {
        let action = if let Some(other) = present.get(&k.fingerprint) {
            Action::Present(other.clone())
        } else if let Some(current) =
            cluster::retrying(|| api.get_opt(&k.name))
                .await
                .map_err(|e| {
                    cluster::api_error(format!("cannot read Secret `{ns}/{}`", k.name), &e, None)
                })?
        {
            if fingerprint_of(&current).as_ref() != Some(&k.fingerprint) {
                return Err(CliError::KeyConflict {
                    namespace: ns.clone(),
                    name: k.name,
                });
            }
            Action::Present(k.name.clone())
        } else {
            Action::Create
        };
        plan.push((k, action));
    }

    let to_create: Vec<&BackupKey> = plan
        .iter()
        .filter(|(_, a)| *a == Action::Create)
        .map(|(k, _)| k)
        .collect();
    for (k, action) in &plan {
        match action {
            Action::Present(name) => printer().status(format_args!(
                "key {} already present as `{ns}/{name}`: left alone",
                k.fingerprint
            )),
            Action::Create => printer().status(format_args!(
                "key {} as `{ns}/{}`{}{}: certificate valid from {} to {}",
                k.fingerprint,
                k.name,
                if k.active { "" } else { " (inactive)" },
                if k.is_wrapped() { " (wrapped)" } else { "" },
                format_time(k.not_before),
                format_time(k.not_after),
            )),
        }
    }
    if let Some(newest) = to_create
        .iter()
        .filter(|k| k.active)
        .max_by_key(|k| k.not_before)
        .filter(|k| newest_present.is_none_or(|t| k.not_before > t))
    {
        printer().warn(format_args!(
            "key {} would become the controller's newest key: every new SealedSecret would be sealed to it",
            newest.fingerprint
        ));
    }
    let wrapped: Vec<&&BackupKey> = to_create.iter().filter(|k| k.is_wrapped()).collect();
    if !wrapped.is_empty() {
        printer().note(format_args!(
            "{} key(s) are wrapped by a KMS: the controller opens them only with that KMS key, \
             a grant to use it and the --key-wrap-cluster they were wrapped for; until then it \
             reports them unusable (/readyz, Events) and keeps using the other keys",
            wrapped.len()
        ));
    }
    for k in &wrapped {
        if let Some(from) = k.wrapped.as_ref().and_then(|w| w.namespace.as_deref())
            && from != ns.as_str()
        {
            printer().warn(format_args!(
                "wrapped key `{}` was wrapped in namespace `{from}`, which is bound into it: it will not open in `{ns}`",
                k.name
            ));
        }
    }
    if !to_create.is_empty() {
        confirm_restore(to_create.len(), ns, confirm)?;
    }

    let now = SystemTime::now();
    let mut created = 0;
    for k in to_create {
        let new = restored_secret(k, ns, now);
        api.create(&PostParams::default(), &new)
            .await
            .map_err(|e| {
                cluster::api_error(format!("cannot create Secret `{ns}/{}`", k.name), &e, None)
            })?;
        printer().status(format_args!(
            "restored key {} as `{ns}/{}`",
            k.fingerprint, k.name
        ));
        created += 1;
    }
    printer().status(format_args!(
        "{created} key(s) restored, {} already present",
        plan.len() - created
    ));
    if created > 0 {
        printer().note(format_args!(
            "the controller reports restored keys as foreign (they lack the {} annotation) \
             until you acknowledge them: kubectl -n {ns} annotate secret NAME {}=restored",
            sealed_secrets_api::annotations::KEY_ORIGIN,
            sealed_secrets_api::annotations::KEY_ORIGIN,
        ));
        printer().note("restart the controller (or wait for its key watch) to load restored keys");
    }
    Ok(Outcome::Success)
}

/// `--yes`, or a "y" typed on the terminal; without a terminal, refused.
fn confirm_restore(count: usize, ns: &str, confirm: Confirm) -> Result<()> {
    ask(
        format_args!("restore {count} key(s) into namespace `{ns}`?"),
        confirm,
        CliError::RestoreNotConfirmed,
        CliError::RestoreDeclined,
    )
}

/// The confirmation of a `keys` command that changes key Secrets: `--yes`, or a "y" typed on
/// the terminal after `question`; without a terminal `not_confirmed`, any other answer
/// `declined`.
pub(super) fn ask(
    question: std::fmt::Arguments<'_>,
    confirm: Confirm,
    not_confirmed: CliError,
    declined: CliError,
) -> Result<()> {
    if confirm == Confirm::Given {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(not_confirmed);
    }
    {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        // A failed prompt write shows as no prompt; the answer is still required.
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return Err(not_confirmed);
    }
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err(declined),
    }
}

/// RFC 3339, whole seconds, UTC.
fn format_time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use sealed_secrets_api::annotations::KEY_ORIGIN;
    use sealed_secrets_crypto::CertParams;

    use super::*;

    fn mk_key_secret(not_before: Option<SystemTime>) -> Secret {
        let key = PrivateKey::generate(2048).unwrap();
        let mut params = CertParams::default();
        if let Some(t) = not_before {
            params.not_before = t;
        }
        let cert = key.self_signed_certificate(&params).unwrap();
        Secret {
            metadata: ObjectMeta {
                name: Some("sealed-secrets-keyabcde".into()),
                namespace: Some("elsewhere".into()),
                labels: Some(BTreeMap::from([
                    (SEALING_KEY_LABEL.to_owned(), "active".to_owned()),
                    ("evil".to_owned(), "label".to_owned()),
                ])),
                annotations: Some(BTreeMap::from([
                    (KEY_ORIGIN.to_owned(), "generated".to_owned()),
                    ("evil".to_owned(), "annotation".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                (
                    "tls.key".to_owned(),
                    ByteString(key.to_pkcs1_pem().as_bytes().to_vec()),
                ),
                (
                    "tls.crt".to_owned(),
                    ByteString(cert.pem().as_bytes().to_vec()),
                ),
                ("extra".to_owned(), ByteString(b"x".to_vec())),
            ])),
            ..Secret::default()
        }
    }

    #[test]
    fn plaintext_backups_need_the_insecure_flag() {
        let p = Path::new("b.yaml");
        let err = check_encryption(p, b"apiVersion: v1\nkind: List\n", false).unwrap_err();
        assert!(matches!(err, CliError::BackupPlaintext { .. }), "{err}");
        assert!(check_encryption(p, b"apiVersion: v1\n", true).is_ok());
        assert!(check_encryption(p, b"-----BEGIN AGE ENCRYPTED FILE-----\n", false).is_ok());
    }

    #[test]
    fn future_dated_certificates_are_refused_beyond_the_skew() {
        let now = SystemTime::now();
        let ahead = mk_key_secret(Some(now + Duration::from_secs(180)));
        let err = check_keys(&[ahead], now).unwrap_err();
        assert!(matches!(err, CliError::BackupFutureKey { .. }), "{err}");
        let within = mk_key_secret(Some(now + Duration::from_secs(30)));
        assert!(check_keys(&[within], now).is_ok());
    }

    #[test]
    fn a_certificate_of_another_key_is_refused() {
        let mut s = mk_key_secret(None);
        let other = mk_key_secret(None);
        let other_crt = other.data.unwrap()["tls.crt"].clone();
        s.data.as_mut().unwrap().insert("tls.crt".into(), other_crt);
        let err = check_keys(&[s.clone()], SystemTime::now()).unwrap_err();
        assert!(
            matches!(err, CliError::BackupBadCertificate { .. }),
            "{err}"
        );
        s.data.as_mut().unwrap().remove("tls.crt");
        assert!(check_keys(&[s], SystemTime::now()).is_err());
    }

    #[test]
    fn restored_secrets_carry_only_what_matters_and_are_marked_restored() {
        let now = SystemTime::now();
        let keys = check_keys(&[mk_key_secret(None)], now).unwrap();
        let s = restored_secret(&keys[0], "kube-system", now);
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.metadata.name.as_deref(), Some("sealed-secrets-keyabcde"));
        assert_eq!(
            s.metadata.labels.unwrap(),
            BTreeMap::from([(SEALING_KEY_LABEL.to_owned(), "active".to_owned())])
        );
        let annotations = s.metadata.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            vec![RESTORED_AT],
            "no key-origin, nothing else from the backup"
        );
        assert_eq!(s.type_.as_deref(), Some(TLS_SECRET_TYPE));
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["tls.crt", "tls.key"]);
    }

    #[test]
    fn the_post_quantum_identity_is_restored_with_its_key_and_checked() {
        let now = SystemTime::now();
        let id = PqIdentity::generate().unwrap();
        let mut with_pq = mk_key_secret(None);
        with_pq.data.as_mut().unwrap().insert(
            AGE_KEY_FIELD.into(),
            ByteString(format!("{}\n", id.to_age_string().as_str()).into_bytes()),
        );
        let keys = check_keys(std::slice::from_ref(&with_pq), now).unwrap();
        let data = restored_secret(&keys[0], "kube-system", now).data.unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            vec![AGE_KEY_FIELD, "tls.crt", "tls.key"]
        );
        let line = String::from_utf8(data[AGE_KEY_FIELD].0.clone()).unwrap();
        assert_eq!(
            line.trim().parse::<PqIdentity>().unwrap().recipient(),
            id.recipient()
        );

        let mut broken = with_pq;
        broken.data.as_mut().unwrap().insert(
            AGE_KEY_FIELD.into(),
            ByteString(b"AGE-SECRET-KEY-PQ-1XYZ".to_vec()),
        );
        let err = check_keys(&[broken], now).unwrap_err();
        assert!(
            matches!(err, CliError::BackupBadCertificate { .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("1XYZ"));
    }

    #[tokio::test]
    async fn wrapped_keys_are_restored_wrapped() {
        use sealed_secrets_kms::WrapContext;
        use sealed_secrets_kms::fake::FakeWrapper;
        let now = SystemTime::now();
        let mut s = mk_key_secret(None);
        let ctx = WrapContext::new("c1", "elsewhere", "sealed-secrets-keyabcde");
        let env = WrappedKey::seal(&FakeWrapper::default(), b"{}", &ctx)
            .await
            .unwrap();
        let data = s.data.as_mut().unwrap();
        data.remove("tls.key");
        data.insert(WRAPPED_KEY_FIELD.into(), ByteString(env.to_bytes()));
        s.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(BACKEND_ANNOTATION.into(), "fake".into());
        let keys = check_keys(std::slice::from_ref(&s), now).unwrap();
        assert!(keys[0].is_wrapped());
        let cert = Certificate::from_pem(&s.data.as_ref().unwrap()["tls.crt"].0).unwrap();
        assert_eq!(&keys[0].fingerprint, cert.public_key().fingerprint());
        let out = restored_secret(&keys[0], "elsewhere", now);
        assert_eq!(out.type_.as_deref(), Some(WRAPPED_SECRET_TYPE));
        let data = out.data.unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            vec!["tls.crt", WRAPPED_KEY_FIELD]
        );
        assert_eq!(data[WRAPPED_KEY_FIELD].0, env.to_bytes());
        let ann = out.metadata.annotations.unwrap();
        assert_eq!(ann[BACKEND_ANNOTATION], "fake");
        assert!(!ann.contains_key("evil") && ann.contains_key(RESTORED_AT));

        let mut damaged = s;
        damaged
            .data
            .as_mut()
            .unwrap()
            .insert(WRAPPED_KEY_FIELD.into(), ByteString(b"SSKW?".to_vec()));
        let err = check_keys(&[damaged], now).unwrap_err();
        assert!(err.to_string().contains("not a wrapped key"), "{err}");
    }

    #[test]
    fn an_inactive_key_stays_inactive() {
        let mut s = mk_key_secret(None);
        s.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SEALING_KEY_LABEL.into(), "compromised".into());
        let keys = check_keys(&[s], SystemTime::now()).unwrap();
        assert!(!keys[0].active);
        let out = restored_secret(&keys[0], "ns", SystemTime::now());
        assert_ne!(
            out.metadata.labels.unwrap()[SEALING_KEY_LABEL],
            SEALING_KEY_LABEL_ACTIVE
        );
    }
}
