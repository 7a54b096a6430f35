//! Untrusted certificates (`--cert`, `tls.crt`, fetched cert.pem). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealed_secrets_crypto::Certificate;

fuzz_target!(|data: &[u8]| {
    let _ = Certificate::all_from_pem(data);
    let _ = Certificate::from_der(data);
});
