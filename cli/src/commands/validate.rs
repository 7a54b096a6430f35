//! `--validate`: through the controller's `/v1/verify` (upstream), or offline with `--cert`.
//!
//! Offline `--validate --cert` is ours (upstream refuses offline validation, §9.4): structural
//! checks that need only the public certificate. They cannot prove a value decrypts (that
//! needs the private key), but they catch what breaks in practice: values that are not
//! base64, values sealed for another key (RSA length prefix != the cert's modulus size, or a
//! multi-recipient header that does not name the cert), and scope annotations that disagree
//! between the top-level metadata (what the controller uses) and the template. Values in
//! multi-recipient version 1 (no key commitment, `crates/crypto/FORMAT.md` §2.2) are reported
//! too, since the controller refuses them, unless `--accept-multi-recipient-v1`.
//!
//! Post-quantum values (`crates/crypto/FORMAT.md` §3) are checked as far as a public key
//! allows: the whole age header (bounds, stanzas), the scope binding against the object's
//! namespace, name and scope (a moved value is refused by the controller), and, with
//! `--recipients-file`, that the key hints name one of the given recipients.

use sealed_secrets_api::{SealedSecret, annotations, sealing_key_hints};
use sealed_secrets_crypto::{
    Certificate, Envelope, PqRecipient, Scope, decode_base64, envelope, is_multi_v1,
};

use super::upstream_io::read_sealed_docs;
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::cluster::{self, Controller};
use crate::error::{CliError, Result};
use crate::{certs, pq_recipients};
use sealed_secrets_api::output;

/// `--validate`: through the controller's `/v1/verify`, or offline with `--cert` (ours).
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    if cert.given() || !cert.recipients_file.is_empty() {
        let certs = certs::load_all(
            cert.cert(),
            &cert.recipient_cert,
            certs::HttpPolicy::from_flag(cert.allow_insecure_cert_url),
        )?;
        let pq = if cert.recipients_file.is_empty() {
            Vec::new()
        } else {
            pq_recipients::load_files(&cert.recipients_file)?
        };
        let list = read_sealed_docs(seal)?;
        let keys = Keys {
            certs: &certs,
            pq: &pq,
        };
        return offline(&list, &keys, seal.accept_multi_recipient_v1);
    }
    let list = read_sealed_docs(seal)?;
    crate::async_runtime::block_on(cluster::bounded(
        kube,
        "cannot validate sealed secret",
        async {
            let controller =
                Controller::connect(kube, &cert.controller_namespace, &cert.controller_name)
                    .await?;
            for ss in &list {
                let body = output::to_json(ss).into_bytes();
                let resp = controller
                    .call(http::Method::POST, "/v1/verify", body)
                    .await?;
                match resp.status.as_u16() {
                    200..=299 => {}
                    409 => {
                        return Err(CliError::NotDecryptable {
                            name: ss.metadata.name.clone().unwrap_or_default(),
                        });
                    }
                    _ => {
                        return Err(CliError::ControllerStatus {
                            action: "cannot validate sealed secret",
                            reason: cluster::reason_of(&resp.body),
                            status: resp.status.as_u16(),
                        });
                    }
                }
            }
            Ok(())
        },
    ))?
}

/// What a multi-recipient version-1 value is told, here and in `audit`/`scan`.
pub const MULTI_V1_REFUSED: &str = "multi-recipient version 1 (no key commitment): refused by the controller unless --accept-multi-recipient-v1; reseal it";

/// Smallest sealed value: 2-byte prefix + RSA block + 16-byte GCM tag.
const GCM_TAG: usize = 16;

/// The public keys offline validation checks against.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    /// `--cert`, `--recipient-cert`.
    pub certs: &'a [Certificate],
    /// `--recipients-file`.
    pub pq: &'a [PqRecipient],
}

