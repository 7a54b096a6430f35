//! `kubeseal keys ...`: the operator side. Keys are the controller's `kubernetes.io/tls`
//! Secrets in its namespace labelled `sealedsecrets.bitnami.com/sealed-secrets-key` (§4.2),
//! plus the legacy Secret named `sealed-secrets-key`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sealed_secrets_api::annotations::{
    ROTATE_REQUEST, RotateRequest, SEALING_KEY_LABEL, SEALING_KEY_LABEL_ACTIVE,
};
use sealed_secrets_api::{UnsealOptions, decrypt_items};
use sealed_secrets_crypto::{Certificate, Fingerprint, KeyRing, PrivateKey};

use crate::cli::{ControllerArgs, DecryptArgs, KeysCommand, KubeArgs};
use crate::error::{CliError, Result};
use crate::{Outcome, backup, cluster, docs, io, keyfiles, printer};

/// Name of upstream's legacy key Secret.
const LEGACY_KEY_SECRET: &str = "sealed-secrets-key";

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand, outer: &KubeArgs) -> Result<Outcome> {
    match cmd {
        KeysCommand::List { controller, kube } => {
            let kube = &kube.or(outer);
            crate::runtime::block_on(cluster::bounded(
                kube,
                "cannot list keys",
                list(&controller, kube),
            ))?
        }
        KeysCommand::Rotate {
            controller,
            timeout,
            kube,
        } => crate::runtime::block_on(rotate(&controller, &kube.or(outer), timeout))?,
        KeysCommand::Backup {
            controller,
            output,
            insecure_plaintext,
            force,
            crypt,
            kube,
        } => {
            let kube = &kube.or(outer);
            // Refuse early, before touching the cluster.
            if output.exists() && !force {
                return Err(CliError::WouldOverwrite { path: output });
            }
            if insecure_plaintext && !crypt.recipient.is_empty() {
                return Err(CliError::FlagsExclusive(
                    "--insecure-plaintext",
                    "--recipient",
                ));
            }
            let secrets = crate::runtime::block_on(cluster::bounded(
                kube,
                "cannot back up keys",
                key_secrets(&controller, kube),
            ))??;
            let text = backup_text(&secrets)?;
            let data = if insecure_plaintext {
                printer().warn(format_args!(
                    "writing private keys UNENCRYPTED to `{}`",
                    output.display()
                ));
                text.into_bytes()
            } else {
                backup::encrypt(text.as_bytes(), &crypt)?
            };
            io::create_private_file(&output, &data, force)?;
            printer().status(format_args!(
                "backed up {} key(s) to `{}`{}",
                secrets.len(),
                output.display(),
                if insecure_plaintext {
                    ""
                } else {
                    " (age-encrypted)"
                }
            ));
            Ok(Outcome::Success)
        }
        KeysCommand::Restore {
            controller,
            file,
            crypt,
            kube,
        } => {
            let kube = &kube.or(outer);
            let secrets = read_backup(&file, &crypt)?;
            crate::runtime::block_on(cluster::bounded(
                kube,
                "cannot restore keys",
                restore(&controller, kube, secrets),
            ))?
        }
        KeysCommand::VerifyBackup { file, dirs, crypt } => verify_backup(&file, &dirs, &crypt),
    }
}

/// Every key Secret (labelled with any value, plus the legacy one), oldest first.
async fn key_secrets(controller: &ControllerArgs, kube: &KubeArgs) -> Result<Vec<Secret>> {
    let client = cluster::client(kube).await?;
    key_secrets_with(&client, &controller.controller_namespace).await
}

async fn key_secrets_with(client: &kube::Client, ns: &str) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let fail = |e: kube::Error| {
        cluster::api_error(
            format!("cannot list key Secrets in namespace `{ns}`"),
            &e,
            Some(
                "this needs `list secrets` in the controller namespace; check --controller-namespace",
            ),
        )
    };
    let params = ListParams::default().labels(SEALING_KEY_LABEL);
    let mut list = cluster::retrying(|| api.list(&params))
        .await
        .map_err(fail)?
        .items;
    if !list
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some(LEGACY_KEY_SECRET))
        && let Some(legacy) = cluster::retrying(|| api.get_opt(LEGACY_KEY_SECRET))
            .await
            .map_err(fail)?
    {
        list.push(legacy);
    }
    list.sort_by(|a, b| {
        let t = |s: &Secret| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then(a.metadata.name.cmp(&b.metadata.name))
    });
    Ok(list)
}

