//! Unsealing, verifying or decrypting a SealedSecret failed, item by item or as a whole, with
//! the bounds ([`MAX_RSA_OPERATIONS`], [`MAX_MESSAGE_LEN`]) that shape the messages.

use sealed_secrets_crypto::OpenError;
use sealed_secrets_gotemplate::TemplateError;

use crate::types::ObjectRef;

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
