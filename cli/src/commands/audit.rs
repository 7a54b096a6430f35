//! `kubeseal audit --key K DIR...`: compromise tracing. Lists every SealedSecret in the trees
//! that was sealed with key K, found by our `sealing-key` hint annotation, by the
//! multi-recipient header, or (when K is a private key) by actually decrypting it, which also
//! finds SealedSecrets sealed by upstream kubeseal (no hint). Exit [`crate::exit::FINDINGS`] when
//! any is found (like `scan`: something needs attention), 0 when none.
//!
//! Values in multi-recipient version 1 (no key commitment, `crates/crypto/FORMAT.md` §2.2),
//! whatever key they name, are listed too and count as findings: the controller refuses them
//! by default, and one such value may open to a different secret for each of its recipients.

use std::path::Path;

use sealed_secrets_api::{UnsealOptions, decrypt_items, sealing_key_hints};
use sealed_secrets_crypto::{
    Certificate, Envelope, Fingerprint, KeyRing, MultiV1Policy, decode_base64, envelope,
};

use crate::args::AuditArgs;
use crate::error::{CliError, Result};
use crate::{Outcome, documents, io, keyfiles, printer};

/// What the `--key` argument turned out to be.
#[derive(Debug)]
enum Target {
    Fingerprint(Fingerprint),
    Private(KeyRing, Fingerprint),
}

impl Target {
    fn fingerprint(&self) -> &Fingerprint {
        match self {
            Target::Fingerprint(f) | Target::Private(_, f) => f,
        }
    }
}

fn parse_target(arg: &str, crypt: &crate::args::DecryptArgs) -> Result<Target> {
    if arg.starts_with("SHA256:") {
        return arg
            .parse::<Fingerprint>()
            .map(Target::Fingerprint)
            .map_err(CliError::from);
    }
    let path = Path::new(arg);
    let bytes = crate::backup_encryption::decrypt(&io::read_file(path)?, crypt, path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("BEGIN CERTIFICATE") && !text.contains("PRIVATE KEY") {
        let cert = Certificate::from_pem(&bytes).map_err(|source| CliError::Cert {
            context: format!("cannot read certificate `{arg}`"),
            source,
        })?;
        return Ok(Target::Fingerprint(cert.public_key().fingerprint().clone()));
    }
    let keys = keyfiles::parse_keys(&bytes, path)?;
    if keys.len() != 1 {
        return Err(CliError::AuditOneKey {
            arg: arg.to_owned(),
            count: keys.len(),
        });
    }
    let mut ring = KeyRing::new();
    // Tracing needs to know whether the key opens a version-1 value too; those values are
    // reported separately (refused, a version-1 item would read as "some items decrypt").
    ring.set_multi_v1_policy(MultiV1Policy::accept(Default::default()));
    let mut fp = None;
    for k in keys {
        fp = Some(k.fingerprint().clone());
        ring.insert(k);
    }
    let fp = fp.ok_or_else(|| CliError::Internal("no key".to_owned()))?;
    Ok(Target::Private(ring, fp))
}

/// Runs the audit.
pub fn run(args: &AuditArgs) -> Result<Outcome> {
    let target = parse_target(&args.key, &args.key_backup)?;
    let fp = target.fingerprint().clone();
    let mut found = 0usize;
    let mut unknown = 0usize;
    let mut v1 = 0usize;
    let mut out = String::new();
    for (path, text) in documents::sealed_files(&args.dirs)? {
        let mut errors = Vec::new();
        for (doc, ss) in documents::sealed_secrets(&text, &mut errors) {
            for item in ss.multi_v1_items() {
                v1 += 1;
                out.push_str(&format!(
                    "{}:{}: SealedSecret `{}` item `{item}` (multi-recipient version 1, no key commitment: reseal it)\n",
                    path.display(),
                    doc.line,
                    ss.object_ref()
                ));
            }
            let how = if sealing_key_hints(&ss.metadata).contains(&fp) {
                Some("sealing-key annotation")
            } else if ss
                .spec
                .encrypted_data
                .iter()
                .any(|(_, v)| names_recipient(v, &fp))
            {
                Some("multi-recipient header")
            } else if let Target::Private(ring, _) = &target {
                let opts = UnsealOptions {
                    accept_deprecated_v1_data: true,
                    ..UnsealOptions::default()
                };
                match decrypt_items(&ss, ring, &opts) {
                    Ok(_) => Some("decrypts with the key"),
                    Err(e) if !e.is_no_key() && e.category() == "decrypt" => {
                        // Some items open, some do not: still sealed (partly) with the key.
                        Some("some items decrypt with the key")
                    }
                    Err(_) => None,
                }
            } else {
                if sealing_key_hints(&ss.metadata).is_empty() {
                    unknown += 1;
                }
                None
            };
            if let Some(how) = how {
                found += 1;
                out.push_str(&format!(
                    "{}:{}: SealedSecret `{}` ({how})\n",
                    path.display(),
                    doc.line,
                    ss.object_ref()
                ));
            }
        }
        for e in errors {
            printer().note(format_args!("{}: {e}", path.display()));
        }
    }
    io::write_stdout(out.as_bytes())?;
    if unknown > 0 {
        printer().note(format_args!(
            "{unknown} SealedSecret(s) carry no sealing-key annotation (sealed by upstream kubeseal?): pass the private key as --key to check them by decryption"
        ));
    }
    printer().status(format_args!("{found} SealedSecret(s) sealed with {fp}"));
    if v1 > 0 {
        printer().status(format_args!(
            "{v1} multi-recipient version-1 value(s) (no key commitment): the controller refuses them unless --accept-multi-recipient-v1; reseal them"
        ));
    }
    Ok(if found > 0 || v1 > 0 {
        Outcome::Findings
    } else {
        Outcome::Success
    })
}

fn names_recipient(value: &str, fp: &Fingerprint) -> bool {
    decode_base64(value)
        .ok()
        .and_then(|ct| envelope(&ct).ok())
        .is_some_and(|e| matches!(e, Envelope::Multi { recipients } if recipients.contains(fp)))
}
