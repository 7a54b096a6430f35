//! Where the post-quantum recipients (`age1pq1…`, `crates/crypto/FORMAT.md` §3.1) come from:
//! `--recipients-file` (age's recipients-file syntax: one recipient per line, `#` comments,
//! one line per cluster), else the cluster: the cert ConfigMap's `age-recipient.txt`
//! (`--cert-from-configmap`) or the controller's `/v1/age-recipient.txt` through the service
//! proxy, fetched exactly as the certificate is.

use std::path::{Path, PathBuf};

use sealed_secrets_api::seal::{AGE_RECIPIENT_CONFIGMAP_KEY, AGE_RECIPIENT_PATH};
use sealed_secrets_crypto::{MAX_PQ_RECIPIENTS, PqRecipient};

use crate::args::{CertArgs, KubeArgs};
use crate::error::{CliError, OFFLINE_HINT, Result};
use crate::{cluster, io};

/// Largest recipients file or answer: a recipient line is 1,960 characters, and a value
/// holds at most [`MAX_PQ_RECIPIENTS`] of them; the rest is room for comments.
pub const MAX_RECIPIENTS_BYTES: usize = 256 * 1024;

/// Whether this run seals post-quantum: `--post-quantum`, or any `--recipients-file`.
pub fn wanted(cert: &CertArgs) -> bool {
    cert.post_quantum || !cert.recipients_file.is_empty()
}

/// Refuses `--post-quantum` together with RSA certificates. Sealing to the cluster's
/// recipient when the user named a certificate would seal for a key they did not name, and
/// sealing RSA when a team made post-quantum its default would quietly undo the policy: both
/// surprise, so the user says which one they mean.
pub fn refuse_certificates(cert: &CertArgs) -> Result<()> {
    if wanted(cert) && cert.given() {
        let pq = if cert.recipients_file.is_empty() {
            "--post-quantum"
        } else {
            "--recipients-file"
        };
        let rsa = if cert.cert_values.is_empty() {
            "--recipient-cert"
        } else {
            "--cert"
        };
        return Err(CliError::FlagsExclusive(pq, rsa).with_hint(
            "post-quantum values are sealed to age recipients, not certificates: seal offline \
             with --recipients-file FILE (from `kubeseal --fetch-recipient`), or drop \
             --post-quantum (SEALED_SECRETS_POST_QUANTUM=false) to seal RSA for the certificate",
        ));
    }
    Ok(())
}

/// Parses recipients text: one `age1pq1…` per line, blank lines and `#` comments skipped.
/// Errors name `from` and the 1-based line, never the line's text.
pub fn parse(text: &[u8], from: &str) -> Result<Vec<PqRecipient>> {
    if text.len() > MAX_RECIPIENTS_BYTES {
        return Err(CliError::PqRecipientsTooLarge {
            from: from.to_owned(),
            size: text.len(),
            limit: MAX_RECIPIENTS_BYTES,
        });
    }
    let text = std::str::from_utf8(text).map_err(|_| CliError::PqRecipient {
        from: from.to_owned(),
        source: sealed_secrets_crypto::PqKeyError::Bech32 { what: "recipient" },
    })?;
    let mut out: Vec<PqRecipient> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r: PqRecipient = line.parse().map_err(|source| CliError::PqRecipient {
            from: format!("{from}, line {}", i + 1),
            source,
        })?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(CliError::NoPqRecipient {
            from: from.to_owned(),
        });
    }
    Ok(out)
}

