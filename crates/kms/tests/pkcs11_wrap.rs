//! The PKCS#11 wrapping backend against a real token (kryoptic, built by tests/hsm/token.sh):
//! key Secrets' private keys wrapped by an AES-256 key that never leaves the token, the
//! context bound by the token itself, wrapping-key rotation and adoption, and two independent
//! clients (OpenSC's `pkcs11-tool`, PyKCS11) confirming the key is not extractable and that
//! the blob layout is the documented one. Each test runs in a child process with a token of
//! its own (see the pkcs11 crate's `support`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

#[path = "../../pkcs11/tests/support/mod.rs"]
mod support;

use sealed_secrets_kms::{Pkcs11Wrapper, WrapContext, WrapError, WrappedKey, Wrapper};
use sealed_secrets_pkcs11::Pkcs11Error;
use support::{Module, TokenEnv, token};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn context(name: &str) -> WrapContext {
    WrapContext::new("prod-eu-1", "kube-system", name)
}

/// A private key's PEM stand-in: what the envelope wraps is opaque bytes to it.
fn private_key_pem() -> Vec<u8> {
    let mut body = vec![0u8; 2400];
    for (i, b) in body.iter_mut().enumerate() {
        *b = b'A' + u8::try_from(i % 26).unwrap();
    }
    [
        b"-----BEGIN RSA PRIVATE KEY-----\n".as_slice(),
        &body,
        b"\n-----END RSA PRIVATE KEY-----\n",
    ]
    .concat()
}

#[test]
fn a_private_key_round_trips_through_the_token_with_one_call_per_unwrap() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let key = token.generate_wrapping_key("sealed-secrets-wrap").unwrap();
    let wrapper = Pkcs11Wrapper::new(token.clone(), key);
    assert_eq!(wrapper.backend(), "pkcs11");
    assert_eq!(wrapper.key_id(), "sealed-secrets-wrap");
    assert!(
        wrapper
            .describe()
            .contains("pkcs11:token=sealed-secrets-test;object=sealed-secrets-wrap"),
        "{}",
        wrapper.describe()
    );
    let pem = private_key_pem();
    let ctx = context("sealed-secrets-keyabcde");

    let stored = block_on(WrappedKey::seal(&wrapper, &pem, &ctx))
        .unwrap()
        .to_bytes();
    assert!(
        !stored.windows(64).any(|w| pem.windows(64).any(|p| p == w)),
        "the stored envelope holds plaintext key bytes"
    );
    let opened = block_on(
        WrappedKey::from_bytes(&stored)
            .unwrap()
            .open(&wrapper, &ctx),
    )
    .unwrap();
    assert_eq!(opened.as_slice(), pem.as_slice());
    assert_eq!(wrapper.stats().wraps(), 1);
    assert_eq!(wrapper.stats().unwraps(), 1);
    assert_eq!(wrapper.stats().errors(), 0);

    // A controller that starts again opens the same bytes with a fresh wrapper: one call.
    let again = Pkcs11Wrapper::new(
        token.clone(),
        token.find_wrapping_key("sealed-secrets-wrap").unwrap(),
    );
    let opened = block_on(WrappedKey::from_bytes(&stored).unwrap().open(&again, &ctx)).unwrap();
    assert_eq!(opened.as_slice(), pem.as_slice());
    assert_eq!(again.stats().calls(), 1);
}

#[test]
fn the_token_refuses_a_blob_moved_to_another_key_secret_or_cluster_or_tampered() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let wrapper = Pkcs11Wrapper::new(
        token.clone(),
        token.generate_wrapping_key("sealed-secrets-wrap").unwrap(),
    );
    let ctx = context("sealed-secrets-keyabcde");
    let data_key = [7u8; 32];
    // The backend's own call, below the envelope (which authenticates the context too): the
    // token itself must bind the context.
    let wrapped = block_on(wrapper.wrap(&data_key, &ctx)).unwrap();
    assert_eq!(wrapped.key_id, "sealed-secrets-wrap");
    assert_eq!(wrapped.blob.len(), 12 + 32 + 16);
    let opened = block_on(wrapper.unwrap(&wrapped, &ctx)).unwrap();
    assert_eq!(opened.as_slice(), &data_key);

    let elsewhere = [
        context("sealed-secrets-keyzzzzz"),
        WrapContext::new("staging", "kube-system", "sealed-secrets-keyabcde"),
        WrapContext::new("prod-eu-1", "other-ns", "sealed-secrets-keyabcde"),
    ];
    for other in &elsewhere {
        let err = block_on(wrapper.unwrap(&wrapped, other)).unwrap_err();
        assert!(
            matches!(err, WrapError::InvalidCiphertext { .. }),
            "{other:?}: {err:?}"
        );
    }
    for at in [0, 5, 12, 30, wrapped.blob.len() - 1] {
        let mut tampered = wrapped.clone();
        tampered.blob[at] ^= 0x01;
        let err = block_on(wrapper.unwrap(&tampered, &ctx)).unwrap_err();
        assert!(
            matches!(err, WrapError::InvalidCiphertext { .. }),
            "byte {at}: {err:?}"
        );
    }
    let mut short = wrapped.clone();
    short.blob.truncate(20);
    assert!(matches!(
        block_on(wrapper.unwrap(&short, &ctx)).unwrap_err(),
        WrapError::InvalidCiphertext { .. }
    ));
    // Every refusal was counted as an error call; the good one was not.
    assert_eq!(wrapper.stats().errors(), 9);
    assert_eq!(wrapper.stats().unwraps(), 10);
}

