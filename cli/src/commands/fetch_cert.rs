//! `--fetch-cert`: print the sealing certificate (from the controller, or from `--cert`);
//! `--fetch-recipient`: the post-quantum recipient, likewise.

use super::upstream_io::write_output;
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::error::Result;
use crate::{certs, pq_recipients};

/// Writes the certificate PEM to stdout or `-w`.
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let pem = certs::fetch_raw(cert, kube)?;
    write_output(seal.sealed_secret_file.as_deref(), &pem)
}

/// `--fetch-recipient`: writes the post-quantum recipient line(s) to stdout or `-w`.
pub fn run_recipient(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let text = pq_recipients::fetch_text(cert, kube)?;
    write_output(seal.sealed_secret_file.as_deref(), &text)
}
