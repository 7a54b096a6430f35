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
//! Go builtins, and the sprig functions of the table in `funcs.rs`. Not supported: `define`,
//! `template`, `block`, method calls, and sprig's random, time, regex, crypto-generation and
//! network functions.
//!
//! Errors ([`TemplateError`]) name the template line and a fixed reason, never a value: the
//! controller shows them in status and Events.
//!
//! ```
//! use std::collections::BTreeMap;
//! use sealed_secrets_gotemplate::{Exhausted, render};
//!
//! let data = BTreeMap::from([("user".to_owned(), "admin".to_owned())]);
//! assert_eq!(render("{{ .user | upper }}", &data)?, "ADMIN");
//! // A memory bomb is an ordinary error.
//! let bomb = r#"{{ $x := repeat 1048576 "a" }}{{ range 24 }}{{ $x = cat $x $x }}{{ end }}"#;
//! assert_eq!(render(bomb, &data).unwrap_err().exhausted(), Some(Exhausted::Bytes));
//! # Ok::<(), sealed_secrets_gotemplate::TemplateError>(())
//! ```

use std::collections::BTreeMap;

mod budget;
mod error;
mod exec;
mod funcs;
pub mod json;
mod lex;
mod parse;
mod printf;
mod value;

pub use budget::{Exhausted, Limits};
pub use error::{CallError, ErrorKind, EvalError, TemplateError};

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
