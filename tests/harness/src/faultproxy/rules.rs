//! Which requests are faulted and what the injected answers are, as the stand-in decides
//! them: pure functions of the request and the dice.

use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use rand::Rng as _;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::spec::FaultSpec;

/// What the dice say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Injected {
    None,
    Error500,
    Error429,
    Conflict,
}

/// Rolls the dice for one resource request, in the stand-in's order: 500, then 429, then
/// (updates only) 409.
pub(super) fn roll(spec: &FaultSpec, rng: &mut StdRng, is_update: bool) -> Injected {
    let mut hit = |p: f64| p > 0.0 && rng.random_bool(p.clamp(0.0, 1.0));
    if hit(spec.error500) {
        Injected::Error500
    } else if hit(spec.error429) {
        Injected::Error429
    } else if is_update && hit(spec.conflict409_on_update) {
        Injected::Conflict
    } else {
        Injected::None
    }
}

/// A resource request, as far as faults need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResourceRequest {
    pub(super) group: String,
    /// The resource (plural), for messages.
    pub(super) plural: String,
    /// The object's name, if the request names one.
    pub(super) name: Option<String>,
    pub(super) is_update: bool,
    pub(super) is_watch: bool,
}

/// Whether `query` has `key=true` or `key=1` (the values kube-apiserver takes as true).
pub(super) fn query_flag(query: Option<&str>, key: &str) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == key && (v == "true" || v == "1"))
}

/// Classifies a request: `Some` for resource requests (the ones faulted), `None` for
/// discovery, version, OpenAPI, health, the service proxy and anything else.
pub(super) fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<ResourceRequest> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return None,
    };
    // The stand-in serves the service proxy outside its resource handling: no faults there.
    if let ["namespaces", _, "services", _, "proxy", ..] = rest {
        return None;
    }
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    // `namespaces/{ns}/{plural}/{name}` vs. the Namespace object `namespaces/{name}[/{sub}]`.
    let (plural, name) = match rest {
        ["namespaces", _, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (*plural, tail.first())
        }
        [plural, tail @ ..] => (*plural, tail.first()),
        [] => return None,
    };
    Some(ResourceRequest {
        group: group.to_owned(),
        plural: plural.to_owned(),
        name: name.map(|n| (*n).to_owned()),
        is_update: matches!(*method, Method::PUT | Method::PATCH),
        is_watch: legacy_watch || (*method == Method::GET && query_flag(query, "watch")),
    })
}

/// A `metav1.Status` failure, worded like kube-apiserver's (and the stand-in's).
pub(super) fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

/// The Status answered for an injected fault (`None` for no fault).
pub(super) fn injected_status(injected: Injected, req: &ResourceRequest) -> Option<Value> {
    match injected {
        Injected::None => None,
        Injected::Error500 => Some(status(
            500,
            "InternalError",
            "Internal error occurred: injected by the e2e fault proxy",
            None,
        )),
        Injected::Error429 => Some(status(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later \
             (injected by the e2e fault proxy)",
            Some(json!({"retryAfterSeconds": 1})),
        )),
        Injected::Conflict => {
            let name = req.name.as_deref().unwrap_or_default();
            let qualified = if req.group.is_empty() {
                req.plural.clone()
            } else {
                format!("{}.{}", req.plural, req.group)
            };
            Some(status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
                     modified; please apply your changes to the latest version and try again \
                     (injected by the e2e fault proxy)"
                ),
                Some(json!({"name": name, "group": req.group, "kind": req.plural})),
            ))
        }
    }
}

