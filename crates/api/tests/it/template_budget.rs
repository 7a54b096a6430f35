//! Templates after decryption: one fixed message whatever the values (no oracle), and one
//! budget per object for everything the templates do.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sealed_secrets_api::unseal::MAX_TEMPLATE_ITEMS;
use sealed_secrets_api::{ItemError, SealedSecret, UnsealError, UnsealOptions, unseal};
use sealed_secrets_crypto::KeyRing;

use super::common::*;

/// 80 characters: the alphabet the line-number attack guesses from.
const ALPHABET: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_~";

fn sealed_password(name: &str, password: &str) -> SealedSecret {
    seal_one(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: ns\nstringData:\n  pw: '{password}'\n"
    ))
}

/// The attack: item `tI` has one line per candidate character and calls `fail` on the line
/// of the character at position I, so "which item, which line" spells the password.
fn line_number_oracle(chars: usize) -> BTreeMap<String, String> {
    (0..chars)
        .map(|i| {
            let lines: Vec<String> = ALPHABET
                .chars()
                .map(|c| {
                    let c = if c == '"' { "\\\"".to_owned() } else { c.to_string() };
                    format!(
                        r#"{{{{ if eq (substr {i} {} .pw) "{c}" }}}}{{{{ fail "x" }}}}{{{{ end }}}}"#,
                        i + 1
                    )
                })
                .collect();
            (format!("t{i}"), lines.join("\n"))
        })
        .collect()
}

fn failure(ss: &SealedSecret) -> UnsealError {
    unseal(ss, &ring_a(), &UnsealOptions::default()).expect_err("the template must fail")
}

/// Two passwords, the same attacking templates: the errors are identical to the byte, in
/// `Display` (status, Event, logs) and in `Debug`, and name no item and no line. They are
/// also what any other failure after decryption gives.
#[test]
fn the_line_number_oracle_recovers_nothing() {
    let oracle = line_number_oracle(10);
    let mut seen = Vec::new();
    for password in ["hunter2xyz", "Zq9!m#Kp0w"] {
        let mut ss = sealed_password("n", password);
        ss.spec.template.data = Some(oracle.clone());
        let err = failure(&ss);
        assert!(matches!(err, UnsealError::Render { .. }), "{err:?}");
        assert_eq!(err.category(), "template");
        let (shown, debug) = (err.to_string(), format!("{err:?}"));
        assert!(!shown.contains("line") && !shown.contains("`t"), "{shown}");
        seen.push((shown, debug));
    }
    assert_eq!(seen[0], seen[1]);

    // `required`, an index out of range and a budget overrun look the same.
    let mut ss = sealed_password("n", "hunter2xyz");
    for t in [
        "{{ required \"need it\" .missing }}",
        "{{ index (list 1) (len .pw) }}",
        "{{ range 100000000 }}{{ end }}",
    ] {
        ss.spec.template.data = Some(BTreeMap::from([("t0".to_owned(), t.to_owned())]));
        assert_eq!(failure(&ss).to_string(), seen[0].0, "{t}");
    }
}

/// Parsing needs only the public template text: its errors stay precise (item, line,
/// reason) and are found before any RSA work.
#[test]
fn parse_errors_stay_detailed_and_come_before_decryption() {
    let mut ss = sealed_password("n", "hunter2xyz");
    ss.spec.template.data = Some(BTreeMap::from([
        ("good".to_owned(), "{{ .pw }}".to_owned()),
        ("bad".to_owned(), "ok\n{{ if .pw }}".to_owned()),
    ]));
    let err = failure(&ss);
    let UnsealError::Items { errors, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(errors.as_slice(), [ItemError::Template { item, .. }] if item == "bad"),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(err.rsa_operations(), 0);
}

fn template_only(items: impl IntoIterator<Item = (String, String)>) -> SealedSecret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "bomb", "namespace": "ns"},
        "spec": {
            "encryptedData": {},
            "template": {"data": items.into_iter().collect::<BTreeMap<_, _>>()},
        }
    }))
    .unwrap()
}

/// The reproduction: 200 items of `{{ repeat 1048576 "a" }}` in a 7.8 KB object without any
/// ciphertext. One 1 MiB budget for the object's output: the second item overruns it and
/// nothing after it is rendered (the memory this saves is measured by the controller's e2e
/// and chaos tests).
#[test]
fn template_output_is_budgeted_per_object() {
    let bomb = |n: usize| {
        template_only((0..n).map(|i| (format!("k{i:03}"), r#"{{ repeat 1048576 "a" }}"#.into())))
    };
    for n in [2, 200, 400] {
        let start = Instant::now();
        let err = unseal(&bomb(n), &KeyRing::new(), &UnsealOptions::default()).unwrap_err();
        assert!(matches!(err, UnsealError::Render { .. }), "{n}: {err:?}");
        assert!(start.elapsed() < Duration::from_secs(1), "{n} items");
    }
    // One such item is a legitimate (if large) Secret.
    let out = unseal(&bomb(1), &KeyRing::new(), &UnsealOptions::default()).unwrap();
    assert_eq!(out.value("k000").map(<[u8]>::len), Some(1 << 20));

    // The budget counts all items together: four of 200 KB fit, three of 400 KB do not.
    let sized = |n: usize, kb: usize| {
        template_only((0..n).map(|i| {
            (
                format!("k{i}"),
                format!(r#"{{{{ repeat {} "a" }}}}"#, kb * 1000),
            )
        }))
    };
    assert!(unseal(&sized(4, 200), &KeyRing::new(), &UnsealOptions::default()).is_ok());
    let err = unseal(&sized(3, 400), &KeyRing::new(), &UnsealOptions::default()).unwrap_err();
    assert!(matches!(err, UnsealError::Render { .. }), "{err:?}");
}

/// More items than the cap are refused before parsing or decrypting; the cap itself passes.
#[test]
fn template_items_are_capped() {
    let items = |n: usize| template_only((0..n).map(|i| (format!("k{i:04}"), "x".to_owned())));
    let out = unseal(
        &items(MAX_TEMPLATE_ITEMS),
        &KeyRing::new(),
        &UnsealOptions::default(),
    )
    .unwrap();
    assert_eq!(
        out.secret().data.as_ref().map(BTreeMap::len),
        Some(MAX_TEMPLATE_ITEMS)
    );
    let err = unseal(
        &items(MAX_TEMPLATE_ITEMS + 1),
        &KeyRing::new(),
        &UnsealOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, UnsealError::TooManyTemplates { items, .. } if items == MAX_TEMPLATE_ITEMS + 1),
        "{err:?}"
    );
    assert_eq!(err.category(), "invalid");
    assert!(
        err.to_string().contains("more than the limit of 500"),
        "{err}"
    );
}
