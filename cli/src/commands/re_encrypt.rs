//! `--re-encrypt` (alias `--rotate`): the controller re-encrypts each SealedSecret with its
//! newest key (`/v1/rotate`, server side).
//!
//! An answer that turns post-quantum values back into RSA ones is refused before anything is
//! written: a controller that cannot rotate to a post-quantum key would otherwise undo the
//! migration silently (`kubeseal reencrypt --post-quantum` upgrades offline).

use std::path::PathBuf;

use sealed_secrets_api::manifest::sealed_secret_from_value;
use sealed_secrets_api::output;
use sealed_secrets_api::{ObjectRef, SealedSecret};
use sealed_secrets_crypto::{decode_base64, is_pq};

use super::upstream_io::{
    output_format, read_sealed_docs, render_all, write_output, yaml_extension,
};
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::cluster::{self, Controller};
use crate::error::{CliError, Result};

/// `--re-encrypt`: one `/v1/rotate` call per document. With only `-f`, the input file is
/// rewritten (upstream #405).
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let list = read_sealed_docs(seal)?;
    let out_path: Option<PathBuf> = seal
        .sealed_secret_file
        .clone()
        .or_else(|| seal.secret_file.clone().filter(|p| p.as_os_str() != "-"));
    let fallback = seal
        .secret_file
        .as_deref()
        .filter(|_| seal.sealed_secret_file.is_none())
        .and_then(yaml_extension);
    let format = output_format(seal, fallback)?;
    let rotated = crate::async_runtime::block_on(cluster::bounded(
        kube,
        "cannot re-encrypt secret",
        async {
            let controller =
                Controller::connect(kube, &cert.controller_namespace, &cert.controller_name)
                    .await?;
            let mut out = Vec::new();
            for ss in &list {
                let body = output::to_json(ss).into_bytes();
                let resp = controller
                    .call(http::Method::POST, "/v1/rotate", body)
                    .await?;
                match resp.status.as_u16() {
                    200..=299 => {
                        let rotated = parse_rotated(&resp.body)?;
                        refuse_downgrade(ss, &rotated)?;
                        out.push(rotated);
                    }
                    409 => return Err(CliError::RotateRefused),
                    _ => {
                        return Err(CliError::ControllerStatus {
                            action: "cannot re-encrypt secret",
                            reason: cluster::reason_of(&resp.body),
                            status: resp.status.as_u16(),
                        });
                    }
                }
            }
            Ok(out)
        },
    ))??;
    let text = render_all(&rotated, format)?;
    write_output(out_path.as_deref(), text.as_bytes())
}

/// The rotate answer has no apiVersion/kind (upstream quirk): add them, then clear the
/// server fields upstream clears.
fn parse_rotated(body: &[u8]) -> Result<SealedSecret> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(CliError::ControllerAnswer)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("apiVersion")
            .or_insert_with(|| sealed_secrets_api::API_VERSION.into());
        obj.entry("kind")
            .or_insert_with(|| sealed_secrets_api::KIND.into());
    }
    let mut ss = sealed_secret_from_value(1, value).map_err(|source| CliError::Manifest {
        context: "cannot re-encrypt secret: invalid answer from the controller".to_owned(),
        source,
    })?;
    ss.metadata.creation_timestamp = None;
    ss.metadata.deletion_timestamp = None;
    ss.metadata.generation = None;
    ss.status = None;
    Ok(ss)
}

/// Whether a value is post-quantum (an undecodable one is not).
fn value_is_pq(v: &str) -> bool {
    decode_base64(v).is_ok_and(|ct| is_pq(&ct))
}

/// Refuses an answer that holds an RSA value (or none) for an item `before` held as a
/// post-quantum value. Pure.
fn refuse_downgrade(before: &SealedSecret, after: &SealedSecret) -> Result<()> {
    let lost: Vec<String> = before
        .spec
        .encrypted_data
        .iter()
        .filter(|(_, v)| value_is_pq(v))
        .filter(|(item, _)| {
            !after
                .spec
                .encrypted_data
                .iter()
                .any(|(k, v)| k == *item && value_is_pq(v))
        })
        .map(|(item, _)| format!("`{item}`"))
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    Err(CliError::PqDowngrade {
        object: ObjectRef::of(&before.metadata).to_string(),
        items: lost.join(", "),
    })
}
