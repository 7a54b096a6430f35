//! A ring holding an external key (one whose private half stays with a holder such as a
//! PKCS#11 token) opens every RSA format through one holder call per value when hinted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use zeroize::Zeroizing;

use crate::keys::{ExternalRsaKey, KeyMaterial, PrivateKey};
use crate::{CertParams, KeyRing, Scope, seal, seal_multi};

/// Stands in for a token: decrypts with a key it keeps, counting calls.
#[derive(Debug)]
struct Holder {
    key: PrivateKey,
    calls: AtomicU64,
}

impl ExternalRsaKey for Holder {
    fn decrypt_oaep(&self, label: &[u8], block: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let KeyMaterial::Local { oaep, .. } = self.key.material() else {
            return None;
        };
        let mut buf = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let out = oaep
            .decrypt(&OAEP_SHA256_MGF1SHA256, block, &mut buf, Some(label))
            .ok()?;
        Some(Zeroizing::new(out.to_vec()))
    }
}

fn external(bits: usize) -> (PrivateKey, Arc<Holder>) {
    let inner = PrivateKey::generate(bits).unwrap();
    let holder = Arc::new(Holder {
        key: inner.clone(),
        calls: AtomicU64::new(0),
    });
    let key = PrivateKey::external(inner.public_key().clone(), holder.clone());
    (key, holder)
}

#[test]
fn an_external_key_opens_upstream_and_multi_values_through_its_holder() {
    let (ext, holder) = external(2048);
    let local = PrivateKey::generate(2048).unwrap();
    assert!(ext.is_external() && !local.is_external());
    let mut ring = KeyRing::new();
    ring.insert(local.clone());
    ring.insert(ext.clone());
    for scope in [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide] {
        let label = scope.label("ns", "name");
        let before = holder.calls.load(Ordering::Relaxed);
        let sealed = seal(ext.public_key(), &label, b"v").unwrap();
        let opened = ring
            .open(&label, &sealed, &[ext.fingerprint().clone()])
            .unwrap();
        assert_eq!(opened.plaintext.as_bytes(), b"v");
        assert_eq!(&opened.key, ext.fingerprint());
        assert_eq!(opened.rsa_operations, 1);
        assert_eq!(
            holder.calls.load(Ordering::Relaxed) - before,
            1,
            "{scope:?}"
        );
        // Without a hint the local key is tried first, then the holder once.
        let opened = ring.open(&label, &sealed, &[]).unwrap();
        assert_eq!(opened.rsa_operations, 2);
        // The scope binds: another label does not open through the holder either.
        let other = Scope::Strict.label("ns", "other");
        assert!(ring.open(&other, &sealed, &[]).is_err() || scope == Scope::ClusterWide);
    }
    let label = Scope::Strict.label("ns", "name");
    let multi = seal_multi(&[local.public_key(), ext.public_key()], &label, b"m").unwrap();
    let mut only_ext = KeyRing::new();
    only_ext.insert(ext.clone());
    let before = holder.calls.load(Ordering::Relaxed);
    let opened = only_ext.open(&label, &multi, &[]).unwrap();
    assert_eq!(opened.plaintext.as_bytes(), b"m");
    assert_eq!(holder.calls.load(Ordering::Relaxed) - before, 1);
}

#[test]
fn an_external_key_has_nothing_to_encode_or_sign_with() {
    let (ext, _) = external(2048);
    assert!(ext.to_pkcs1_pem().is_empty());
    assert!(ext.self_signed_certificate(&CertParams::default()).is_err());
    assert!(!format!("{ext:?}").is_empty());
}
