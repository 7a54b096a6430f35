//! Template errors: a line and a fixed reason, never a value.

use crate::budget::Exhausted;

/// A template failed to parse or execute, at a line of the template.
///
/// Nothing here is derived from a decrypted value: `fail`'s message, the
/// index that was out of range, the length of what was sliced, the type a value turned out to
/// have would all let whoever reads a status or an Event (the built-in `view` role can) learn
/// about the plaintext. Errors keep the line, the construct or function named in the
/// template text (which is public: it is stored unencrypted in the SealedSecret), and a fixed
/// reason. The detailed text is never built, so it cannot leak through logs either.
///
/// That is still too much once values exist: the line (and which template) that failed can be
/// chosen by a value. Only errors of [`Template::parse`](crate::Template::parse) are fit to be
/// shown; `sealed_secrets_api::unseal` reports a failed render as one fixed message.
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
    /// The render exceeded one of its [`Limits`](crate::Limits).
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

/// A parse error: it can quote the template text, never a value (none exists yet).
pub(crate) fn err(line: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::at(line, ErrorKind::Parse(msg.to_string()))
}
