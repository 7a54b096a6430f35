//! `--fetch-cert`: print the sealing certificate (from the controller, or from `--cert`).

use super::upstream_io::write_output;
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::certs;
use crate::error::Result;

/// Writes the certificate PEM to stdout or `-w`.
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let pem = certs::fetch_raw(cert, kube)?;
    write_output(seal.sealed_secret_file.as_deref(), &pem)
}
