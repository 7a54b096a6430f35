//! `kubeseal keys rotate`: ask the controller for a new key through the rotate-request
//! annotation (the same typed `RotateRequest` the controller parses), then wait for the new
//! key Secret and print its fingerprint.

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use sealed_secrets_api::annotations::{ROTATE_REQUEST, RotateRequest};

use super::secrets::{key_info, key_secrets_with};
use crate::args::{ControllerArgs, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, cluster, io, printer};

pub(super) async fn rotate(
    controller: &ControllerArgs,
    kube: &KubeArgs,
    timeout: Duration,
) -> Result<Outcome> {
    let client = cluster::client(kube).await?;
    let ns = &controller.controller_namespace;
    let before = key_secrets_with(&client, ns).await?;
    let newest = before
        .iter()
        .rev()
        .find(|s| key_info(s).active)
        .ok_or_else(|| CliError::NoActiveKey {
            namespace: ns.to_owned(),
        })?;
    let newest_name = newest.metadata.name.clone().unwrap_or_default();
    let known: Vec<String> = before
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    // Stamped in the second after every existing key Secret was created, so the controller
    // answers it exactly once (the rule is `RotateRequest::stamp`'s).
    let latest_key = before
        .iter()
        .filter_map(|s| s.metadata.creation_timestamp.as_ref())
        .map(|t| SystemTime::from(t.0))
        .max();
    let request = loop {
        match RotateRequest::stamp(SystemTime::now(), latest_key) {
            Some(r) => break r,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let patch =
        serde_json::json!({"metadata": {"annotations": {ROTATE_REQUEST: request.to_string()}}});
    api.patch(&newest_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            cluster::api_error(
                format!("cannot request a new key (patch Secret `{ns}/{newest_name}`)"),
                &e,
                Some("this needs `patch secrets` in the controller namespace"),
            )
        })?;
    printer().status(format_args!(
        "requested a new key from the controller; waiting up to {}",
        jiff::SignedDuration::try_from(timeout)
            .map(|d| format!("{d:#}"))
            .unwrap_or_else(|_| format!("{}s", timeout.as_secs()))
    ));
    let start = Instant::now();
    loop {
        let now_list = key_secrets_with(&client, ns).await?;
        if let Some(new) = now_list
            .iter()
            .find(|s| s.metadata.name.as_ref().is_some_and(|n| !known.contains(n)))
        {
            let k = key_info(new);
            let fp = k.fingerprint.map(|f| f.to_string()).unwrap_or_default();
            io::write_stdout(format!("{fp}\n").as_bytes())?;
            printer().status(format_args!("new key Secret `{ns}/{}`", k.name));
            return Ok(Outcome::Success);
        }
        if start.elapsed() >= timeout {
            return Err(CliError::RotateTimeout {
                waited: jiff::SignedDuration::try_from(timeout)
                    .map(|d| format!("{d:#}"))
                    .unwrap_or_else(|_| format!("{}s", timeout.as_secs())),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