/// Checks every SealedSecret; reports all problems on stderr and fails if there is any.
pub fn offline(list: &[SealedSecret], keys: &Keys<'_>, accept_multi_v1: bool) -> Result<()> {
    let mut problems = Vec::new();
    for ss in list {
        for p in check(ss, keys, accept_multi_v1) {
            problems.push(format!("SealedSecret `{}`: {p}", ss.object_ref()));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems[..problems.len() - 1] {
        crate::printer().status(p);
    }
    Err(CliError::OfflineInvalid {
        last: problems[problems.len() - 1].clone(),
    })
}

/// The problems of one SealedSecret (empty when it looks fine).
pub fn check(ss: &SealedSecret, keys: &Keys<'_>, accept_multi_v1: bool) -> Vec<String> {
    let certs = keys.certs;
    let mut out = Vec::new();
    let name = ss.metadata.name.clone().unwrap_or_default();
    let namespace = ss.metadata.namespace.clone().unwrap_or_default();
    let top_scope = sealed_secrets_api::annotations::scope(ss.metadata.annotations.as_ref());
    if name.is_empty() {
        out.push("metadata.name is missing".to_owned());
    }
    if top_scope != Scope::ClusterWide && namespace.is_empty() {
        out.push(format!(
            "metadata.namespace is missing but the scope is {top_scope} (the label needs it)"
        ));
    }
    if let Some(tmeta) = &ss.spec.template.metadata {
        let t = tmeta.annotations.as_ref();
        let has_scope_annotation = t.is_some_and(|a| {
            a.contains_key(annotations::CLUSTER_WIDE) || a.contains_key(annotations::NAMESPACE_WIDE)
        });
        let t_scope = sealed_secrets_api::annotations::scope(t);
        if has_scope_annotation && t_scope != top_scope {
            out.push(format!(
                "scope annotations disagree: metadata says {top_scope}, spec.template.metadata says {t_scope} (the controller uses metadata)"
            ));
        }
        if let Some(tn) = tmeta.namespace.as_deref().filter(|n| !n.is_empty())
            && top_scope != Scope::ClusterWide
            && tn != namespace
        {
            out.push(format!(
                    "spec.template.metadata.namespace `{tn}` differs from metadata.namespace `{namespace}`"
                ));
        }
    }
    let has_legacy = ss.spec.data.as_deref().is_some_and(|d| !d.is_empty());
    if has_legacy && !ss.spec.encrypted_data.is_empty() {
        out.push("sets both deprecated spec.data and spec.encryptedData".to_owned());
    }
    for item in ss.spec.encrypted_data.invalid_keys() {
        out.push(format!("encryptedData `{item}` is not a string"));
    }
    let hints = sealing_key_hints(&ss.metadata);
    if !hints.is_empty()
        && !certs
            .iter()
            .any(|c| hints.contains(c.public_key().fingerprint()))
        && !keys.pq.iter().any(|r| hints.contains(r.fingerprint()))
    {
        out.push(format!(
            "annotation {} names other key(s): {}",
            annotations::SEALING_KEY,
            hints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    // The label the controller opens every value under: from the top-level metadata.
    let label = top_scope.label(&namespace, &name);
    let value = Value {
        keys,
        label: &label,
        scope: top_scope,
        accept_multi_v1,
    };
    for (item, v) in ss.spec.encrypted_data.iter() {
        if let Some(p) = check_value(v, &value) {
            out.push(format!("encryptedData `{item}`: {p}"));
        }
    }
    if let Some(data) = ss.spec.data.as_deref().filter(|d| !d.is_empty())
        && let Some(p) = check_value(data, &value)
    {
        out.push(format!("spec.data: {p}"));
    }
    out
}

/// What one value is checked against.
struct Value<'a> {
    keys: &'a Keys<'a>,
    /// The object's scope label.
    label: &'a [u8],
    scope: Scope,
    accept_multi_v1: bool,
}

/// Why one value cannot have been sealed for any of the keys, or cannot open for this
/// object, if it cannot.
fn check_value(value: &str, ctx: &Value<'_>) -> Option<String> {
    let certs = ctx.keys.certs;
    let Ok(ct) = decode_base64(value) else {
        return Some("not valid base64".to_owned());
    };
    if is_multi_v1(&ct) && !ctx.accept_multi_v1 {
        return Some(MULTI_V1_REFUSED.to_owned());
    }
    match envelope(&ct) {
        Err(e) => Some(e.to_string()),
        Ok(Envelope::PostQuantum { recipients, label }) => {
            if label != ctx.label {
                return Some(format!(
                    "post-quantum value bound to another scope ({}): the controller opens it only as the object it was sealed for, this object is {} scope",
                    describe_label(&label),
                    ctx.scope
                ));
            }
            let pq = ctx.keys.pq;
            if !pq.is_empty()
                && !recipients.is_empty()
                && !pq.iter().any(|r| recipients.contains(r.fingerprint()))
            {
                return Some(format!(
                    "post-quantum value not sealed for these recipients (key hints: {})",
                    recipients
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            None
        }
        Ok(_) if certs.is_empty() => Some(
            "RSA value, and no --cert to check it against (only --recipients-file was given)"
                .to_owned(),
        ),
        Ok(Envelope::Upstream { rsa_len }) => {
            let sizes: Vec<usize> = certs.iter().map(|c| c.public_key().modulus_len()).collect();
            if !sizes.contains(&rsa_len) {
                Some(format!(
                    "length prefix {rsa_len} does not match the certificate's modulus size ({} bytes): sealed for another key",
                    sizes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            } else if ct.len() < 2 + rsa_len + GCM_TAG {
                Some("SealedSecret data is too short".to_owned())
            } else {
                None
            }
        }
        Ok(Envelope::Multi { recipients }) => {
            if certs
                .iter()
                .any(|c| recipients.contains(c.public_key().fingerprint()))
            {
                None
            } else {
                Some(format!(
                    "multi-recipient value not sealed for this certificate (recipients: {})",
                    recipients
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        Ok(_) => None,
    }
}

/// A scope label in words: `namespace/name`, `namespace` or cluster-wide (labels are public:
/// they are the object's own coordinates).
fn describe_label(label: &[u8]) -> String {
    if label.is_empty() {
        return "cluster-wide".to_owned();
    }
    let text = String::from_utf8_lossy(label);
    // Hostile input: keep what is quoted short and printable.
    let shown: String = text.chars().take(256).filter(|c| !c.is_control()).collect();
    format!("`{shown}`")
}
