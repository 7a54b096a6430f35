//! The sealing pipeline on several threads gives what one thread gives: the input order, every
//! value, and the error of the first failing Secret.

use sealed_secrets_api::{
    SealOptions, SealingError, UnsealOptions, seal_manifests, seal_manifests_on, unseal,
};

use super::common::{pub_a, ring_a};

/// `n` Secrets `s0`..: Secret `i` lives in `namespace(i)` and holds `v=value-i`.
fn input(n: usize, namespace: impl Fn(usize) -> &'static str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n  namespace: {}\n\
                 stringData:\n  v: value-{i}\n",
                namespace(i)
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn parallel_sealing_keeps_input_order_and_every_value() {
    let ring = ring_a();
    let opts = SealOptions::default();
    for threads in [1, 3, 64] {
        let sealed =
            seal_manifests_on(input(7, |_| "team").as_bytes(), &[pub_a()], &opts, threads).unwrap();
        let names: Vec<_> = sealed
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["s0", "s1", "s2", "s3", "s4", "s5", "s6"],
            "{threads} threads"
        );
        for (i, ss) in sealed.iter().enumerate() {
            let secret = unseal(ss, &ring, &UnsealOptions::default()).unwrap();
            assert_eq!(
                secret.value("v"),
                Some(format!("value-{i}").as_bytes()),
                "{threads} threads"
            );
        }
    }
}

#[test]
fn parallel_sealing_reports_the_first_failing_secret_in_input_order() {
    // 6 Secrets on 3 threads: one Secret per run; Secrets 3 and 4 contradict --namespace
    // and may fail in either order. A sequential run stops at Secret 3.
    let opts = SealOptions {
        explicit_namespace: Some("team".to_owned()),
        ..SealOptions::default()
    };
    let text = input(6, |i| match i {
        3 => "first-wrong",
        4 => "second-wrong",
        _ => "team",
    });
    for threads in [1, 3] {
        let err = seal_manifests_on(text.as_bytes(), &[pub_a()], &opts, threads).unwrap_err();
        assert!(
            matches!(&err, SealingError::NamespaceMismatch { secret, .. } if secret == "first-wrong"),
            "{threads} threads: {err:?}"
        );
    }
    // The default (every core) agrees.
    let err = seal_manifests(text.as_bytes(), &[pub_a()], &opts).unwrap_err();
    assert!(
        matches!(&err, SealingError::NamespaceMismatch { secret, .. } if secret == "first-wrong"),
        "{err:?}"
    );
}

#[test]
fn empty_input_is_an_error_whatever_the_threads() {
    let err = seal_manifests_on(b"", &[pub_a()], &SealOptions::default(), 4).unwrap_err();
    assert!(matches!(err, SealingError::NoSecrets), "{err:?}");
}
