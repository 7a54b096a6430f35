//! `kubeseal audit DIR...` without `--key`: the post-quantum migration inventory. For every
//! SealedSecret: how many values are RSA-only (upstream's format or the multi-recipient one)
//! and how many post-quantum (`crates/crypto/FORMAT.md` §3), and which key each uses; then
//! the totals per format and per key. Read from the values' headers and our `sealing-key`
//! hint only: no key is needed, nothing is decrypted.
//!
//! Which key: a post-quantum value names its keys (key hints), a multi-recipient value its
//! RSA keys; an upstream-format value names none, so its key is the object's `sealing-key`
//! hint (minus the post-quantum keys its other values name), or unknown without one.
//!
//! Exit [`crate::exit::FINDINGS`] while any RSA-only value remains (migration not done), 0
//! when every value is post-quantum. A value whose header does not parse is listed on stderr
//! naming file, line, object and item, and fails the run (exit 1) after the report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sealed_secrets_api::{SealedSecret, sealing_key_hints};
use sealed_secrets_crypto::{Envelope, Fingerprint, decode_base64, envelope};

use crate::error::{CliError, Result};
use crate::{Outcome, documents, io, printer};

/// The format family a value counts under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// RSA only: upstream's format or our multi-recipient one.
    Rsa,
    /// Post-quantum (age, mlkem768x25519).
    PostQuantum,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Rsa => "rsa",
            Kind::PostQuantum => "post-quantum",
        }
    }
}

/// One object's inventory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ObjectInventory {
    /// RSA-only values.
    pub rsa: usize,
    /// Post-quantum values.
    pub post_quantum: usize,
    /// Values per key (`None`: an RSA value whose key nothing names).
    pub keys: BTreeMap<(Kind, Option<Fingerprint>), usize>,
    /// Values whose header does not parse: item and why (no secret in either).
    pub unreadable: Vec<(String, String)>,
}

/// The inventory of one SealedSecret (pure).
pub fn inspect(ss: &SealedSecret) -> ObjectInventory {
    let mut inv = ObjectInventory::default();
    let mut values: Vec<(String, &str)> = ss
        .spec
        .encrypted_data
        .iter()
        .map(|(k, v)| (format!("encryptedData `{k}`"), v))
        .collect();
    if let Some(d) = ss.spec.data.as_deref().filter(|d| !d.is_empty()) {
        values.push(("spec.data".to_owned(), d));
    }
    let mut upstream = 0usize;
    let mut pq_keys: Vec<Fingerprint> = Vec::new();
    for (item, value) in values {
        let parsed = decode_base64(value)
            .map_err(|e| e.to_string())
            .and_then(|ct| envelope(&ct).map_err(|e| e.to_string()));
        match parsed {
            Err(why) => inv.unreadable.push((item, why)),
            Ok(Envelope::PostQuantum { recipients, .. }) => {
                inv.post_quantum += 1;
                if recipients.is_empty() {
                    *inv.keys.entry((Kind::PostQuantum, None)).or_default() += 1;
                }
                for r in recipients {
                    if !pq_keys.contains(&r) {
                        pq_keys.push(r.clone());
                    }
                    *inv.keys.entry((Kind::PostQuantum, Some(r))).or_default() += 1;
                }
            }
            Ok(Envelope::Multi { recipients }) => {
                inv.rsa += 1;
                for r in recipients {
                    *inv.keys.entry((Kind::Rsa, Some(r))).or_default() += 1;
                }
            }
            Ok(_) => {
                inv.rsa += 1;
                upstream += 1;
            }
        }
    }
    if upstream > 0 {
        let hinted: Vec<Fingerprint> = sealing_key_hints(&ss.metadata)
            .into_iter()
            .filter(|h| !pq_keys.contains(h))
            .collect();
        if hinted.is_empty() {
            *inv.keys.entry((Kind::Rsa, None)).or_default() += upstream;
        }
        for h in hinted {
            *inv.keys.entry((Kind::Rsa, Some(h))).or_default() += upstream;
        }
    }
    inv
}

fn key_list(keys: &BTreeMap<(Kind, Option<Fingerprint>), usize>) -> String {
    keys.keys()
        .map(|(kind, fp)| match fp {
            Some(fp) => format!("{fp} {}", kind.as_str()),
            None => format!("unknown {}", kind.as_str()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the inventory over `dirs`.
pub fn run(dirs: &[PathBuf]) -> Result<Outcome> {
    let mut out = String::new();
    let (mut objects, mut rsa, mut pq, mut unreadable) = (0usize, 0usize, 0usize, 0usize);
    let mut per_key: BTreeMap<(Kind, Option<Fingerprint>), usize> = BTreeMap::new();
    for (path, text) in documents::sealed_files(dirs)? {
        let mut errors = Vec::new();
        for (doc, ss) in documents::sealed_secrets(&text, &mut errors) {
            let inv = inspect(&ss);
            objects += 1;
            rsa += inv.rsa;
            pq += inv.post_quantum;
            for (k, n) in &inv.keys {
                *per_key.entry(k.clone()).or_default() += n;
            }
            for (item, why) in &inv.unreadable {
                unreadable += 1;
                printer().status(format_args!(
                    "{}:{}: SealedSecret `{}` {item}: {why}",
                    path.display(),
                    doc.line,
                    ss.object_ref()
                ));
            }
            out.push_str(&format!(
                "{}:{}: SealedSecret `{}`: {} RSA-only, {} post-quantum{} ({})\n",
                path.display(),
                doc.line,
                ss.object_ref(),
                inv.rsa,
                inv.post_quantum,
                match inv.unreadable.len() {
                    0 => String::new(),
                    n => format!(", {n} unreadable"),
                },
                if inv.keys.is_empty() {
                    "no readable value".to_owned()
                } else {
                    format!("keys: {}", key_list(&inv.keys))
                }
            ));
        }
        for e in errors {
            printer().note(format_args!("{}: {e}", path.display()));
        }
    }
    out.push_str(&format!(
        "total: {objects} SealedSecret(s), {} value(s): {rsa} RSA-only, {pq} post-quantum{}\n",
        rsa + pq + unreadable,
        if unreadable > 0 {
            format!(", {unreadable} unreadable")
        } else {
            String::new()
        }
    ));
    for ((kind, fp), n) in &per_key {
        let name = fp
            .as_ref()
            .map_or_else(|| "unknown key".to_owned(), |f| format!("key {f}"));
        out.push_str(&format!(
            "total: {name} ({}): {n} value(s)\n",
            kind.as_str()
        ));
    }
    io::write_stdout(out.as_bytes())?;
    if unreadable > 0 {
        return Err(CliError::AuditUnreadable { count: unreadable });
    }
    if rsa > 0 {
        printer().status(format_args!(
            "{rsa} value(s) are still RSA-only: kubeseal reencrypt --post-quantum upgrades them"
        ));
        return Ok(Outcome::Findings);
    }
    Ok(Outcome::Success)
}
