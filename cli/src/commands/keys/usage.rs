//! Which keys the cluster's SealedSecrets still need: the source of truth of `keys list`'s
//! OBJECTS column and of `keys retire` (docs/design.md "Keys an object needs").
//!
//! The controller knows which key opened each object and records it in the object's status
//! (`status.sourceDigest` lists the keys, of the generation it reconciled:
//! [`SealedSecret::recorded_keys`]); `sealed_objects{fingerprint}` is the same knowledge in
//! its memory. The records are read here rather than the metric because they are what the
//! cluster holds now, whichever replica answers and however recently it started, and because
//! they name the objects. One paginated LIST, no decryption: cheap at 10,000 objects.
//!
//! An object without a current record (not reconciled yet, failing, changed since, status
//! updates off, or an upstream CRD that prunes the digest) is "unrecorded". `keys list`
//! counts those apart; `keys retire` decides them by trying the one key it would delete
//! ([`needs_key`]), which costs at most one RSA operation per value of theirs.

use std::collections::BTreeSet;

use kube::api::{Api, ListParams};
use sealed_secrets_api::{SealedSecret, annotations};
use sealed_secrets_crypto::{Fingerprint, KeyRing, OpenError, decode_base64};

use crate::cluster;
use crate::error::Result;

/// Objects per LIST page.
const PAGE: u32 = 500;

/// What one SealedSecret needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Needs {
    /// The keys its current status records.
    Recorded(BTreeSet<Fingerprint>),
    /// No current record; `Some(true)` when the key being retired opens one of its values,
    /// `Some(false)` when it opens none, `None` when not tried (`keys list`).
    Unrecorded(Option<bool>),
}

/// One SealedSecret of the cluster and what it needs.
#[derive(Debug, Clone)]
pub(super) struct Object {
    /// `namespace/name`.
    pub(super) name: String,
    pub(super) needs: Needs,
}

