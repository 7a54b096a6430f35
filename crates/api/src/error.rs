//! Error types, one per operation. Messages name the document or object and the item, never
//! a secret value (values are not even reachable from these types).

use sealed_secrets_crypto::{OpenError, SealError as CryptoSealError};

use crate::types::ObjectRef;
use sealed_secrets_gotemplate::TemplateError;

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

/// Sealing failed. Messages start like upstream's where it has one (§6.4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Input had no document.
    #[error("no secrets found. Ensure the input is valid and UTF-8 encoded")]
    NoSecrets,
    /// No data and `allow_empty_data` not set.
    #[error(
        "secret.data is empty in input Secret, assuming this is an error and aborting. To work with empty data, --allow-empty-data can be used"
    )]
    EmptyData,
    /// No name (and no `--name`).
    #[error("missing metadata.name in input Secret")]
    MissingName,
    /// The Secret's namespace differs from an explicit `--namespace`.
    #[error(
        "namespace mismatch: the Secret declares namespace `{secret}` but --namespace is `{flag}`"
    )]
    NamespaceMismatch {
        /// Namespace in the manifest.
        secret: String,
        /// Namespace asked for.
        flag: String,
    },
    /// Non-cluster-wide Secret without namespace.
    #[error("secret must declare a namespace")]
    MissingNamespace,
    /// `--raw` strict/namespace-wide without namespace.
    #[error("must provide the --namespace flag with --raw and --scope strict|namespace-wide")]
    RawNeedsNamespace,
    /// `--raw` strict without name.
    #[error("must provide the --name flag with --raw and --scope strict")]
    RawNeedsName,
    /// No public key given.
    #[error("no public key to seal with")]
    NoRecipient,
    /// Encrypting one item failed.
    #[error("failed to seal item `{item}` of Secret `{object}`")]
    Encrypt {
        /// Item name.
        item: String,
        /// `namespace/name`.
        object: ObjectRef,
        /// Crypto failure.
        #[source]
        source: CryptoSealError,
    },
    /// Encrypting a raw value failed.
    #[error("failed to seal value")]
    EncryptRaw(#[source] CryptoSealError),
    /// A merge target that has no name/namespace.
    #[error("the SealedSecret to merge into has no metadata.name")]
    TargetWithoutName,
}

/// One item of a SealedSecret that could not be unsealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// The value is not base64.
    #[error(
        "failed to decode item `{}` of SealedSecret `{object}`: invalid base64",
        Short(.item)
    )]
    Base64 {
        /// Item name.
        item: String,
        /// `namespace/name`.
        object: ObjectRef,
    },
    /// No key decrypted the value, or it is structurally broken.
    #[error("failed to decrypt item `{}` of SealedSecret `{object}`", Short(.item))]
    Decrypt {
        /// Item name.
        item: String,
        /// `namespace/name`.
        object: ObjectRef,
        /// Uniform crypto error ("no key could decrypt secret") or a structural one.
        #[source]
        source: OpenError,
    },
    /// The value is not a string in the stored object (upstream #505).
    #[error("item `{}` of SealedSecret `{object}` is not a string", Short(.item))]
    NotAString {
        /// Item name.
        item: String,
        /// `namespace/name`.
        object: ObjectRef,
    },
    /// A `template.data` entry failed to parse. Parsing sees only the template text, which is
    /// public (stored unencrypted in the SealedSecret), so the message names the item, the line
    /// and the reason. Failures while rendering are [`UnsealError::Render`] instead.
    #[error(
        "template error in item `{}` of SealedSecret `{object}`: {source}",
        Short(.item)
    )]
    Template {
        /// Item name.
        item: String,
        /// `namespace/name`.
        object: ObjectRef,
        /// The parse error (template position and reason).
        source: TemplateError,
    },
}

impl ItemError {
    /// Name of the failing item.
    pub fn item(&self) -> &str {
        match self {
            ItemError::Base64 { item, .. }
            | ItemError::Decrypt { item, .. }
            | ItemError::NotAString { item, .. }
            | ItemError::Template { item, .. } => item,
        }
    }
}

