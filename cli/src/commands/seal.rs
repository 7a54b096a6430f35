//! Default mode: seal every Secret of the input (§6.3) with the api crate's one pipeline,
//! [`seal_manifests`], for certificates or post-quantum recipients.

use sealed_secrets_api::{SealOptions, seal_manifests};

use super::upstream_io::{SealKeys, output_format, parse_scope, render_all, write_output};
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::cluster;
use crate::error::Result;
use crate::io;

/// Default mode: seal every Secret of the input.
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let format = output_format(seal, None)?;
    let scope = parse_scope(&seal.scope)?;
    // Upstream opens the certificate before reading the input (the post-quantum recipient
    // likewise).
    let keys = SealKeys::load(cert, kube)?;
    let input = io::read_input(seal.secret_file.as_deref())?;
    let opts = SealOptions {
        scope,
        name: seal.name.clone().filter(|n| !n.is_empty()),
        explicit_namespace: kube.namespace.clone().filter(|n| !n.is_empty()),
        default_namespace: cluster::default_namespace(kube),
        allow_empty_data: seal.allow_empty_data,
    };
    let sealed = keys.with(|r| seal_manifests(&input, r, &opts))?;
    let text = render_all(&sealed, format)?;
    write_output(seal.sealed_secret_file.as_deref(), text.as_bytes())
}
