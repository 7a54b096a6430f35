//! `kubeseal reencrypt --recovery-private-key K --cert NEW DIR...` (`--recipient-cert` for
//! several clusters): offline re-encryption of a
//! whole tree (upstream #842/#1453 asked for it; upstream only offers the online
//! `--re-encrypt`). Every SealedSecret is decrypted with the old key(s) (no template is run)
//! and re-sealed for the new certificate(s) by the api crate's `reseal`, which keeps
//! namespace, name, scope and the whole template. Each file is rewritten atomically; only the
//! SealedSecret documents change, every other byte of the file stays as it was. A file with
//! any failure is left untouched.
//!
//! With `--recipients-file` (`--post-quantum`), the new keys are post-quantum recipients:
//! the migration of a tree off RSA-only values (`crates/crypto/FORMAT.md` §3), RSA and
//! post-quantum private keys opening what is there now.

use std::path::Path;

use sealed_secrets_api::output::{self, OutputFormat};
use sealed_secrets_api::{
    Recipients, SealedSecret, UnsealOptions, decrypt_items, reseal, sealing_key_hints,
};
use sealed_secrets_crypto::{
    Certificate, KeyRing, MultiV1Policy, PqRecipient, PublicKey, ValueFormat, decode_base64,
    value_format,
};

use crate::args::ReencryptArgs;
use crate::error::{CliError, Result};
use crate::io::FileMode;
use crate::{Outcome, certs, documents, io, keyfiles, pq_recipients, printer};

/// Per-run counters.
#[derive(Debug, Default)]
struct Tally {
    resealed: usize,
    current: usize,
    failed: usize,
    files: usize,
}

/// Runs it.
pub fn run(args: &ReencryptArgs) -> Result<Outcome> {
    let mut ring = keyfiles::load_ring(&args.recovery_private_key, &args.key_backup)?;
    certs::note_repeated_cert(&args.cert_values);
    // Resealing is how multi-recipient version-1 values (no key commitment, refused by the
    // controller) become version 2 with one plaintext for all: opening them here is the fix.
    ring.set_multi_v1_policy(MultiV1Policy::accept(Default::default()));
    let (certs, pq): (Vec<Certificate>, Vec<PqRecipient>) = if args.recipients_file.is_empty() {
        let certs = certs::load_all(
            args.cert_values.last().map(String::as_str),
            &args.recipient_cert,
            certs::HttpPolicy::from_flag(args.allow_insecure_cert_url),
        )?;
        certs::announce_format(&certs);
        (certs, Vec::new())
    } else {
        let pq = pq_recipients::load_files(&args.recipients_file)?;
        pq_recipients::announce(&pq);
        (Vec::new(), pq)
    };
    let rsa_keys: Vec<&PublicKey> = certs.iter().map(Certificate::public_key).collect();
    let pq_keys: Vec<&PqRecipient> = pq.iter().collect();
    let keys = if pq_keys.is_empty() {
        Recipients::Rsa(&rsa_keys)
    } else {
        Recipients::PostQuantum(&pq_keys)
    };
    let files = documents::sealed_files(&args.dirs)?;
    let out = printer();
    let mut tally = Tally::default();
    let total = files.len();
    for (i, (path, text)) in files.iter().enumerate() {
        out.progress(format_args!("[{}/{total}] {}", i + 1, path.display()));
        match rewrite(text, &ring, keys, &mut tally) {
            Ok(Some(new_text)) => {
                tally.files += 1;
                if !args.dry_run {
                    io::write_atomic(path, new_text.as_bytes(), FileMode::Public)?;
                }
            }
            Ok(None) => {}
            Err(problems) => {
                out.end_progress();
                for p in problems {
                    out.status(format_args!("{}: {p}", path.display()));
                }
            }
        }
    }
    out.end_progress();
    out.status(format_args!(
        "{} SealedSecret(s) re-encrypted in {} file(s){}, {} already sealed for the new {}, {} failed",
        tally.resealed,
        tally.files,
        if args.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        tally.current,
        if pq.is_empty() {
            "certificate"
        } else {
            "post-quantum recipients"
        },
        tally.failed
    ));
    if tally.failed > 0 {
        return Err(CliError::ReencryptFailed {
            count: tally.failed,
        });
    }
    Ok(Outcome::Success)
}