/// Every SealedSecret in the cluster with what it needs; unrecorded ones are tried with
/// `trial` when given (the keys of the one key Secret `keys retire` would delete).
pub(super) async fn scan(client: &kube::Client, trial: Option<&KeyRing>) -> Result<Vec<Object>> {
    let api: Api<SealedSecret> = Api::all(client.clone());
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = cluster::retrying(|| api.list(&params)).await.map_err(|e| {
            cluster::api_error(
                "cannot list SealedSecrets in all namespaces",
                &e,
                Some("this needs `list sealedsecrets` cluster-wide: which keys are in use is read from every SealedSecret's status"),
            )
        })?;
        for ss in &page.items {
            out.push(Object {
                name: ss.object_ref().to_string(),
                needs: needs(ss, trial),
            });
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// What `ss` needs: its record, else (with `trial`) whether `trial` opens one of its values.
/// Pure.
pub(super) fn needs(ss: &SealedSecret, trial: Option<&KeyRing>) -> Needs {
    match ss.recorded_keys() {
        Some(keys) => Needs::Recorded(keys),
        None => Needs::Unrecorded(trial.map(|ring| needs_key(ss, ring))),
    }
}

/// Whether a key of `ring` opens any value of `ss` as the controller would open it (same
/// scope label, same key selection: a post-quantum value's key hints and a multi-recipient
/// value's header decide which keys are tried; an upstream value is tried with every RSA key
/// of the ring, one operation each). Multi-recipient version-1 values are admitted, since a
/// controller may be configured to open them. A value that cannot even be parsed opens with
/// no key and needs none. Pure, but for the RSA work.
pub(super) fn needs_key(ss: &SealedSecret, ring: &KeyRing) -> bool {
    let object = ss.object_ref();
    let scope = annotations::scope(ss.metadata.annotations.as_ref());
    let label = scope.label(&object.namespace, &object.name);
    let legacy = ss.spec.data.iter().map(String::as_str);
    let values = ss.spec.encrypted_data.iter().map(|(_, v)| v).chain(legacy);
    for value in values {
        let Ok(ct) = decode_base64(value) else {
            continue;
        };
        match ring.open(&label, &ct, &[]) {
            Ok(_) => return true,
            // Work limits are the only failures that do not say "not this key"; the ring here
            // has no limit, but a doubt is a need.
            Err(OpenError::WorkLimit) => return true,
            Err(_) => {}
        }
    }
    false
}

/// How many of `objects` need one of `fingerprints` (the names of one key Secret: its RSA
/// key's and its post-quantum identity's), and how many are unrecorded and untried.
pub(super) fn count(objects: &[Object], fingerprints: &[Fingerprint]) -> u64 {
    let n = objects
        .iter()
        .filter(|o| match &o.needs {
            Needs::Recorded(keys) => fingerprints.iter().any(|fp| keys.contains(fp)),
            Needs::Unrecorded(tried) => *tried == Some(true),
        })
        .count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
mod tests {
    use sealed_secrets_api::{SealedSecretCondition, SealedSecretStatus};
    use sealed_secrets_crypto::{
        PqIdentity, PrivateKey, Scope, encode_base64, seal, seal_multi, seal_pq,
    };

    use super::*;

    fn mk_ss(items: &[(&str, String)]) -> SealedSecret {
        let mut ss = SealedSecret::new("db", Default::default());
        ss.metadata.namespace = Some("prod".to_owned());
        ss.metadata.generation = Some(3);
        for (k, v) in items {
            ss.spec.encrypted_data.insert(*k, v.clone());
        }
        ss
    }

    fn mk_status(generation: i64, synced: &str, digest: Option<&str>) -> SealedSecretStatus {
        SealedSecretStatus {
            conditions: vec![SealedSecretCondition {
                type_: "Synced".to_owned(),
                status: synced.to_owned(),
                ..Default::default()
            }],
            observed_generation: Some(generation),
            source_digest: digest.map(str::to_owned),
        }
    }

    fn ring(rsa: Option<&PrivateKey>, pq: Option<&PqIdentity>) -> KeyRing {
        let mut r = KeyRing::new();
        if let Some(k) = rsa {
            r.insert(k.clone());
        }
        if let Some(i) = pq {
            r.insert_pq(i.clone());
        }
        r
    }

    #[test]
    fn a_current_record_answers_and_a_stale_or_failed_one_does_not() {
        let a = PrivateKey::generate(2048).unwrap();
        let b = PqIdentity::generate().unwrap();
        let digest = format!("sha256:00;keys={},{}", a.fingerprint(), b.fingerprint());
        let mut ss = mk_ss(&[]);
        ss.status = Some(mk_status(3, "True", Some(&digest)));
        let want: BTreeSet<Fingerprint> = [a.fingerprint().clone(), b.fingerprint().clone()].into();
        assert_eq!(needs(&ss, None), Needs::Recorded(want));
        ss.status = Some(mk_status(2, "True", Some(&digest)));
        assert_eq!(
            needs(&ss, None),
            Needs::Unrecorded(None),
            "an older generation"
        );
        ss.status = Some(mk_status(3, "False", Some(&digest)));
        assert_eq!(needs(&ss, None), Needs::Unrecorded(None), "not synced");
        ss.status = Some(mk_status(3, "True", None));
        assert_eq!(needs(&ss, None), Needs::Unrecorded(None), "digest pruned");
        ss.status = Some(mk_status(3, "True", Some("sha256:00;keys=SHA256:nope")));
        assert_eq!(needs(&ss, None), Needs::Unrecorded(None), "unreadable");
        ss.status = None;
        assert_eq!(needs(&ss, None), Needs::Unrecorded(None));
    }

    /// Without a record, the key is tried as the controller would: each format, the scope
    /// label, hints; values for other keys and garbage do not count.
    #[test]
    fn unrecorded_objects_are_decided_by_trying_the_key() {
        let k = PrivateKey::generate(2048).unwrap();
        let other = PrivateKey::generate(2048).unwrap();
        let id = PqIdentity::generate().unwrap();
        let other_id = PqIdentity::generate().unwrap();
        let label = Scope::Strict.label("prod", "db");
        let mine = ring(Some(&k), Some(&id));
        let v = |ct: Vec<u8>| encode_base64(&ct);

        let cases: Vec<(&str, String, bool)> = vec![
            ("rsa", v(seal(k.public_key(), &label, b"x").unwrap()), true),
            (
                "rsa-other",
                v(seal(other.public_key(), &label, b"x").unwrap()),
                false,
            ),
            (
                "multi",
                v(seal_multi(&[other.public_key(), k.public_key()], &label, b"x").unwrap()),
                true,
            ),
            (
                "multi-other",
                v(seal_multi(&[other.public_key()], &label, b"x").unwrap()),
                false,
            ),
            (
                "pq",
                v(seal_pq(&[id.recipient()], &label, b"x").unwrap()),
                true,
            ),
            (
                "pq-other",
                v(seal_pq(&[other_id.recipient()], &label, b"x").unwrap()),
                false,
            ),
            (
                "rsa-moved",
                v(seal(k.public_key(), &Scope::Strict.label("dev", "db"), b"x").unwrap()),
                false,
            ),
            ("garbage", "not base64!".to_owned(), false),
        ];
        for (item, value, want) in &cases {
            let ss = mk_ss(&[
                ("other", v(seal(other.public_key(), &label, b"y").unwrap())),
                (item, value.clone()),
            ]);
            assert_eq!(needs_key(&ss, &mine), *want, "{item}");
            assert_eq!(
                needs(&ss, Some(&mine)),
                Needs::Unrecorded(Some(*want)),
                "{item}"
            );
        }
        // A legacy spec.data blob is one upstream value.
        let mut legacy = mk_ss(&[]);
        legacy.spec.data = Some(v(seal(k.public_key(), &label, b"{}").unwrap()));
        assert!(needs_key(&legacy, &mine));
        // The record wins over trying: a current record naming other keys is believed.
        let mut recorded = mk_ss(&[("rsa", cases[0].1.clone())]);
        let digest = format!("sha256:00;keys={}", other.fingerprint());
        recorded.status = Some(mk_status(3, "True", Some(&digest)));
        assert_eq!(
            needs(&recorded, Some(&mine)),
            Needs::Recorded([other.fingerprint().clone()].into())
        );
    }

    #[test]
    fn counting_takes_either_name_of_a_key_once_per_object() {
        let a = PrivateKey::generate(2048).unwrap();
        let id = PqIdentity::generate().unwrap();
        let (fa, fi) = (a.fingerprint().clone(), id.fingerprint().clone());
        let obj = |needs| Object {
            name: "ns/x".to_owned(),
            needs,
        };
        let objects = vec![
            obj(Needs::Recorded([fa.clone(), fi.clone()].into())),
            obj(Needs::Recorded([fi.clone()].into())),
            obj(Needs::Recorded(BTreeSet::new())),
            obj(Needs::Unrecorded(Some(true))),
            obj(Needs::Unrecorded(Some(false))),
            obj(Needs::Unrecorded(None)),
        ];
        assert_eq!(count(&objects, &[fa.clone(), fi.clone()]), 3);
        assert_eq!(count(&objects, &[fa]), 2);
    }
}
