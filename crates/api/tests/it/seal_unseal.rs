use std::collections::BTreeMap;

use sealed_secrets_api::{
    ItemError, MAX_MESSAGE_LEN, MAX_RSA_OPERATIONS, SealOptions, SealedSecret, SealingError,
    UnsealError, UnsealOptions, annotations, decrypt_items, manifest, merge_into, parse_secrets,
    reseal, seal_manifests, seal_raw, unseal, verify,
};
use sealed_secrets_crypto::{KeyRing, Scope, decode_base64, encode_base64, seal};

use super::common::*;

const OPTS: UnsealOptions = UnsealOptions {
    accept_deprecated_v1_data: false,
    key_order: Vec::new(),
};

fn secret_yaml(ns: &str, name: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n{extra_meta}type: Opaque\ndata:\n  foo: YmFy\nstringData:\n  baz: qux\n"
    )
}

fn rename(ss: &SealedSecret, ns: &str, name: &str) -> SealedSecret {
    let mut s = ss.clone();
    s.metadata.namespace = Some(ns.to_owned());
    s.metadata.name = Some(name.to_owned());
    s
}

#[test]
fn round_trip_data_and_string_data() {
    let ss = seal_one(&secret_yaml("myns", "mysecret", ""));
    let keys: Vec<&str> = ss.spec.encrypted_data.keys().collect();
    assert_eq!(keys, ["baz", "foo"]);
    let out = unseal(&ss, &ring_a(), &OPTS).unwrap();
    assert_eq!(out.value("foo"), Some(&b"bar"[..]));
    assert_eq!(out.value("baz"), Some(&b"qux"[..]));
    let s = out.secret();
    assert_eq!(s.metadata.name.as_deref(), Some("mysecret"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("myns"));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert!(s.string_data.is_none());
}

#[test]
fn string_data_wins_over_data() {
    let ss = seal_one(
        "kind: Secret\napiVersion: v1\nmetadata: {name: a, namespace: b}\ndata: {k: ZnJvbWRhdGE=}\nstringData: {k: fromstring}\n",
    );
    assert_eq!(
        unseal(&ss, &ring_a(), &OPTS).unwrap().value("k"),
        Some(&b"fromstring"[..])
    );
}

#[test]
fn strict_label_is_namespace_slash_name() {
    let ss = seal_one(&secret_yaml("myns", "myname", ""));
    let ct = decode_base64(ss.spec.encrypted_data.get("foo").unwrap()).unwrap();
    let opened = ring_a().open(b"myns/myname", &ct, &[]).unwrap();
    assert_eq!(opened.plaintext.as_bytes(), b"bar");
}

#[test]
fn strict_scope_is_bound_to_namespace_and_name() {
    let ss = seal_one(&secret_yaml("team-a", "db", ""));
    assert!(unseal(&ss, &ring_a(), &OPTS).is_ok());
    for (ns, name) in [("team-b", "db"), ("team-a", "other")] {
        let err = unseal(&rename(&ss, ns, name), &ring_a(), &OPTS).unwrap_err();
        assert!(err.is_no_key(), "{err}");
        assert_eq!(err.category(), "decrypt");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("of SealedSecret `{ns}/{name}`")),
            "{msg}"
        );
        assert!(msg.contains("no key could decrypt secret"), "{msg}");
        assert!(verify(&rename(&ss, ns, name), &ring_a(), &OPTS).is_err());
    }
}

#[test]
fn namespace_wide_scope_allows_renaming_within_namespace() {
    let opts = SealOptions {
        scope: Scope::NamespaceWide,
        ..SealOptions::default()
    };
    let ss = seal_with(&secret_yaml("team-a", "db", ""), &opts);
    let ann = ss.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[annotations::NAMESPACE_WIDE], "true");
    let tann = ss
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(tann[annotations::NAMESPACE_WIDE], "true");
    assert!(unseal(&rename(&ss, "team-a", "other"), &ring_a(), &OPTS).is_ok());
    assert!(unseal(&rename(&ss, "team-b", "db"), &ring_a(), &OPTS).is_err());
}

#[test]
fn cluster_wide_scope_unseals_anywhere() {
    let ss = seal_one(&secret_yaml(
        "team-a",
        "db",
        "  annotations:\n    sealedsecrets.bitnami.com/cluster-wide: \"true\"\n",
    ));
    assert_eq!(
        ss.metadata.annotations.as_ref().unwrap()[annotations::CLUSTER_WIDE],
        "true"
    );
    let out = unseal(&rename(&ss, "elsewhere", "renamed"), &ring_a(), &OPTS).unwrap();
    assert_eq!(out.value("foo"), Some(&b"bar"[..]));
    assert_eq!(
        out.secret().metadata.namespace.as_deref(),
        Some("elsewhere")
    );
}

