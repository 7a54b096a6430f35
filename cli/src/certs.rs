//! Where the sealing certificate comes from: `--cert` (file, `file://`, `http(s)://`),
//! `--recipient-cert` (the same, or a directory), the cert ConfigMap, or the controller through the service proxy (§6.1, §6.2).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sealed_secrets_crypto::Certificate;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::args::{CertArgs, KubeArgs};
use crate::error::{CliError, OFFLINE_HINT, Result};
use crate::{cluster, http};

/// A `--cert` value, classified like upstream's `OpenCert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A local path (no scheme, or a single-letter "scheme" = Windows drive).
    File(PathBuf),
    /// `http://` or `https://`.
    Url(String),
}

impl CertSource {
    /// Classifies a `--cert` string.
    pub fn parse(s: &str) -> Result<CertSource> {
        match s.split_once("://") {
            Some((scheme, rest)) if scheme.len() > 1 => {
                match scheme.to_ascii_lowercase().as_str() {
                    "file" => Ok(CertSource::File(PathBuf::from(rest))),
                    "http" | "https" => Ok(CertSource::Url(s.to_owned())),
                    other => Err(CliError::CertScheme {
                        scheme: other.to_owned(),
                    }),
                }
            }
            _ => Ok(CertSource::File(PathBuf::from(s))),
        }
    }
}

/// Largest certificate accepted from a URL or from the controller: a PEM certificate is ~2 KiB
/// (RSA-4096: ~2.5 KiB); a bound keeps a hostile server from filling memory.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// Whether a plain `http://` certificate URL may be used (`--allow-insecure-cert-url`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpPolicy {
    /// Refuse `http://`: anyone on the network path could hand us their own certificate,
    /// and every Secret sealed with it would be theirs to read.
    #[default]
    Refuse,
    /// Allow it, with a warning on stderr each time.
    AllowWithWarning,
}

impl HttpPolicy {
    /// From the flag.
    pub fn from_flag(allow: bool) -> HttpPolicy {
        if allow {
            HttpPolicy::AllowWithWarning
        } else {
            HttpPolicy::Refuse
        }
    }
}

/// Decides whether `url` may be fetched (pure; the warning is the caller's to print).
pub fn check_url(url: &str, policy: HttpPolicy) -> Result<bool> {
    let plain = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    match (plain, policy) {
        (false, _) => Ok(false),
        (true, HttpPolicy::AllowWithWarning) => Ok(true),
        (true, HttpPolicy::Refuse) => Err(CliError::PlainHttpCert {
            url: url.to_owned(),
        }),
    }
}

/// Reads the bytes of one `--cert` source as received (for `--fetch-cert`).
pub fn read_source(source: &CertSource, policy: HttpPolicy) -> Result<Vec<u8>> {
    match source {
        CertSource::File(p) => {
            fs::read(p).map_err(|e| CliError::io("failed to read certificate", p, e))
        }
        CertSource::Url(url) => {
            if check_url(url, policy)? {
                crate::printer().warn(format_args!(
                    "fetching the certificate over plain HTTP from `{url}`: it is not authenticated, anyone on the network path can replace it"
                ));
            }
            http::get(url, MAX_CERT_BYTES)
        }
    }
}

/// Parses a PEM certificate (the first CERTIFICATE block, like upstream) and refuses expired
/// ones (upstream §1.7 message).
pub fn parse_cert(pem: &[u8], what: &str) -> Result<Certificate> {
    let cert = Certificate::from_pem(pem).map_err(|source| CliError::Cert {
        context: format!("cannot use certificate from {what}"),
        source,
    })?;
    cert.check_not_expired(SystemTime::now())
        .map_err(|source| CliError::Cert {
            context: format!("cannot use certificate from {what}"),
            source,
        })?;
    Ok(cert)
}

