//! A Go `text/template` interpreter for `spec.template.data` (§2.5), with sprig's generic
//! functions minus `env`, `expandenv` and `getHostByName`.

use std::collections::BTreeMap;

/// A template failed to parse or execute. The message names the template position and the
/// construct, never a decrypted value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    message: String,
}

impl TemplateError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Renders `text` with `.` bound to `data` (`map[string]string` in Go).
pub fn render(text: &str, data: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let _ = (text, data);
    Err(TemplateError::new("template engine not written yet"))
}
