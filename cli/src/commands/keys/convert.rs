//! `kubeseal keys wrap` / `keys unwrap`: convert key Secrets between plain (`tls.key`, as
//! upstream stores them) and wrapped by a key management service (docs/security.md, "Tier 2:
//! key Secrets wrapped by a KMS"), with the controller's own backends, flags and binding (the
//! wrap context names the cluster, the namespace and the key Secret).
//!
//! A key must never be lost, so the order is fixed:
//! 1. every selected key is converted in memory and checked ([`convert`]): a wrapped key is
//!    unwrapped again and must give back the same private fields; an unwrapped key must be the
//!    key of its certificate. Any failure here stops everything before the first write.
//! 2. for each key, the converted Secret is created under a new name (a Secret's type cannot
//!    change in place, and the name is bound into the wrap context, so it is chosen first);
//! 3. then the original is deleted with its uid and resourceVersion as preconditions: if it
//!    changed since it was read, it stays, the new copy is deleted, and the command fails.
//!
//! At every point the key exists in at least one Secret the API server holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use sealed_secrets_api::annotations::{
    ROTATE_REQUEST, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE,
};
use sealed_secrets_api::wrapped_key::{
    PLAIN_SECRET_TYPE, PRIVATE_FIELDS, WRAPPED_KEY_FIELD, install_envelope, is_wrapped,
    new_key_name, restore_private_fields, take_private_fields,
};
use sealed_secrets_crypto::{Certificate, PrivateKey};
use sealed_secrets_kms::settings::KeyWrapArgs;
use sealed_secrets_kms::{
    BACKEND_ANNOTATION, KMS_KEY_ANNOTATION, WrapContext, WrappedKey, Wrapper,
};

use super::secrets::{key_secrets_with, token_held};
use crate::args::{ControllerArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, printer};

/// Which way keys are converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Plain → wrapped.
    Wrap,
    /// Wrapped → plain.
    Unwrap,
}

impl Direction {
    fn verb(self) -> &'static str {
        match self {
            Direction::Wrap => "wrap",
            Direction::Unwrap => "unwrap",
        }
    }

    /// Whether `s` is a key Secret this direction converts.
    fn takes(self, s: &Secret) -> bool {
        match self {
            Direction::Wrap => {
                !is_wrapped(s) && s.data.as_ref().is_some_and(|d| d.contains_key("tls.key"))
            }
            Direction::Unwrap => is_wrapped(s),
        }
    }
}

/// Prefix of the converted Secret's name: the controller's own prefix when the key has it (so
/// the Secret still looks like the controller's), else the old name and a dash. Pure.
pub fn name_prefix(old: &str) -> String {
    const CONTROLLER_PREFIX: &str = "sealed-secrets-key";
    if old.starts_with(CONTROLLER_PREFIX) {
        CONTROLLER_PREFIX.to_owned()
    } else {
        format!("{old}-")
    }
}

/// The metadata a converted Secret keeps: its new name, the namespace, the labels (the key
/// label made explicit: upstream's legacy `sealed-secrets-key` is found by name only) and the
/// annotations, minus a pending rotation request and the wrapping annotations (rewritten by a
/// wrap, wrong after an unwrap). Pure.
fn converted_meta(old: &Secret, name: String, namespace: &str) -> ObjectMeta {
    let mut labels = old.metadata.labels.clone().unwrap_or_default();
    labels
        .entry(SEALING_KEY_LABEL.to_owned())
        .or_insert_with(|| SEALING_KEY_LABEL_ACTIVE.to_owned());
    let annotations: BTreeMap<String, String> = old
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| {
            ![ROTATE_REQUEST, BACKEND_ANNOTATION, KMS_KEY_ANNOTATION].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    }
}