#[test]
fn scope_comes_from_top_level_metadata_only() {
    // Template claims cluster-wide, top level is strict: label stays strict.
    let mut ss = seal_one(&secret_yaml("team-a", "db", ""));
    ss.spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(annotations::CLUSTER_WIDE.into(), "true".into());
    assert!(unseal(&ss, &ring_a(), &OPTS).is_ok());
    assert!(unseal(&rename(&ss, "team-b", "db"), &ring_a(), &OPTS).is_err());
}

#[test]
fn scope_flag_rewrites_input_annotations() {
    let opts = SealOptions {
        scope: Scope::ClusterWide,
        ..SealOptions::default()
    };
    let ss = seal_with(
        &secret_yaml(
            "a",
            "b",
            "  annotations:\n    sealedsecrets.bitnami.com/namespace-wide: \"true\"\n",
        ),
        &opts,
    );
    let ann = ss.metadata.annotations.as_ref().unwrap();
    assert!(!ann.contains_key(annotations::NAMESPACE_WIDE));
    assert_eq!(ann[annotations::CLUSTER_WIDE], "true");
}

#[test]
fn template_data_with_index_dot_field_and_to_json() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    ss.spec.template.data = Some(BTreeMap::from([
        ("idx".to_owned(), r#"{{ index . "foo" }}"#.to_owned()),
        ("dot".to_owned(), "{{ .foo }}-{{ .baz }}".to_owned()),
        ("json".to_owned(), r#"{"v": {{ toJson .foo }}}"#.to_owned()),
        // A template key overwrites an encrypted key of the same name.
        ("foo".to_owned(), "{{ .foo | upper }}".to_owned()),
    ]));
    let out = unseal(&ss, &ring_a(), &OPTS).unwrap();
    assert_eq!(out.value("idx"), Some(&b"bar"[..]));
    assert_eq!(out.value("dot"), Some(&b"bar-qux"[..]));
    assert_eq!(out.value("json"), Some(&br#"{"v": "bar"}"#[..]));
    assert_eq!(out.value("foo"), Some(&b"BAR"[..]));
}

#[test]
fn template_without_encrypted_data() {
    let ss: SealedSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "n", "namespace": "ns"},
        "spec": {"encryptedData": {}, "template": {"data": {"plain": "hello"}}}
    }))
    .unwrap();
    let out = unseal(&ss, &KeyRing::new(), &OPTS).unwrap();
    assert_eq!(out.value("plain"), Some(&b"hello"[..]));
}

#[test]
fn template_errors_are_reported_per_key() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    ss.spec.template.data = Some(BTreeMap::from([
        ("a".to_owned(), "{{ env \"HOME\" }}".to_owned()),
        ("b".to_owned(), "{{ .foo ".to_owned()),
        ("c".to_owned(), "fine".to_owned()),
    ]));
    let err = unseal(&ss, &ring_a(), &OPTS).unwrap_err();
    assert_eq!(err.category(), "template");
    let UnsealError::Items { errors: items, .. } = &err else {
        panic!("{err:?}")
    };
    let keys: Vec<&str> = items.iter().map(ItemError::item).collect();
    assert_eq!(keys, ["a", "b"]);
    assert!(
        err.to_string().contains("function \"env\" not defined"),
        "{err}"
    );
}

