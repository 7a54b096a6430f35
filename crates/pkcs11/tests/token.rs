//! Against a real PKCS#11 token (kryoptic, built by tests/hsm/token.sh): keys generated and
//! certified in the token, values sealed by `sealed-secrets-crypto` opened by the token,
//! adoption of keys made by another client, export protection confirmed by that client, and
//! the typed errors. Each test runs in a child process with a token of its own (see
//! `support`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

mod support;

use std::time::{Duration, SystemTime};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sealed_secrets_crypto::{CertParams, PrivateKey, PublicKey, Scope, seal};
use sealed_secrets_pkcs11::{KeyRef, Pkcs11Error, Token, TokenConfig, TokenKey};
use support::{Module, token};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Opens a value in upstream's format (upstream §1.1) with the token doing the RSA step:
/// `u16be(len) ‖ RSA-OAEP(session key) ‖ AES-256-GCM(value)` with the all-zero nonce.
fn open_upstream(key: &TokenKey, label: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
    let rsa_len = usize::from(u16::from_be_bytes([sealed[0], sealed[1]]));
    let (rsa, body) = sealed[2..].split_at(rsa_len);
    let session = key.decrypt_oaep(label, rsa)?;
    let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &session).unwrap());
    let mut buf = body.to_vec();
    let plain = cipher
        .open_in_place(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::empty(),
            &mut buf,
        )
        .map_err(|_| Pkcs11Error::Decrypt)?;
    Ok(plain.to_vec())
}

fn params() -> CertParams {
    CertParams {
        common_name: "sealed-secrets-controller".into(),
        not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000),
        validity: sealed_secrets_crypto::DEFAULT_KEY_TTL,
    }
}

#[test]
fn token_key_opens_values_sealed_for_its_certificate_in_every_scope() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let key = token.generate_key("sealed-secrets-key4kx9z", 4096).unwrap();
    assert_eq!(key.info().bits, 4096);
    let cert = key.self_signed_certificate(&params()).unwrap();
    // What kubeseal gets from /v1/cert is this PEM; it must name the token's key.
    let from_pem = sealed_secrets_crypto::Certificate::from_pem(cert.pem().as_bytes()).unwrap();
    assert_eq!(from_pem.public_key().fingerprint(), key.fingerprint());

    for scope in Scope::ALL {
        let label = scope.label("team-a", "db");
        let value = format!("s3cr3t for {scope}");
        let sealed = seal(from_pem.public_key(), &label, value.as_bytes()).unwrap();
        let before = token.stats().operations();
        let opened = open_upstream(&key, &label, &sealed).unwrap();
        assert_eq!(opened, value.as_bytes(), "{scope}");
        // One token operation per value: the key handle is cached, nothing is looked up.
        assert_eq!(token.stats().operations() - before, 1, "{scope}");

        // The scope is the OAEP label: another object's label does not open it, and the
        // refusal is the one uniform error.
        let other = scope.label("team-b", "other");
        if other != label {
            let errors = token.stats().errors();
            let err = open_upstream(&key, &other, &sealed).unwrap_err();
            assert!(matches!(err, Pkcs11Error::Decrypt), "{scope}: {err:?}");
            assert_eq!(token.stats().errors() - errors, 1, "{scope}");
        }
    }
    // A tampered RSA block is refused the same way.
    let label = Scope::Strict.label("team-a", "db");
    let mut sealed = seal(cert.public_key(), &label, b"x").unwrap();
    sealed[40] ^= 1;
    assert!(matches!(
        open_upstream(&key, &label, &sealed),
        Err(Pkcs11Error::Decrypt)
    ));
}