/// Converts one key Secret `old` of `namespace` into the Secret that replaces it, named
/// `new_name`, and checks the result before anyone writes it: a wrapped key unwraps to the same
/// private fields, an unwrapped key is the key of its certificate. Talks to the key management
/// service only (one wrap and one unwrap, or one unwrap); writes nothing.
pub async fn convert(
    old: &Secret,
    new_name: String,
    namespace: &str,
    cluster: &str,
    wrapper: &dyn Wrapper,
    direction: Direction,
) -> Result<Secret> {
    let old_name = old.metadata.name.clone().unwrap_or_default();
    let refuse = |problem: &str| CliError::KeyConvert {
        namespace: namespace.to_owned(),
        name: old_name.clone(),
        problem: problem.to_owned(),
    };
    let call = |op: &'static str| {
        let old_name = old_name.clone();
        move |source| CliError::KeyWrapCall {
            op,
            namespace: namespace.to_owned(),
            name: old_name,
            source: Box::new(source),
        }
    };
    let new = match direction {
        Direction::Wrap => {
            let mut new = Secret {
                metadata: converted_meta(old, new_name.clone(), namespace),
                data: old.data.clone(),
                ..Secret::default()
            };
            let payload = take_private_fields(&mut new);
            let ctx = WrapContext::new(cluster, namespace, new_name);
            let envelope = WrappedKey::seal(wrapper, &payload, &ctx)
                .await
                .map_err(call("wrap"))?;
            install_envelope(&mut new, envelope.to_bytes(), envelope.annotations());
            // Round trip: what was stored must give back exactly what was taken.
            let back = WrappedKey::from_bytes(&envelope.to_bytes())
                .map_err(call("unwrap"))?
                .open(wrapper, &ctx)
                .await
                .map_err(call("unwrap"))?;
            let restored = restore_private_fields(&new, &back)
                .map_err(|_| refuse("the wrapped key does not unwrap to a key"))?;
            let same = PRIVATE_FIELDS
                .iter()
                .all(|f| field(&restored, f) == field(old, f));
            if !same {
                return Err(refuse("the wrapped key does not unwrap to the same key"));
            }
            check_key_matches_cert(&restored).map_err(refuse)?;
            new
        }
        Direction::Unwrap => {
            let Some(bytes) = old.data.as_ref().and_then(|d| d.get(WRAPPED_KEY_FIELD)) else {
                return Err(refuse("it holds no wrapped key"));
            };
            let ctx = WrapContext::new(cluster, namespace, old_name.clone());
            let payload = WrappedKey::from_bytes(&bytes.0)
                .map_err(call("unwrap"))?
                .open(wrapper, &ctx)
                .await
                .map_err(call("unwrap"))?;
            let restored = restore_private_fields(old, &payload)
                .map_err(|_| refuse("the wrapped key does not unwrap to a key"))?;
            check_key_matches_cert(&restored).map_err(refuse)?;
            Secret {
                metadata: converted_meta(old, new_name, namespace),
                type_: Some(PLAIN_SECRET_TYPE.to_owned()),
                data: restored.data,
                ..Secret::default()
            }
        }
    };
    Ok(new)
}

/// One data field of a Secret. Pure.
fn field<'a>(s: &'a Secret, name: &str) -> Option<&'a [u8]> {
    s.data.as_ref()?.get(name).map(|b| b.0.as_slice())
}

/// The key Secret's `tls.key` is a private key and `tls.crt` its certificate. Pure.
fn check_key_matches_cert(s: &Secret) -> std::result::Result<(), &'static str> {
    let data = s.data.as_ref().ok_or("it holds no data")?;
    let key = data
        .get("tls.key")
        .and_then(|k| PrivateKey::from_pem(&k.0).ok())
        .ok_or("its tls.key is not a readable private key")?;
    let cert = data
        .get("tls.crt")
        .and_then(|c| Certificate::from_pem(&c.0).ok())
        .ok_or("its tls.crt is not a readable certificate")?;
    if cert.public_key().fingerprint() != key.fingerprint() {
        return Err("its tls.crt is the certificate of another key than its tls.key");
    }
    Ok(())
}

/// The warning printed before converting, what each direction costs.
pub fn warning(direction: Direction) -> &'static str {
    match direction {
        Direction::Wrap => {
            "wrapped keys open only with this key management service and --key-wrap-cluster: \
             upstream's controller (and ours without --key-wrap-backend) cannot read them; \
             `kubeseal keys unwrap` converts them back"
        }
        Direction::Unwrap => {
            "unwrapped keys sit in etcd in the clear (as upstream stores them): whoever reads \
             Secrets in the controller namespace, or an etcd backup, holds them"
        }
    }
}

