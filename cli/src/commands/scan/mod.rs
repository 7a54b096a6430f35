//! `kubeseal scan`: a plaintext guard for repositories. Finds `kind: Secret` manifests with
//! data (YAML or JSON, multi-document, inside `List`s too) and kustomize `secretGenerator`
//! entries that carry values (`literals`, `envs`, `files`), and prints `file:line` for each;
//! exit status 3 ([`crate::exit::FINDINGS`]) when any is found, so it can run as a pre-commit
//! hook or CI step.
//!
//! What cannot be parsed is still looked at: Helm templates (`{{`), non-UTF-8 files, YAML
//! documents that do not parse and the rest of a JSON stream after a syntax error are
//! scanned as text for a `kind: Secret` with literal values ([`text_findings`]). Every such
//! file is reported on stderr, and `--strict` turns any of them into a failure.
//!
//! It also reports SealedSecret values in multi-recipient version 1, which has no key
//! commitment (`crates/crypto/FORMAT.md` §2.2) and which the controller refuses by default:
//! they need resealing. Hidden directories (`.github/`, `.argocd/`) are scanned unless
//! `--skip-hidden`; `.git` never is.

mod finding;
mod kustomize;
mod parsed;
mod text;

use std::path::{Path, PathBuf};

pub use finding::{FileReport, Finding};
use kustomize::{is_kustomization, secret_generators};
pub use parsed::{MULTI_V1_FINDING, multi_v1_findings, scan_text};
pub use text::text_findings;

use crate::args::ScanArgs;
use crate::documents;
use crate::error::{CliError, Result};
use crate::io;
use crate::{Outcome, printer};

/// Runs the scan and prints findings (stdout) and notes (stderr).
pub fn run(args: &ScanArgs) -> Result<Outcome> {
    let mut passed_over = Vec::new();
    let hidden = if args.skip_hidden {
        io::HiddenDirs::Skip
    } else {
        io::HiddenDirs::Enter
    };
    let files = io::walk_reporting(&args.paths, &mut passed_over, hidden)?;
    let mut findings = Vec::new();
    // Entries the walk passed over count when they could hold a manifest: a link or an
    // unreadable entry named like one.
    let mut skipped: Vec<(PathBuf, String)> = passed_over
        .into_iter()
        .filter(|(p, _)| io::is_manifest(p))
        .collect();
    let mut scanned = 0usize;
    for f in files
        .iter()
        .filter(|f| io::is_manifest(f) || args.paths.contains(f))
    {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                let why = crate::error::GoIoError(e);
                skipped.push((f.clone(), format!("unreadable ({why}): not scanned")));
                continue;
            }
        };
        scanned += 1;
        let report = scan_bytes(f, &bytes);
        findings.extend(report.findings);
        if let Some(reason) = report.fallback {
            skipped.push((f.clone(), reason));
        }
    }
    let mut out = String::new();
    for x in &findings {
        out.push_str(&format!(
            "{}:{}: {} `{}`\n",
            x.path.display(),
            x.line,
            x.what,
            x.object
        ));
    }
    io::write_stdout(out.as_bytes())?;
    for (path, reason) in &skipped {
        printer().note(format_args!("{}: {reason}", path.display()));
    }
    let v1 = findings
        .iter()
        .filter(|f| f.what == MULTI_V1_FINDING)
        .count();
    let unsealed = findings.len() - v1;
    if unsealed == 0 {
        printer().status(format_args!(
            "scanned {scanned} file(s): no unsealed Secret found"
        ));
    } else {
        printer().status(format_args!(
            "found {unsealed} unsealed Secret(s) in {scanned} scanned file(s); seal them with kubeseal and commit the SealedSecret instead",
        ));
    }
    if v1 > 0 {
        printer().status(format_args!(
            "found {v1} multi-recipient version-1 value(s) (no key commitment): the controller refuses them unless --accept-multi-recipient-v1; reseal them with kubeseal (or kubeseal reencrypt)"
        ));
    }
    if args.strict && !skipped.is_empty() {
        return Err(CliError::StrictUnparsed {
            count: skipped.len(),
        });
    }
    Ok(if findings.is_empty() {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}

/// Scans one file's bytes: parsed where possible, as text where not.
pub fn scan_bytes(path: &Path, bytes: &[u8]) -> FileReport {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let lossy = String::from_utf8_lossy(bytes);
        return FileReport {
            findings: text_findings(path, &lossy, 1),
            fallback: Some("not UTF-8: scanned as text".to_owned()),
        };
    };
    if text.contains("{{") {
        return FileReport {
            findings: text_findings(path, text, 1),
            fallback: Some(
                "template (`{{`): scanned as text (scan `helm template` output for certainty)"
                    .to_owned(),
            ),
        };
    }
    let mut report = FileReport {
        findings: scan_text(path, text),
        fallback: None,
    };
    let mut bad_lines = Vec::new();
    for doc in documents::split(text) {
        if doc.value.is_none() && !text[doc.start..doc.end].trim().is_empty() {
            bad_lines.push(doc.line);
            report
                .findings
                .extend(text_findings(path, &text[doc.start..doc.end], doc.line));
        }
    }
    if let Some(rest) = documents::json_unparsed_tail(text) {
        let line = text[..rest].matches('\n').count() + 1;
        bad_lines.push(line);
        report
            .findings
            .extend(text_findings(path, &text[rest..], line));
    }
    if !bad_lines.is_empty() {
        report.fallback = Some(format!(
            "{} document(s) do not parse (starting at line {}): scanned as text",
            bad_lines.len(),
            bad_lines
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if is_kustomization(path) {
        report.findings.extend(secret_generators(path, text));
    }
    report.findings.extend(multi_v1_findings(path, text));
    report.findings.sort_by_key(|f| f.line);
    report
}

#[cfg(test)]
mod tests;