#[test]
fn token_certificate_matches_in_memory_certificate() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let key = token.generate_key("cert-compare", 2048).unwrap();
    let ours = key.self_signed_certificate(&params()).unwrap();
    let memory = PrivateKey::generate(2048)
        .unwrap()
        .self_signed_certificate(&params())
        .unwrap();
    let a = pem::parse(ours.pem()).unwrap();
    let b = pem::parse(memory.pem()).unwrap();
    let (_, a) = X509Certificate::from_der(a.contents()).unwrap();
    let (_, b) = X509Certificate::from_der(b.contents()).unwrap();
    assert_eq!(a.subject().to_string(), "CN=sealed-secrets-controller");
    assert_eq!(a.subject(), b.subject());
    assert_eq!(a.issuer(), b.issuer());
    assert_eq!(a.validity().not_before, b.validity().not_before);
    assert_eq!(a.validity().not_after, b.validity().not_after);
    assert_eq!(a.signature_algorithm, b.signature_algorithm);
    assert_eq!(a.version(), b.version());
    // A random 128-bit serial: 16 bytes, or 17 with a leading zero when the top bit is set.
    assert!(
        (16..=17).contains(&a.raw_serial().len()),
        "{:?}",
        a.raw_serial()
    );
    assert!(
        (16..=17).contains(&b.raw_serial().len()),
        "{:?}",
        b.raw_serial()
    );
    let shape = |c: &X509Certificate<'_>| {
        c.extensions()
            .iter()
            .map(|e| {
                let what = match e.parsed_extension() {
                    ParsedExtension::KeyUsage(ku) => format!("{ku:?}"),
                    ParsedExtension::BasicConstraints(bc) => format!("{bc:?}"),
                    ParsedExtension::SubjectKeyIdentifier(_) => "ski".to_owned(),
                    other => format!("{other:?}"),
                };
                (e.oid.to_id_string(), e.critical, what)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(ours.public_key().fingerprint(), key.fingerprint());
}

#[test]
fn adopts_a_key_made_by_pkcs11_tool() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let out = env.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "made-elsewhere",
        "--id",
        "a1b2c3",
        "--usage-decrypt",
        "--usage-sign",
        "--sensitive",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spki = env.dir.join("adopted.der");
    let out = env.pkcs11_tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "a1b2c3",
        "--output-file",
        spki.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = PublicKey::from_spki_der(&std::fs::read(&spki).unwrap()).unwrap();

    let token = env.open();
    let ours = token.generate_key("ours", 2048).unwrap();
    let by_label = token
        .find_key(&KeyRef::by_label(token.label(), "made-elsewhere"))
        .unwrap();
    let by_id = token
        .find_key(&KeyRef::by_id(token.label(), vec![0xa1, 0xb2, 0xc3]))
        .unwrap();
    assert_eq!(by_label.fingerprint(), theirs.fingerprint());
    assert_eq!(by_id.fingerprint(), theirs.fingerprint());
    // The reference stored in a key Secret finds the same object again.
    let uri = by_label.reference().to_string();
    assert!(
        uri.contains("object=made-elsewhere") && uri.contains("id=%a1%b2%c3"),
        "{uri}"
    );
    let again = token.find_key(&uri.parse().unwrap()).unwrap();
    assert_eq!(again.fingerprint(), theirs.fingerprint());

    let label = Scope::NamespaceWide.label("team-a", "db");
    let sealed = seal(&theirs, &label, b"adopted").unwrap();
    assert_eq!(open_upstream(&by_id, &label, &sealed).unwrap(), b"adopted");

    let mut listed: Vec<_> = token
        .list_keys()
        .unwrap()
        .into_iter()
        .map(|k| (k.reference.label.unwrap_or_default(), k.fingerprint))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("made-elsewhere".to_owned(), theirs.fingerprint().clone()),
            ("ours".to_owned(), ours.fingerprint().clone()),
        ]
    );
}

