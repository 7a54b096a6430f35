//! The token backend's decisions: flags, the key Secret's shape, and what a replica does with
//! a token key it cannot reach (reports it, generates nothing in its place).

use std::sync::Arc;

use sealed_secrets_api::annotations::{KEY_ORIGIN, SEALING_KEY_LABEL};
use sealed_secrets_crypto::{CertParams, PrivateKey};

use super::*;
use crate::keys::{KeyArgs, Keys};
use crate::metrics::Metrics;

fn parse(a: &[&str]) -> TokenKeyArgs {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        t: TokenKeyArgs,
    }
    T::try_parse_from(std::iter::once("x").chain(a.iter().copied()))
        .unwrap()
        .t
}

const FULL: [&str; 4] = [
    "--key-backend=pkcs11",
    "--key-pkcs11-module=/nonexistent/libpkcs11.so",
    "--key-pkcs11-token=t",
    "--key-pkcs11-pin-file=/nonexistent/pin",
];

#[test]
fn flags_default_to_memory_and_pkcs11_needs_module_token_and_pin_file() {
    assert_eq!(parse(&[]).key_backend, KeyBackend::Memory);
    assert!(parse(&[]).token_config().unwrap().is_none());
    for (missing, flag) in FULL.iter().enumerate().skip(1) {
        let args: Vec<&str> = FULL
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, a)| *a)
            .collect();
        let e = parse(&args).token_config().unwrap_err();
        assert!(matches!(e, KeyBackendConfigError::Missing(_)), "{e}");
        let name = flag.split('=').next().unwrap_or_default();
        assert!(e.to_string().contains(name), "{e}");
    }
    let cfg = parse(&FULL).token_config().unwrap().unwrap();
    assert_eq!(cfg.token_label, "t");
    assert_eq!(cfg.pin_file, std::path::PathBuf::from("/nonexistent/pin"));
    // Token flags without the backend are a mistake, not silently ignored.
    assert_eq!(
        parse(&["--key-pkcs11-token=t"]).token_config().unwrap_err(),
        KeyBackendConfigError::Unused("--key-pkcs11-token")
    );
    assert_eq!(
        parse(&["--key-pkcs11-adopt=x"]).token_config().unwrap_err(),
        KeyBackendConfigError::Unused("--key-pkcs11-adopt")
    );
    // There is no flag for the PIN itself.
    assert!(clap_parse_err(&[
        "--key-backend=pkcs11",
        "--key-pkcs11-pin=1234"
    ]));
}

fn clap_parse_err(a: &[&str]) -> bool {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        t: TokenKeyArgs,
    }
    T::try_parse_from(std::iter::once("x").chain(a.iter().copied())).is_err()
}

#[test]
fn no_new_key_while_the_token_is_closed_or_a_token_key_is_unusable() {
    assert!(may_generate(true, 0, None).is_ok());
    assert!(matches!(
        may_generate(false, 0, Some("gone".into())),
        Err(TokenKeyError::TokenClosed(r)) if r == "gone"
    ));
    assert!(matches!(
        may_generate(true, 2, None),
        Err(TokenKeyError::Pending(2))
    ));
}

fn test_cert() -> (PrivateKey, Certificate) {
    let k = PrivateKey::generate(2048).unwrap();
    let c = k.self_signed_certificate(&CertParams::default()).unwrap();
    (k, c)
}

fn key_args() -> KeyArgs {
    KeyArgs::parse_for_test(&[
        "--key-size=2048",
        "--privatekey-labels=team=x",
        "--privatekey-annotations=a=b",
    ])
}