/// No template error that can carry a value reaches the error text (which
/// the controller writes to status, Events and logs). Every function that can fail on a value
/// is tried with the plaintext, its length and its derivations as arguments.
#[test]
fn template_errors_never_carry_values() {
    const PASSWORD: &str = "Tr0ub4dor&3-correct-horse-b4ttery";
    let len = PASSWORD.len().to_string();
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: n\n  namespace: ns\nstringData:\n  password: '{PASSWORD}'\n  empty: ''\n"
    );
    let ss = seal_one(&manifest);
    let templates = [
        "{{ fail .password }}",
        r#"{{ fail (printf "was %s" .password) }}"#,
        "{{ fail (b64enc .password) }}",
        "{{ fail (toJson .) }}",
        "{{ .password | upper | fail }}",
        "{{ required .password .empty }}",
        "{{ index (list 1 2 3) (len .password) }}",
        "{{ index .password (len .password) }}",
        "{{ index .password 1000 }}",
        "{{ index (splitList \"\" .password) 1000 }}",
        "{{ slice .password 0 1000 }}",
        "{{ slice .password (len .password) 0 }}",
        "{{ slice (list 1) (len .password) }}",
        "{{ slice .password 3 4 5 6 }}",
        "{{ div 1 (sub (len .password) (len .password)) }}",
        "{{ mod (len .password) 0 }}",
        "{{ lt .password 1 }}",
        "{{ eq (list .password) 1 }}",
        "{{ len (len .password) }}",
        "{{ get .password \"x\" }}",
        "{{ first .password }}",
        "{{ printf (len .password) }}",
        "{{ range .password }}{{ end }}",
        "{{ .password.field }}",
        "{{ (len .password).field }}",
        "{{ index (dict .password 1) 5 }}",
        "{{ repeat 1000000 .password }}",
    ];
    let derived = [
        PASSWORD.to_owned(),
        PASSWORD.to_uppercase(),
        encode_base64(PASSWORD.as_bytes()),
        len.clone(),
        // Types of values computed from the plaintext tell about it too.
        "type string".to_owned(),
        "type int".to_owned(),
    ];
    for t in templates {
        let mut ss = ss.clone();
        ss.spec.template.data = Some(BTreeMap::from([("out".to_owned(), t.to_owned())]));
        let err = unseal(&ss, &ring_a(), &OPTS).expect_err(t);
        assert_eq!(err.category(), "template", "{t}");
        assert!(matches!(err, UnsealError::Render { .. }), "{t}: {err:?}");
        let shown = err.to_string();
        let debug = format!("{err:?}");
        assert_eq!(
            shown,
            "failed to render spec.template.data of SealedSecret `ns/n` (the reason is not \
             reported: it could reveal the decrypted values)",
            "{t}"
        );
        for d in &derived {
            assert!(!shown.contains(d.as_str()), "{t}: `{d}` in {shown}");
            assert!(!debug.contains(d.as_str()), "{t}: `{d}` in {debug}");
        }
    }
}

/// 10,000 items with bad base64 made a 2.9 MB status message. The message
/// is now cut after a few items, and long item names are shortened.
#[test]
fn item_error_messages_are_bounded() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    for i in 0..10_000 {
        ss.spec
            .encrypted_data
            .insert(format!("item-{i:05}-{}", "x".repeat(200)), "not base64!");
    }
    let err = unseal(&ss, &ring_a(), &OPTS).unwrap_err();
    let UnsealError::Items { errors: items, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(items.len(), 10_000);
    let shown = err.to_string();
    assert!(shown.len() <= MAX_MESSAGE_LEN, "{} bytes", shown.len());
    assert!(
        shown.starts_with("failed to decode item `item-00000-xxx"),
        "{shown}"
    );
    assert!(shown.contains("more"), "{shown}");
    let listed = shown.matches("failed to decode item").count();
    assert!(
        shown.ends_with(&format!("; ... and {} more", 10_000 - listed)),
        "{shown}"
    );
    // Item names are cut to 64 characters.
    assert!(!shown.contains(&"x".repeat(60)), "{shown}");

    // A few errors are all listed, without a tail.
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    ss.spec.encrypted_data.insert("a", "!");
    ss.spec.encrypted_data.insert("b", "!");
    let shown = unseal(&ss, &ring_a(), &OPTS).unwrap_err().to_string();
    assert_eq!(
        shown,
        "failed to decode item `a` of SealedSecret `ns/n`: invalid base64; \
         failed to decode item `b` of SealedSecret `ns/n`: invalid base64"
    );
}

/// RSA work per object is capped. A value that names no key costs one RSA
/// operation per loaded key; with two keys, 2,100 of them would cost 4,200.
#[test]
fn rsa_work_per_object_is_capped() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    if let Some(a) = ss.metadata.annotations.as_mut() {
        a.remove(annotations::SEALING_KEY);
    }
    // Structurally valid upstream-format values (a 256-byte RSA block) that no key opens.
    let mut junk = 256u16.to_be_bytes().to_vec();
    junk.extend_from_slice(&[0x5a; 256 + 32]);
    let junk = encode_base64(&junk);
    for i in 0..2_100 {
        ss.spec
            .encrypted_data
            .insert(format!("v{i}"), junk.as_str());
    }
    let mut ring = ring_a();
    ring.insert(key_b().clone());
    let err = decrypt_items(&ss, &ring, &OPTS).unwrap_err();
    assert!(
        matches!(err, UnsealError::TooMuchWork { limit, .. } if limit == MAX_RSA_OPERATIONS),
        "{err}"
    );
    assert_eq!(err.rsa_operations(), MAX_RSA_OPERATIONS);
    assert!(
        err.to_string()
            .contains("needs more than 4096 RSA decryptions"),
        "{err}"
    );

    // More values than the budget: refused before any RSA work.
    for i in 2_100..=MAX_RSA_OPERATIONS {
        ss.spec
            .encrypted_data
            .insert(format!("v{i}"), junk.as_str());
    }
    let ring = ring_a();
    let err = unseal(&ss, &ring, &OPTS).unwrap_err();
    assert!(matches!(err, UnsealError::TooMuchWork { .. }), "{err}");
    assert_eq!(err.rsa_operations(), 0);
}

