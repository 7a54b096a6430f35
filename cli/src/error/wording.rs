//! Phrases that messages and hints share: how to seal without the controller, and how a
//! failed unseal names its items and the keys it tried. Plain text, so every other part of
//! the error module can use it without importing each other.

/// Hint for every failure to reach the controller: how to seal without it.
pub(crate) const OFFLINE_HINT: &str = "seal offline with --cert FILE|URL (get the certificate once with `kubeseal --fetch-cert > cert.pem`), or use --cert-from-configmap";

/// ` (a, b, c)` as upstream's multierror prints tagged errors, at most
/// [`MAX_ITEMS_NAMED`] names (a SealedSecret may have hundreds of items).
pub(super) fn items_in_parens(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut shown: Vec<&str> = items
        .iter()
        .take(MAX_ITEMS_NAMED)
        .map(String::as_str)
        .collect();
    let more = items.len().saturating_sub(MAX_ITEMS_NAMED);
    let tail = format!("and {more} more");
    if more > 0 {
        shown.push(&tail);
    }
    format!(" ({})", shown.join(", "))
}

/// Items named in [`CliError::NoKeyCouldDecrypt`](super::CliError::NoKeyCouldDecrypt) before "and N more".
const MAX_ITEMS_NAMED: usize = 10;

pub(super) fn keys_tried(keys: usize) -> String {
    match keys {
        0 => "no private key given (--recovery-private-key)".to_owned(),
        1 => "tried 1 private key".to_owned(),
        n => format!("tried {n} private keys"),
    }
}