/// The recipients of every `--recipients-file`, without repeats; more than a value can hold
/// is refused here, before any input is read.
pub fn load_files(files: &[PathBuf]) -> Result<Vec<PqRecipient>> {
    let mut out: Vec<PqRecipient> = Vec::new();
    for f in files {
        let bytes = read_bounded(f)?;
        for r in parse(&bytes, &format!("`{}`", f.display()))? {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    if out.len() > MAX_PQ_RECIPIENTS {
        return Err(CliError::InvalidFlag {
            flag: "--recipients-file",
            value: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            reason: format!(
                "{} distinct recipients, a post-quantum value holds at most {MAX_PQ_RECIPIENTS}",
                out.len()
            ),
        });
    }
    Ok(out)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let bytes = io::read_file(path)?;
    if bytes.len() > MAX_RECIPIENTS_BYTES {
        return Err(CliError::PqRecipientsTooLarge {
            from: format!("`{}`", path.display()),
            size: bytes.len(),
            limit: MAX_RECIPIENTS_BYTES,
        });
    }
    Ok(bytes)
}

/// The recipients to seal to: the files, else the cluster's (one).
pub fn recipients(cert: &CertArgs, kube: &KubeArgs) -> Result<Vec<PqRecipient>> {
    refuse_certificates(cert)?;
    if !cert.recipients_file.is_empty() {
        return load_files(&cert.recipients_file);
    }
    let (text, from) = from_cluster(cert, kube)?;
    let list = parse(&text, &from)?;
    // The contract is the newest key's recipient, one line: anything else is not a
    // controller's answer, and sealing for a recipient nobody named would be worse than
    // failing.
    if list.len() != 1 {
        return Err(CliError::PqRecipientCount {
            from,
            count: list.len(),
        });
    }
    Ok(list)
}

/// What `--fetch-recipient` prints: the files' recipients, or the cluster's, one
/// `age1pq1…` per line (checked first: a broken answer is an error, not output).
pub fn fetch_text(cert: &CertArgs, kube: &KubeArgs) -> Result<Vec<u8>> {
    let list = recipients(cert, kube)?;
    Ok(list
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes())
}

/// Says on stderr, every time, that these values need a post-quantum-capable controller.
pub fn announce(recipients: &[PqRecipient]) {
    crate::printer().note(format_args!(
        "sealing in the post-quantum format (age, mlkem768x25519) for {} recipient(s): upstream Sealed Secrets controllers cannot open it",
        recipients.len()
    ));
}

/// The recipient text from the ConfigMap (`--cert-from-configmap`) or the controller, and
/// where it came from (for errors).
fn from_cluster(cert: &CertArgs, kube: &KubeArgs) -> Result<(Vec<u8>, String)> {
    crate::async_runtime::block_on(cluster::bounded(
        kube,
        "cannot fetch post-quantum recipient",
        from_cluster_async(cert, kube),
    ))?
}

async fn from_cluster_async(cert: &CertArgs, kube: &KubeArgs) -> Result<(Vec<u8>, String)> {
    if cert.cert_from_configmap {
        let from = format!(
            "ConfigMap `{}/{}` (data key `{AGE_RECIPIENT_CONFIGMAP_KEY}`)",
            cert.controller_namespace, cert.cert_configmap
        );
        let cm = crate::certs::cert_configmap(cert, kube).await?;
        let text = cm
            .data
            .and_then(|mut d| d.remove(AGE_RECIPIENT_CONFIGMAP_KEY))
            .map(String::into_bytes)
            .ok_or_else(|| CliError::NoPqRecipient { from: from.clone() })?;
        return Ok((text, from));
    }
    let controller =
        cluster::Controller::connect(kube, &cert.controller_namespace, &cert.controller_name)
            .await?;
    let resp = controller
        .call(::http::Method::GET, AGE_RECIPIENT_PATH, Vec::new())
        .await?;
    let from = format!("the controller's {AGE_RECIPIENT_PATH}");
    if resp.status == ::http::StatusCode::NOT_FOUND {
        return Err(CliError::NoPqRecipient { from });
    }
    if !resp.status.is_success() {
        return Err(CliError::ControllerStatus {
            action: "cannot fetch post-quantum recipient",
            reason: cluster::reason_of(&resp.body),
            status: resp.status.as_u16(),
        }
        .with_hint(OFFLINE_HINT));
    }
    Ok((resp.body, from))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use sealed_secrets_crypto::PqIdentity;

    use super::*;

    #[test]
    fn parses_age_recipients_files() {
        let a = PqIdentity::generate().unwrap();
        let b = PqIdentity::generate().unwrap();
        let text = format!(
            "# prod\n{}\n\n  {}  \n# again\n{}\n",
            a.recipient(),
            b.recipient(),
            a.recipient()
        );
        let got = parse(text.as_bytes(), "`f`").unwrap();
        assert_eq!(got, [a.recipient().clone(), b.recipient().clone()]);

        let e = parse(b"# nothing\n\n", "`f`").unwrap_err();
        assert_eq!(e.to_string(), "no post-quantum recipient in `f`");
        // A typo on line 2: named by line, the text itself is not echoed.
        let mut bad = a.recipient().to_string();
        bad.replace_range(20..21, "b");
        let e = parse(format!("# x\n{bad}\n").as_bytes(), "`f`").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid post-quantum recipient in `f`, line 2"
        );
        assert!(!format!("{e:?}").contains(&bad[7..40]));
        let x25519 = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
        assert!(parse(x25519.as_bytes(), "`f`").is_err());
        let huge = vec![b'#'; MAX_RECIPIENTS_BYTES + 1];
        assert!(matches!(
            parse(&huge, "`f`"),
            Err(CliError::PqRecipientsTooLarge { .. })
        ));
    }
}
