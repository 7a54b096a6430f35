//! Seals a value with a freshly generated RSA-4096 key and certificate, then unseals it, in
//! all three scopes; shows that the wrong namespace cannot open it.
//!
//! `cargo run --release -p sealed-secrets-crypto --example roundtrip`

use std::time::{Instant, SystemTime};

use sealed_secrets_crypto::{
    CertParams, Certificate, KeyRing, PrivateKey, Scope, decode_base64, encode_base64, seal,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let key = PrivateKey::generate(4096)?;
    let cert = key.self_signed_certificate(&CertParams::default())?;
    eprintln!(
        "generated RSA-4096 key {} in {:?}",
        key.fingerprint(),
        started.elapsed()
    );
    // What kubeseal does: load the published certificate, refuse it if expired.
    let published = Certificate::from_pem(cert.pem().as_bytes())?;
    published.check_not_expired(SystemTime::now())?;

    let mut ring = KeyRing::new();
    ring.insert(key);
    for scope in Scope::ALL {
        let label = scope.label("team-a", "db-creds");
        let sealed = encode_base64(&seal(published.public_key(), &label, b"s3cr3t-p4ssw0rd")?);
        let opened = ring.open(&label, &decode_base64(&sealed)?, &[])?;
        let other = ring.open(
            &scope.label("team-b", "db-creds"),
            &decode_base64(&sealed)?,
            &[],
        );
        println!(
            "{scope:<15} sealed={}... unsealed={:?} as team-b/db-creds: {}",
            &sealed[..24],
            String::from_utf8_lossy(opened.plaintext.as_bytes()),
            match other {
                Ok(_) => "opened".to_owned(),
                Err(e) => format!("refused ({e})"),
            }
        );
    }
    Ok(())
}
