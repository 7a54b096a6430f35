//! Kubeconfig files for the stand-in, written atomically so that a script polling for the
//! file never reads half of it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Failure writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
#[error("failed to write kubeconfig `{path}`")]
pub struct KubeconfigError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A one-cluster kubeconfig for `server` (plain HTTP), with a bearer token if given.
/// Strings are JSON-quoted, which is valid YAML.
pub fn render(server: &str, token: Option<&str>, namespace: &str) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let user = match token {
        Some(t) => format!("\n    token: {}", q(t)),
        None => " {}".to_owned(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-standin\n  cluster:\n    server: {server}\n\
         users:\n- name: kube-standin\n  user:{user}\ncontexts:\n- name: kube-standin\n  context:\n    \
         cluster: kube-standin\n    user: kube-standin\n    namespace: {ns}\ncurrent-context: kube-standin\n\
         preferences: {{}}\n",
        server = q(server),
        ns = q(namespace),
    )
}

/// Writes `contents` to `path` via a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), KubeconfigError> {
    let err = |source| KubeconfigError {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(err)?;
    tmp.write_all(contents.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