#[test]
fn a_token_key_secret_has_the_key_labels_the_certificate_and_the_uri_only() {
    let (_, cert) = test_cert();
    let uri = "pkcs11:token=t;object=sealed-secrets-keyabcde;id=%01;type=private";
    let s = key_secret(
        &key_args(),
        "kube-system",
        "sealed-secrets-keyabcde",
        &cert,
        uri,
        "generated",
    );
    assert_eq!(s.type_.as_deref(), Some(token_key::TOKEN_KEY_SECRET_TYPE));
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SEALING_KEY_LABEL], "active");
    assert_eq!(labels["team"], "x");
    let ann = s.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (ann[KEY_ORIGIN].as_str(), ann["a"].as_str()),
        ("generated", "b")
    );
    let fields: Vec<&str> = s
        .data
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["pkcs11.uri", "tls.crt"]);
    assert!(token_key::is_token_key(&s));
    let read = token_key::parse(&s).unwrap();
    assert_eq!(read.uri, uri);
    assert_eq!(read.cert_pem, cert.pem().as_bytes());
}

/// A replica whose token does not open (or that cannot find the key object) reports the key
/// Secret and refuses to generate a key in its place; a key held in memory keeps working.
#[tokio::test]
async fn an_unreachable_token_key_is_reported_and_not_replaced() {
    let metrics = Arc::new(Metrics::new());
    let keys = Keys::new(key_args(), "kube-system".into(), metrics.clone());
    let tk = Arc::new(TokenKeys::new(&parse(&FULL), "kube-system".into(), None).unwrap());
    assert!(!tk.connect().await, "no module at that path");
    assert!(
        tk.token_error()
            .unwrap()
            .contains("/nonexistent/libpkcs11.so")
    );
    keys.set_token_keys(tk.clone());

    let (_, cert) = test_cert();
    let mut s = key_secret(
        &key_args(),
        "kube-system",
        "sealed-secrets-keytoken",
        &cert,
        "pkcs11:token=t;object=sealed-secrets-keytoken;type=private",
        "generated",
    );
    s.metadata.name = Some("sealed-secrets-keytoken".into());
    keys.load(&s).await;
    assert!(keys.snapshot().keys.is_empty());
    let unusable = tk.unusable();
    assert!(
        unusable["sealed-secrets-keytoken"]
            .reason
            .contains("not open")
    );
    assert!(matches!(
        tk.token_for_new_key(),
        Err(TokenKeyError::TokenClosed(_))
    ));
    let lines = tk.readiness_lines();
    assert!(lines.contains("PKCS#11 token `t` does not open"), "{lines}");
    assert!(
        lines.contains("unusable key Secret `sealed-secrets-keytoken`"),
        "{lines}"
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            "key_backend_unusable{backend=\"pkcs11\",secret=\"sealed-secrets-keytoken\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("key_backend_up{backend=\"pkcs11\"} 0"),
        "{text}"
    );

    // An in-memory key Secret beside it is used as before.
    let (k, c) = test_cert();
    let mut plain = crate::keys::key_secret(
        &key_args(),
        "kube-system",
        &k,
        &c,
        &sealed_secrets_crypto::PqIdentity::generate().unwrap(),
    );
    plain.metadata.name = Some("sealed-secrets-keyplain".into());
    keys.load(&plain).await;
    assert_eq!(keys.snapshot().keys.len(), 1);
    assert!(!keys.snapshot().keys[0].in_token);

    // Deleting the token key Secret forgets it.
    keys.unregister("sealed-secrets-keytoken");
    assert!(tk.unusable().is_empty());
}

#[tokio::test]
async fn the_memory_backend_reports_a_token_key_secret_it_cannot_use() {
    let keys = Keys::new(key_args(), "kube-system".into(), Arc::new(Metrics::new()));
    let (_, cert) = test_cert();
    let s = key_secret(
        &key_args(),
        "kube-system",
        "k1",
        &cert,
        "pkcs11:token=t;object=k1;type=private",
        "generated",
    );
    keys.load(&s).await;
    assert!(keys.snapshot().keys.is_empty());
    let u = keys.token_keys().unusable();
    assert!(
        u["k1"].reason.contains("--key-backend=memory"),
        "{:?}",
        u["k1"]
    );
    assert!(matches!(
        keys.token_keys().token_for_new_key(),
        Err(TokenKeyError::NotConfigured)
    ));
}