/// Loads the certificates to seal for: `cert` (the `--cert` in effect: one file or URL, as
/// upstream) and every `--recipient-cert` (files, URLs, or directories of
/// `.pem`/`.crt`/`.cer` files, one certificate per file). Several certificates mean a
/// multi-recipient SealedSecret.
pub fn load_all(
    cert: Option<&str>,
    recipients: &[String],
    policy: HttpPolicy,
) -> Result<Vec<Certificate>> {
    let mut out = Vec::new();
    if let Some(v) = cert {
        out.push(load_one(v, policy)?);
    }
    for v in recipients {
        let source = CertSource::parse(v)?;
        if let CertSource::File(p) = &source
            && p.is_dir()
        {
            let files = cert_files(p)?;
            if files.is_empty() {
                return Err(CliError::EmptyCertDir { dir: p.clone() });
            }
            for f in files {
                let bytes = read_source(&CertSource::File(f.clone()), policy)?;
                out.push(parse_cert(&bytes, &format!("`{}`", f.display()))?);
            }
            continue;
        }
        out.push(load_one(v, policy)?);
    }
    // The same cert given twice must not produce a 2-recipient value.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|c| seen.insert(c.public_key().fingerprint().clone()));
    Ok(out)
}

/// One certificate file or URL. A directory is refused with a pointer to --recipient-cert:
/// `--cert` names one certificate, as upstream's does.
fn load_one(v: &str, policy: HttpPolicy) -> Result<Certificate> {
    let source = CertSource::parse(v)?;
    let bytes = match read_source(&source, policy) {
        Err(e) if matches!(&source, CertSource::File(p) if p.is_dir()) => {
            return Err(e.with_hint(format!(
                "--cert takes one certificate; to seal for every certificate in a directory, pass --recipient-cert {v}"
            )));
        }
        other => other?,
    };
    parse_cert(&bytes, &format!("`{v}`"))
}

/// Says on stderr that a repeated `--cert` takes its last value (pflag's rule, as upstream)
/// and how to seal for several clusters now: a repeated `--cert` used to add recipients, so
/// a script written for that would otherwise lose all but one cluster without a word. The
/// values are not echoed (a URL may carry credentials).
pub fn note_repeated_cert(values: &[String]) {
    if values.len() > 1 {
        crate::printer().note(format_args!(
            "--cert was given {} times: only the last one is used, as upstream kubeseal does. To seal for several clusters at once, pass each certificate with --recipient-cert (docs/migrate-from-upstream.md)",
            values.len()
        ));
    }
}

/// Says on stderr, every time, that several certificates produce our multi-recipient format,
/// which upstream controllers cannot open (a directory given as --recipient-cert switches to
/// it without the user naming two certificates).
pub fn announce_format(certs: &[Certificate]) {
    if certs.len() > 1 {
        crate::printer().note(format_args!(
            "sealing for {} certificates in the multi-recipient format of sealed-secrets-rs: upstream Sealed Secrets controllers cannot open it (pass a single --cert for upstream's format)",
            certs.len()
        ));
    }
}

fn cert_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| CliError::io("failed to read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pem" | "crt" | "cer")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The certificate bytes as `--fetch-cert` prints them: the `--cert` source as received,
/// the PEMs of every certificate when `--recipient-cert` is given too, else the ConfigMap,
/// else the controller's `/v1/cert.pem`.
pub fn fetch_raw(args: &crate::args::CertArgs, kube: &crate::args::KubeArgs) -> Result<Vec<u8>> {
    let policy = HttpPolicy::from_flag(args.allow_insecure_cert_url);
    match (args.cert(), args.recipient_cert.is_empty()) {
        (None, true) => from_cluster(args, kube),
        (Some(one), true) => read_source(&CertSource::parse(one)?, policy),
        (cert, false) => {
            let certs = load_all(cert, &args.recipient_cert, policy)?;
            Ok(certs
                .iter()
                .map(|c| c.pem())
                .collect::<String>()
                .into_bytes())
        }
    }
}

/// The certificates to seal with: `--cert` and `--recipient-cert`, or the controller's (one).
pub fn recipients(
    args: &crate::args::CertArgs,
    kube: &crate::args::KubeArgs,
) -> Result<Vec<Certificate>> {
    if args.given() {
        return load_all(
            args.cert(),
            &args.recipient_cert,
            HttpPolicy::from_flag(args.allow_insecure_cert_url),
        );
    }
    let pem = from_cluster(args, kube)?;
    let what = if args.cert_from_configmap {
        format!(
            "ConfigMap `{}/{}`",
            args.controller_namespace, args.cert_configmap
        )
    } else {
        "the controller".to_owned()
    };
    Ok(vec![parse_cert(&pem, &what)?])
}

