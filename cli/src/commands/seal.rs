//! Default mode: seal every Secret of the input (§6.3) with the api crate's one pipeline,
//! [`seal_manifests`].

use sealed_secrets_api::{SealOptions, seal_manifests};

use super::upstream_io::{output_format, parse_scope, public_keys, render_all, write_output};
use crate::args::{CertArgs, KubeArgs, SealArgs};
use crate::certs;
use crate::cluster;
use crate::error::Result;
use crate::io;

/// Default mode: seal every Secret of the input.
pub fn run(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let format = output_format(seal, None)?;
    let scope = parse_scope(&seal.scope)?;
    // Upstream opens the certificate before reading the input.
    let certs = certs::recipients(cert, kube)?;
    certs::announce_format(&certs);
    let input = io::read_input(seal.secret_file.as_deref())?;
    let opts = SealOptions {
        scope,
        name: seal.name.clone().filter(|n| !n.is_empty()),
        explicit_namespace: kube.namespace.clone().filter(|n| !n.is_empty()),
        default_namespace: cluster::default_namespace(kube),
        allow_empty_data: seal.allow_empty_data,
    };
    let sealed = seal_manifests(&input, &public_keys(&certs), &opts)?;
    let text = render_all(&sealed, format)?;
    write_output(seal.sealed_secret_file.as_deref(), text.as_bytes())
}
