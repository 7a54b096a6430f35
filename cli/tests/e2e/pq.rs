//! Post-quantum sealing against the cluster: the recipient fetched through the service proxy
//! (`GET /v1/age-recipient.txt`, 404 when the newest key has none) and from the cert
//! ConfigMap (`age-recipient.txt`), `--validate` and `--re-encrypt` of post-quantum values
//! through the controller, and `keys backup` of key Secrets carrying `age.key` (plaintext and
//! encrypted backups, `--age-identities`). The controller is an in-test fake speaking that
//! contract, as for the RSA cases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::cluster::Cluster;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use sealed_secrets_api::{UnsealOptions, decrypt_items, parse_sealed_secrets, reseal, verify};
use sealed_secrets_crypto::{
    Certificate, KeyRing, PqIdentity, ValueFormat, decode_base64, value_format,
};

use super::common::{self, SECRET_YAML, fixture};
use super::{CTRL_NAME, CTRL_NS, expose_controller, fake_controller, kubeseal, ring, serve};

fn pq_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pq-fixtures")
        .join(name)
}

fn identity(n: u8) -> PqIdentity {
    let text = std::fs::read_to_string(pq_fixture(&format!("identity-{n}.txt"))).unwrap();
    PqIdentity::parse_file(&text).unwrap().remove(0)
}

fn recipient_line(n: u8) -> String {
    format!("{}\n", identity(n).recipient())
}

fn pq_ring() -> KeyRing {
    let mut r = ring(&["key-a.pem"]);
    r.insert_pq(identity(1));
    r
}

fn all_pq(text: &str) -> bool {
    let list = parse_sealed_secrets(text.as_bytes()).unwrap();
    !list.is_empty()
        && list.iter().all(|ss| {
            ss.spec
                .encrypted_data
                .iter()
                .all(|(_, v)| value_format(&decode_base64(v).unwrap()) == ValueFormat::PostQuantum)
        })
}

/// The post-quantum contract: identity-1's recipient served, verify opens with key-a and
/// identity-1, rotate re-seals for cert-b (RSA: what a controller without post-quantum
/// rotation would answer).
fn handle_pq(path: &str, body: &[u8]) -> (&'static str, Vec<u8>) {
    let opts = UnsealOptions::default();
    match path {
        "/v1/age-recipient.txt" => ("200 OK", recipient_line(1).into_bytes()),
        "/v1/cert.pem" => ("200 OK", std::fs::read(fixture("cert-a.pem")).unwrap()),
        "/v1/verify" => match parse_sealed_secrets(body) {
            Ok(list) if list.len() == 1 => match verify(&list[0], &pq_ring(), &opts) {
                Ok(_) => ("200 OK", Vec::new()),
                Err(_) => ("409 Conflict", Vec::new()),
            },
            _ => ("500 Internal Server Error", Vec::new()),
        },
        "/v1/rotate" => {
            let Ok(list) = parse_sealed_secrets(body) else {
                return ("500 Internal Server Error", Vec::new());
            };
            let Ok(items) = decrypt_items(&list[0], &pq_ring(), &opts) else {
                return ("500 Internal Server Error", Vec::new());
            };
            let cert =
                Certificate::from_pem(&std::fs::read(fixture("cert-b.pem")).unwrap()).unwrap();
            let new = reseal(&list[0], &items, &[cert.public_key()]).unwrap();
            (
                "200 OK",
                sealed_secrets_api::output::to_json(&new).into_bytes(),
            )
        }
        _ => ("404 Not Found", b"404 page not found".to_vec()),
    }
}

