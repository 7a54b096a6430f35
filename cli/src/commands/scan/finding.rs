//! What `scan` reports: one finding per unsealed Secret (or value to reseal), and what each
//! file needed.

use std::path::PathBuf;

/// One unsealed Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// File.
    pub path: PathBuf,
    /// 1-based line of its `kind: Secret` (or of the `secretGenerator` entry).
    pub line: usize,
    /// `namespace/name` as far as known.
    pub object: String,
    /// What was found, e.g. "unsealed Secret".
    pub what: &'static str,
}

/// Findings and fallbacks of one file.
#[derive(Debug, Default)]
pub struct FileReport {
    /// What was found.
    pub findings: Vec<Finding>,
    /// Why (part of) the file was only scanned as text, if it was.
    pub fallback: Option<String>,
}
