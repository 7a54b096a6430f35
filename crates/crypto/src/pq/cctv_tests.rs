//! Known-answer vectors: the `mlkem768x25519` vectors of the C2SP age test suite
//! (`tests/fixtures/age-cctv`, see its README), written by age's authors from age's own code.
//! Each must succeed with the expected payload hash, or fail the way the vector says: a
//! header failure is a structural error ([`OpenError::MalformedAge`]), a "no match" or an
//! HMAC or payload failure the uniform [`OpenError::NoKey`].

use std::path::PathBuf;

use aws_lc_rs::digest;

use super::{PqIdentity, open_unscoped};
use crate::error::OpenError;

struct Vector {
    name: String,
    expect: String,
    payload_sha256: Option<String>,
    identities: Vec<String>,
    file: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/age-cctv");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let split = data.windows(2).position(|w| w == b"\n\n").unwrap();
        let head = std::str::from_utf8(&data[..split]).unwrap();
        let mut v = Vector {
            name,
            expect: String::new(),
            payload_sha256: None,
            identities: Vec::new(),
            file: data[split + 2..].to_vec(),
        };
        for line in head.lines() {
            let (k, val) = line.split_once(": ").unwrap();
            match k {
                "expect" => v.expect = val.to_owned(),
                "payload" => v.payload_sha256 = Some(val.to_owned()),
                "identity" => v.identities.push(val.to_owned()),
                _ => {}
            }
        }
        out.push(v);
    }
    assert!(out.len() >= 16, "vectors missing from {}", dir.display());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn c2sp_age_hybrid_vectors() {
    for v in vectors() {
        let ids: Vec<PqIdentity> = v.identities.iter().map(|s| s.parse().unwrap()).collect();
        let result = open_unscoped(ids.iter(), &v.file);
        match v.expect.as_str() {
            "success" => {
                let (plaintext, key) = result.unwrap_or_else(|e| panic!("{}: {e}", v.name));
                assert_eq!(
                    Some(hex(
                        digest::digest(&digest::SHA256, plaintext.as_bytes()).as_ref()
                    )),
                    v.payload_sha256,
                    "{}",
                    v.name
                );
                assert_eq!(&key, ids[0].fingerprint());
            }
            "no match" | "HMAC failure" | "payload failure" => {
                assert_eq!(result.unwrap_err(), OpenError::NoKey, "{}", v.name);
            }
            "header failure" => {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, OpenError::MalformedAge(_)),
                    "{}: {err:?}",
                    v.name
                );
            }
            other => panic!("{}: unexpected expectation {other}", v.name),
        }
    }
}

/// The vectors' identity string is age's own encoding of its seed: parsing and re-encoding
/// gives it back byte for byte (Bech32, upper case, prefix).
#[test]
fn identity_string_round_trips_exactly() {
    let s = "AGE-SECRET-KEY-PQ-1HZLGZUPT4ETPKDEV8HSGFDCYZ4E522W0A7PU2LHT8EH9W6YLNC3SW78XKG";
    let id: PqIdentity = s.parse().unwrap();
    assert_eq!(id.to_age_string().as_str(), s);
}