fn unseal_with(dir: &Path, key: &Path, sealed: &str) -> common::Run {
    common::run(
        dir,
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            &key.display().to_string(),
        ],
        sealed.as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_quantum_sealing_through_the_controller() {
    let cluster = Cluster::start_private().unwrap();
    expose_controller(&cluster, CTRL_NAME, &serve(handle_pq)).await;
    let d = tempfile::tempdir().unwrap();
    let id1 = pq_fixture("identity-1.txt");

    let r = kubeseal(&cluster, d.path(), &["--fetch-recipient"], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, recipient_line(1));

    let r = kubeseal(
        &cluster,
        d.path(),
        &["--post-quantum"],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(all_pq(&r.stdout), "{}", r.stdout);
    assert_eq!(unseal_with(d.path(), &id1, &r.stdout).code, 0);
    let sealed = r.stdout;

    // A team's default: the variable alone turns it on, and =false turns it off again.
    let mut c = common::cmd(d.path());
    c.env("KUBECONFIG", cluster.kubeconfig())
        .env("SEALED_SECRETS_POST_QUANTUM", "true");
    let r = common::run_cmd(&mut c, SECRET_YAML.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(all_pq(&r.stdout), "{}", r.stdout);
    let r = common::run_cmd(c.arg("--post-quantum=false"), SECRET_YAML.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!all_pq(&r.stdout), "{}", r.stdout);

    let r = kubeseal(
        &cluster,
        d.path(),
        &["--raw", "--post-quantum", "-n", "team-a", "--name", "db"],
        b"v",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("YWdlLWVuY3J5cHRpb24ub3JnL3Yx"),
        "{}",
        r.stdout
    );

    // --validate sends post-quantum values to /v1/verify; a moved one does not open.
    let r = kubeseal(&cluster, d.path(), &["--validate"], sealed.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let moved = sealed.replace("\"name\": \"db-creds\"", "\"name\": \"moved\"");
    assert_ne!(moved, sealed);
    let r = kubeseal(&cluster, d.path(), &["--validate"], moved.as_bytes());
    assert_eq!(r.code, 1);

    // --re-encrypt: an answer that turns post-quantum items into RSA is refused, the file
    // left as it was.
    let f = d.path().join("s.json");
    std::fs::write(&f, &sealed).unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--re-encrypt", "-f", &f.display().to_string()],
        b"",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("RSA values for post-quantum item(s) `password`, `username`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: re-encrypt offline"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), sealed);
    // RSA objects still re-encrypt as before.
    let rsa = common::run(
        d.path(),
        &["--cert", &fixture("cert-a.pem").display().to_string()],
        SECRET_YAML.as_bytes(),
    );
    let r = kubeseal(&cluster, d.path(), &["--re-encrypt"], rsa.stdout.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_without_a_recipient_is_told_apart() {
    let cluster = Cluster::start_private().unwrap();
    expose_controller(&cluster, CTRL_NAME, &fake_controller()).await;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.json");
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--post-quantum", "-w", &out.display().to_string()],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(
            "error: no post-quantum recipient in the controller's /v1/age-recipient.txt\nhint: "
        ),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    let r = kubeseal(&cluster, d.path(), &["--fetch-recipient"], b"");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_from_the_cert_configmap() {
    let cluster = Cluster::start_private().unwrap();
    let client = cluster.client().await.unwrap();
    let api = Api::<ConfigMap>::namespaced(client, CTRL_NS);
    let mk = |name: &str, with_recipient: bool| {
        let mut data = BTreeMap::from([(
            "cert.pem".to_owned(),
            std::fs::read_to_string(fixture("cert-b.pem")).unwrap(),
        )]);
        if with_recipient {
            data.insert("age-recipient.txt".to_owned(), recipient_line(2));
        }
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(CTRL_NS.into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    };
    for cm in [mk("sealed-secrets-cert", true), mk("old-controller", false)] {
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let r = kubeseal(
        &cluster,
        d.path(),
        &["--cert-from-configmap", "--fetch-recipient"],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, recipient_line(2));
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "--cert-from-configmap",
            "--post-quantum",
            "--scope",
            "cluster-wide",
        ],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(all_pq(&r.stdout), "{}", r.stdout);
    assert_eq!(
        unseal_with(d.path(), &pq_fixture("identity-2.txt"), &r.stdout).code,
        0
    );
    assert_eq!(
        unseal_with(d.path(), &pq_fixture("identity-1.txt"), &r.stdout).code,
        1
    );
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "--cert-from-configmap",
            "--cert-configmap",
            "old-controller",
            "--post-quantum",
        ],
        SECRET_YAML.as_bytes(),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "no post-quantum recipient in ConfigMap `kube-system/old-controller` (data key `age-recipient.txt`)"
        ),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_backups_carry_age_key_and_export_age_identities() {
    let cluster = Cluster::start_private().unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Secret> = Api::namespaced(client, CTRL_NS);
    let list = sealed_secrets_api::manifest::parse_documents(
        &std::fs::read(pq_fixture("key-secret.yaml")).unwrap(),
    )
    .unwrap()
    .remove(0);
    for item in list["items"].as_array().unwrap() {
        let s: Secret = serde_json::from_value(item.clone()).unwrap();
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    let d = tempfile::tempdir().unwrap();
    let sealed = std::fs::read_to_string(pq_fixture("mixed.yaml")).unwrap();
    let plain = d.path().join("keys.yaml");
    let ids = d.path().join("ids.txt");
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "backup",
            "-o",
            &plain.display().to_string(),
            "--insecure-plaintext",
            "--age-identities",
            &ids.display().to_string(),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&ids).unwrap();
    let got = PqIdentity::parse_file(&text).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipient(), identity(1).recipient());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&ids).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The backup opens both items of the mixed object; the identity file the post-quantum one.
    let r = unseal_with(d.path(), &plain, &sealed);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\"token\": \"dDBrM24=\""), "{}", r.stdout);
    let r = unseal_with(d.path(), &ids, &sealed);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("(password)"), "{}", r.stderr);

    // An encrypted backup carries age.key too.
    let pass = d.path().join("pass");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let enc = d.path().join("keys.age");
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "backup",
            "-o",
            &enc.display().to_string(),
            "--passphrase-file",
            &pass.display().to_string(),
        ],
        b"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = common::run(
        d.path(),
        &[
            "--recovery-unseal",
            "--recovery-private-key",
            &enc.display().to_string(),
            "--passphrase-file",
            &pass.display().to_string(),
        ],
        std::fs::read(pq_fixture("sealed-pq.yaml"))
            .unwrap()
            .as_slice(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Never overwritten without --force, and nothing written when refused.
    let r = kubeseal(
        &cluster,
        d.path(),
        &[
            "keys",
            "backup",
            "-o",
            &d.path().join("new.yaml").display().to_string(),
            "--insecure-plaintext",
            "--age-identities",
            &ids.display().to_string(),
        ],
        b"",
    );
    assert_eq!(r.code, 1);
    assert!(!d.path().join("new.yaml").exists());
}

