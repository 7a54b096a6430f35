//! Untrusted manifests: what kubeseal reads from files and stdin, and what the controller's
//! `/v1/verify` and `/v1/rotate` read from any client. Parsing, then verifying with a real key
//! (no template is rendered there), must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealed_secrets_api::unseal::UnsealOptions;
use sealed_secrets_crypto::{KeyRing, PrivateKey};

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut ring = KeyRing::new();
        if let Ok(key) = PrivateKey::from_pem(include_bytes!(
            "../../../../tests/fixtures/upstream-vectors/key-a.pem"
        )) {
            ring.insert(key);
        }
        ring
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = sealed_secrets_api::manifest::parse_documents(data);
    let _ = sealed_secrets_api::parse_secrets(data);
    if let Ok(list) = sealed_secrets_api::parse_sealed_secrets(data) {
        let opts = UnsealOptions {
            accept_deprecated_v1_data: true,
            ..UnsealOptions::default()
        };
        for ss in &list {
            let _ = sealed_secrets_api::unseal::verify(ss, ring(), &opts);
        }
    }
});
