//! `kubeseal keys verify-backup FILE DIR...`: proves offline that a backup opens every
//! SealedSecret in the given trees (no template is run), listing those it cannot open.

use std::path::{Path, PathBuf};

use sealed_secrets_api::{UnsealOptions, decrypt_items};
use sealed_secrets_crypto::KeyRing;

use crate::args::DecryptArgs;
use crate::error::{CliError, Result};
use crate::{Outcome, documents, io, keyfiles, printer};

/// Opens every SealedSecret of `dirs` with the backup's keys; fails when any cannot be opened.
pub(super) fn verify_backup(file: &Path, dirs: &[PathBuf], crypt: &DecryptArgs) -> Result<Outcome> {
    let raw = io::read_file(file)?;
    let plain = crate::backup_encryption::decrypt(&raw, crypt, file)?;
    let mut ring = KeyRing::new();
    let keys = keyfiles::parse_keys(&plain, file)?;
    // A key Secret of ours holds an RSA key and its post-quantum identity: one key.
    let held = keys.rsa.len().max(keys.pq.len());
    let pq = keys.pq.len();
    keys.into_ring(&mut ring);
    let opts = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..UnsealOptions::default()
    };
    let (mut ok, mut bad) = (0usize, Vec::new());
    for (path, text) in documents::sealed_files(dirs)? {
        let mut errors = Vec::new();
        for (doc, ss) in documents::sealed_secrets(&text, &mut errors) {
            match decrypt_items(&ss, &ring, &opts) {
                Ok(_) => ok += 1,
                Err(e) => bad.push(format!(
                    "{}:{}: SealedSecret `{}`: {e}",
                    path.display(),
                    doc.line,
                    ss.object_ref()
                )),
            }
        }
        for e in errors {
            bad.push(format!("{}: {e}", path.display()));
        }
    }
    let mut out = String::new();
    for b in &bad {
        out.push_str(b);
        out.push('\n');
    }
    io::write_stdout(out.as_bytes())?;
    printer().status(format_args!(
        "backup holds {held} key(s){}; it opens {ok} SealedSecret(s), {} cannot be opened",
        match pq {
            0 => String::new(),
            n => format!(" ({n} with a post-quantum identity)"),
        },
        bad.len()
    ));
    if bad.is_empty() {
        Ok(Outcome::Success)
    } else {
        Err(CliError::BackupIncomplete { count: bad.len() })
    }
}