/// Many template items each just under a per-render limit share the one budget of their
/// object, so an object cannot cost minutes per reconcile: the first to overrun stops it.
#[test]
fn template_time_is_bounded_per_object() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    ss.spec.template.data = Some(
        (0..40)
            .map(|i| {
                (
                    format!("t{i:02}"),
                    "{{ range 100000000 }}{{ end }}".to_owned(),
                )
            })
            .collect(),
    );
    let start = std::time::Instant::now();
    let err = unseal(&ss, &ring_a(), &OPTS).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, UnsealError::Render { .. }), "{err:?}");
    // At most MAX_RENDER_TIME_PER_OBJECT (2 s), whatever the number of items.
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
}

#[test]
fn verify_and_decrypt_items_never_render_templates() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    ss.spec.template.data = Some(BTreeMap::from([(
        "oracle".to_owned(),
        r#"{{ if eq .foo "bar" }}{{ fail "guessed" }}{{ end }}"#.to_owned(),
    )]));
    assert!(unseal(&ss, &ring_a(), &OPTS).is_err());
    let opened = verify(&ss, &ring_a(), &OPTS).unwrap();
    assert_eq!(opened.len(), 2);
    let items = decrypt_items(&ss, &ring_a(), &OPTS).unwrap();
    assert_eq!(items.get("foo").unwrap().as_bytes(), b"bar");
    assert!(items.get("oracle").is_none());
}

#[test]
fn skip_owner_references() {
    let mut ss = seal_one(&secret_yaml(
        "ns",
        "n",
        "  annotations:\n    sealedsecrets.bitnami.com/skip-set-owner-references: \"true\"\n",
    ));
    assert!(
        unseal(&ss, &ring_a(), &OPTS)
            .unwrap()
            .secret()
            .metadata
            .owner_references
            .is_none()
    );
    // Without the annotation: exactly one controller ownerReference.
    ss.spec.template.metadata.as_mut().unwrap().annotations = None;
    ss.metadata.uid = Some("uid-1".into());
    let out = unseal(&ss, &ring_a(), &OPTS).unwrap();
    let refs = out.secret().metadata.owner_references.clone().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].api_version, "bitnami.com/v1alpha1");
    assert_eq!(refs[0].kind, "SealedSecret");
    assert_eq!(refs[0].name, "n");
    assert_eq!(refs[0].uid, "uid-1");
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(refs[0].block_owner_deletion, None);
}

#[test]
fn metadata_preservation() {
    let ss = seal_one(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: n\n  namespace: ns\n  labels: {app: web}\n  annotations: {note: hi}\n  finalizers: [example.com/f]\ntype: kubernetes.io/tls\nimmutable: true\nstringData: {tls.crt: c, tls.key: k}\n",
    );
    // Top-level labels are not propagated; template's are.
    assert!(ss.metadata.labels.is_none());
    let out = unseal(&ss, &ring_a(), &OPTS).unwrap();
    let s = out.secret();
    assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "web");
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["note"], "hi");
    assert_eq!(
        s.metadata.finalizers.as_deref(),
        Some(&["example.com/f".to_owned()][..])
    );
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(s.immutable, Some(true));
    assert!(
        !s.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(annotations::SEALING_KEY)
    );
}

fn legacy(ns: &str, name: &str) -> SealedSecret {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ignored", "namespace": "ignored", "labels": {"l": "v"}},
        "type": "Opaque",
        "data": {"foo": "YmFy"}
    });
    let ct = seal(
        pub_a(),
        &Scope::Strict.label(ns, name),
        serde_json::to_string(&secret).unwrap().as_bytes(),
    )
    .unwrap();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"data": encode_base64(&ct), "encryptedData": {}}
    }))
    .unwrap()
}

