//! The memory one object's templates may use, measured as the process's peak resident set
//! (`VmHWM`, reset through `/proc/self/clear_refs`) while `unseal` renders hostile templates.
//! Its own test binary with one test function, so that no other test runs at the same time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns: a panic is the failure report"
)]

use std::collections::BTreeMap;

use sealed_secrets_api::{SealedSecret, UnsealError, UnsealOptions, unseal};
use sealed_secrets_crypto::KeyRing;

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: usize = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kb * 1024
}

fn template_only(items: BTreeMap<String, String>) -> SealedSecret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "bomb", "namespace": "ns"},
        "spec": {"encryptedData": {}, "template": {"data": items}}
    }))
    .unwrap()
}

/// Peak resident bytes above the resident set before, while unsealing `ss`.
fn peak_of(ss: &SealedSecret) -> (usize, Result<(), UnsealError>) {
    // Writing 5 resets VmHWM to the current resident set (proc(5), clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let base = status_bytes("VmRSS");
    let result = unseal(ss, &KeyRing::new(), &UnsealOptions::default()).map(drop);
    (status_bytes("VmHWM").saturating_sub(base), result)
}

const MIB: usize = 1 << 20;

/// The reproductions (200 items for the controller, 400 for `kubeseal --recovery-unseal`,
/// once 499 MB and 1.5 GB of process memory) and a template that only produces values: each
/// object stays within a few MiB of memory, far under the controller's 64 MiB goal even with
/// its 8 reconciles at once.
#[test]
fn hostile_templates_use_bounded_memory() {
    let repeat = |n: usize| -> BTreeMap<String, String> {
        (0..n)
            .map(|i| (format!("k{i:03}"), r#"{{ repeat 1048576 "a" }}"#.to_owned()))
            .collect()
    };
    for n in [200, 400] {
        let (peak, result) = peak_of(&template_only(repeat(n)));
        assert!(result.is_err(), "{n} items rendered");
        println!(
            "{n} items of repeat 1 MiB: peak RSS {:.1} MiB",
            peak as f64 / MIB as f64
        );
        assert!(peak < 6 * MIB, "{n} items: peak RSS {peak} bytes");
    }

    // Producing without writing: each item keeps appending 1 MiB strings to a list; only the
    // bytes-produced budget of the object (8 MiB, every copy counted) stops it.
    let burn: BTreeMap<String, String> = (0..200)
        .map(|i| {
            (
                format!("k{i:03}"),
                r#"{{ $l := list }}{{ range 100 }}{{ $l = append $l (repeat 1048576 "a") }}{{ end }}"#
                    .to_owned(),
            )
        })
        .collect();
    let (peak, result) = peak_of(&template_only(burn));
    assert!(result.is_err(), "the value bomb rendered");
    println!(
        "200 value bombs: peak RSS {:.1} MiB",
        peak as f64 / MIB as f64
    );
    assert!(peak < 12 * MIB, "value bombs: peak RSS {peak} bytes");
}
