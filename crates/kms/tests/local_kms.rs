//! The AWS KMS backend and the envelope against a real AWS KMS API server: `local-kms`, built
//! and started by tests/kms/local-kms.sh (one server per test, so disabling a key or stopping
//! the server touches no other test). Skipped with a message when Go is missing, except on CI
//! (`CI=true`), where they must run.

use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use harness::kms::{ACCESS_KEY_ID, LocalKms, SECRET_ACCESS_KEY};
use sealed_secrets_kms::{
    AwsKms, AwsKmsConfig, CredentialSource, Credentials, WrapContext, WrapError, WrappedKey,
    Wrapper,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What these tests do with a server beyond starting and stopping it.
trait Server {
    fn config(&self, key: &str) -> AwsKmsConfig;
    fn kms(&self) -> AwsKms;
    async fn admin(&self, action: &str, key_id: &str);
}

impl Server for LocalKms {
    fn config(&self, key: &str) -> AwsKmsConfig {
        let mut c = AwsKmsConfig::new(key, &self.region);
        c.endpoint = Some(self.endpoint.clone());
        c.credentials =
            CredentialSource::Static(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None));
        c.timeout = Duration::from_secs(3);
        c
    }

    fn kms(&self) -> AwsKms {
        AwsKms::new(self.config(&self.alias)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A KMS admin action (DisableKey, EnableKey) as a plain request: local-kms checks no
    /// signature, and the crate has no business exposing admin calls.
    async fn admin(&self, action: &str, key_id: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let body = format!("{{\"KeyId\":\"{key_id}\"}}");
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let req = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: TrentService.{action}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut resp = String::new();
        s.read_to_string(&mut resp)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(resp.starts_with("HTTP/1.1 200"), "{action}: {resp}");
    }
}

fn ctx() -> WrapContext {
    WrapContext::new("ci-cluster", "kube-system", "sealed-secrets-keyabcde")
}

fn rsa4096_pkcs8() -> Vec<u8> {
    let key = PrivateDecryptingKey::generate(KeySize::Rsa4096).unwrap_or_else(|e| panic!("{e}"));
    key.as_der()
        .unwrap_or_else(|e| panic!("{e}"))
        .as_ref()
        .to_vec()
}

async fn seal(kms: &AwsKms, key: &[u8]) -> WrappedKey {
    WrappedKey::seal(kms, key, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn rsa4096_pkcs8_key_round_trips_with_one_call_per_unwrap() {
    let Some(server) = LocalKms::start("round-trip") else {
        return;
    };
    let key = rsa4096_pkcs8();
    let kms = server.kms();
    let wrapped = seal(&kms, &key).await;
    let stored = wrapped.to_bytes();
    // The key Secret holds ciphertext only: no run of 32 key bytes appears in it.
    assert!(!stored.windows(32).any(|w| key.windows(32).any(|k| k == w)));
    // The alias resolved to the key's ARN, which the annotations and later unwraps use.
    assert!(
        wrapped
            .kms_key_id()
            .ends_with(&format!("key/{}", server.key_id)),
        "{}",
        wrapped.kms_key_id()
    );
    let annotations = wrapped.annotations();
    assert_eq!(annotations[0].1, "aws-kms");
    assert_eq!(annotations[1].1, wrapped.kms_key_id());

    // A restart: a new client, the stored bytes, one Decrypt.
    let restarted = server.kms();
    let opened = WrappedKey::from_bytes(&stored).unwrap_or_else(|e| panic!("{e}"));
    let plain = opened
        .open(&restarted, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.as_slice(), key.as_slice());
    PrivateDecryptingKey::from_pkcs8(&plain)
        .unwrap_or_else(|e| panic!("unwrapped key does not parse: {e}"));
    let stats = restarted.stats();
    assert_eq!((stats.wraps(), stats.unwraps(), stats.errors()), (0, 1, 0));
    assert!(stats.busy() > Duration::ZERO);

    // Three more unwraps, three more calls; wraps counted on the wrapping client.
    for _ in 0..3 {
        opened
            .open(&restarted, &ctx())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(restarted.stats().unwraps(), 4);
    assert_eq!((kms.stats().wraps(), kms.stats().calls()), (1, 1));
}

#[tokio::test]
async fn another_context_is_refused_by_the_kms_and_by_the_envelope() {
    let Some(server) = LocalKms::start("context") else {
        return;
    };
    let kms = server.kms();
    let others = [
        WrapContext::new("other-cluster", "kube-system", "sealed-secrets-keyabcde"),
        WrapContext::new("ci-cluster", "kube-system", "sealed-secrets-keyzzzzz"),
    ];
    // The KMS itself binds the EncryptionContext.
    let data_key = [9u8; 32];
    let wrapped = kms
        .wrap(&data_key, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for other in &others {
        let err = kms.unwrap(&wrapped, other).await.err();
        assert!(
            matches!(err, Some(WrapError::InvalidCiphertext { .. })),
            "{err:?}"
        );
    }
    let ok = kms
        .unwrap(&wrapped, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.as_slice(), &data_key);
    // And so does the whole envelope.
    let envelope = seal(&kms, b"private key").await;
    for other in &others {
        let err = envelope.open(&kms, other).await.err();
        assert!(
            matches!(err, Some(WrapError::InvalidCiphertext { .. })),
            "{err:?}"
        );
        assert_eq!(err.map(|e| e.category()), Some("invalid_ciphertext"));
    }
}

#[tokio::test]
async fn a_disabled_key_is_a_typed_error_and_nothing_is_lost() {
    let Some(server) = LocalKms::start("disabled") else {
        return;
    };
    let kms = server.kms();
    let stored = seal(&kms, b"private key").await.to_bytes();
    server.admin("DisableKey", &server.key_id).await;
    let envelope = WrappedKey::from_bytes(&stored).unwrap_or_else(|e| panic!("{e}"));
    let err = envelope.open(&kms, &ctx()).await.err();
    match &err {
        Some(e @ WrapError::KeyDisabled { key_id, code, .. }) => {
            assert!(key_id.ends_with(&server.key_id), "{key_id}");
            assert_eq!(code, "DisabledException");
            assert_eq!(e.category(), "key_disabled");
            assert!(!e.is_transient());
            assert!(e.to_string().contains("disabled"), "{e}");
        }
        other => panic!("expected KeyDisabled, got {other:?}"),
    }
    let err = WrappedKey::seal(&kms, b"k", &ctx()).await.err();
    assert!(
        matches!(err, Some(WrapError::KeyDisabled { .. })),
        "{err:?}"
    );
    assert_eq!(kms.stats().errors(), 2);
    // Re-enabling the key (the grant restored) opens the same stored bytes.
    server.admin("EnableKey", &server.key_id).await;
    let plain = envelope
        .open(&kms, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.as_slice(), b"private key");
    // A key that does not exist is named as such.
    let missing = AwsKms::new(server.config("alias/nope")).unwrap_or_else(|e| panic!("{e}"));
    let err = missing.wrap(b"k", &ctx()).await.err();
    assert!(
        matches!(err, Some(WrapError::KeyNotFound { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stopped_kms_is_unreachable_quickly() {
    let Some(server) = LocalKms::start("down") else {
        return;
    };
    let kms = server.kms();
    let envelope = seal(&kms, b"private key").await;
    server.stop();
    let started = Instant::now();
    let err = envelope.open(&kms, &ctx()).await.err();
    let took = started.elapsed();
    match &err {
        Some(e @ WrapError::Unreachable { endpoint, .. }) => {
            assert_eq!(endpoint, &server.endpoint);
            assert!(e.is_transient());
            assert_eq!(e.category(), "unreachable");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!((kms.stats().unwraps(), kms.stats().errors()), (1, 1));
}

#[tokio::test]
async fn a_silent_kms_times_out_within_the_budget() {
    // A listener that accepts and never answers: the budget, not the kernel, ends the call.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut config = AwsKmsConfig::new("alias/x", "eu-west-2");
    config.endpoint = Some(format!("http://{addr}"));
    config.credentials = CredentialSource::Static(Credentials::new("AKID", "secret", None));
    config.timeout = Duration::from_millis(800);
    let kms = AwsKms::new(config).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let err = kms.wrap(b"k", &ctx()).await.err();
    let took = started.elapsed();
    assert!(matches!(err, Some(WrapError::TimedOut { .. })), "{err:?}");
    assert!(err.is_some_and(|e| e.is_transient()));
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    hold.abort();
}

#[tokio::test]
async fn tampered_envelopes_are_refused() {
    let Some(server) = LocalKms::start("tamper") else {
        return;
    };
    let kms = server.kms();
    let envelope = seal(&kms, b"private key").await;
    let bytes = envelope.to_bytes();
    // Layout (crates/kms/src/envelope.rs): magic, version, backend, key ID, blob, nonce, ciphertext.
    let blob_start = 4 + 1 + 1 + "aws-kms".len() + 2 + envelope.kms_key_id().len() + 2;
    let blob_len = usize::from(u16::from_be_bytes([
        bytes[blob_start - 2],
        bytes[blob_start - 1],
    ]));
    let positions = [
        ("KMS ciphertext blob", blob_start + blob_len - 5),
        ("nonce", blob_start + blob_len + 3),
        ("private key ciphertext", bytes.len() - 20),
        ("tag", bytes.len() - 1),
    ];
    for (what, at) in positions {
        let mut t = bytes.clone();
        t[at] ^= 0x40;
        let env = WrappedKey::from_bytes(&t).unwrap_or_else(|e| panic!("{what}: {e}"));
        let err = env.open(&kms, &ctx()).await.err();
        assert!(
            matches!(err, Some(WrapError::InvalidCiphertext { .. })),
            "{what}: {err:?}"
        );
    }
    // The untouched bytes still open.
    let plain = WrappedKey::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("{e}"))
        .open(&kms, &ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.as_slice(), b"private key");
}

#[tokio::test]
async fn credentials_come_from_a_file_and_a_missing_one_is_named() {
    let Some(server) = LocalKms::start("credentials") else {
        return;
    };
    let file = server.dir.join("credentials");
    std::fs::write(
        &file,
        "[kms]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut config = server.config(&server.alias);
    config.credentials = CredentialSource::File {
        path: file.clone(),
        profile: "kms".into(),
    };
    let kms = AwsKms::new(config.clone()).unwrap_or_else(|e| panic!("{e}"));
    let envelope = seal(&kms, b"private key").await;
    config.credentials = CredentialSource::File {
        path: server.dir.join("absent"),
        profile: "kms".into(),
    };
    let broken = AwsKms::new(config).unwrap_or_else(|e| panic!("{e}"));
    let err = envelope.open(&broken, &ctx()).await.err();
    match err {
        Some(e @ WrapError::Credentials { .. }) => {
            assert!(e.to_string().contains("absent"), "{e}");
            assert!(!e.to_string().contains("file-secret"));
        }
        other => panic!("expected Credentials, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_response_is_refused_not_buffered() {
    // A server that answers every request with a 1 MiB body: read up to 64 KiB, then refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let serve = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&vec![b'{'; 1 << 20]).await;
            });
        }
    });
    let mut config = AwsKmsConfig::new("alias/x", "eu-west-2");
    config.endpoint = Some(format!("http://{addr}"));
    config.credentials = CredentialSource::Static(Credentials::new("AKID", "secret", None));
    let kms = AwsKms::new(config).unwrap_or_else(|e| panic!("{e}"));
    let err = kms.wrap(b"k", &ctx()).await.err();
    match err {
        Some(e @ WrapError::Protocol { .. }) => assert!(e.to_string().contains("64 KiB"), "{e}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    serve.abort();
}
