//! `kubeseal keys restore`: put a backup's key Secrets back into the controller namespace.
//! A key already present (same fingerprint, any name) is left alone; a Secret of the same
//! name holding another key is a conflict, never overwritten.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use sealed_secrets_api::annotations::{SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE};
use sealed_secrets_crypto::Fingerprint;

use super::secrets::{fingerprint_of, key_secrets_with};
use crate::cli::{ControllerArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, printer};

pub(super) async fn restore(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    secrets: Vec<Secret>,
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
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let (mut created, mut skipped) = (0, 0);
    for s in secrets {
        let fp = fingerprint_of(&s).ok_or_else(|| CliError::BackupUnreadableKey {
            name: s.metadata.name.clone().unwrap_or_default(),
        })?;
        let name = s.metadata.name.clone().unwrap_or_default();
        if let Some(other) = present.get(&fp) {
            printer().status(format_args!(
                "key {fp} already present as `{ns}/{other}`: left alone"
            ));
            skipped += 1;
            continue;
        }
        if let Some(current) = cluster::retrying(|| api.get_opt(&name))
            .await
            .map_err(|e| {
                cluster::api_error(format!("cannot read Secret `{ns}/{name}`"), &e, None)
            })?
        {
            if fingerprint_of(&current).as_ref() != Some(&fp) {
                return Err(CliError::KeyConflict {
                    namespace: ns.clone(),
                    name,
                });
            }
            skipped += 1;
            continue;
        }
        let new = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(s.metadata.labels.clone().unwrap_or_else(|| {
                    BTreeMap::from([(
                        SEALING_KEY_LABEL.to_owned(),
                        SEALING_KEY_LABEL_ACTIVE.to_owned(),
                    )])
                })),
                annotations: s.metadata.annotations.clone(),
                ..ObjectMeta::default()
            },
            type_: s
                .type_
                .clone()
                .or_else(|| Some("kubernetes.io/tls".to_owned())),
            data: s
                .data
                .clone()
                .map(|d| d.into_iter().map(|(k, v)| (k, ByteString(v.0))).collect()),
            ..Secret::default()
        };
        api.create(&PostParams::default(), &new)
            .await
            .map_err(|e| {
                cluster::api_error(format!("cannot create Secret `{ns}/{name}`"), &e, None)
            })?;
        printer().status(format_args!("restored key {fp} as `{ns}/{name}`"));
        created += 1;
    }
    printer().status(format_args!(
        "{created} key(s) restored, {skipped} already present"
    ));
    if created > 0 {
        printer().note("restart the controller (or wait for its key watch) to load restored keys");
    }
    Ok(Outcome::Success)
}
