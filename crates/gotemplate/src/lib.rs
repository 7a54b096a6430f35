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
//! Errors ([`TemplateError`]) name the template line and a fixed reason, never a value. Even
//! so, an execution error is not fit for a status or an Event: the line that failed can be
//! chosen by a value. `sealed_secrets_api::unseal` reports only parse errors in detail.
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

/// A parsed template. Parsing looks at the template text only, so its errors can be as
/// precise as they like; rendering it sees values (see [`Renderer`]).
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses `text` (syntax, nesting depth, unknown functions).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        parse::parse(text).map(|nodes| Template { nodes })
    }
}

/// Renders any number of templates with one `.` and under ONE budget: the budget of a whole
/// object, so that many templates each just under a per-render limit cannot add up to an
/// unbounded total. Bytes produced, steps, time and bytes written out are counted across every
/// [`Renderer::render`]; once a limit is hit, that render fails and so does every later one.
///
/// ```
/// use std::collections::BTreeMap;
/// use sealed_secrets_gotemplate::{Exhausted, Limits, Renderer, Template};
///
/// let big = Template::parse(r#"{{ repeat 700000 "a" }}"#)?;
/// let mut r = Renderer::new(&BTreeMap::new(), &Limits::DEFAULT);
/// assert_eq!(r.render(&big)?.len(), 700_000);
/// // The second one would take the total past 1 MiB: refused before it is written.
/// assert_eq!(r.render(&big).unwrap_err().exhausted(), Some(Exhausted::Output));
/// # Ok::<(), sealed_secrets_gotemplate::TemplateError>(())
/// ```
pub struct Renderer {
    dot: value::Value,
    budget: budget::Budget,
}

impl Renderer {
    /// A renderer with `.` bound to `data` (`map[string]string` in Go). The clock of
    /// [`Limits::max_time`] starts now.
    pub fn new(data: &BTreeMap<String, String>, limits: &Limits) -> Renderer {
        Renderer {
            dot: exec::dot_from(data),
            budget: budget::Budget::new(*limits),
        }
    }

    /// Renders one template, charging the shared budget. Never panics.
    pub fn render(&mut self, template: &Template) -> Result<String, TemplateError> {
        if let Some(what) = self.budget.exhausted() {
            // A limit already hit stays hit: the caller learns it without any work.
            return Err(TemplateError::budget(0, what));
        }
        exec::Exec::run(&template.nodes, &self.dot, &mut self.budget)
    }
}

impl std::fmt::Debug for Renderer {
    /// The dot holds decrypted values: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
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
    let template = Template::parse(text)?;
    Renderer::new(data, limits).render(&template)
}

/// Parses without executing, to report syntax errors early (e.g. offline validation).
pub fn check(text: &str) -> Result<(), TemplateError> {
    parse::parse(text).map(|_| ())
}