#[test]
fn v1_format_accepted_only_when_allowed() {
    let ss = legacy("ns", "n");
    let err = unseal(&ss, &ring_a(), &OPTS).unwrap_err();
    assert!(matches!(err, UnsealError::DeprecatedData { .. }));
    assert!(err.to_string().contains("using deprecated 'data' field"));
    let allow = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..OPTS
    };
    let out = unseal(&ss, &ring_a(), &allow).unwrap();
    assert_eq!(out.value("foo"), Some(&b"bar"[..]));
    // Name and namespace forced to the SealedSecret's.
    assert_eq!(out.secret().metadata.name.as_deref(), Some("n"));
    assert_eq!(out.secret().metadata.namespace.as_deref(), Some("ns"));
    assert_eq!(out.secret().metadata.labels.as_ref().unwrap()["l"], "v");
    // Reseal converts it to encryptedData.
    let items = decrypt_items(&ss, &ring_a(), &allow).unwrap();
    let re = reseal(&ss, &items, &[key_b().public_key()]).unwrap();
    assert!(re.spec.data.is_none());
    assert_eq!(re.spec.template.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        unseal(&re, &ring_b(), &OPTS).unwrap().value("foo"),
        Some(&b"bar"[..])
    );
}

/// A legacy object's decrypted metadata (here with a last-applied annotation
/// holding the plaintext, and server fields) never reaches the resealed output.
#[test]
fn reseal_of_legacy_data_strips_last_applied_and_server_fields() {
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": "n", "namespace": "ns", "uid": "1234", "resourceVersion": "99",
            "creationTimestamp": "2020-01-01T00:00:00Z", "generation": 3,
            "labels": {"l": "v"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"foo\":\"hunter2\"}}",
                "kubecfg.ksonnet.io/last-applied-configuration": "hunter2",
                "keep": "me"
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}],
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
        },
        "type": "Opaque",
        "data": {"foo": "aHVudGVyMg=="}
    });
    let ct = seal(
        pub_a(),
        &Scope::Strict.label("ns", "n"),
        serde_json::to_string(&secret).unwrap().as_bytes(),
    )
    .unwrap();
    let ss: SealedSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "n", "namespace": "ns", "uid": "abc", "resourceVersion": "7",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"data": encode_base64(&ct), "encryptedData": {}}
    }))
    .unwrap();
    let allow = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..OPTS
    };
    let items = decrypt_items(&ss, &ring_a(), &allow).unwrap();
    let re = reseal(&ss, &items, &[key_b().public_key()]).unwrap();
    let json = sealed_secrets_api::output::to_json(&re);
    assert!(!json.contains("hunter2"), "{json}");
    assert!(!json.contains("last-applied-configuration"), "{json}");
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "ownerReferences",
    ] {
        assert!(!json.contains(field), "{field} in {json}");
    }
    let meta = re.spec.template.metadata.as_ref().unwrap();
    assert_eq!(meta.labels.as_ref().unwrap()["l"], "v");
    assert_eq!(meta.annotations.as_ref().unwrap()["keep"], "me");
    assert_eq!(
        unseal(&re, &ring_b(), &OPTS).unwrap().value("foo"),
        Some(&b"hunter2"[..])
    );
}

#[test]
fn both_fields_rejected() {
    let mut ss = legacy("ns", "n");
    ss.spec.encrypted_data.insert("x", "AgAA");
    let allow = UnsealOptions {
        accept_deprecated_v1_data: true,
        ..OPTS
    };
    assert!(matches!(
        unseal(&ss, &ring_a(), &allow).unwrap_err(),
        UnsealError::BothFields { .. }
    ));
    assert!(verify(&ss, &ring_a(), &allow).is_err());
}

#[test]
fn invalid_base64_is_reported_with_item_key() {
    let mut ss = seal_one(&secret_yaml("ns", "n", ""));
    ss.spec.encrypted_data.insert("broken", "!!!not base64");
    let err = unseal(&ss, &ring_a(), &OPTS).unwrap_err();
    let UnsealError::Items { errors: items, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], ItemError::Base64 { item, .. } if item == "broken"));
    assert!(
        err.to_string()
            .contains("item `broken` of SealedSecret `ns/n`"),
        "{err}"
    );
}