/// The new text of a file, `None` when nothing changes, or the problems (file untouched).
fn rewrite(
    text: &str,
    ring: &KeyRing,
    keys: Recipients<'_>,
    tally: &mut Tally,
) -> std::result::Result<Option<String>, Vec<String>> {
    let mut problems = Vec::new();
    let found = documents::sealed_secrets(text, &mut problems);
    if !problems.is_empty() {
        tally.failed += problems.len();
        return Err(problems);
    }
    let json = matches!(text.trim_start().chars().next(), Some('{') | Some('['));
    let wanted: Vec<String> = keys.fingerprints();
    let pq_wanted = matches!(keys, Recipients::PostQuantum(_));
    let mut replacements = Vec::new();
    let mut resealed = 0;
    for (doc, ss) in found {
        let hints: Vec<String> = sealing_key_hints(&ss.metadata)
            .iter()
            .map(ToString::to_string)
            .collect();
        // The hint names the keys the object was last sealed for; an object sealed for
        // them but holding values of the other family (a merged RSA item in a post-quantum
        // object) is not current.
        if hints == wanted && ss.multi_v1_items().is_empty() && in_family(&ss, pq_wanted) {
            tally.current += 1;
            continue;
        }
        match reseal_one(&ss, ring, keys) {
            Ok(new_ss) => {
                let rendered = render(
                    &new_ss,
                    json,
                    doc.after_separator,
                    &text[doc.start..doc.end],
                );
                match rendered {
                    Ok(r) => {
                        replacements.push((doc.start, doc.end, r));
                        resealed += 1;
                    }
                    Err(e) => problems.push(format!("line {}: {e}", doc.line)),
                }
            }
            Err(e) => problems.push(format!(
                "line {}: SealedSecret `{}`: {e}",
                doc.line,
                ss.object_ref()
            )),
        }
    }
    if !problems.is_empty() {
        tally.failed += problems.len();
        return Err(problems);
    }
    if replacements.is_empty() {
        return Ok(None);
    }
    tally.resealed += resealed;
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (start, end, r) in replacements {
        out.push_str(&text[pos..start]);
        out.push_str(&r);
        pos = end;
    }
    out.push_str(&text[pos..]);
    Ok(Some(out))
}

/// Whether every value of `ss` is post-quantum (`pq`) or none is (an unreadable value counts
/// as neither, so the object is resealed and the failure reported).
fn in_family(ss: &SealedSecret, pq: bool) -> bool {
    let legacy = ss.spec.data.as_deref().filter(|d| !d.is_empty());
    legacy
        .into_iter()
        .chain(ss.spec.encrypted_data.iter().map(|(_, v)| v))
        .all(|v| {
            decode_base64(v).is_ok_and(|ct| (value_format(&ct) == ValueFormat::PostQuantum) == pq)
        })
}

fn reseal_one(ss: &SealedSecret, ring: &KeyRing, keys: Recipients<'_>) -> Result<SealedSecret> {
    let opts = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..UnsealOptions::default()
    };
    let items = decrypt_items(ss, ring, &opts)?;
    Ok(reseal(ss, &items, keys)?)
}

/// kubeseal's output for one document, fitted into the old document's place: JSON keeps
/// the old trailing whitespace; YAML drops the `---` the separator line already provides.
fn render(ss: &SealedSecret, json: bool, after_separator: bool, old: &str) -> Result<String> {
    if json {
        let mut s = output::sealed_secret(ss, OutputFormat::Json)?;
        // The document span ends at the closing brace; the newline after it is outside.
        while s.ends_with('\n') {
            s.pop();
        }
        return Ok(s);
    }
    let s = output::sealed_secret(ss, OutputFormat::Yaml)?;
    let body = s.strip_prefix("---\n").unwrap_or(&s).to_owned();
    let _ = old;
    Ok(if after_separator {
        body
    } else {
        body_with_leading(old, body)
    })
}

/// Keeps comments/blank lines that preceded the first document's content.
fn body_with_leading(old: &str, body: String) -> String {
    let leading: String = old
        .split_inclusive('\n')
        .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        .collect();
    leading + &body
}

/// Re-encrypts one file (used by tests).
pub fn rewrite_file(path: &Path, ring: &KeyRing, certs: &[Certificate]) -> Result<bool> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::io("failed to read", path, e))?;
    let keys: Vec<&PublicKey> = certs.iter().map(Certificate::public_key).collect();
    let mut tally = Tally::default();
    match rewrite(&text, ring, Recipients::Rsa(&keys), &mut tally) {
        Ok(Some(t)) => {
            io::write_atomic(path, t.as_bytes(), FileMode::Public)?;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(problems) => Err(CliError::ReencryptFile { problems }),
    }
}