pub(super) fn json_response(status_value: &Value) -> Response {
    let code = status_value["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(axum::body::Body::from(status_value.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if code == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn resource_requests_are_faulted_discovery_is_not() {
        let get = Method::GET;
        for path in [
            "/",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/bitnami.com",
            "/apis/bitnami.com/v1alpha1",
            "/version",
            "/openapi/v2",
            "/openapi/v3/apis/apps/v1",
            "/healthz",
            "/readyz",
            "/standin/v1/faults",
            "/api/v1/namespaces/kube-system/services/sealed-secrets-controller/proxy/v1/cert.pem",
        ] {
            assert_eq!(classify(&get, path, None), None, "{path}");
        }
        let r = classify(&get, "/api/v1/namespaces/ns/secrets/s", None).unwrap();
        assert_eq!(
            (r.group.as_str(), r.plural.as_str(), r.name.as_deref()),
            ("", "secrets", Some("s"))
        );
        assert!(!r.is_update && !r.is_watch);
        let r = classify(
            &Method::PUT,
            "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/x/status",
            None,
        )
        .unwrap();
        assert_eq!(
            (r.group.as_str(), r.plural.as_str(), r.name.as_deref()),
            ("bitnami.com", "sealedsecrets", Some("x"))
        );
        assert!(r.is_update);
        let r = classify(&Method::PUT, "/api/v1/namespaces/ns/finalize", None).unwrap();
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        assert!(
            classify(&Method::PATCH, "/api/v1/nodes/n", None)
                .unwrap()
                .is_update
        );
        assert!(
            !classify(&Method::POST, "/api/v1/namespaces", None)
                .unwrap()
                .is_update
        );
        assert!(
            !classify(&Method::DELETE, "/api/v1/namespaces/x", None)
                .unwrap()
                .is_update
        );
    }

    #[test]
    fn watches_are_recognised_by_query_or_legacy_path() {
        let w = |q: &str| {
            classify(&Method::GET, "/api/v1/secrets", Some(q))
                .unwrap()
                .is_watch
        };
        assert!(w("watch=true"));
        assert!(w("labelSelector=a%3Db&watch=1&resourceVersion=5"));
        assert!(!w("watch=false"));
        assert!(!w("watch=0"));
        assert!(!w("watchy=true"));
        assert!(!w("limit=500"));
        let legacy = classify(&Method::GET, "/api/v1/watch/namespaces/ns/secrets", None).unwrap();
        assert!(legacy.is_watch);
        assert_eq!(legacy.plural, "secrets");
    }

    #[test]
    fn dice_honour_the_rates_and_the_seed() {
        let spec = FaultSpec {
            error500: 0.05,
            error429: 0.01,
            conflict409_on_update: 0.2,
            watch_cut: None,
            seed: 7,
        };
        let count = |seed: u64, is_update: bool| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut n = [0u32; 4];
            let mut seq = Vec::new();
            for _ in 0..100_000 {
                let i = roll(&spec, &mut rng, is_update);
                seq.push(i);
                n[match i {
                    Injected::None => 0,
                    Injected::Error500 => 1,
                    Injected::Error429 => 2,
                    Injected::Conflict => 3,
                }] += 1;
            }
            (n, seq)
        };
        let (n, seq) = count(7, true);
        // 500: 5%; 429: 1% of the other 95%; 409: 20% of the remaining 94.05%.
        assert!((4_700..5_300).contains(&n[1]), "{n:?}");
        assert!((800..1_100).contains(&n[2]), "{n:?}");
        assert!((18_200..19_400).contains(&n[3]), "{n:?}");
        assert_eq!(count(7, true).1, seq, "same seed, same faults");
        assert_ne!(count(8, true).1, seq, "another seed, other faults");
        let (n, _) = count(7, false);
        assert_eq!(n[3], 0, "no 409 on reads and creates");
        let mut rng = StdRng::seed_from_u64(1);
        let none = FaultSpec::default();
        assert!((0..1000).all(|_| roll(&none, &mut rng, true) == Injected::None));
    }

    #[test]
    fn injected_answers_are_statuses_like_the_apiservers() {
        let r = classify(
            &Method::PUT,
            "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/x",
            None,
        )
        .unwrap();
        assert_eq!(injected_status(Injected::None, &r), None);
        let s = injected_status(Injected::Conflict, &r).unwrap();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "Conflict");
        assert_eq!(s["details"]["name"], "x");
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .starts_with("Operation cannot be fulfilled on sealedsecrets.bitnami.com \"x\"")
        );
        let s = injected_status(Injected::Error429, &r).unwrap();
        assert_eq!(
            (s["code"].as_u64(), s["reason"].as_str()),
            (Some(429), Some("TooManyRequests"))
        );
        assert_eq!(s["details"]["retryAfterSeconds"], 1);
        let resp = json_response(&s);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let s = injected_status(Injected::Error500, &r).unwrap();
        assert_eq!(
            json_response(&s).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(s["reason"], "InternalError");
    }
}
