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

/// A template failed to parse or execute, at a line of the template.
///
/// Nothing here is derived from a decrypted value (issue 11 item 4): `fail`'s message, the
/// index that was out of range, the length of what was sliced, the type a value turned out to
/// have would all let whoever reads a status or an Event (the built-in `view` role can) learn
/// about the plaintext. Errors keep the line, the construct or function named in the
/// template text (which is public: it is stored unencrypted in the SealedSecret), and a fixed
/// reason. The detailed text is never built, so it cannot leak through logs either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct TemplateError {
    line: usize,
    kind: ErrorKind,
}

/// What went wrong, without any value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The template text does not parse. The message quotes only the template text.
    #[error("{0}")]
    Parse(String),
    /// A function failed on its arguments.
    #[error("error calling {function}: {reason}")]
    Call {
        /// The function's name, as written in the template.
        function: String,
        /// Why, as a fixed phrase.
        reason: CallError,
    },
    /// Evaluation failed outside a function call.
    #[error("{0}")]
    Eval(EvalError),
    /// The render exceeded one of its [`Limits`].
    #[error("render budget exceeded: {}", .0.as_str())]
    Budget(Exhausted),
}

/// Why a function call failed: a fixed reason, never its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// `fail` or `required` was called (their message is not reported: it is usually built
    /// from values).
    #[error("the template called fail")]
    Failed,
    /// Too few or too many arguments.
    #[error("wrong number of arguments")]
    Arity,
    /// An argument of a type the function does not take.
    #[error("wrong type of argument")]
    ArgumentType,
    /// An index or slice bound outside the value (neither the index nor the length is told).
    #[error("index out of range")]
    IndexOutOfRange,
    /// `div` or `mod` by zero.
    #[error("integer divide by zero")]
    DivideByZero,
    /// Comparison of values that cannot be compared.
    #[error("incompatible types for comparison")]
    Incomparable,
    /// No function of that name (only reachable through a parse check bypass).
    #[error("function not defined")]
    Undefined,
    /// The result would exceed the render budget.
    #[error("render budget exceeded")]
    Budget,
}

/// Why evaluation failed outside a function. Names come from the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// `$name` read before any declaration.
    #[error("undefined variable: {0}")]
    UndefinedVariable(String),
    /// `.field` of a value that has no fields.
    #[error("can't evaluate field {0}")]
    Field(String),
    /// `.field` of a missing value.
    #[error("nil pointer evaluating .{0}")]
    NilField(String),
    /// `range` over something that is not a list, map or integer.
    #[error("range can't iterate over this value")]
    Range,
    /// An empty command.
    #[error("empty command")]
    EmptyCommand,
    /// Arguments after something that is not a function.
    #[error("can't give argument to non-function")]
    NotAFunction,
    /// `and`/`or` without arguments.
    #[error("wrong number of args for {0}: want at least 1 got 0")]
    Arity(String),
}

impl TemplateError {
    pub(crate) fn at(line: usize, kind: ErrorKind) -> Self {
        Self { line, kind }
    }

    pub(crate) fn budget(line: usize, what: Exhausted) -> Self {
        Self::at(line, ErrorKind::Budget(what))
    }

    /// The template line (1-based) where it failed.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The limit the render exceeded, when that is why it failed.
    pub fn exhausted(&self) -> Option<Exhausted> {
        match self.kind {
            ErrorKind::Budget(what) => Some(what),
            _ => None,
        }
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