/// Unsealing, verifying or decrypting a SealedSecret failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsealError {
    /// Both `spec.data` and `spec.encryptedData` are set (upstream refuses too).
    #[error(
        "SealedSecret `{object}` sets both deprecated 'data' and 'encryptedData'; only one may be used"
    )]
    BothFields {
        /// `namespace/name`.
        object: ObjectRef,
    },
    /// Legacy `spec.data` while not accepted (upstream's message).
    #[error(
        "SealedSecret `{object}` is using deprecated 'data' field, use 'encryptedData' or flip the feature flag"
    )]
    DeprecatedData {
        /// `namespace/name`.
        object: ObjectRef,
    },
    /// Legacy `spec.data` that does not open.
    #[error("failed to decrypt deprecated 'data' of SealedSecret `{object}`")]
    LegacyDecrypt {
        /// `namespace/name`.
        object: ObjectRef,
        /// Crypto or base64 failure.
        #[source]
        source: OpenError,
        /// RSA operations spent trying (see [`UnsealError::rsa_operations`]).
        rsa_operations: u64,
    },
    /// Legacy `spec.data` opened but is not a JSON Secret.
    #[error("deprecated 'data' of SealedSecret `{object}` does not hold a valid Secret")]
    LegacyFormat {
        /// `namespace/name`.
        object: ObjectRef,
        /// RSA operations spent opening it (see [`UnsealError::rsa_operations`]).
        rsa_operations: u64,
    },
    /// `encryptedData` was not a map at all.
    #[error("spec.encryptedData of SealedSecret `{object}` is not a map of strings")]
    EncryptedDataNotAMap {
        /// `namespace/name`.
        object: ObjectRef,
    },
    /// One or more items failed (each names itself). All failures are collected, as upstream;
    /// the message shows the first few (see [`MAX_MESSAGE_LEN`]).
    #[error("{}", join_items(.errors))]
    Items {
        /// The failing items, sorted by name.
        errors: Vec<ItemError>,
        /// RSA operations spent on all items, those that opened included (see
        /// [`UnsealError::rsa_operations`]).
        rsa_operations: u64,
    },
    /// Rendering `spec.template.data` failed once the values were decrypted: one fixed message
    /// per object, with no item, line, kind or count, on purpose.
    ///
    /// A template can branch on a value, and every way a render fails (`fail`, `required`, an
    /// index out of range, a division by zero, a budget overrun) can be put on a line or in an
    /// item chosen by the value's characters: ten items of eighty lines of
    /// `{{ if eq (substr i i+1 .pw) "c" }}{{ fail "x" }}{{ end }}` spelt out seven of the nine
    /// characters of a password in one reconcile, to anyone who may read the status or Events
    /// (the built-in `view` role may) and can create a SealedSecret with a ciphertext copied
    /// from Git. Whatever is reported must therefore be the same for every value; what is left
    /// is one bit per reconcile (rendered or not), described in `docs/security.md`.
    ///
    /// `fail` and `required` stay available (upstream templates use `required`): removing them
    /// would not remove that bit, since `index`, `div`, or a budget overrun fail on a chosen
    /// value just as well, and would only break upstream templates.
    ///
    /// `kubeseal --recovery-unseal` reports the same message: the detail would help only its
    /// user, who holds the private key and can see the values anyway, but its stderr often
    /// lands in shared CI logs, and a type that never holds the detail cannot leak it.
    #[error(
        "failed to render spec.template.data of SealedSecret `{object}` (the reason is not reported: it could reveal the decrypted values)"
    )]
    Render {
        /// `namespace/name`.
        object: ObjectRef,
        /// RSA operations spent decrypting (see [`UnsealError::rsa_operations`]).
        rsa_operations: u64,
    },
    /// More `spec.template.data` items than one object may have (see
    /// `unseal::MAX_TEMPLATE_ITEMS`). Refused before anything is parsed or decrypted.
    #[error(
        "SealedSecret `{object}` has {items} items in spec.template.data, more than the limit of {limit}: refused, to bound the work one object can cause"
    )]
    TooManyTemplates {
        /// `namespace/name`.
        object: ObjectRef,
        /// Items of `spec.template.data`.
        items: usize,
        /// `unseal::MAX_TEMPLATE_ITEMS`.
        limit: usize,
    },
    /// Opening the values would cost more RSA work than one object may (see
    /// [`MAX_RSA_OPERATIONS`]). Nothing more is decrypted once the limit is reached.
    #[error(
        "SealedSecret `{object}` needs more than {limit} RSA decryptions to open its {items} encrypted items: refused, to bound the work one object can cause"
    )]
    TooMuchWork {
        /// `namespace/name`.
        object: ObjectRef,
        /// [`MAX_RSA_OPERATIONS`].
        limit: u64,
        /// Encrypted items of the object.
        items: usize,
        /// RSA operations spent before refusing: 0 when refused up front, the limit otherwise.
        rsa_operations: u64,
    },
}

/// Most RSA private-key operations one unseal, verify or rotate of one object may perform.
///
/// Each encrypted item costs one operation when its key is known (our CLI records it; for the
/// others, the controller guesses from what opened similar objects and the first value of the
/// same object) and up to one per loaded key otherwise.
/// A SealedSecret cannot hold much more than 2,000 RSA-4096 items within the API server's
/// object size limit, so real objects stay below; a crafted one (10,000 tiny items, or
/// values no key opens with many keys loaded) is refused after at most this many operations,
/// about 8 s of one core at RSA-4096, instead of costing unbounded work on every retry. An
/// object with more items than this is refused before any decryption. Upstream has no such
/// limit (a deliberate difference).
pub const MAX_RSA_OPERATIONS: u64 = 4096;

