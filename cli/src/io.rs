//! Files and streams: `-` means stdin/stdout, output files are written atomically (temp file
//! in the same directory + rename) so a failure leaves nothing behind (§6.1 `-w`).

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{CliError, Result};

/// Upstream's hint when stdin is a terminal (§6.4).
pub const TTY_HINT: &str = "(tty detected: expecting json/yaml k8s resource in stdin)";

/// Reads `path`, or stdin when `None` or `-`. On a terminal, prints upstream's hint first so a
/// user who forgot the redirection is not left waiting.
pub fn read_input(path: Option<&Path>) -> Result<Vec<u8>> {
    match path {
        Some(p) if p.as_os_str() != "-" => read_file(p),
        _ => read_stdin(),
    }
}

/// Reads all of stdin (with the TTY hint).
pub fn read_stdin() -> Result<Vec<u8>> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        crate::printer().status(TTY_HINT);
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io("failed to read", Path::new("-"), e))?;
    Ok(buf)
}

/// Reads a file.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| CliError::io("failed to read", path, e))
}

/// Writes data to stdout and flushes (a closed pipe surfaces as a broken-pipe error that
/// `main` turns into a quiet exit).
pub fn write_stdout(data: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("failed to write", Path::new("-"), e))
}

/// Permissions of a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileMode {
    /// 0644 for a new file; an existing file keeps its mode.
    Public,
    /// 0600 (key material), whatever existed before.
    OwnerOnly,
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over the target.
pub fn write_atomic(path: &Path, data: &[u8], mode: FileMode) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let err = |e| CliError::io("failed to write", path, e);
    // NamedTempFile is created 0600 on Unix, so key material is never readable by others,
    // not even briefly.
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubeseal-")
        .tempfile_in(&dir)
        .map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    set_mode(tmp.path(), path, mode).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(tmp: &Path, target: &Path, mode: FileMode) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bits = match mode {
        FileMode::OwnerOnly => 0o600,
        FileMode::Public => match fs::metadata(target) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => 0o644,
        },
    };
    fs::set_permissions(tmp, fs::Permissions::from_mode(bits))
}

#[cfg(not(unix))]
fn set_mode(_tmp: &Path, _target: &Path, _mode: FileMode) -> io::Result<()> {
    Ok(())
}

/// Creates `path` exclusively with mode 0600 (fails if it exists), writing atomically.
pub fn create_private_file(path: &Path, data: &[u8], overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        return Err(CliError::WouldOverwrite {
            path: path.to_owned(),
        });
    }
    write_atomic(path, data, FileMode::OwnerOnly)
}

/// Which directories below a given path a walk descends into. `.git` is never entered: it
/// holds Git's object store, not manifests, and is large.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenDirs {
    /// Skip every directory whose name starts with `.`.
    Skip,
    /// Enter them (`.github/`, `.argocd/` and the like hold manifests too), except `.git`.
    Enter,
}

/// Every regular file under `paths` (files given directly are kept), sorted, skipping hidden
/// directories such as `.git`.
pub fn walk(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    walk_reporting(paths, &mut Vec::new(), HiddenDirs::Skip)
}

/// [`walk`], also naming each entry it passed over and why: symbolic links (not followed, so a
/// scan cannot loop or leave the tree) and entries whose metadata cannot be read. Hidden
/// directories are entered or not as `hidden` says, and skipped ones are not named.
pub fn walk_reporting(
    paths: &[PathBuf],
    passed_over: &mut Vec<(PathBuf, String)>,
    hidden: HiddenDirs,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = fs::metadata(p).map_err(|e| CliError::io("failed to read", p, e))?;
        if meta.is_dir() {
            walk_dir(p, &mut out, passed_over, hidden)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    passed_over: &mut Vec<(PathBuf, String)>,
    hidden_dirs: HiddenDirs,
) -> Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| CliError::io("failed to read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str());
        let skip_dir = match hidden_dirs {
            HiddenDirs::Skip => name.is_some_and(|n| n.starts_with('.')),
            HiddenDirs::Enter => name == Some(".git"),
        };
        let meta = match fs::symlink_metadata(&p) {
            Ok(meta) => meta,
            Err(e) => {
                let why = crate::error::GoIoError(e);
                passed_over.push((p, format!("unreadable ({why}): not scanned")));
                continue;
            }
        };
        if meta.is_dir() {
            if !skip_dir {
                walk_dir(&p, out, passed_over, hidden_dirs)?;
            }
        } else if meta.is_file() {
            out.push(p);
        } else if meta.file_type().is_symlink() {
            passed_over.push((p, "symbolic link: not followed, not scanned".to_string()));
        }
    }
    Ok(())
}

/// Manifest-looking files: `.yaml`, `.yml`, `.json`.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}