/// One key Secret, read.
struct KeyInfo {
    name: String,
    fingerprint: Option<Fingerprint>,
    created: String,
    not_after: Option<SystemTime>,
    active: bool,
}

fn key_info(s: &Secret) -> KeyInfo {
    let data = s.data.clone().unwrap_or_default();
    let fingerprint = data
        .get("tls.key")
        .and_then(|k| PrivateKey::from_pem(&k.0).ok())
        .map(|k| k.fingerprint().clone());
    let not_after = data
        .get("tls.crt")
        .and_then(|c| Certificate::from_pem(&c.0).ok())
        .map(|c| c.not_after());
    KeyInfo {
        name: s.metadata.name.clone().unwrap_or_default(),
        fingerprint,
        created: s
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| "-".to_owned()),
        not_after,
        active: s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SEALING_KEY_LABEL))
            .is_some_and(|v| v == SEALING_KEY_LABEL_ACTIVE)
            || s.metadata.name.as_deref() == Some(LEGACY_KEY_SECRET),
    }
}

fn format_time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "-".to_owned())
}

async fn list(controller: &ControllerArgs, kube: &KubeArgs) -> Result<Outcome> {
    let client = cluster::client(kube).await?;
    let secrets = key_secrets_with(&client, &controller.controller_namespace).await?;
    let usage = key_usage(&client, controller).await;
    let mut rows = vec![[
        "FINGERPRINT".to_owned(),
        "SECRET".to_owned(),
        "CREATED".to_owned(),
        "NOT-AFTER".to_owned(),
        "ACTIVE".to_owned(),
        "OPENED".to_owned(),
    ]];
    for s in &secrets {
        let k = key_info(s);
        let fp = k.fingerprint.as_ref().map(ToString::to_string);
        rows.push([
            fp.clone()
                .unwrap_or_else(|| "(unreadable tls.key)".to_owned()),
            k.name,
            k.created,
            k.not_after
                .map(format_time)
                .unwrap_or_else(|| "-".to_owned()),
            if k.active { "yes" } else { "no" }.to_owned(),
            match (&usage, fp) {
                (Some(u), Some(fp)) => u.get(&fp).map_or("0".to_owned(), |n| n.to_string()),
                _ => "-".to_owned(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    io::write_stdout(out.as_bytes())?;
    if usage.is_none() {
        printer().note(
            "OPENED unknown: the controller's metrics are not reachable through the API server proxy",
        );
    }
    Ok(Outcome::Success)
}

/// `sealed_secrets_controller_key_values_opened_total{fingerprint=...}` from the metrics
/// Service, best effort.
async fn key_usage(client: &kube::Client, c: &ControllerArgs) -> Option<BTreeMap<String, u64>> {
    let path = format!(
        "/api/v1/namespaces/{}/services/http:{}-metrics:metrics/proxy/metrics",
        c.controller_namespace, c.controller_name
    );
    let resp = cluster::call_path(client, http::Method::GET, &path, Vec::new())
        .await
        .ok()?;
    if !resp.status.is_success() {
        return None;
    }
    Some(parse_usage(&String::from_utf8_lossy(&resp.body)))
}

/// Parses the per-key counter out of Prometheus text.
pub fn parse_usage(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("sealed_secrets_controller_key_values_opened_total{")
        else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Some(fp) = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("fingerprint=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.insert(fp.to_owned(), v as u64);
        }
    }
    out
}

async fn rotate(
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

/// A backup: the key Secrets without server fields, as a `v1.List` in YAML.
fn backup_text(secrets: &[Secret]) -> Result<String> {
    let items: Vec<serde_json::Value> = secrets
        .iter()
        .map(|s| {
            let m = &s.metadata;
            let mut meta = serde_json::Map::new();
            meta.insert("name".into(), m.name.clone().unwrap_or_default().into());
            meta.insert(
                "namespace".into(),
                m.namespace.clone().unwrap_or_default().into(),
            );
            if let Some(l) = &m.labels {
                meta.insert("labels".into(), serde_json::json!(l));
            }
            if let Some(a) = &m.annotations {
                let a: BTreeMap<_, _> = a
                    .iter()
                    .filter(|(k, _)| k.as_str() != ROTATE_REQUEST)
                    .collect();
                if !a.is_empty() {
                    meta.insert("annotations".into(), serde_json::json!(a));
                }
            }
            if let Some(t) = &m.creation_timestamp {
                meta.insert("creationTimestamp".into(), t.0.to_string().into());
            }
            let data: BTreeMap<&String, String> = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k, sealed_secrets_crypto::encode_base64(&v.0)))
                .collect();
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta,
                "type": s.type_.clone().unwrap_or_else(|| "kubernetes.io/tls".to_owned()),
                "data": data,
            })
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    Ok(sealed_secrets_api::output::value_to_yaml(&list)?)
}

/// The key Secrets of a backup file (decrypted as needed).
fn read_backup(path: &Path, crypt: &DecryptArgs) -> Result<Vec<Secret>> {
    let raw = io::read_file(path)?;
    let plain = backup::decrypt(&raw, crypt, path)?;
    let docs = sealed_secrets_api::manifest::parse_documents(&plain).map_err(|source| {
        CliError::Manifest {
            context: format!("backup `{}` is not a list of key Secrets", path.display()),
            source,
        }
    })?;
    let mut out = Vec::new();
    for d in docs {
        let items = match d.get("kind").and_then(|k| k.as_str()) {
            Some("List") | Some("SecretList") => d
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default(),
            _ => vec![d],
        };
        for i in items {
            let s: Secret =
                serde_json::from_value(i).map_err(|cause| CliError::BackupInvalidSecret {
                    path: path.to_owned(),
                    cause,
                })?;
            if !s.data.as_ref().is_some_and(|d| d.contains_key("tls.key")) {
                return Err(CliError::BackupSecretWithoutKey {
                    path: path.to_owned(),
                    index: out.len() + 1,
                    name: s
                        .metadata
                        .name
                        .as_deref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default(),
                });
            }
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(CliError::BackupWithoutKeys {
            path: path.to_owned(),
        });
    }
    Ok(out)
}

fn fingerprint_of(s: &Secret) -> Option<Fingerprint> {
    s.data
        .as_ref()
        .and_then(|d| d.get("tls.key"))
        .and_then(|k| PrivateKey::from_pem(&k.0).ok())
        .map(|k| k.fingerprint().clone())
}

async fn restore(
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

fn verify_backup(file: &Path, dirs: &[std::path::PathBuf], crypt: &DecryptArgs) -> Result<Outcome> {
    let raw = io::read_file(file)?;
    let plain = backup::decrypt(&raw, crypt, file)?;
    let mut ring = KeyRing::new();
    for key in keyfiles::parse_keys(&plain, file)? {
        ring.insert(key);
    }
    let opts = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..UnsealOptions::default()
    };
    let (mut ok, mut bad) = (0usize, Vec::new());
    for (path, text) in docs::sealed_files(dirs)? {
        let mut errors = Vec::new();
        for (doc, ss) in docs::sealed_secrets(&text, &mut errors) {
            match decrypt_items(&ss, &ring, &opts) {
                Ok(_) => ok += 1,
                Err(e) => bad.push(format!(
                    "{}:{}: SealedSecret `{}`: {e}",
                    path.display(),
                    doc.line,
                    ss.object_ref()
                )),
            }
        }
        for e in errors {
            bad.push(format!("{}: {e}", path.display()));
        }
    }
    let mut out = String::new();
    for b in &bad {
        out.push_str(b);
        out.push('\n');
    }
    io::write_stdout(out.as_bytes())?;
    printer().status(format_args!(
        "backup holds {} key(s); it opens {ok} SealedSecret(s), {} cannot be opened",
        ring.len(),
        bad.len()
    ));
    if bad.is_empty() {
        Ok(Outcome::Success)
    } else {
        Err(CliError::BackupIncomplete { count: bad.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_usage_metric() {
        let text = "# HELP x\nsealed_secrets_controller_key_values_opened_total{fingerprint=\"SHA256:abc\"} 12\nother 1\n";
        let u = parse_usage(text);
        assert_eq!(u.get("SHA256:abc"), Some(&12));
    }
}
