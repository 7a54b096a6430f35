//! Reading manifest streams and writing output failed.

/// Reading a YAML/JSON manifest stream failed. `index` is the 1-based document number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The input is not UTF-8.
    #[error("input is not valid UTF-8")]
    NotUtf8,
    /// JSON syntax error (the message carries the position, not the content).
    #[error("failed to parse JSON document {index}: {message}")]
    Json {
        /// Document number.
        index: usize,
        /// serde_json's syntax message (category and line/column).
        message: String,
    },
    /// YAML syntax error.
    #[error("failed to parse YAML: {message}")]
    Yaml {
        /// serde-saphyr's message, without source snippet.
        message: String,
    },
    /// A document that is not a mapping.
    #[error("document {index} is not an object")]
    NotAnObject {
        /// Document number.
        index: usize,
    },
    /// A document of another kind (upstream silently accepts any kind; we refuse).
    #[error("document {index} is a {found}, expected kind `{expected}`")]
    WrongKind {
        /// Document number.
        index: usize,
        /// `kind` found (or "document without `kind`").
        found: String,
        /// The kind wanted.
        expected: &'static str,
    },
    /// A field has the wrong shape.
    #[error("document {index}: invalid `{field}`: {reason}")]
    InvalidField {
        /// Document number.
        index: usize,
        /// Field path, e.g. `metadata` or `stringData.password`.
        field: String,
        /// What is wrong (never the value itself).
        reason: String,
    },
    /// The input exceeds one of `manifest::limits` (named with the size found and the limit).
    #[error("input too large: the {what} is {found}, the limit is {limit}")]
    TooLarge {
        /// Which limit, e.g. "number of documents".
        what: &'static str,
        /// What the input has (or "at least ..." when parsing stopped at the limit).
        found: String,
        /// The limit.
        limit: String,
    },
    /// A `data` value of an input Secret is not base64.
    #[error("document {index}: `data.{key}` is not valid base64")]
    InvalidBase64 {
        /// Document number.
        index: usize,
        /// Item name.
        key: String,
    },
}

/// Writing JSON or YAML failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// Output format not `json`/`yaml` (upstream's message).
    #[error("unsupported output format: {0}")]
    UnsupportedFormat(String),
    /// YAML serialisation failed.
    #[error("failed to write YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
    /// JSON serialisation failed.
    #[error("failed to write JSON")]
    Json(#[source] serde_json::Error),
}
