//! Our key Secrets carry a post-quantum identity (`age.key`, docs/design.md "Keys") beside the
//! two TLS fields upstream reads: upstream's controller and `kubeseal --recovery-unseal` must
//! take such key Secrets as they are, and upstream's controller must refuse a post-quantum
//! value cleanly (`crates/crypto/FORMAT.md` §3) and keep working.

use harness::upstream::{skip_unless_real, upstream_binary};
use sealed_secrets_api::seal::{AGE_KEY_FIELD, AGE_RECIPIENT_PATH};
use sealed_secrets_crypto::{PqRecipient, Scope, encode_base64, seal_pq};

use crate::common::{Env, TIMEOUT, assert_all_produced, assert_clean_log, eventually};
use crate::sealing::seal_many;

#[test]
fn upstream_controller_takes_over_our_key_secrets_with_their_post_quantum_field() {
    if skip_unless_real(
        "upstream_controller_takes_over_our_key_secrets_with_their_post_quantum_field",
    ) {
        return;
    }
    let env = Env::new();
    let ns = env.namespace("pqkeys");

    // Ours generates the key: one Secret with the identity beside tls.key and tls.crt.
    let ours = env.start_ours();
    let cert = ours.cert().unwrap();
    let recipient = ours.get(AGE_RECIPIENT_PATH).unwrap();
    assert_eq!(recipient.status, 200, "{recipient:?}");
    let recipient: PqRecipient = recipient.body.trim_end().parse().unwrap();
    let keys = env.key_secrets();
    assert_eq!(keys.len(), 1);
    let (name, key) = keys.iter().next().unwrap();
    for field in ["tls.key", "tls.crt", AGE_KEY_FIELD] {
        assert!(key["data"][field].is_string(), "{name} has no `{field}`");
    }
    assert_clean_log(&ours);
    drop(ours);

    // Upstream's controller on the same key Secrets: serves our certificate, adds no key,
    // writes nothing to ours, unseals what upstream's kubeseal seals for that certificate.
    let theirs = env.start_upstream();
    assert_eq!(theirs.cert().unwrap(), cert, "upstream serves our key");
    let upstream_kubeseal = upstream_binary("kubeseal").unwrap();
    let cert_file = env.write("cert.pem", &cert);
    // assert_all_produced also runs upstream's `--recovery-unseal` with these key Secrets.
    let expects = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "rsa",
        3,
    );
    assert_all_produced(&env, &ns, &expects);
    let after = env.key_secrets();
    assert_eq!(after.keys().collect::<Vec<_>>(), vec![name], "no new key");
    assert_eq!(
        after[name]["metadata"]["resourceVersion"], key["metadata"]["resourceVersion"],
        "upstream rewrote our key Secret"
    );

    // A post-quantum value: refused with a reason, no Secret, and the controller goes on.
    let ct = seal_pq(&[&recipient], &Scope::Strict.label(&ns, "pq"), b"hunter2").unwrap();
    env.create(&format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: pq\n  namespace: {ns}\nspec:\n  encryptedData:\n    password: {}\n",
        encode_base64(&ct)
    ));
    let status = eventually(
        "upstream's verdict on the post-quantum value",
        TIMEOUT,
        || {
            let ss = env.get_json(&["sealedsecret", "pq", "-n", &ns])?;
            let cond = ss["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Synced")?
                .clone();
            (cond["status"] == "False").then_some(cond)
        },
    );
    assert!(!status.to_string().contains("hunter2"), "{status}");
    assert!(env.get_json(&["secret", "pq", "-n", &ns]).is_none());
    let later = seal_many(
        &env,
        &upstream_kubeseal,
        &cert_file.to_string_lossy(),
        &ns,
        "later",
        1,
    );
    assert_all_produced(&env, &ns, &later);
    assert_clean_log(&theirs);
}
