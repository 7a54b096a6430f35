//! `kubeseal audit --key K DIR...`: compromise tracing. Lists every SealedSecret in the trees
//! that was sealed with key K, found by our `sealing-key` hint annotation, by the
//! multi-recipient header or the post-quantum key hints, or (when K is a private key) by
//! actually decrypting it, which also finds SealedSecrets sealed by upstream kubeseal (no
//! hint). Exit [`crate::exit::FINDINGS`] when any is found (like `scan`: something needs
//! attention), 0 when none.
//!
//! `kubeseal audit DIR...` (no `--key`): the post-quantum migration inventory, in
//! `audit/inventory.rs`.
//!
//! Values in multi-recipient version 1 (no key commitment, `crates/crypto/FORMAT.md` §2.2),
//! whatever key they name, are listed too and count as findings: the controller refuses them
//! by default, and one such value may open to a different secret for each of its recipients.

use std::path::Path;

use sealed_secrets_api::{UnsealOptions, decrypt_items, sealing_key_hints};
use sealed_secrets_crypto::{
    Certificate, Envelope, Fingerprint, KeyRing, MultiV1Policy, PqRecipient, decode_base64,
    envelope,
};

use crate::args::AuditArgs;
use crate::error::{CliError, Result};
use crate::{Outcome, documents, io, keyfiles, printer};

mod inventory;

/// What the `--key` argument turned out to be: the fingerprints that name it (a key Secret
/// holds an RSA key and its post-quantum identity: two names for one key), and the private
/// keys when given.
#[derive(Debug)]
struct Target {
    fingerprints: Vec<Fingerprint>,
    ring: Option<KeyRing>,
}

impl Target {
    fn public(fp: Fingerprint) -> Target {
        Target {
            fingerprints: vec![fp],
            ring: None,
        }
    }

    fn names(&self, fp: &Fingerprint) -> bool {
        self.fingerprints.contains(fp)
    }
}

fn parse_target(arg: &str, crypt: &crate::args::DecryptArgs) -> Result<Target> {
    if arg.starts_with("SHA256:") {
        return arg
            .parse::<Fingerprint>()
            .map(Target::public)
            .map_err(CliError::from);
    }
    if arg.starts_with("age1pq1") {
        let r: PqRecipient = arg.parse().map_err(|source| CliError::PqRecipient {
            from: "--key".to_owned(),
            source,
        })?;
        return Ok(Target::public(r.fingerprint().clone()));
    }
    let path = Path::new(arg);
    let bytes = crate::backup_encryption::decrypt(&io::read_file(path)?, crypt, path)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("BEGIN CERTIFICATE") && !text.contains("PRIVATE KEY") {
        let cert = Certificate::from_pem(&bytes).map_err(|source| CliError::Cert {
            context: format!("cannot read certificate `{arg}`"),
            source,
        })?;
        return Ok(Target::public(cert.public_key().fingerprint().clone()));
    }
    let keys = keyfiles::parse_keys(&bytes, path)?;
    // One key: an RSA key, a post-quantum identity, or one key Secret holding both.
    if keys.rsa.len() > 1 || keys.pq.len() > 1 {
        return Err(CliError::AuditOneKey {
            arg: arg.to_owned(),
            count: keys.rsa.len().max(keys.pq.len()),
        });
    }
    let mut fingerprints: Vec<Fingerprint> =
        keys.rsa.iter().map(|k| k.fingerprint().clone()).collect();
    fingerprints.extend(keys.pq.iter().map(|k| k.fingerprint().clone()));
    let mut ring = KeyRing::new();
    // Tracing needs to know whether the key opens a version-1 value too; those values are
    // reported separately (refused, a version-1 item would read as "some items decrypt").
    ring.set_multi_v1_policy(MultiV1Policy::accept(Default::default()));
    keys.into_ring(&mut ring);
    if fingerprints.is_empty() {
        return Err(CliError::Internal("no key".to_owned()));
    }
    Ok(Target {
        fingerprints,
        ring: Some(ring),
    })
}

/// Runs the audit: tracing with `--key`, else the inventory.
pub fn run(args: &AuditArgs) -> Result<Outcome> {
    let Some(key) = &args.key else {
        return inventory::run(&args.dirs);
    };
    let target = parse_target(key, &args.key_backup)?;
    let fp = target
        .fingerprints
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" / ");
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
            let how = if sealing_key_hints(&ss.metadata)
                .iter()
                .any(|h| target.names(h))
            {
                Some("sealing-key annotation")
            } else if let Some(header) = ss
                .spec
                .encrypted_data
                .iter()
                .find_map(|(_, v)| names_recipient(v, &target))
            {
                Some(header)
            } else if let Some(ring) = &target.ring {
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

/// Which header of `value` names the target, if one does.
fn names_recipient(value: &str, target: &Target) -> Option<&'static str> {
    let ct = decode_base64(value).ok()?;
    match envelope(&ct).ok()? {
        Envelope::Multi { recipients } if recipients.iter().any(|r| target.names(r)) => {
            Some("multi-recipient header")
        }
        Envelope::PostQuantum { recipients, .. } if recipients.iter().any(|r| target.names(r)) => {
            Some("post-quantum key hint")
        }
        _ => None,
    }
}