#[test]
fn keys_we_make_never_were_extractable_says_pkcs11_tool() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let key = token.generate_key("sealed-secrets-keyn0exp", 2048).unwrap();

    // The second client reads the attributes itself.
    let ours = env.access_flags("privkey", "sealed-secrets-keyn0exp");
    for want in ["sensitive", "always sensitive", "never extractable"] {
        assert!(
            ours.iter().any(|f| f == want),
            "missing `{want}` in {ours:?}"
        );
    }
    assert!(!ours.iter().any(|f| f == "extractable"), "{ours:?}");
    assert!(key.info().protection.is_non_exportable());

    // Control: a key made extractable and not sensitive reads differently through the same
    // parsing, so the assertions above can fail.
    let out = env.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "exportable",
        "--usage-decrypt",
        "--extractable",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let control = env.access_flags("privkey", "exportable");
    assert!(control.iter().any(|f| f == "extractable"), "{control:?}");
    assert!(
        !control.iter().any(|f| f == "never extractable"),
        "{control:?}"
    );
    let exportable = token
        .find_key(&KeyRef::by_label(token.label(), "exportable"))
        .unwrap();
    assert!(!exportable.info().protection.is_non_exportable());

    // A third client, PyKCS11, tries to export both keys with the PIN: reading the secret
    // attributes and wrapping the key under an AES key it makes. Ours stays in; the control
    // comes out, so the attempt is real.
    let ours = export_attempt(&env, "sealed-secrets-keyn0exp");
    for want in [
        r#""sensitive": true"#,
        r#""extractable": false"#,
        r#""always_sensitive": true"#,
        r#""never_extractable": true"#,
        r#""read_private_exponent": "refused"#,
        r#""read_prime_1": "refused"#,
        r#""wrap_aes_cbc_pad": "refused"#,
    ] {
        assert!(ours.contains(want), "missing {want} in {ours}");
    }
    assert!(!ours.contains("EXPORTED"), "{ours}");
    let control = export_attempt(&env, "exportable");
    assert!(
        control.contains(r#""wrap_aes_cbc_pad": "EXPORTED"#),
        "{control}"
    );
}

/// Runs tests/hsm/export_attempt.py (PyKCS11) against the key labelled `label`.
fn export_attempt(env: &support::TokenEnv, label: &str) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hsm/export_attempt.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(&env.module)
        .arg(&env.label)
        .arg(&env.pin_file)
        .arg(label)
        .envs(env.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn concurrent_unseals_share_the_token() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let key = token.generate_key("threads", 2048).unwrap();
    let label = Scope::ClusterWide.label("", "");
    std::thread::scope(|s| {
        for t in 0..4 {
            let key = key.clone();
            let label = label.clone();
            s.spawn(move || {
                for i in 0..5 {
                    let value = format!("{t}-{i}");
                    let sealed = seal(key.public_key(), &label, value.as_bytes()).unwrap();
                    assert_eq!(
                        open_upstream(&key, &label, &sealed).unwrap(),
                        value.as_bytes()
                    );
                }
            });
        }
    });
}

#[test]
fn missing_key_is_a_typed_error() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let err = token
        .find_key(&KeyRef::by_label(token.label(), "sealed-secrets-keygone"))
        .unwrap_err();
    assert!(matches!(err, Pkcs11Error::KeyMissing { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no private key `sealed-secrets-keygone` in token `sealed-secrets-test`"
    );
    // Two objects with one label: adopting by that label alone would be a guess.
    token.generate_key("twice", 2048).unwrap();
    token.generate_key("twice", 2048).unwrap();
    let err = token
        .find_key(&KeyRef::by_label(token.label(), "twice"))
        .unwrap_err();
    assert!(
        matches!(err, Pkcs11Error::KeyAmbiguous { count: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn wrong_pin_is_a_typed_error_without_the_pin() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let wrong = env.dir.join("wrong.pin");
    std::fs::write(&wrong, "not-the-pin-0000\n").unwrap();
    let err = Token::open(&TokenConfig::new(&env.module, &env.label, &wrong)).unwrap_err();
    assert!(matches!(err, Pkcs11Error::WrongPin { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("not-the-pin-0000"), "{shown}");
    let real = std::fs::read_to_string(&env.pin_file).unwrap();
    assert!(!shown.contains(real.trim()), "{shown}");

    let empty = env.dir.join("empty.pin");
    std::fs::write(&empty, "\n").unwrap();
    let err = Token::open(&TokenConfig::new(&env.module, &env.label, &empty)).unwrap_err();
    assert!(matches!(err, Pkcs11Error::PinFile { .. }), "{err:?}");

    // The right PIN still works afterwards.
    env.open();
}

#[test]
fn absent_token_and_module_are_typed_errors() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let err = Token::open(&TokenConfig::new(
        &env.module,
        "no-such-token",
        &env.pin_file,
    ))
    .unwrap_err();
    assert!(matches!(err, Pkcs11Error::TokenAbsent { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no PKCS#11 token labelled `no-such-token` (tokens present: `sealed-secrets-test`)"
    );
    let err = Token::open(&TokenConfig::new(
        env.dir.join("missing.so"),
        &env.label,
        &env.pin_file,
    ))
    .unwrap_err();
    assert!(matches!(err, Pkcs11Error::Module { .. }), "{err:?}");
}
