//! `kubeseal keys list`: one row per key Secret, with how many SealedSecrets in the cluster
//! still need its key (OBJECTS: by the keys each object's status records, see
//! [`super::usage`]; `-` when SealedSecrets cannot be listed), how many values it has opened
//! according to the controller's metrics (OPENED, best effort: `-` when they cannot be
//! reached), and where its private key is (KEY: plain in the Secret, wrapped by a KMS, or in
//! a PKCS#11 token).

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use sealed_secrets_api::seal::AGE_KEY_FIELD;
use sealed_secrets_crypto::{Fingerprint, PqIdentity};

use super::secrets::{key_info, key_secrets_with};
use super::usage::{self, Needs};
use crate::args::{ControllerArgs, KubeArgs};
use crate::error::Result;
use crate::{Outcome, cluster, io, printer};

fn format_time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "-".to_owned())
}

pub(super) async fn list(controller: &ControllerArgs, kube: &KubeArgs) -> Result<Outcome> {
    let client = cluster::client(kube).await?;
    let secrets = key_secrets_with(&client, &controller.controller_namespace).await?;
    let usage = key_usage(&client, controller).await;
    // Best effort like OPENED: listing SealedSecrets cluster-wide is a right an operator who
    // may read key Secrets does not necessarily have.
    let objects = match usage::scan(&client, None).await {
        Ok(o) => Some(o),
        Err(e) => {
            printer().note(format_args!("OBJECTS unknown: {e}"));
            None
        }
    };
    let mut rows = vec![[
        "FINGERPRINT".to_owned(),
        "SECRET".to_owned(),
        "CREATED".to_owned(),
        "NOT-AFTER".to_owned(),
        "ACTIVE".to_owned(),
        "OBJECTS".to_owned(),
        "OPENED".to_owned(),
        // Where the private key is: plain (in the Secret), wrapped (by a KMS), in token.
        "KEY".to_owned(),
    ]];
    for s in &secrets {
        let k = key_info(s);
        let fp = k.fingerprint.as_ref().map(ToString::to_string);
        // A key Secret has two names: its RSA key's and its post-quantum identity's.
        let names: Vec<Fingerprint> = k
            .fingerprint
            .iter()
            .cloned()
            .chain(pq_fingerprint(s))
            .collect();
        rows.push([
            fp.clone().unwrap_or_else(|| "(unreadable key)".to_owned()),
            k.name,
            k.created,
            k.not_after
                .map(format_time)
                .unwrap_or_else(|| "-".to_owned()),
            if k.active { "yes" } else { "no" }.to_owned(),
            objects
                .as_ref()
                .map_or("-".to_owned(), |o| usage::count(o, &names).to_string()),
            match (&usage, fp) {
                (Some(u), Some(fp)) => u.get(&fp).map_or("0".to_owned(), |n| n.to_string()),
                _ => "-".to_owned(),
            },
            k.held.label().to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..8)
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
    let unrecorded = objects
        .iter()
        .flatten()
        .filter(|o| matches!(o.needs, Needs::Unrecorded(_)))
        .count();
    if unrecorded > 0 {
        printer().note(format_args!(
            "{unrecorded} SealedSecret(s) have no current record of their keys (not reconciled yet, failing, or changed since) and are not counted in OBJECTS; `keys retire` tries the key on them"
        ));
    }
    if usage.is_none() {
        printer().note(
            "OPENED unknown: the controller's metrics are not reachable through the API server proxy",
        );
    }
    Ok(Outcome::Success)
}

/// The fingerprint of the post-quantum identity in a key Secret's `age.key`, if it has one.
fn pq_fingerprint(s: &Secret) -> Option<Fingerprint> {
    let line = s.data.as_ref()?.get(AGE_KEY_FIELD)?;
    let id: PqIdentity = std::str::from_utf8(&line.0).ok()?.trim().parse().ok()?;
    Some(id.fingerprint().clone())
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
