//! Sealing with either kubeseal: one SealedSecret of every kind, and batches.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use harness::cluster::random_suffix;
use serde_json::{Value, json};

use crate::common::{Env, Expect, b64, expect, secret_yaml};

/// Seals, with `kubeseal` (upstream's or ours) and the certificate `cert` (file or URL), one
/// SealedSecret of every kind the issue lists into `ns`, creates them, and returns what each
/// must become: strict, namespace-wide (renamed), cluster-wide (renamed, moved), a template
/// (type, immutable, labels, Go-template data), a multi-document stream, `--raw` (strict and
/// cluster-wide), and `--merge-into` (also into a file `other`, the other project's kubeseal,
/// sealed).
pub fn seal_every_kind(
    env: &Env,
    kubeseal: &Path,
    other: &Path,
    cert: &str,
    ns: &str,
) -> Vec<Expect> {
    let seal = |args: &[&str], stdin: &str| {
        let mut full = vec!["--cert", cert];
        full.extend_from_slice(args);
        env.kubeseal(kubeseal, &full, stdin)
    };
    let mut expects = Vec::new();

    // Strict: data and stringData, labels and annotations.
    let strict = seal(
        &["-o", "yaml"],
        &secret_yaml(
            Some(ns),
            "strict",
            "  labels:\n    app: peers\n  annotations:\n    team: blue\n",
            &format!(
                "type: Opaque\ndata:\n  user: {}\nstringData:\n  password: \"s3cr3t\\nline2\"\n",
                b64("admin")
            ),
        ),
    );
    env.create(&strict);
    expects.push(expect(
        "strict",
        &[("user", "admin"), ("password", "s3cr3t\nline2")],
    ));

    // Namespace-wide, then renamed: the name is not part of the label.
    let nw = seal(
        &["--scope", "namespace-wide"],
        &secret_yaml(
            Some(ns),
            "nw-orig",
            "",
            "stringData:\n  k: namespace-wide\n",
        ),
    );
    let mut nw: Value = serde_json::from_str(&nw).unwrap();
    nw["metadata"]["name"] = json!("nw-renamed");
    env.create(&nw.to_string());
    expects.push(expect("nw-renamed", &[("k", "namespace-wide")]));

    // Cluster-wide, sealed without a namespace, created renamed in `ns`.
    let cw = seal(
        &["--scope", "cluster-wide"],
        &secret_yaml(None, "cw-orig", "", "stringData:\n  k: cluster-wide\n"),
    );
    let mut cw: Value = serde_json::from_str(&cw).unwrap();
    cw["metadata"]["name"] = json!("cw-renamed");
    cw["metadata"]["namespace"] = json!(ns);
    env.create(&cw.to_string());
    expects.push(expect("cw-renamed", &[("k", "cluster-wide")]));

    // Template: type, immutable, labels and annotations carried by spec.template, plus a
    // Go-template value rendered from the decrypted ones.
    let tpl = seal(
        &[],
        &secret_yaml(
            Some(ns),
            "tpl",
            "  labels:\n    tier: db\n  annotations:\n    owner: dba\n",
            "type: kubernetes.io/basic-auth\nimmutable: true\nstringData:\n  username: app\n  password: pw\n",
        ),
    );
    let mut tpl: Value = serde_json::from_str(&tpl).unwrap();
    tpl["spec"]["template"]["data"] =
        json!({"url": "postgres://{{ index . \"username\" }}:{{ index . \"password\" }}@db"});
    env.create(&tpl.to_string());
    expects.push(expect(
        "tpl",
        &[
            ("username", "app"),
            ("password", "pw"),
            ("url", "postgres://app:pw@db"),
        ],
    ));

    // Multi-document stream, YAML out.
    let docs: Vec<String> = (1..=3)
        .map(|i| {
            secret_yaml(
                Some(ns),
                &format!("md-{i}"),
                "",
                &format!("stringData:\n  num: \"{i}\"\n"),
            )
        })
        .collect();
    let md = seal(&["-o", "yaml"], &docs.join("---\n"));
    assert_eq!(md.matches("kind: SealedSecret").count(), 3, "{md}");
    env.create(&md);
    for i in 1..=3 {
        expects.push(expect(&format!("md-{i}"), &[("num", &i.to_string())]));
    }

    // --raw: strict (value from --from-file) and cluster-wide (value on stdin), assembled by
    // hand as the user would.
    let value_file = env.write(&format!("raw-{}", random_suffix(4)), "raw strict value");
    let raw_strict = seal(
        &[
            "--raw",
            "--scope",
            "strict",
            "--namespace",
            ns,
            "--name",
            "raw-strict",
            "--from-file",
            &value_file.to_string_lossy(),
        ],
        "",
    );
    let raw_cw = seal(
        &["--raw", "--scope", "cluster-wide"],
        "raw cluster-wide value",
    );
    for (name, ciphertext, annotations) in [
        ("raw-strict", &raw_strict, json!({})),
        (
            "raw-cw",
            &raw_cw,
            json!({"sealedsecrets.bitnami.com/cluster-wide": "true"}),
        ),
    ] {
        assert!(
            !ciphertext.contains('\n') && B64.decode(ciphertext.as_bytes()).is_ok(),
            "--raw prints bare base64: {ciphertext:?}"
        );
        let ss = json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {
                "encryptedData": {"token": ciphertext},
                "template": {"metadata": {"name": name, "namespace": ns, "annotations": annotations}},
            },
        });
        env.create(&ss.to_string());
    }
    expects.push(expect("raw-strict", &[("token", "raw strict value")]));
    expects.push(expect("raw-cw", &[("token", "raw cluster-wide value")]));

    // --merge-into: a sealed file, then items added and one replaced in place; once into a
    // file this kubeseal sealed, once into a file the other project's kubeseal sealed.
    for (first, name) in [(kubeseal, "merged"), (other, "merged-cross")] {
        let merged_file = env.path(&format!("{name}-{}.json", random_suffix(4)));
        env.kubeseal(
            first,
            &["--cert", cert, "-w", &merged_file.to_string_lossy()],
            &secret_yaml(Some(ns), name, "", "stringData:\n  a: one\n  b: two\n"),
        );
        let out = seal(
            &["--merge-into", &merged_file.to_string_lossy()],
            &secret_yaml(Some(ns), name, "", "stringData:\n  b: twenty\n  c: three\n"),
        );
        assert!(
            out.trim().is_empty(),
            "--merge-into writes the file only: {out}"
        );
        let merged = std::fs::read_to_string(&merged_file).unwrap();
        let merged_json: Value = serde_json::from_str(&merged).unwrap();
        let items: Vec<&String> = merged_json["spec"]["encryptedData"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(items, ["a", "b", "c"], "{merged}");
        env.create(&merged);
        expects.push(expect(
            name,
            &[("a", "one"), ("b", "twenty"), ("c", "three")],
        ));
    }

    expects
}

/// `count` strict Secrets `m-0..` in `ns`, sealed in one multi-document call.
pub fn seal_many(
    env: &Env,
    kubeseal: &Path,
    cert: &str,
    ns: &str,
    prefix: &str,
    count: usize,
) -> Vec<Expect> {
    let docs: Vec<String> = (0..count)
        .map(|i| {
            secret_yaml(
                Some(ns),
                &format!("{prefix}-{i}"),
                "  labels:\n    batch: migration\n",
                &format!("stringData:\n  i: \"{i}\"\n  name: {prefix}-{i}\n"),
            )
        })
        .collect();
    let sealed = env.kubeseal(
        kubeseal,
        &["--cert", cert, "-o", "yaml"],
        &docs.join("---\n"),
    );
    env.create(&sealed);
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-{i}");
            expect(&name, &[("i", &i.to_string()), ("name", &name)])
        })
        .collect()
}
