//! Our controller under upstream's own CRD, whose status schema prunes unknown fields: the
//! source digest cannot be kept in `status.sourceDigest`, so each start decrypts again, as
//! upstream's controller always does (docs/design.md, "Source digest"); the produced Secrets
//! are still exactly upstream's, and nothing is rewritten at a restart.

use harness::cluster::{binary_path, run_tool, workspace_root};
use harness::upstream::skip_unless_real;

use crate::common::{
    Env, TIMEOUT, assert_all_produced, assert_clean_log, eventually, metric_sum, secret_versions,
    wait_settled,
};
use crate::sealing::seal_many;

const RSA: &str = "sealed_secrets_controller_rsa_decryptions_total";

/// Upstream's CRD, from the chart of the Go module tests/upstream/go.mod pins.
fn upstream_crd() -> String {
    let chart = run_tool(
        std::path::Path::new("bash"),
        &[&workspace_root()
            .join("tests/upstream/chart-dir.sh")
            .to_string_lossy()],
    )
    .unwrap();
    std::fs::read_to_string(
        std::path::Path::new(chart.trim()).join("crds/bitnami.com_sealedsecrets.yaml"),
    )
    .unwrap()
}

#[test]
fn ours_under_upstreams_crd_decrypts_again_at_start_and_writes_what_upstream_writes() {
    if skip_unless_real(
        "ours_under_upstreams_crd_decrypts_again_at_start_and_writes_what_upstream_writes",
    ) {
        return;
    }
    let env = Env::new();
    env.kubectl_in(&["replace", "-f", "-"], &upstream_crd());
    env.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/sealedsecrets.bitnami.com",
        "--timeout=60s",
    ]);
    let crd = env.get_json(&["crd", "sealedsecrets.bitnami.com"]).unwrap();
    let status_schema =
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert!(
        status_schema["properties"].get("sourceDigest").is_none()
            && status_schema
                .get("x-kubernetes-preserve-unknown-fields")
                .is_none(),
        "upstream's CRD is installed: {status_schema}"
    );
    let ns = env.namespace("upstream-crd");
    let ours = env.start_ours();
    let cert = env.write("cert.pem", &ours.cert().unwrap());
    let kubeseal = binary_path("kubeseal").unwrap();
    let expects = seal_many(&env, &kubeseal, &cert.to_string_lossy(), &ns, "u", 5);
    // Labels, annotations and ownerReferences exactly as upstream's Unseal makes them.
    assert_all_produced(&env, &ns, &expects);
    wait_settled(&ours, 5.0);
    let sealed = env.by_name("sealedsecrets", &ns);
    for (name, ss) in &sealed {
        assert_eq!(ss["status"]["conditions"][0]["status"], "True", "{name}");
        assert!(
            ss["status"].get("sourceDigest").is_none(),
            "upstream's CRD prunes the digest: {name} {}",
            ss["status"]
        );
    }
    eventually("the pruned digest noticed", TIMEOUT, || {
        ours.process
            .log()
            .contains("does not keep status.sourceDigest")
            .then_some(())
    });
    let versions = secret_versions(&env, &ns);
    let mut ours = ours;
    ours.process.stop();
    assert_clean_log(&ours);

    // A restart decrypts every object again (one RSA operation per value: two each), as
    // upstream does, and rewrites nothing.
    let again = env.start_ours();
    wait_settled(&again, 5.0);
    let rsa = eventually("the restart's decryptions", TIMEOUT, || {
        let n = metric_sum(&again.metrics_text().ok()?, RSA);
        (n >= 10.0).then_some(n)
    });
    println!("RSA decryptions at a restart under upstream's CRD: {rsa}");
    assert_eq!(
        secret_versions(&env, &ns),
        versions,
        "a restart rewrote Secrets"
    );
    assert_all_produced(&env, &ns, &expects);
    assert_clean_log(&again);
}