#[test]
fn lenient_encrypted_data_reports_non_string_items() {
    let json = serde_json::json!([
        {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
         "metadata": {"name": "bad", "namespace": "ns"},
         "spec": {"encryptedData": {"good": "AgAA", "num": 5, "obj": {"a": 1}}}},
        {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
         "metadata": {"name": "weird", "namespace": "ns"},
         "spec": {"encryptedData": "oops"}}
    ]);
    let list: Vec<SealedSecret> = serde_json::from_value(json).unwrap();
    let bad = &list[0];
    assert_eq!(bad.spec.encrypted_data.len(), 1);
    assert_eq!(
        bad.spec.encrypted_data.invalid_keys().collect::<Vec<_>>(),
        ["num", "obj"]
    );
    let err = verify(bad, &ring_a(), &OPTS).unwrap_err();
    let UnsealError::Items { errors: items, .. } = err else {
        panic!()
    };
    assert!(
        items
            .iter()
            .any(|e| matches!(e, ItemError::NotAString { item, .. } if item == "num"))
    );
    assert!(list[1].spec.encrypted_data.was_not_a_map());
    assert!(matches!(
        unseal(&list[1], &ring_a(), &OPTS).unwrap_err(),
        UnsealError::EncryptedDataNotAMap { .. }
    ));
}

#[test]
fn errors_never_contain_secret_values() {
    let ss = seal_one(
        "kind: Secret\napiVersion: v1\nmetadata: {name: n, namespace: ns}\nstringData: {pw: SUPERSECRETVALUE}\n",
    );
    let mut t = ss.clone();
    t.spec.template.data = Some(BTreeMap::from([(
        "x".to_owned(),
        "{{ .pw | int | printf \"%d\" | fail }}{{ index .pw 99 }}".to_owned(),
    )]));
    let err = unseal(&t, &ring_a(), &OPTS).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("SUPERSECRET"));
    let out = unseal(&ss, &ring_a(), &OPTS).unwrap();
    assert!(!format!("{out:?}").contains("SUPERSECRET"));
    let items = decrypt_items(&ss, &ring_a(), &OPTS).unwrap();
    assert!(!format!("{items:?}").contains("SUPERSECRET"));
    let input =
        parse_secrets(b"kind: Secret\nmetadata: {name: n}\nstringData: {pw: SUPERSECRETVALUE}\n")
            .unwrap();
    assert!(!format!("{input:?}").contains("SUPERSECRET"));
}

#[test]
fn sealing_key_hint_and_opened_by() {
    let ss = seal_one(&secret_yaml("ns", "n", ""));
    let fp = key_a().fingerprint().to_string();
    assert_eq!(
        ss.metadata.annotations.as_ref().unwrap()[annotations::SEALING_KEY],
        fp
    );
    let tann = ss
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap_or_default();
    assert!(!tann.contains_key(annotations::SEALING_KEY));
    assert_eq!(
        sealed_secrets_api::sealing_key_hints(&ss.metadata),
        vec![key_a().fingerprint().clone()]
    );
    let mut ring = ring_b();
    ring.insert(key_a().clone());
    let out = unseal(&ss, &ring, &OPTS).unwrap();
    assert!(out.opened_by().values().all(|f| f == key_a().fingerprint()));
    assert_eq!(out.key_usage()[key_a().fingerprint()], 2);
}

#[test]
fn multiple_recipients_each_open() {
    let ss = seal_manifests(
        secret_yaml("ns", "n", "").as_bytes(),
        &[pub_a(), key_b().public_key()],
        &SealOptions::default(),
    )
    .unwrap()
    .remove(0);
    let hint = &ss.metadata.annotations.as_ref().unwrap()[annotations::SEALING_KEY];
    assert_eq!(hint.split(',').count(), 2);
    assert_eq!(
        unseal(&ss, &ring_a(), &OPTS).unwrap().value("foo"),
        Some(&b"bar"[..])
    );
    assert_eq!(
        unseal(&ss, &ring_b(), &OPTS).unwrap().value("foo"),
        Some(&b"bar"[..])
    );
}

#[test]
fn sealing_rules_namespace_name_and_server_fields() {
    let input = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: orig\n  uid: u\n  resourceVersion: \"5\"\n  generation: 2\n  creationTimestamp: \"2020-01-01T00:00:00Z\"\n  selfLink: /x\n  ownerReferences: [{apiVersion: v1, kind: X, name: y, uid: z}]\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":\"leak\"}'\n    kubecfg.ksonnet.io/last-applied-configuration: leak\n    keep: me\nstringData: {a: b}\n";
    let opts = SealOptions {
        name: Some("renamed".into()),
        default_namespace: "ctx-ns".into(),
        ..SealOptions::default()
    };
    let ss = seal_with(input, &opts);
    assert_eq!(ss.metadata.name.as_deref(), Some("renamed"));
    assert_eq!(ss.metadata.namespace.as_deref(), Some("ctx-ns"));
    let t = ss.spec.template.metadata.as_ref().unwrap();
    assert_eq!(t.name.as_deref(), Some("renamed"));
    assert!(t.uid.is_none() && t.resource_version.is_none() && t.generation.is_none());
    assert!(t.creation_timestamp.is_none() && t.self_link.is_none());
    assert!(t.owner_references.is_none());
    let ann = t.annotations.as_ref().unwrap();
    assert_eq!(ann.len(), 1);
    assert_eq!(ann["keep"], "me");
    assert!(!sealed_secrets_api::output::to_json(&ss).contains("leak"));
    assert!(unseal(&ss, &ring_a(), &OPTS).is_ok());
}