/// The controller's certificate: from the ConfigMap (`--cert-from-configmap`) or
/// `GET /v1/cert.pem` through the service proxy.
fn from_cluster(cert: &CertArgs, kube: &KubeArgs) -> Result<Vec<u8>> {
    crate::async_runtime::block_on(cluster::bounded(
        kube,
        "cannot fetch certificate",
        from_cluster_async(cert, kube),
    ))?
}

/// The controller's certificate ConfigMap (`--cert-from-configmap`): what the certificate and
/// the post-quantum recipient are read from when the service proxy is out of reach.
pub(crate) async fn cert_configmap(cert: &CertArgs, kube: &KubeArgs) -> Result<ConfigMap> {
    let client = cluster::client(kube).await?;
    let api: Api<ConfigMap> = Api::namespaced(client, &cert.controller_namespace);
    cluster::retrying(|| api.get(&cert.cert_configmap))
        .await
        .map_err(|e| {
            cluster::api_error(
                format!(
                    "cannot get ConfigMap `{}/{}`",
                    cert.controller_namespace, cert.cert_configmap
                ),
                &e,
                Some(
                    "check --controller-namespace and --cert-configmap, or drop --cert-from-configmap",
                ),
            )
        })
}

async fn from_cluster_async(cert: &CertArgs, kube: &KubeArgs) -> Result<Vec<u8>> {
    if cert.cert_from_configmap {
        let cm = cert_configmap(cert, kube).await?;
        let pem = cm
            .data
            .and_then(|mut d| d.remove("cert.pem"))
            .map(String::into_bytes)
            .ok_or_else(|| CliError::ConfigMapWithoutCert {
                namespace: cert.controller_namespace.clone(),
                name: cert.cert_configmap.clone(),
            })?;
        return check_cert_size(
            pem,
            &format!(
                "ConfigMap `{}/{}`",
                cert.controller_namespace, cert.cert_configmap
            ),
        );
    }
    let controller =
        cluster::Controller::connect(kube, &cert.controller_namespace, &cert.controller_name)
            .await?;
    let resp = controller
        .call(::http::Method::GET, "/v1/cert.pem", Vec::new())
        .await?;
    if !resp.status.is_success() {
        return Err(CliError::ControllerStatus {
            action: "cannot fetch certificate",
            reason: cluster::reason_of(&resp.body),
            status: resp.status.as_u16(),
        }
        .with_hint(OFFLINE_HINT));
    }
    check_cert_size(resp.body, "the controller")
}

/// Refuses a certificate over [`MAX_CERT_BYTES`], naming size and limit.
fn check_cert_size(pem: Vec<u8>, from: &str) -> Result<Vec<u8>> {
    if pem.len() > MAX_CERT_BYTES {
        return Err(CliError::CertTooLarge {
            from: from.to_owned(),
            size: pem.len(),
            limit: MAX_CERT_BYTES,
        });
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_upstream() {
        assert_eq!(
            CertSource::parse("cert.pem").ok(),
            Some(CertSource::File("cert.pem".into()))
        );
        assert_eq!(
            CertSource::parse("c://x/cert.pem").ok(),
            Some(CertSource::File("c://x/cert.pem".into()))
        );
        assert_eq!(
            CertSource::parse("file:///tmp/c.pem").ok(),
            Some(CertSource::File("/tmp/c.pem".into()))
        );
        assert_eq!(
            CertSource::parse("https://x/v1/cert.pem").ok(),
            Some(CertSource::Url("https://x/v1/cert.pem".into()))
        );
        assert!(CertSource::parse("ftp://x/c.pem").is_err());
    }

    #[test]
    fn plain_http_needs_the_flag() {
        assert!(check_url("http://x/cert.pem", HttpPolicy::Refuse).is_err());
        assert!(check_url("HTTP://x/cert.pem", HttpPolicy::Refuse).is_err());
        assert_eq!(
            check_url("http://x/cert.pem", HttpPolicy::AllowWithWarning).ok(),
            Some(true)
        );
        assert_eq!(
            check_url("https://x/cert.pem", HttpPolicy::Refuse).ok(),
            Some(false)
        );
    }
}
