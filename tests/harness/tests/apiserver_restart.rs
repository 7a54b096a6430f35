//! Restarting the real control plane's API server mid-run (`Cluster::restart_api_server`):
//! objects survive, the same client carries on, and a fault proxy in front of it reports the
//! outage and recovers. Runs with `SEALED_SECRETS_E2E_CLUSTER=real`; skipped on the stand-in,
//! where the restart is refused.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use harness::cluster::{Cluster, config_map};
use harness::control_plane::skip_unless_control_plane;
use harness::faultproxy::{FaultProxy, FaultSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_an_api_server_restart_and_the_same_client_reads_them() {
    if skip_unless_control_plane("apiserver_restart", "API server restart") {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("restart").await.unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let created = api
        .create(&PostParams::default(), &config_map("before", "v1"))
        .await
        .unwrap();
    let old_log = std::fs::read_to_string(
        cluster
            .control_plane_handle()
            .unwrap()
            .dir()
            .join("kube-apiserver.log"),
    )
    .unwrap();
    let old_pid = std::fs::read_to_string(
        cluster
            .control_plane_handle()
            .unwrap()
            .dir()
            .join("kube-apiserver.pid"),
    )
    .unwrap();

    let started = Instant::now();
    cluster.restart_api_server(Duration::from_secs(2)).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    let dir = cluster.control_plane_handle().unwrap().dir().to_owned();
    let new_pid = std::fs::read_to_string(dir.join("kube-apiserver.pid")).unwrap();
    assert_ne!(old_pid, new_pid, "a new API server process");
    let log = std::fs::read_to_string(dir.join("kube-apiserver.log")).unwrap();
    assert!(log.len() > old_log.len() && log.contains("starting the API server again"));

    // The same client, the same object (etcd kept it), and writes work again.
    let read = api.get("before").await.unwrap();
    assert_eq!(read.data.unwrap()["k"], "v1");
    assert_eq!(read.metadata.uid, created.metadata.uid);
    api.create(&PostParams::default(), &config_map("after", "v2"))
        .await
        .unwrap();
    assert_eq!(api.get("after").await.unwrap().data.unwrap()["k"], "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_proxy_reports_the_outage_and_recovers() {
    if skip_unless_control_plane("apiserver_restart", "API server stop and start") {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("restart").await.unwrap();
    let cp = cluster.control_plane_handle().unwrap();
    let proxy = FaultProxy::start(
        cluster.kubeconfig(),
        FaultSpec::default(),
        cluster.temp_dir(),
    )
    .unwrap();
    let kc = kube::config::Kubeconfig::read_from(proxy.kubeconfig()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = false;
    let api: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), ns.name());
    api.create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let mut events = api
        .watch(
            &WatchParams::default()
                .fields("metadata.name=a")
                .timeout(120),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    // The initial ADDED arrives before the outage.
    assert!(events.next().await.unwrap().is_ok());

    cp.stop_apiserver().unwrap();
    match api.get("a").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (503, "ServiceUnavailable"),
                "{s:?}"
            );
            assert!(
                s.message.contains("could not reach the API server"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 503 while the API server is down, got {other:?}"),
    }
    // The watch ends (aborted with the upstream connection), well before its 120 s timeout.
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the watch outlived the API server");
    assert_eq!(proxy.stats().upstream_errors, 1);

    cp.start_apiserver().unwrap();
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "v");
    let stats = proxy.stats();
    assert_eq!((stats.upstream_errors, stats.error500), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_refuses_a_restart_with_a_clear_error() {
    let cluster = Cluster::standin(harness::standin::Config::default()).unwrap();
    let e = cluster
        .restart_api_server(Duration::from_millis(10))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stand-in") && e.contains("SEALED_SECRETS_E2E_CLUSTER=real"),
        "{e}"
    );
}
