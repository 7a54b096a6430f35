//! A Go `text/template` interpreter for `spec.template.data` (§2.5), with sprig's generic
//! functions minus `env`, `expandenv` and `getHostByName`.
//!
//! Why not the `gtmpl` crate: it is only passively maintained (last release 2021, on
//! thiserror 1 and lazy_static), `unwrap`s on input in its lexer, and lacks most of sprig.
//! Templates here are attacker-supplied text executed inside the controller, so this small
//! interpreter is written to never panic and to bound work: nesting depth is capped at parse
//! time, and every render runs under one [`Limits`] budget of bytes produced, steps and time.
//!
//! Supported: text and actions, `{{-`/`-}}` trimming, comments, pipelines, parenthesised
//! pipelines, variables (`$x :=`, `$x =`, `$`), `.field` chains, `if`/`else if`/`else`,
//! `range` (lists, maps, integers; `$i, $v :=`; `break`/`continue`), `with`/`else with`, the
//! Go builtins, and the sprig functions listed in `funcs.rs`. Not supported: `define`,
//! `template`, `block`, method calls, and sprig's random, time, regex, crypto-generation and
//! network functions.

use std::collections::BTreeMap;

mod budget;
mod exec;
mod funcs;
mod parse;
mod printf;
mod value;

pub use budget::{Exhausted, Limits};

/// A template failed to parse or execute. The message names the line and the construct,
/// never a decrypted value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    message: String,
    exhausted: Option<Exhausted>,
}

impl TemplateError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exhausted: None,
        }
    }

    pub(crate) fn budget(line: usize, what: Exhausted) -> Self {
        Self {
            message: format!("line {line}: render budget exceeded: {}", what.as_str()),
            exhausted: Some(what),
        }
    }

    /// The limit the render exceeded, when that is why it failed.
    pub fn exhausted(&self) -> Option<Exhausted> {
        self.exhausted
    }
}

/// Renders `text` with `.` bound to `data` (`map[string]string` in Go), as upstream renders
/// each `spec.template.data` entry, under the default [`Limits`]. Never panics.
pub fn render(text: &str, data: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    render_with(text, data, &Limits::DEFAULT)
}

/// [`render`] under explicit limits.
pub fn render_with(
    text: &str,
    data: &BTreeMap<String, String>,
    limits: &Limits,
) -> Result<String, TemplateError> {
    let nodes = parse::parse(text)?;
    let mut budget = budget::Budget::new(*limits);
    exec::Exec::run(&nodes, exec::dot_from(data), &mut budget)
}

/// Parses without executing, to report syntax errors early (e.g. offline validation).
pub fn check(text: &str) -> Result<(), TemplateError> {
    parse::parse(text).map(|_| ())
}
