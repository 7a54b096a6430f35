//! `kubeseal keys retire KEY`: delete one key Secret once nothing in the cluster needs it.
//!
//! A deleted key is gone for good, so every doubt is a refusal: the newest active key (the
//! one new SealedSecrets are sealed to, or tied with it) is never retired; a key Secret whose
//! private key cannot be read is not either (what it opens cannot be checked); and every
//! SealedSecret in the cluster is checked ([`super::usage`]): by the keys its status records,
//! or, without a current record, by trying this key on its values as the controller would.
//! Any object that needs the key refuses the retirement and is named. Then the operator is
//! told to back up first and confirms (or passes `--yes`), and the Secret is deleted with its
//! uid and resourceVersion as preconditions, so a Secret changed since it was checked stays.
//!
//! What the cluster cannot show is left to the operator, and said: SealedSecrets not applied
//! here (in Git, or in another cluster sharing the key) are checked with `kubeseal audit
//! --key`.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Preconditions};
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_crypto::{Certificate, Fingerprint, KeyRing, PqIdentity, PrivateKey};

use super::restore::Confirm;
use super::secrets::{key_info, key_secrets_with};
use super::usage::{self, Needs};
use crate::args::{ControllerArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, printer};

/// How many of the objects that still need the key are named.
const NAMED: usize = 20;

/// One key Secret: its names (RSA fingerprint, post-quantum identity fingerprint) and the
/// private keys to try.
struct Candidate {
    secret: Secret,
    name: String,
    rsa: Option<PrivateKey>,
    pq: Option<PqIdentity>,
}

impl Candidate {
    fn of(secret: &Secret) -> Candidate {
        let data = secret.data.as_ref();
        let field = |f: &str| data.and_then(|d| d.get(f)).map(|b| b.0.as_slice());
        Candidate {
            secret: secret.clone(),
            name: secret.metadata.name.clone().unwrap_or_default(),
            rsa: field("tls.key").and_then(|k| PrivateKey::from_pem(k).ok()),
            pq: field(AGE_KEY_FIELD)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| t.trim().parse().ok()),
        }
    }

    fn fingerprints(&self) -> Vec<Fingerprint> {
        let rsa = self.rsa.iter().map(|k| k.fingerprint().clone());
        rsa.chain(self.pq.iter().map(|i| i.fingerprint().clone()))
            .collect()
    }

    fn is_named(&self, arg: &str) -> bool {
        self.name == arg || self.fingerprints().iter().any(|fp| fp.as_str() == arg)
    }

    fn ring(&self) -> KeyRing {
        let mut ring = KeyRing::new();
        // A controller may be told to open multi-recipient version-1 values: they count.
        ring.set_multi_v1_policy(sealed_secrets_crypto::MultiV1Policy::accept(
            Default::default(),
        ));
        if let Some(k) = &self.rsa {
            ring.insert(k.clone());
        }
        if let Some(i) = &self.pq {
            ring.insert_pq(i.clone());
        }
        ring
    }
}

/// The time the controller orders keys by (certificate NotBefore, else the Secret's
/// creation), in whole seconds as it compares them (docs/design.md "Keys").
fn ordering_second(s: &Secret) -> Option<i64> {
    let cert = s
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .and_then(|c| Certificate::from_pem(&c.0).ok())
        .map(|c| c.not_before());
    let created = s
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| SystemTime::from(t.0));
    let t = cert.or(created)?;
    jiff::Timestamp::try_from(t).ok().map(|t| t.as_second())
}

/// Whether `target` is the newest active key or tied with it (a tie may resolve either way in
/// the controller, so it counts as newest). Pure.
fn is_newest_active(target: &Secret, all: &[Secret]) -> bool {
    if !key_info(target).active {
        return false;
    }
    let Some(mine) = ordering_second(target) else {
        return true;
    };
    !all.iter()
        .filter(|s| s.metadata.uid != target.metadata.uid && key_info(s).active)
        .filter_map(ordering_second)
        .any(|other| other > mine)
}

