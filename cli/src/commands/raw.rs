//! `--raw`: seal one value (from `--from-file` or stdin) and print bare base64, no newline.

use std::path::Path;

use sealed_secrets_api::{SealingError, seal_raw};
use sealed_secrets_crypto::Scope;

use super::upstream_io::{SealKeys, parse_scope, write_output};
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::cluster;
use crate::error::{CliError, Result};
use crate::io;

/// Seals the value for `--scope`, `--namespace` and `--name`.
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    if seal.from_file.len() > 1 {
        return Err(CliError::RawTakesOneFile);
    }
    let scope = parse_scope(&seal.scope)?;
    let namespace = cluster::default_namespace(kube);
    let name = seal.name.clone().unwrap_or_default();
    // Check the flags before fetching anything (same messages as seal_raw).
    if scope != Scope::ClusterWide && namespace.is_empty() {
        return Err(SealingError::RawNeedsNamespace.into());
    }
    if scope == Scope::Strict && name.is_empty() {
        return Err(SealingError::RawNeedsName.into());
    }
    let keys = SealKeys::load(cert, kube)?;
    let value = match seal.from_file.first() {
        Some(spec) => {
            let path = spec.split_once('=').map_or(spec.as_str(), |(_, p)| p);
            io::read_file(Path::new(path))?
        }
        None => io::read_stdin()?,
    };
    let out = keys.with(|r| seal_raw(&value, r, scope, Some(&namespace), Some(&name)))?;
    write_output(seal.sealed_secret_file.as_deref(), out.as_bytes())
}
