//! age's payload (C2SP age specification, "Payload"): a 16-byte nonce, then the plaintext in
//! 64 KiB chunks, each ChaCha20-Poly1305 under HKDF-SHA256(file key, nonce, "payload") with the
//! nonce `u88be(chunk index) ‖ last-chunk flag`.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

/// Bytes of the payload nonce.
pub(crate) const NONCE_LEN: usize = 16;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

fn stream_key(file_key: &[u8], nonce: &[u8]) -> Option<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, nonce).extract(file_key);
    let mut key = Zeroizing::new([0u8; 32]);
    prk.expand(&[b"payload"], hkdf::HKDF_SHA256)
        .ok()?
        .fill(key.as_mut())
        .ok()?;
    UnboundKey::new(&CHACHA20_POLY1305, key.as_ref())
        .ok()
        .map(LessSafeKey::new)
}

fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Encrypts `plaintext` under `file_key`; appends nonce and chunks to `out`.
pub(crate) fn encrypt(file_key: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    out.extend_from_slice(&nonce);
    let key = stream_key(file_key, &nonce)?;
    // An empty plaintext is one empty last chunk; otherwise no chunk is empty.
    let chunks: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(CHUNK).collect()
    };
    let count = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut buf = chunk.to_vec();
        key.seal_in_place_append_tag(
            chunk_nonce(i as u64, i + 1 == count),
            Aad::empty(),
            &mut buf,
        )
        .ok()?;
        out.extend_from_slice(&buf);
    }
    Some(())
}

/// Decrypts a payload; `None` on any failure (bad tag, truncation, a missing or misplaced
/// last chunk, an empty chunk after the first), which callers report uniformly.
pub(crate) fn decrypt(file_key: &[u8], payload: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let nonce = payload.get(..NONCE_LEN)?;
    let body = &payload[NONCE_LEN..];
    if body.len() < TAG {
        return None;
    }
    let key = stream_key(file_key, nonce)?;
    let mut out = Zeroizing::new(Vec::with_capacity(body.len()));
    let chunks: Vec<&[u8]> = body.chunks(CHUNK + TAG).collect();
    let count = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let last = i + 1 == count;
        // A last chunk shorter than a tag, or an empty chunk after the first, is refused
        // (age: "last chunk is empty, try age v1.0.0").
        if chunk.len() < TAG || (last && chunk.len() == TAG && i > 0) {
            return None;
        }
        let mut buf = Zeroizing::new(chunk.to_vec());
        let len = key
            .open_in_place(chunk_nonce(i as u64, last), Aad::empty(), &mut buf)
            .ok()?
            .len();
        out.extend_from_slice(&buf[..len]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_chunk_boundaries() {
        let key = [7u8; 16];
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut ct = Vec::new();
            encrypt(&key, &pt, &mut ct).unwrap();
            assert_eq!(
                decrypt(&key, &ct).unwrap().as_slice(),
                pt.as_slice(),
                "len {len}"
            );
            // Dropping the last chunk, or any byte, is refused.
            assert!(decrypt(&key, &ct[..ct.len() - 1]).is_none());
            if len > CHUNK {
                assert!(decrypt(&key, &ct[..NONCE_LEN + CHUNK + TAG]).is_none());
            }
            assert!(decrypt(&[8u8; 16], &ct).is_none());
        }
        assert!(decrypt(&key, &[0u8; NONCE_LEN + TAG - 1]).is_none());
    }
}