#[test]
fn explicit_namespace_mismatch_is_an_error() {
    let opts = SealOptions {
        explicit_namespace: Some("other".into()),
        ..SealOptions::default()
    };
    let err = seal_manifests(secret_yaml("ns", "n", "").as_bytes(), &[pub_a()], &opts).unwrap_err();
    assert!(matches!(err, SealingError::NamespaceMismatch { .. }));
    assert!(err.to_string().starts_with("namespace mismatch"));
    // Same namespace, or no namespace in the Secret: fine.
    let opts = SealOptions {
        explicit_namespace: Some("ns".into()),
        ..SealOptions::default()
    };
    assert!(seal_manifests(secret_yaml("ns", "n", "").as_bytes(), &[pub_a()], &opts).is_ok());
    let opts = SealOptions {
        explicit_namespace: Some("flagged".into()),
        default_namespace: "ctx".into(),
        ..SealOptions::default()
    };
    let ss = seal_with(
        "kind: Secret\nmetadata: {name: n}\nstringData: {a: b}\n",
        &opts,
    );
    assert_eq!(ss.metadata.namespace.as_deref(), Some("flagged"));
}

#[test]
fn cluster_wide_keeps_empty_namespace() {
    let opts = SealOptions {
        scope: Scope::ClusterWide,
        explicit_namespace: Some("x".into()),
        ..SealOptions::default()
    };
    let ss = seal_with(
        "kind: Secret\nmetadata: {name: n}\nstringData: {a: b}\n",
        &opts,
    );
    assert!(ss.metadata.namespace.is_none());
    let out = unseal(&rename(&ss, "anywhere", "n"), &ring_a(), &OPTS).unwrap();
    assert_eq!(out.value("a"), Some(&b"b"[..]));
}

#[test]
fn upstream_error_strings() {
    let e = seal_manifests(b"", &[pub_a()], &SealOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no secrets found. Ensure the input is valid and UTF-8 encoded")
    );
    let e = seal_manifests(b"---\n---\n", &[pub_a()], &SealOptions::default()).unwrap_err();
    assert!(matches!(e, SealingError::NoSecrets));
    let e = seal_manifests(
        b"kind: Secret\nmetadata: {name: n}\n",
        &[pub_a()],
        &SealOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("secret.data is empty in input Secret, assuming this is an error and aborting. To work with empty data, --allow-empty-data can be used"));
    let allow = SealOptions {
        allow_empty_data: true,
        ..SealOptions::default()
    };
    let ss = seal_with("kind: Secret\nmetadata: {name: n}\n", &allow);
    assert!(ss.spec.encrypted_data.is_empty());
    let e = seal_manifests(
        b"kind: Secret\nstringData: {a: b}\n",
        &[pub_a()],
        &SealOptions::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("missing metadata.name in input Secret")
    );
}

#[test]
fn non_secret_kind_names_document_index() {
    let input = "kind: Secret\nmetadata: {name: a}\nstringData: {a: b}\n---\n---\nkind: ConfigMap\nmetadata: {name: c}\n";
    let e = seal_manifests(input.as_bytes(), &[pub_a()], &SealOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "document 2 is a ConfigMap, expected kind `Secret`"
    );
}

#[test]
fn multi_document_yaml_and_json_streams() {
    let yaml = format!(
        "---\n{}---\n\n---\n{}",
        secret_yaml("a", "one", ""),
        secret_yaml("b", "two", "")
    );
    let v = seal_manifests(yaml.as_bytes(), &[pub_a()], &SealOptions::default()).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].metadata.name.as_deref(), Some("two"));
    let json = r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x","namespace":"n"},"data":{"k":"dg=="}}
{"kind":"Secret","apiVersion":"v1","metadata":{"name":"y","namespace":"n"},"data":{"k":"dg=="}}"#;
    let v = seal_manifests(json.as_bytes(), &[pub_a()], &SealOptions::default()).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(
        unseal(&v[1], &ring_a(), &OPTS).unwrap().value("k"),
        Some(&b"v"[..])
    );
}