/// `kubeseal keys wrap` / `keys unwrap`.
pub(super) async fn run(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    args: &KeyWrapArgs,
    names: &[String],
    direction: Direction,
) -> Result<Outcome> {
    let wrapper: Arc<dyn Wrapper> = args
        .build_required()
        .map_err(|e| CliError::KeyWrapSetup(Box::new(e)))?;
    printer().warn(warning(direction));
    let ns = &controller.controller_namespace;
    let client = cluster::client(kube).await?;
    let secrets = key_secrets_with(&client, ns).await?;
    let selected = select(&secrets, names, direction, ns)?;
    if selected.is_empty() {
        printer().status(format_args!(
            "no key Secret in namespace `{ns}` to {}",
            direction.verb()
        ));
        return Ok(Outcome::Success);
    }
    // Every conversion checked before the first write.
    let taken: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let mut plan = Vec::with_capacity(selected.len());
    for old in selected {
        let old_name = old.metadata.name.clone().unwrap_or_default();
        let new_name = loop {
            let n = new_key_name(&name_prefix(&old_name), &mut rand::rng());
            if !taken.contains(&n) {
                break n;
            }
        };
        let new = convert(
            old,
            new_name,
            ns,
            &args.cluster,
            wrapper.as_ref(),
            direction,
        )
        .await?;
        plan.push((old, new));
    }
    let api: Api<Secret> = Api::namespaced(client, ns);
    for (old, new) in &plan {
        replace(&api, ns, old, new).await?;
        printer().status(format_args!(
            "{} key Secret `{ns}/{}` as `{ns}/{}`",
            match direction {
                Direction::Wrap => "wrapped",
                Direction::Unwrap => "unwrapped",
            },
            old.metadata.name.as_deref().unwrap_or_default(),
            new.metadata.name.as_deref().unwrap_or_default(),
        ));
    }
    printer()
        .note("restart the controller (every replica) so that it reads the converted key Secrets");
    Ok(Outcome::Success)
}

/// The key Secrets to convert: those named (each must exist and be convertible), or every one
/// this direction takes. Pure.
fn select<'a>(
    secrets: &'a [Secret],
    names: &[String],
    direction: Direction,
    ns: &str,
) -> Result<Vec<&'a Secret>> {
    if names.is_empty() {
        return Ok(secrets
            .iter()
            .filter(|s| direction.takes(s) && !token_held(s))
            .collect());
    }
    names
        .iter()
        .map(|n| {
            let s = secrets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(n.as_str()))
                .ok_or_else(|| CliError::KeyConvert {
                    namespace: ns.to_owned(),
                    name: n.clone(),
                    problem: "no such key Secret".to_owned(),
                })?;
            if direction.takes(s) && !token_held(s) {
                Ok(s)
            } else {
                Err(CliError::KeyConvert {
                    namespace: ns.to_owned(),
                    name: n.clone(),
                    problem: match direction {
                        Direction::Wrap => "it holds no plain key".to_owned(),
                        Direction::Unwrap => "it holds no wrapped key".to_owned(),
                    },
                })
            }
        })
        .collect()
}

/// Creates `new`, then deletes `old` if it is still the version read; if that delete fails,
/// deletes `new` again so that nothing changed.
async fn replace(api: &Api<Secret>, ns: &str, old: &Secret, new: &Secret) -> Result<()> {
    let old_name = old.metadata.name.clone().unwrap_or_default();
    let new_name = new.metadata.name.clone().unwrap_or_default();
    api.create(&PostParams::default(), new).await.map_err(|e| {
        cluster::api_error(format!("cannot create Secret `{ns}/{new_name}`"), &e, None)
    })?;
    let only_as_read = DeleteParams {
        preconditions: Some(Preconditions {
            uid: old.metadata.uid.clone(),
            resource_version: old.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    if let Err(e) = api.delete(&old_name, &only_as_read).await {
        let undo = api.delete(&new_name, &DeleteParams::default()).await;
        let err = cluster::api_error(
            format!(
                "cannot delete the old key Secret `{ns}/{old_name}` (it changed since it was read?)"
            ),
            &e,
            None,
        );
        return Err(match undo {
            Ok(_) => err.with_hint(format!(
                "`{ns}/{old_name}` is untouched and the new copy was removed; run the command again"
            )),
            Err(_) => err.with_hint(format!(
                "`{ns}/{old_name}` is untouched; the converted copy `{ns}/{new_name}` holds the same key: delete one of them"
            )),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