/// Longest message [`UnsealError`] displays, in bytes. Status conditions and Events are built
/// from it: an events.k8s.io note may not exceed 1 KiB, and the controller prefixes a few words,
/// so item lists are cut to stay well below ("... and N more").
pub const MAX_MESSAGE_LEN: usize = 900;

/// At most this many item errors are listed in one message.
const MAX_ITEMS_SHOWN: usize = 10;

/// Longest item name shown in a message, in characters (item names come from the object and
/// are not otherwise bounded).
const MAX_ITEM_NAME: usize = 64;

/// An item name cut to [`MAX_ITEM_NAME`] characters for messages.
struct Short<'a>(&'a str);

impl std::fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(MAX_ITEM_NAME) {
            Some((cut, _)) => write!(f, "{}...", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

impl UnsealError {
    /// RSA private-key operations spent before failing: a value no key opens still cost one
    /// operation per key tried, and that work is counted (`rsa_decryptions_total`) like the
    /// work of a success.
    pub fn rsa_operations(&self) -> u64 {
        match self {
            UnsealError::LegacyDecrypt { rsa_operations, .. }
            | UnsealError::LegacyFormat { rsa_operations, .. }
            | UnsealError::Items { rsa_operations, .. }
            | UnsealError::Render { rsa_operations, .. }
            | UnsealError::TooMuchWork { rsa_operations, .. } => *rsa_operations,
            UnsealError::TooManyTemplates { .. }
            | UnsealError::BothFields { .. }
            | UnsealError::DeprecatedData { .. }
            | UnsealError::EncryptedDataNotAMap { .. } => 0,
        }
    }

    /// Stable category for metrics labels, log fields and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            UnsealError::BothFields { .. }
            | UnsealError::DeprecatedData { .. }
            | UnsealError::LegacyFormat { .. }
            | UnsealError::EncryptedDataNotAMap { .. }
            | UnsealError::TooManyTemplates { .. }
            | UnsealError::TooMuchWork { .. } => "invalid",
            UnsealError::LegacyDecrypt { .. } => "decrypt",
            // Fixed, like the message: never which limit or which function failed.
            UnsealError::Render { .. } => "template",
            UnsealError::Items { errors: items, .. } => {
                if items.iter().any(|e| matches!(e, ItemError::Decrypt { .. })) {
                    "decrypt"
                } else if items
                    .iter()
                    .any(|e| matches!(e, ItemError::Template { .. }))
                {
                    "template"
                } else {
                    "invalid"
                }
            }
        }
    }

    /// True when some value is a multi-recipient version-1 value its reader refused
    /// (`FORMAT.md` §2.2), so the caller can say how to reseal it or accept version 1.
    pub fn refused_multi_v1(&self) -> bool {
        let refused = |source: &OpenError| *source == OpenError::MultiV1Refused;
        match self {
            UnsealError::LegacyDecrypt { source, .. } => refused(source),
            UnsealError::Items { errors: items, .. } => items
                .iter()
                .any(|e| matches!(e, ItemError::Decrypt { source, .. } if refused(source))),
            _ => false,
        }
    }

    /// True when the only problems are that no key opened some values (the controller may
    /// retry after loading new keys).
    pub fn is_no_key(&self) -> bool {
        match self {
            UnsealError::LegacyDecrypt { source, .. } => *source == OpenError::NoKey,
            UnsealError::Items { errors: items, .. } => items.iter().all(|e| {
                matches!(
                    e,
                    ItemError::Decrypt {
                        source: OpenError::NoKey,
                        ..
                    }
                )
            }),
            _ => false,
        }
    }
}

/// The item errors, `; `-separated, cut after [`MAX_ITEMS_SHOWN`] items or
/// [`MAX_MESSAGE_LEN`] bytes with "... and N more".
fn join_items(items: &[ItemError]) -> String {
    use std::error::Error as _;
    // Room kept for the "; ... and N more" tail.
    const TAIL: usize = 32;
    let mut out = String::new();
    let mut shown = 0;
    for e in items {
        let mut one = e.to_string();
        if let ItemError::Decrypt { .. } = e
            && let Some(src) = e.source()
        {
            one.push_str(": ");
            one.push_str(&src.to_string());
        }
        let sep = if shown > 0 { "; " } else { "" };
        let fits = out.len() + sep.len() + one.len() + TAIL <= MAX_MESSAGE_LEN;
        if shown == MAX_ITEMS_SHOWN || (shown > 0 && !fits) {
            break;
        }
        out.push_str(sep);
        out.push_str(&one);
        shown += 1;
    }
    if out.len() + TAIL > MAX_MESSAGE_LEN {
        // A single item longer than the cap (long object name): cut it.
        let mut cut = MAX_MESSAGE_LEN - TAIL;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    if shown < items.len() {
        out.push_str(&format!("; ... and {} more", items.len() - shown));
    }
    out
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
