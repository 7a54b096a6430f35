//! Untrusted private key files (`tls.key`, `--recovery-private-key`). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_secrets_crypto::PrivateKey;

fuzz_target!(|data: &[u8]| {
    let _ = PrivateKey::from_pem(data);
    let _ = PrivateKey::from_pkcs1_der(data);
    let _ = PrivateKey::from_pkcs8_der(data);
});
