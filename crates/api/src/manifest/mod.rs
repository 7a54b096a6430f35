//! Reading manifest streams: multi-document YAML or concatenated JSON objects, as kubeseal's
//! `YAMLOrJSONDecoder` does (§6.3). Empty documents are skipped, `v1.List` objects are
//! flattened, and every document is checked for its `kind` (upstream does not check; a
//! ConfigMap piped into kubeseal by mistake is refused here with its document number).
//!
//! - `documents`: a stream into JSON values, under the [`limits`] of one stream;
//! - `objects`: values into [`SecretInput`]s and [`SealedSecret`](crate::SealedSecret)s.

mod documents;
mod objects;

pub use documents::{limits, parse_documents};
pub use objects::{
    SecretInput, parse_sealed_secrets, parse_secrets, sealed_secret_from_value, secret_from_value,
};

#[cfg(test)]
mod tests;