pub(super) async fn retire(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    key: &str,
    confirm: Confirm,
) -> Result<Outcome> {
    let client = cluster::client(kube).await?;
    let ns = &controller.controller_namespace;
    let secrets = key_secrets_with(&client, ns).await?;
    let matches: Vec<Candidate> = secrets
        .iter()
        .map(Candidate::of)
        .filter(|c| c.is_named(key))
        .collect();
    let target = match <[Candidate; 1]>::try_from(matches) {
        Ok([one]) => one,
        Err(v) if v.is_empty() => {
            return Err(CliError::KeyNotFound {
                key: key.to_owned(),
                namespace: ns.to_owned(),
            });
        }
        Err(v) => {
            return Err(CliError::KeyAmbiguous {
                key: key.to_owned(),
                secrets: v
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let label = target
        .rsa
        .as_ref()
        .map(|k| k.fingerprint().to_string())
        .unwrap_or_else(|| target.name.clone());
    if target.rsa.is_none() {
        return Err(CliError::RetireUnreadable {
            name: target.name.clone(),
        });
    }
    if is_newest_active(&target.secret, &secrets) {
        return Err(CliError::RetireNewest { key: label });
    }

    printer().status(format_args!(
        "checking every SealedSecret in the cluster for key {label} (`{ns}/{}`)",
        target.name
    ));
    let ring = target.ring();
    let objects = usage::scan(&client, Some(&ring)).await?;
    let fingerprints = target.fingerprints();
    let needing: Vec<&str> = objects
        .iter()
        .filter(|o| match &o.needs {
            Needs::Recorded(keys) => fingerprints.iter().any(|fp| keys.contains(fp)),
            Needs::Unrecorded(tried) => *tried != Some(false),
        })
        .map(|o| o.name.as_str())
        .collect();
    if !needing.is_empty() {
        for name in needing.iter().take(NAMED) {
            printer().note(format_args!("SealedSecret `{name}` needs key {label}"));
        }
        if needing.len() > NAMED {
            printer().note(format_args!("... and {} more", needing.len() - NAMED));
        }
        return Err(CliError::KeyInUse {
            key: label,
            count: needing.len(),
        });
    }
    let tried = objects
        .iter()
        .filter(|o| matches!(o.needs, Needs::Unrecorded(_)))
        .count();
    printer().status(format_args!(
        "no SealedSecret in the cluster needs key {label}: {} checked ({} by the keys their status records, {tried} by trying the key)",
        objects.len(),
        objects.len() - tried
    ));
    printer().warn(format_args!(
        "a retired key is gone for good: back up the keys first (kubeseal keys backup -o FILE); \
         SealedSecrets not applied to this cluster (in Git, or in another cluster sharing this key) \
         may still need it: check them with `kubeseal audit --key {label} DIR`"
    ));
    confirm_retire(&label, ns, &target.name, confirm)?;

    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: target.secret.metadata.uid.clone(),
            resource_version: target.secret.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    api.delete(&target.name, &params).await.map_err(|e| {
        cluster::api_error(
            format!("cannot delete Secret `{ns}/{}`", target.name),
            &e,
            Some("a 409 means the Secret changed since it was checked: run the command again"),
        )
    })?;
    printer().status(format_args!(
        "retired key {label}: deleted Secret `{ns}/{}`; the controller drops it through its key watch",
        target.name
    ));
    Ok(Outcome::Success)
}

/// `--yes`, or a "y" typed on the terminal; without a terminal, refused.
fn confirm_retire(label: &str, ns: &str, name: &str, confirm: Confirm) -> Result<()> {
    super::restore::ask(
        format_args!("delete key {label} (Secret `{ns}/{name}`)?"),
        confirm,
        CliError::RetireNotConfirmed,
        CliError::RetireDeclined,
    )
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use k8s_openapi::ByteString;
    use sealed_secrets_api::annotations::SEALING_KEY_LABEL;
    use sealed_secrets_crypto::CertParams;

    use super::*;

    fn mk_key_secret(name: &str, not_before_secs: u64, label: &str) -> Secret {
        let k = PrivateKey::generate(2048).unwrap();
        let cert = k
            .self_signed_certificate(&CertParams {
                not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(not_before_secs),
                ..Default::default()
            })
            .unwrap();
        let mut s = Secret::default();
        s.metadata.name = Some(name.to_owned());
        s.metadata.uid = Some(format!("uid-{name}"));
        s.metadata.labels = Some(BTreeMap::from([(
            SEALING_KEY_LABEL.to_owned(),
            label.to_owned(),
        )]));
        s.data = Some(BTreeMap::from([
            (
                "tls.key".to_owned(),
                ByteString(k.to_pkcs1_pem().as_bytes().to_vec()),
            ),
            (
                "tls.crt".to_owned(),
                ByteString(cert.pem().as_bytes().to_vec()),
            ),
        ]));
        s
    }

    #[test]
    fn the_newest_active_key_and_a_tie_are_refused() {
        let now = 1_800_000_000;
        let old = mk_key_secret("old", now - 100, "active");
        let new = mk_key_secret("new", now, "active");
        let tie = mk_key_secret("tie", now, "active");
        let later_inactive = mk_key_secret("off", now + 100, "compromised");
        let all = vec![old.clone(), new.clone(), later_inactive.clone()];
        assert!(!is_newest_active(&old, &all));
        assert!(
            is_newest_active(&new, &all),
            "an inactive later key does not count"
        );
        assert!(
            !is_newest_active(&later_inactive, &all),
            "not active: not the sealing key"
        );
        let tied = vec![old.clone(), new.clone(), tie.clone()];
        assert!(is_newest_active(&new, &tied) && is_newest_active(&tie, &tied));
        assert!(
            is_newest_active(&old, std::slice::from_ref(&old)),
            "the only key"
        );
    }

    #[test]
    fn a_key_is_named_by_either_fingerprint_or_its_secret() {
        let s = mk_key_secret("sealed-secrets-keyabc", 1, "active");
        let c = Candidate::of(&s);
        let fp = c.rsa.as_ref().unwrap().fingerprint().to_string();
        assert!(c.is_named(&fp) && c.is_named("sealed-secrets-keyabc"));
        assert!(!c.is_named("SHA256:other") && !c.is_named("sealed-secrets-key"));
        assert_eq!(c.fingerprints().len(), 1);
    }
}
