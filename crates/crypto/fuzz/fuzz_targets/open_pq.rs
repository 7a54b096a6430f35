//! Untrusted post-quantum values (age v1 files, `FORMAT.md` §3) and post-quantum key strings:
//! the header parser, the stanza checks and the payload, opened with a real identity. Must
//! never panic, and stay within the header bounds whatever the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealed_secrets_crypto::{KeyRing, PqIdentity, PqRecipient, envelope};

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let mut ring = KeyRing::new();
        // The identity the committed seeds were sealed to (seeds/open_pq).
        if let Ok(id) = PqIdentity::from_seed(&[7u8; 32]) {
            ring.insert_pq(id);
        }
        ring
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = envelope(data);
    let _ = ring().open(b"team-a/db-creds", data, &[]);
    let _ = ring().open(b"", data, &[]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<PqRecipient>();
        let _ = text.parse::<PqIdentity>();
    }
});
