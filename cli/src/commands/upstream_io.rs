//! What the upstream modes share: the input (`-f` or stdin), the output (`-w` written
//! atomically, or stdout), the output format (`-o`, `-w`'s extension), `--scope`, and reading
//! SealedSecrets back.

use std::path::Path;
use std::str::FromStr;

use sealed_secrets_api::output::{self, OutputFormat};
use sealed_secrets_api::{Recipients, SealedSecret, parse_sealed_secrets};
use sealed_secrets_crypto::{Certificate, PqRecipient, PublicKey, Scope};

use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::error::{CliError, Result};
use crate::io::{self, FileMode};
use crate::{certs, pq_recipients};

/// The keys a sealing mode seals for: certificates (upstream's format, or the
/// multi-recipient one for several) or post-quantum recipients (`--post-quantum`,
/// `--recipients-file`).
pub enum SealKeys {
    /// `--cert`, `--recipient-cert`, or the controller's certificate.
    Rsa(Vec<Certificate>),
    /// `--recipients-file`, or the controller's post-quantum recipient.
    PostQuantum(Vec<PqRecipient>),
}

impl SealKeys {
    /// Loads them (from files, URLs or the cluster) and says on stderr which format follows.
    pub fn load(cert: &CertArgs, kube: &KubeArgs) -> Result<SealKeys> {
        if pq_recipients::wanted(cert) {
            let r = pq_recipients::recipients(cert, kube)?;
            pq_recipients::announce(&r);
            return Ok(SealKeys::PostQuantum(r));
        }
        let c = certs::recipients(cert, kube)?;
        certs::announce_format(&c);
        Ok(SealKeys::Rsa(c))
    }

    /// Runs `f` with these keys as the api crate's [`Recipients`].
    pub fn with<T>(&self, f: impl FnOnce(Recipients<'_>) -> T) -> T {
        match self {
            SealKeys::Rsa(certs) => f(Recipients::Rsa(&public_keys(certs))),
            SealKeys::PostQuantum(r) => {
                let refs: Vec<&PqRecipient> = r.iter().collect();
                f(Recipients::PostQuantum(&refs))
            }
        }
    }
}

/// The output format: `-w`'s `.yaml`/`.yml` extension wins (upstream), then `-o`, then
/// `fallback` (merge-into: the target's own format), then JSON.
pub fn output_format(seal: &SealArgs, fallback: Option<OutputFormat>) -> Result<OutputFormat> {
    let by_flag = seal
        .format
        .as_deref()
        .map(OutputFormat::from_str)
        .transpose()?;
    let by_ext = seal.sealed_secret_file.as_deref().and_then(yaml_extension);
    Ok(by_ext.or(by_flag).or(fallback).unwrap_or_default())
}

pub fn yaml_extension(p: &Path) -> Option<OutputFormat> {
    match p.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
            Some(OutputFormat::Yaml)
        }
        _ => None,
    }
}

/// stdout, or `-w` written atomically.
pub fn write_output(path: Option<&Path>, data: &[u8]) -> Result<()> {
    match path {
        Some(p) if p.as_os_str() != "-" => io::write_atomic(p, data, FileMode::Public),
        _ => io::write_stdout(data),
    }
}

pub fn render_all(list: &[SealedSecret], format: OutputFormat) -> Result<String> {
    let mut out = String::new();
    for ss in list {
        out.push_str(&output::sealed_secret(ss, format)?);
    }
    Ok(out)
}

pub fn parse_scope(s: &str) -> Result<Scope> {
    Ok(Scope::from_str(s)?)
}

pub fn public_keys(certs: &[Certificate]) -> Vec<&PublicKey> {
    certs.iter().map(Certificate::public_key).collect()
}

/// Reads one SealedSecret file (exactly one object).
pub fn read_one_sealed(path: &Path) -> Result<(SealedSecret, OutputFormat)> {
    let bytes = io::read_file(path)?;
    let format = detect_format(&bytes);
    let mut list = parse_sealed_secrets(&bytes).map_err(|source| CliError::Manifest {
        context: format!("cannot read SealedSecret from `{}`", path.display()),
        source,
    })?;
    match list.len() {
        1 => Ok((list.remove(0), format)),
        found => Err(CliError::NotOneSealedSecret {
            path: path.to_owned(),
            found,
        }),
    }
}

/// JSON when the first non-blank byte opens an object, else YAML.
pub fn detect_format(bytes: &[u8]) -> OutputFormat {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => OutputFormat::Json,
        _ => OutputFormat::Yaml,
    }
}

/// The SealedSecrets of the input (`-f` or stdin); none is an error.
pub fn read_sealed_docs(seal: &SealArgs) -> Result<Vec<SealedSecret>> {
    let input = io::read_input(seal.secret_file.as_deref())?;
    let list = parse_sealed_secrets(&input).map_err(|source| CliError::Manifest {
        context: "cannot read the SealedSecret input".to_owned(),
        source,
    })?;
    if list.is_empty() {
        return Err(CliError::NoSealedSecret);
    }
    Ok(list)
}