#[test]
fn raw_sealing() {
    let ct = seal_raw(b"value", &[pub_a()], Scope::Strict, Some("ns"), Some("n")).unwrap();
    assert!(!ct.ends_with('\n'));
    let opened = ring_a()
        .open(b"ns/n", &decode_base64(&ct).unwrap(), &[])
        .unwrap();
    assert_eq!(opened.plaintext.as_bytes(), b"value");
    let e = seal_raw(b"v", &[pub_a()], Scope::Strict, None, Some("n")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "must provide the --namespace flag with --raw and --scope strict|namespace-wide"
    );
    let e = seal_raw(b"v", &[pub_a()], Scope::NamespaceWide, None, None).unwrap_err();
    assert!(matches!(e, SealingError::RawNeedsNamespace));
    let e = seal_raw(b"v", &[pub_a()], Scope::Strict, Some("ns"), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "must provide the --name flag with --raw and --scope strict"
    );
    let ct = seal_raw(b"v", &[pub_a()], Scope::ClusterWide, None, None).unwrap();
    assert!(
        ring_a()
            .open(b"", &decode_base64(&ct).unwrap(), &[])
            .is_ok()
    );
}

#[test]
fn merge_into_uses_target_scope() {
    let mut target = seal_with(
        &secret_yaml("ns", "n", ""),
        &SealOptions {
            scope: Scope::NamespaceWide,
            ..SealOptions::default()
        },
    );
    // The update claims cluster-wide and another namespace: irrelevant, target wins.
    let update = parse_secrets(
        b"kind: Secret\nmetadata:\n  name: other\n  namespace: elsewhere\n  labels: {new: label}\n  annotations: {sealedsecrets.bitnami.com/cluster-wide: \"true\", extra: a}\nstringData: {added: yes-added}\n",
    )
    .unwrap();
    merge_into(&mut target, update, &[key_b().public_key()]).unwrap();
    let t = target.spec.template.metadata.as_ref().unwrap();
    assert_eq!(t.labels.as_ref().unwrap()["new"], "label");
    let ann = t.annotations.as_ref().unwrap();
    assert_eq!(ann["extra"], "a");
    assert!(!ann.contains_key(annotations::CLUSTER_WIDE));
    let hint = &target.metadata.annotations.as_ref().unwrap()[annotations::SEALING_KEY];
    assert_eq!(hint.split(',').count(), 2);
    let mut ring = ring_a();
    ring.insert(key_b().clone());
    // Namespace-wide: still unseals after renaming within ns, and merged item is included.
    let out = unseal(&rename(&target, "ns", "renamed"), &ring, &OPTS).unwrap();
    assert_eq!(out.value("added"), Some(&b"yes-added"[..]));
    assert_eq!(out.value("foo"), Some(&b"bar"[..]));
}

#[test]
fn reseal_preserves_template_and_uses_new_key() {
    let mut ss = seal_one(&secret_yaml("ns", "n", "  labels: {app: x}\n"));
    ss.spec.template.immutable = Some(true);
    ss.spec.template.data = Some(BTreeMap::from([("t".to_owned(), "{{ .foo }}!".to_owned())]));
    ss.metadata.resource_version = Some("9".into());
    ss.status = Some(Default::default());
    let items = decrypt_items(&ss, &ring_a(), &OPTS).unwrap();
    let re = reseal(&ss, &items, &[key_b().public_key()]).unwrap();
    assert_eq!(re.spec.template, ss.spec.template);
    assert!(re.status.is_none());
    assert!(re.metadata.resource_version.is_none());
    assert_eq!(
        re.metadata.annotations.as_ref().unwrap()[annotations::SEALING_KEY],
        key_b().fingerprint().to_string()
    );
    assert!(unseal(&re, &ring_a(), &OPTS).is_err());
    let out = unseal(&re, &ring_b(), &OPTS).unwrap();
    assert_eq!(out.value("t"), Some(&b"bar!"[..]));
    assert_eq!(out.secret().immutable, Some(true));
}

#[test]
fn parse_sealed_secrets_checks_kind() {
    let ss = seal_one(&secret_yaml("ns", "n", ""));
    let json = sealed_secrets_api::output::to_json(&ss);
    let yaml = sealed_secrets_api::output::to_yaml(&ss).unwrap();
    assert_eq!(
        manifest::parse_sealed_secrets(json.as_bytes()).unwrap()[0],
        ss
    );
    assert_eq!(
        manifest::parse_sealed_secrets(yaml.as_bytes()).unwrap()[0],
        ss
    );
    let e = manifest::parse_sealed_secrets(secret_yaml("a", "b", "").as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "document 1 is a Secret, expected kind `SealedSecret`"
    );
}
