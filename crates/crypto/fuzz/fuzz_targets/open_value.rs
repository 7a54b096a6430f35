//! Untrusted sealed values: base64 text from `spec.encryptedData`, then the binary envelope
//! (both formats) opened with a real key. Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealed_secrets_crypto::{KeyRing, PrivateKey, decode_base64, envelope};

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
    let _ = envelope(data);
    let _ = ring().open(b"team-a/db-creds", data, &[]);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = decode_base64(text)
    {
        let _ = envelope(&bytes);
        let _ = ring().open(b"", &bytes, &[]);
    }
});
