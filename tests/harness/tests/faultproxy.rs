//! The fault proxy (`harness::faultproxy`) in front of the backend of this run (the
//! stand-in by default; the real control plane with `SEALED_SECRETS_E2E_CLUSTER=real`): kube-rs
//! works through it unchanged, faults come at the configured rates and only where the
//! stand-in puts them, and watches stream through and are cut on time.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use harness::cluster::{Cluster, config_map};
use harness::faultproxy::{FaultProxy, FaultSpec, Origin};
use harness::standin;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

/// A kube-rs client for `kubeconfig`; with `retry` false it does not retry 429s and 503s
/// itself, so the test sees every answer.
async fn client(kubeconfig: &Path, retry: bool) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = retry;
    kube::Client::try_from(config).unwrap()
}

/// The HTTP code of a kube-rs result: 200 for success, the Status code for API errors.
fn code<T>(r: &Result<T, kube::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_lists_creates_patches_and_watches_through_the_proxy() {
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("fproxy").await.unwrap();
    let proxy = FaultProxy::start(
        cluster.kubeconfig(),
        FaultSpec::default(),
        cluster.temp_dir(),
    )
    .unwrap();
    let text = std::fs::read_to_string(proxy.kubeconfig()).unwrap();
    assert!(text.contains(&proxy.url()), "{text}");
    assert!(
        !text.contains("token") && !text.contains("client-key"),
        "{text}"
    );

    let c = client(proxy.kubeconfig(), false).await;
    let version = c.apiserver_version().await.unwrap();
    assert!(!version.git_version.is_empty());
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), ns.name());

    // A watch opened before the writes must deliver them while it stays open: the proxy
    // streams, it does not wait for the response to end.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(
            &WatchParams::default().fields("metadata.name=a").timeout(60),
            &rv,
        )
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"k": "w"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"], "w");
    // (A real cluster puts `kube-root-ca.crt` in every namespace.)
    let listed = api
        .list(&ListParams::default().fields("metadata.name=a"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // Upstream errors pass through as they are.
    match api.get("missing").await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("{other:?}"),
    }

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.try_next())
            .await
            .expect("watch events arrive while the stream is open")
            .unwrap()
            .expect("the watch stays open");
        match ev {
            WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
                seen.push(cm.data.unwrap()["k"].clone());
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, ["v", "w"]);

    // The journal: every request, who answered, and the client's User-Agent.
    let req = http::Request::get(format!("/api/v1/namespaces/{}/configmaps/a", ns.name()))
        .header("user-agent", "replica-a")
        .body(kube::client::Body::empty())
        .unwrap();
    assert_eq!(c.send(req).await.unwrap().status(), 200);
    let journal = proxy.journal();
    assert_eq!(journal.len(), 8, "{journal:#?}");
    let create = journal
        .iter()
        .find(|r| r.method == http::Method::POST)
        .unwrap();
    assert_eq!(
        (create.status, create.origin),
        (201, Origin::Upstream),
        "{create:?}"
    );
    assert!(
        create
            .path
            .starts_with(&format!("/api/v1/namespaces/{}/configmaps", ns.name()))
    );
    assert!(create.received <= create.answered);
    let last = journal.last().unwrap();
    assert_eq!(last.user_agent.as_deref(), Some("replica-a"));
    assert!(journal.iter().any(|r| r.path.contains("watch=true")));

    let stats = proxy.stats();
    assert_eq!(
        (stats.error500, stats.error429, stats.conflict409),
        (0, 0, 0)
    );
    assert_eq!(
        (stats.watches, stats.watch_cuts, stats.upstream_errors),
        (1, 0, 0)
    );
    // /version, then list, watch, create, patch, list, get, get.
    assert_eq!(
        (stats.requests, stats.resource_requests),
        (8, 7),
        "{stats:?}"
    );

    // kubectl (discovery, then a get) works through it too.
    let kubectl = harness::cluster::find_kubectl().unwrap();
    let kubeconfig = proxy.kubeconfig().to_string_lossy().into_owned();
    let out = harness::cluster::run_tool(
        &kubectl,
        &[
            "--kubeconfig",
            &kubeconfig,
            "get",
            "configmap",
            "a",
            "-n",
            ns.name(),
            "-o",
            "jsonpath={.data.k}",
        ],
    )
    .unwrap();
    assert_eq!(out, "w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rates_are_honoured_and_discovery_is_spared() {
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("fproxy").await.unwrap();
    let spec = FaultSpec {
        error500: 0.2,
        error429: 0.1,
        conflict409_on_update: 0.3,
        watch_cut: None,
        seed: 42,
    };
    let proxy = FaultProxy::start(cluster.kubeconfig(), spec.clone(), cluster.temp_dir()).unwrap();
    let c = client(proxy.kubeconfig(), false).await;
    let direct: Api<ConfigMap> = Api::namespaced(cluster.client().await.unwrap(), ns.name());
    direct
        .create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), ns.name());

    // Reads: 500 at 20%, 429 at 10% of the rest, never 409.
    let mut codes = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..400 {
        *codes.entry(code(&api.get("a").await)).or_default() += 1;
    }
    let n =
        |codes: &std::collections::BTreeMap<u16, u32>, c: u16| codes.get(&c).copied().unwrap_or(0);
    // Expected 80 and 32; the bounds are about 4 standard deviations.
    assert!((48..=112).contains(&n(&codes, 500)), "{codes:?}");
    assert!((12..=55).contains(&n(&codes, 429)), "{codes:?}");
    assert_eq!(n(&codes, 409), 0, "{codes:?}");
    assert_eq!(n(&codes, 200) + n(&codes, 500) + n(&codes, 429), 400);
    let after_reads = proxy.stats();
    assert_eq!(after_reads.error500, u64::from(n(&codes, 500)));
    assert_eq!(after_reads.error429, u64::from(n(&codes, 429)));

    // Updates: additionally 409 at 30% of what passes the first two.
    let mut ucodes = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..400 {
        let p = Patch::Merge(serde_json::json!({"data": {"k": i.to_string()}}));
        *ucodes
            .entry(code(&api.patch("a", &PatchParams::default(), &p).await))
            .or_default() += 1;
    }
    // Expected 80, 32 and 86.
    assert!((48..=112).contains(&n(&ucodes, 500)), "{ucodes:?}");
    assert!((12..=55).contains(&n(&ucodes, 429)), "{ucodes:?}");
    assert!((50..=125).contains(&n(&ucodes, 409)), "{ucodes:?}");
    let stats = proxy.stats();
    let injected = proxy
        .journal()
        .iter()
        .filter(|r| r.origin == Origin::Injected)
        .count() as u64;
    assert_eq!(
        injected,
        stats.error500 + stats.error429 + stats.conflict409,
        "{stats:?}"
    );
    assert_eq!(
        stats.conflict409,
        u64::from(n(&ucodes, 409)),
        "{stats:?} {ucodes:?}"
    );

    // The answers are kube-apiserver's: a Status body, and Retry-After on 429s.
    let mut saw_retry_after = false;
    for _ in 0..200 {
        let req = http::Request::get(format!("/api/v1/namespaces/{}/configmaps/a", ns.name()))
            .body(kube::client::Body::empty())
            .unwrap();
        let resp = c.send(req).await.unwrap();
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["reason"], "TooManyRequests");
            saw_retry_after = true;
            break;
        }
    }
    assert!(saw_retry_after, "no 429 in 200 requests at 10%");

    // Discovery and /version are never faulted, even at 100%.
    proxy.set_spec(FaultSpec {
        error500: 1.0,
        ..FaultSpec::default()
    });
    for _ in 0..20 {
        c.apiserver_version().await.unwrap();
        c.list_api_groups().await.unwrap();
        c.list_core_api_versions().await.unwrap();
        c.list_core_api_resources("v1").await.unwrap();
    }
    assert_eq!(code(&api.get("a").await), 500);
    // And nothing once the faults are off again.
    proxy.set_spec(FaultSpec::default());
    for _ in 0..50 {
        assert_eq!(code(&api.get("a").await), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_faults() {
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("fproxy").await.unwrap();
    let direct: Api<ConfigMap> = Api::namespaced(cluster.client().await.unwrap(), ns.name());
    direct
        .create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let spec = |seed| FaultSpec {
        error500: 0.3,
        error429: 0.2,
        seed,
        ..FaultSpec::default()
    };
    let run = |seed| {
        let kubeconfig = cluster.kubeconfig().to_owned();
        let dir = cluster.temp_dir().to_owned();
        let ns = ns.name().to_owned();
        async move {
            let proxy = FaultProxy::start(&kubeconfig, spec(seed), &dir).unwrap();
            let api: Api<ConfigMap> = Api::namespaced(client(proxy.kubeconfig(), false).await, &ns);
            let mut codes = Vec::new();
            for _ in 0..60 {
                codes.push(code(&api.get("a").await));
            }
            codes
        }
    };
    let first = run(5).await;
    assert_eq!(run(5).await, first);
    assert_ne!(run(6).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_cut_after_watch_cut() {
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("fproxy").await.unwrap();
    let proxy = FaultProxy::start(
        cluster.kubeconfig(),
        FaultSpec {
            watch_cut: Some(Duration::from_secs(2)),
            ..FaultSpec::default()
        },
        cluster.temp_dir(),
    )
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(proxy.kubeconfig(), false).await, ns.name());
    let started = Instant::now();
    let mut events = api
        .watch(
            &WatchParams::default().fields("metadata.name=a").timeout(60),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &config_map("a", "v"))
        .await
        .unwrap();
    let mut added = 0;
    // The stream ends cleanly (no error) after about 2 s, not after the server's 60 s.
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the watch ends well before its 60 s timeout")
    {
        if let WatchEvent::Added(_) = ev.unwrap() {
            added += 1;
        }
    }
    let lasted = started.elapsed();
    assert_eq!(added, 1);
    assert!(
        lasted >= Duration::from_millis(1900) && lasted < Duration::from_secs(10),
        "{lasted:?}"
    );
    let stats = proxy.stats();
    assert_eq!((stats.watches, stats.watch_cuts), (1, 1), "{stats:?}");

    // A watch that ends by itself first is not counted as cut.
    let mut short = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = short.next().await {
        ev.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = proxy.stats();
    assert_eq!((stats.watches, stats.watch_cuts), (2, 1), "{stats:?}");
}

/// The proxy authenticates with the upstream kubeconfig's token; its own kubeconfig has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_token_is_used_and_not_needed_by_clients() {
    let cluster = Cluster::standin(standin::Config {
        token: Some("s3cret-token".into()),
        ..standin::Config::default()
    })
    .unwrap();
    let proxy = FaultProxy::start(
        cluster.kubeconfig(),
        FaultSpec::default(),
        cluster.temp_dir(),
    )
    .unwrap();
    assert!(
        !std::fs::read_to_string(proxy.kubeconfig())
            .unwrap()
            .contains("s3cret")
    );
    let anonymous_direct = cluster.kubeconfig().with_file_name("anonymous.kubeconfig");
    std::fs::write(
        &anonymous_direct,
        standin::kubeconfig::render(&cluster.standin_handle().unwrap().url(), None, "default"),
    )
    .unwrap();
    let direct: Api<ConfigMap> = Api::default_namespaced(client(&anonymous_direct, false).await);
    assert_eq!(code(&direct.list(&ListParams::default()).await), 401);
    let proxied: Api<ConfigMap> = Api::default_namespaced(client(proxy.kubeconfig(), false).await);
    assert_eq!(code(&proxied.list(&ListParams::default()).await), 200);
    // A credential sent by a client is not forwarded in place of the upstream's.
    let c = client(proxy.kubeconfig(), false).await;
    let req = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header("authorization", "Bearer wrong")
        .body(kube::client::Body::empty())
        .unwrap();
    assert_eq!(c.send(req).await.unwrap().status(), 200);
    assert_eq!(proxy.stats().requests, 2);
}

#[test]
fn a_bad_upstream_kubeconfig_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.kubeconfig");
    let e = FaultProxy::start(&missing, FaultSpec::default(), dir.path()).unwrap_err();
    assert!(e.to_string().contains("nope.kubeconfig"), "{e}");
}

/// kube-runtime's watcher (what the controller uses) resumes after each cut and misses
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_runtime_watcher_resumes_after_cuts() {
    use kube::runtime::watcher;
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("fproxy").await.unwrap();
    let proxy = FaultProxy::start(
        cluster.kubeconfig(),
        FaultSpec {
            watch_cut: Some(Duration::from_secs(1)),
            ..FaultSpec::default()
        },
        cluster.temp_dir(),
    )
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(proxy.kubeconfig(), true).await, ns.name());
    let cfg = watcher::Config::default().labels("fproxy=watched");
    let mut stream = watcher(api.clone(), cfg).boxed();
    let writer = api.clone();
    let writes = tokio::spawn(async move {
        for name in ["a", "b", "c"] {
            let mut cm = config_map(name, "v");
            cm.metadata.labels = Some([("fproxy".to_owned(), "watched".to_owned())].into());
            writer.create(&PostParams::default(), &cm).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, stream.next())
            .await
            .expect("all three objects seen within 30 s")
            .unwrap();
        match ev {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                seen.insert(cm.metadata.name.unwrap());
            }
            Ok(_) => {}
            Err(e) => panic!("watcher error: {e}"),
        }
    }
    writes.await.unwrap();
    let stats = proxy.stats();
    assert!(
        stats.watch_cuts >= 2 && stats.watches >= stats.watch_cuts,
        "{stats:?}"
    );
}

/// An outage of the proxy looks like a dead API server on either backend: connections are
/// refused, open watches break, and clients carry on once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_refuses_connections_breaks_watches_and_ends() {
    let cluster = Cluster::start().unwrap();
    let ns = cluster.namespace("fproxy").await.unwrap();
    let proxy = FaultProxy::start(
        cluster.kubeconfig(),
        FaultSpec::default(),
        cluster.temp_dir(),
    )
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(proxy.kubeconfig(), false).await, ns.name());
    let direct: Api<ConfigMap> = Api::namespaced(cluster.client().await.unwrap(), ns.name());
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
    assert!(matches!(
        events.next().await,
        Some(Ok(WatchEvent::Added(_)))
    ));

    proxy.disconnect().unwrap();
    // The open watch breaks at once (an error or the end of the stream, not its 120 s),
    // after whatever was already on its way (a real server's bookmarks).
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(ev)) = events.next().await {
            assert!(matches!(ev, WatchEvent::Bookmark(_)), "{ev:?}");
        }
    })
    .await
    .expect("the watch breaks with the connection");
    // New connections are refused: a transport error, not an API answer.
    let addr = proxy.url().trim_start_matches("http://").to_owned();
    assert_eq!(
        std::net::TcpStream::connect(&addr).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    match api.get("a").await {
        Err(kube::Error::Api(s)) => panic!("an API answer during the outage: {s:?}"),
        Err(_) => {}
        Ok(_) => panic!("an answer during the outage"),
    }
    direct
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"k": "during"}})),
        )
        .await
        .unwrap();

    proxy.reconnect().unwrap();
    proxy.reconnect().unwrap();
    let back = api.get("a").await.unwrap();
    assert_eq!(back.data.unwrap()["k"], "during");
    assert_eq!(proxy.stats().upstream_errors, 0);

    // `outage` blocks for its duration, then serves again.
    let started = Instant::now();
    let p = std::sync::Arc::new(proxy);
    let p2 = p.clone();
    tokio::task::spawn_blocking(move || p2.outage(Duration::from_millis(800)))
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "during");
}
