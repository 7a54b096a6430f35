//! `--recovery-unseal`: decrypt SealedSecrets offline with `--recovery-private-key` and print
//! the Secrets (the disaster-recovery path, §6.3).

use sealed_secrets_api::output;
use sealed_secrets_api::{ItemError, ObjectRef, SealedSecret, UnsealError, UnsealOptions, unseal};
use sealed_secrets_crypto::MultiV1Policy;

use super::upstream_io::{output_format, read_sealed_docs};
use crate::args::SealArgs;
use crate::error::{CliError, Result};
use crate::io::{self, FileMode};
use crate::keyfiles;

/// `--recovery-unseal`: decrypt offline with the given private keys and print the Secret(s).
pub fn run(seal: &SealArgs) -> Result<()> {
    let format = output_format(seal, None)?;
    let mut ring = keyfiles::load_ring(&seal.recovery_private_key, &seal.key_backup)?;
    if seal.accept_multi_recipient_v1 {
        ring.set_multi_v1_policy(MultiV1Policy::accept(Default::default()));
    }
    let list = read_sealed_docs(seal)?;
    // RSA keys and post-quantum identities alike.
    let keys = ring.len() + ring.pq_identities().count();
    let mut out = String::new();
    for ss in &list {
        let secret = unseal(ss, &ring, &UnsealOptions::default())
            .map_err(|e| no_key_in_upstream_words(e, ss, keys))?;
        out.push_str(&output::secret(secret.secret(), format)?);
    }
    // Plaintext Secrets: owner-only, like key backups, whatever the file's mode was.
    match seal.sealed_secret_file.as_deref() {
        Some(p) if p.as_os_str() != "-" => io::write_atomic(p, out.as_bytes(), FileMode::OwnerOnly),
        _ => io::write_stdout(out.as_bytes()),
    }
}

/// An unseal failure where no key opened anything, in upstream's words (see
/// [`CliError::NoKeyCouldDecrypt`]); every other failure is kept as it is.
fn no_key_in_upstream_words(e: UnsealError, ss: &SealedSecret, keys: usize) -> CliError {
    if !e.is_no_key() {
        return e.into();
    }
    let items = match &e {
        UnsealError::Items { errors, .. } => errors
            .iter()
            .filter_map(|i| match i {
                ItemError::Decrypt { item, .. } => Some(item.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    CliError::NoKeyCouldDecrypt {
        object: ObjectRef::of(&ss.metadata).to_string(),
        items,
        keys,
    }
}
