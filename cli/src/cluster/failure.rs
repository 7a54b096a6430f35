//! What a failed cluster call means for the user, in words: kube-rs errors classified into
//! [`Failure`] (API answer, unreachable server, anything else) and turned into [`CliError`]s
//! with the right hint. Separate from the calls themselves so every message is shaped by one
//! set of rules (no Rust `Debug`, Go-style lower case, no kubeconfig snippets). `Failure`
//! itself is a plain value in `crate::error`, so the error type needs nothing from here.

use std::sync::OnceLock;

use crate::error::{CliError, Failure};

/// The API server this process talks to (one per run), for messages that must name it.
static SERVER: OnceLock<String> = OnceLock::new();

/// Records the API server's URL when the run's client is built (the first one wins: one
/// server per run), so messages about it can name it.
pub(super) fn set_server(url: String) {
    let _ = SERVER.set(url);
}

/// The API server's URL, once a client was built.
pub fn server() -> &'static str {
    SERVER.get().map_or("(unknown)", String::as_str)
}

/// Classifies a kube-rs error.
pub fn describe(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) => Failure::Api {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::RustlsTls(_) => {
            Failure::Unreachable {
                server: server().to_owned(),
                cause: innermost(e),
            }
        }
        kube::Error::Auth(_) => Failure::Other(format!("authentication failed: {}", innermost(e))),
        other => Failure::Other(innermost(other)),
    }
}

/// The deepest cause of an error chain, lower-cased like Go's messages (the outer layers of
/// kube's errors are "ServiceError: client error (Connect)" and the like).
pub(super) fn innermost(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !t.is_empty() {
            last = t;
        }
        cur = c.source();
    }
    let mut chars = last.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => last,
    }
}

/// A failed API call as a [`CliError`]: `context: what the server said`, or that the server
/// could not be reached (with a hint about the connection, not about `api_hint`).
pub fn api_error(context: impl Into<String>, e: &kube::Error, api_hint: Option<&str>) -> CliError {
    let failure = describe(e);
    let hint = match (&failure, api_hint) {
        (Failure::Unreachable { .. }, _) => Some(UNREACHABLE_HINT),
        (_, h) => h,
    };
    let err = CliError::Api {
        context: context.into(),
        failure,
    };
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Hint for an API server that cannot be reached.
const UNREACHABLE_HINT: &str = "check the cluster your kubeconfig points at (--kubeconfig, --context, --server); to seal without the cluster use --cert FILE";

/// The message of an error answer: a Kubernetes `Status` (what the API server and its
/// service proxy send) gives its `message`, anything else its text, shortened.
pub fn reason_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && v.get("kind").and_then(|k| k.as_str()) == Some("Status")
        && let Some(m) = v.get("message").and_then(|m| m.as_str())
    {
        return m.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_reason_from_status_or_text() {
        let status = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"x\"","reason":"ServiceUnavailable","code":503}"#;
        assert_eq!(
            reason_of(status),
            "no endpoints available for service \"x\""
        );
        assert_eq!(reason_of(b"  plain text\n"), "plain text");
        assert!(reason_of(&[b'a'; 1000]).ends_with("..."));
    }

    #[test]
    fn api_failures_have_no_debug_output() {
        let e = kube::Error::Api(Box::new(
            kube::core::Status::failure("services \"x\" not found", "NotFound").with_code(404),
        ));
        let text = describe(&e).to_string();
        assert_eq!(text, "services \"x\" not found (NotFound, HTTP 404)");
    }
}