#[test]
fn wrapping_keys_are_adopted_rotated_and_missing_ones_are_named() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    // Made by another client, as an operator adopting an existing HSM key would.
    let out = env.pkcs11_tool(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        "wrap-2025",
        "--usage-decrypt",
        "--sensitive",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old = Pkcs11Wrapper::new(token.clone(), token.find_wrapping_key("wrap-2025").unwrap());
    let ctx = context("sealed-secrets-keyabcde");
    let under_old = block_on(old.wrap(&[1u8; 32], &ctx)).unwrap();
    assert_eq!(under_old.key_id, "wrap-2025");

    // The configured key changes; blobs of the old key keep opening while it exists.
    let new = Pkcs11Wrapper::new(
        token.clone(),
        token.generate_wrapping_key("wrap-2026").unwrap(),
    );
    let opened = block_on(new.unwrap(&under_old, &ctx)).unwrap();
    assert_eq!(opened.as_slice(), &[1u8; 32]);
    assert_eq!(
        block_on(new.wrap(&[2u8; 32], &ctx)).unwrap().key_id,
        "wrap-2026"
    );

    // A label that is taken is not generated twice.
    let err = token.generate_wrapping_key("wrap-2026").unwrap_err();
    assert!(matches!(err, Pkcs11Error::KeyAmbiguous { .. }), "{err:?}");

    // The old key deleted: its blobs are reported as a missing key, not as tampering.
    let out = env.pkcs11_tool(&[
        "--delete-object",
        "--type",
        "secrkey",
        "--label",
        "wrap-2025",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = block_on(new.unwrap(&under_old, &ctx)).unwrap_err();
    assert!(
        matches!(&err, WrapError::KeyNotFound { key_id, .. } if key_id == "wrap-2025"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let err = token.find_wrapping_key("wrap-2025").unwrap_err();
    assert!(matches!(err, Pkcs11Error::KeyMissing { .. }), "{err:?}");
}

#[test]
fn other_clients_confirm_the_key_stays_in_and_the_blob_layout() {
    let Some(env) = token(Module::Kryoptic) else {
        return;
    };
    let token = env.open();
    let wrapper = Pkcs11Wrapper::new(
        token.clone(),
        token.generate_wrapping_key("sealed-secrets-wrap").unwrap(),
    );

    // pkcs11-tool reads the attributes itself.
    let ours = env.access_flags("secrkey", "sealed-secrets-wrap");
    for want in ["sensitive", "always sensitive", "never extractable"] {
        assert!(
            ours.iter().any(|f| f == want),
            "missing `{want}` in {ours:?}"
        );
    }
    assert!(!ours.iter().any(|f| f == "extractable"), "{ours:?}");
    // Control: an extractable key reads differently through the same parsing.
    let out = env.pkcs11_tool(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        "exportable",
        "--extractable",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let control = env.access_flags("secrkey", "exportable");
    assert!(control.iter().any(|f| f == "extractable"), "{control:?}");

    // PyKCS11 opens our blob with the token, the documented layout and the context's bytes,
    // and is refused under another context.
    let ctx = context("sealed-secrets-keyabcde");
    let data_key: Vec<u8> = (0u8..32).collect();
    let wrapped = block_on(wrapper.wrap(&data_key, &ctx)).unwrap();
    let opened = gcm_open(&env, &wrapped.blob, &ctx.canonical_bytes());
    assert_eq!(opened, hex(&data_key));
    let refused = gcm_open(
        &env,
        &wrapped.blob,
        &context("sealed-secrets-keyzzzzz").canonical_bytes(),
    );
    assert!(refused.starts_with("refused: "), "{refused}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// tests/hsm/gcm_open.py: PyKCS11 decrypting `blob` with the wrapping key and `aad`.
fn gcm_open(env: &TokenEnv, blob: &[u8], aad: &[u8]) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hsm/gcm_open.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(&env.module)
        .arg(&env.label)
        .arg(&env.pin_file)
        .arg("sealed-secrets-wrap")
        .arg(hex(blob))
        .arg(hex(aad))
        .envs(env.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcm_open.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