/// A controller answering a recipient with a broken checksum.
fn handle_bad_recipient(path: &str, _: &[u8]) -> (&'static str, Vec<u8>) {
    match path {
        "/v1/age-recipient.txt" => {
            let mut line = recipient_line(1).into_bytes();
            let last = line.len() - 2;
            line[last] = if line[last] == b'q' { b'p' } else { b'q' };
            ("200 OK", line)
        }
        _ => ("404 Not Found", Vec::new()),
    }
}

/// A controller answering two recipients where its newest key's one is expected.
fn handle_two_recipients(path: &str, _: &[u8]) -> (&'static str, Vec<u8>) {
    match path {
        "/v1/age-recipient.txt" => (
            "200 OK",
            (recipient_line(1) + &recipient_line(2)).into_bytes(),
        ),
        _ => ("404 Not Found", Vec::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_recipient_answers_are_refused_and_nothing_is_written() {
    let cluster = Cluster::start_private().unwrap();
    expose_controller(&cluster, "bad-recipient", &serve(handle_bad_recipient)).await;
    expose_controller(&cluster, "two-recipients", &serve(handle_two_recipients)).await;
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.json");
    let w = out.display().to_string();
    for (name, expected) in [
        (
            "bad-recipient",
            "error: invalid post-quantum recipient in the controller's /v1/age-recipient.txt, line 1: malformed recipient: invalid Bech32\n",
        ),
        (
            "two-recipients",
            "error: expected one post-quantum recipient from the controller's /v1/age-recipient.txt, found 2\n",
        ),
    ] {
        let r = kubeseal(
            &cluster,
            d.path(),
            &["--post-quantum", "--controller-name", name, "-w", &w],
            SECRET_YAML.as_bytes(),
        );
        assert_eq!(r.code, 1, "{name}");
        assert_eq!(r.stderr, expected, "{name}");
        assert!(!out.exists(), "{name}");
    }
}
