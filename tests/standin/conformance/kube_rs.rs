//! Conformance of the stand-in against kube-rs: `Api`, `watcher` and a reflector, written by
//! people who target kube-apiserver, not the stand-in.

// Test helpers outside #[test] fns fail loudly on purpose; clippy.toml's test allowance
// only covers the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use harness::cluster::{Cluster, TestNamespace};
use harness::standin::{Config, Faults};
use harness::wait::eventually;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::json;

#[path = "../../tests/support/sealedsecret.rs"]
mod sealedsecret;
use sealedsecret::{CRD_YAML, SealedSecret, SealedSecretSpec};

async fn setup(config: Config) -> (Cluster, Client, TestNamespace) {
    let cluster = Cluster::standin(config).unwrap();
    let client = cluster.client().await.unwrap();
    let ns = cluster.namespace("conf").await.unwrap();
    (cluster, client, ns)
}

async fn install_crd(client: &Client) {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(CRD_YAML).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = api.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
}

fn no_retry_client(cluster: &Cluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let mut config = futures::executor::block_on(kube::Config::from_custom_kubeconfig(
        kc,
        &kube::config::KubeConfigOptions::default(),
    ))
    .unwrap();
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn ss(name: &str, value: &str) -> SealedSecret {
    let mut s = SealedSecret::new(
        name,
        SealedSecretSpec {
            encrypted_data: BTreeMap::from([("k".into(), value.into())]),
        },
    );
    s.metadata.labels = Some(BTreeMap::from([("app".into(), "demo".into())]));
    s
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("x".into(), name.into())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn discovery_serves_builtin_groups_and_crds_once_created() {
    let (_cluster, client, _ns) = setup(Config::default()).await;
    // The release the stand-in imitates: the kubectl of the suite and the real control plane
    // of tests/cluster are 1.35.
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "35")
    );
    assert!(
        version.git_version.starts_with("v1.35."),
        "{}",
        version.git_version
    );
    assert_eq!(version.git_version, harness::standin::GIT_VERSION);
    let core = client.list_core_api_resources("v1").await.unwrap();
    for r in ["namespaces", "secrets", "services", "configmaps", "events"] {
        assert!(core.resources.iter().any(|x| x.name == r), "{r} missing");
    }
    let groups = client.list_api_groups().await.unwrap();
    let names: Vec<_> = groups.groups.iter().map(|g| g.name.as_str()).collect();
    assert!(names.contains(&"coordination.k8s.io") && names.contains(&"events.k8s.io"));
    assert!(!names.contains(&"bitnami.com"));
    install_crd(&client).await;
    let res = client
        .list_api_group_resources("bitnami.com/v1alpha1")
        .await
        .unwrap();
    let names: Vec<_> = res.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["sealedsecrets", "sealedsecrets/status"]);
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.has_group("bitnami.com"));
}

#[tokio::test]
async fn sealedsecret_crud_generation_and_status_subresource() {
    let (_cluster, client, ns) = setup(Config::default()).await;
    install_crd(&client).await;
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns.name());
    let created = api
        .create(&PostParams::default(), &ss("a", "v1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let (code, reason) = api_error(
        api.create(&PostParams::default(), &ss("a", "v1"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    // Metadata-only change: no new generation.
    let p = Patch::Merge(json!({"metadata": {"labels": {"extra": "1"}}}));
    let labelled = api.patch("a", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_ne!(labelled.resource_version(), created.resource_version());

    // Spec change bumps generation; status sent to the main endpoint is ignored.
    let p = Patch::Merge(
        json!({"spec": {"encryptedData": {"k": "v2"}}, "status": {"conditions": [{"type": "Synced"}]}}),
    );
    let changed = api.patch("a", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(changed.status, None);

    // Status only through /status, which does not bump generation nor touch spec.
    let p = Patch::Merge(
        json!({"spec": {"encryptedData": {"k": "ignored"}}, "status": {"conditions": [{"type": "Synced", "status": "True"}]}}),
    );
    let st = api
        .patch_status("a", &PatchParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(2));
    assert_eq!(st.spec.encrypted_data["k"], "v2");
    assert_eq!(st.status.unwrap().conditions[0]["status"], "True");

    // A no-op update keeps the resourceVersion.
    let current = api.get("a").await.unwrap();
    let same = api
        .replace("a", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), current.resource_version());

    let listed = api
        .list(&ListParams::default().labels("app=demo"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_left(),
        "custom resources answer DELETE with the object"
    );
    let (code, _) = api_error(api.get("a").await.unwrap_err());
    assert_eq!(code, 404);
}

/// Server-side apply through kube-rs: an apply creates, status is applied through /status
/// under its own entry, a controller's status writes do not conflict with an applier of the
/// spec, dry runs store nothing, and an apply without a field manager is refused.
#[tokio::test]
async fn server_side_apply_create_status_dry_run_and_field_manager() {
    let (cluster, client, ns) = setup(Config::default()).await;
    install_crd(&client).await;
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns.name());
    let config = json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "applied", "labels": {"app": "demo"}},
        "spec": {"encryptedData": {"k": "v1"}},
        "status": {"conditions": [{"type": "Ignored"}]},
    });
    let created = api
        .patch(
            "applied",
            &PatchParams::apply("gitops"),
            &Patch::Apply(&config),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.status, None,
        "status is not applied through the main resource"
    );
    let managed = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(
        (
            managed[0].manager.as_deref(),
            managed[0].operation.as_deref()
        ),
        (Some("gitops"), Some("Apply"))
    );
    assert_eq!(
        managed[0].fields_v1.as_ref().unwrap().0,
        json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:encryptedData": {"f:k": {}}}})
    );

    let status = json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "status": {"conditions": [{"type": "Synced", "status": "True"}]},
    });
    let st = api
        .patch_status(
            "applied",
            &PatchParams::apply("controller"),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().conditions[0]["type"], "Synced");
    let entry = st
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("controller"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));

    // A spec change by the applier: no conflict with the status writer; generation bumps.
    let mut v2 = config.clone();
    v2["spec"]["encryptedData"]["k"] = json!("v2");
    let updated = api
        .patch("applied", &PatchParams::apply("gitops"), &Patch::Apply(&v2))
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(updated.status.unwrap().conditions[0]["type"], "Synced");

    // Another applier changing the same field conflicts (409 with causes), unless forced.
    let mut v3 = config.clone();
    v3["spec"]["encryptedData"]["k"] = json!("v3");
    let raw = no_retry_client(&cluster);
    let raw_api: Api<SealedSecret> = Api::namespaced(raw, ns.name());
    let err = raw_api
        .patch(
            "applied",
            &PatchParams::apply("intruder"),
            &Patch::Apply(&v3),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("conflict with \"gitops\""),
                "{}",
                s.message
            );
            assert!(s.message.contains(".spec.encryptedData.k"), "{}", s.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let dry = api
        .patch(
            "applied",
            &PatchParams::apply("intruder").force().dry_run(),
            &Patch::Apply(&v3),
        )
        .await
        .unwrap();
    assert_eq!(dry.spec.encrypted_data["k"], "v3");
    assert_eq!(
        api.get("applied").await.unwrap().spec.encrypted_data["k"],
        "v2"
    );
    let forced = api
        .patch(
            "applied",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&v3),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.encrypted_data["k"], "v3");

    // kube-apiserver requires a field manager for apply, and `force` only for apply.
    let req = http::Request::patch(format!(
        "/apis/bitnami.com/v1alpha1/namespaces/{}/sealedsecrets/applied",
        ns.name()
    ))
    .header("content-type", "application/apply-patch+yaml")
    .body(b"apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n".to_vec())
    .unwrap();
    let (code, reason) = api_error(
        no_retry_client(&cluster)
            .request_text(req)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

/// Issue #7's storage-only built-ins through kube-rs' typed API: a Deployment's CRUD round
/// trip with generation and the status subresource, and a cluster-scoped ClusterRole.
#[tokio::test]
async fn deployment_crud_generation_and_status_and_cluster_scoped_rbac() {
    let (_cluster, client, ns) = setup(Config::default()).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let mut d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "example/web:1"}]},
            },
        },
    }))
    .unwrap();
    d.status = Some(DeploymentStatus {
        ready_replicas: Some(7),
        ..Default::default()
    });
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.status, None, "status is reset on create");
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );

    // Built-ins take strategic merge patches; a spec change bumps generation.
    let p = Patch::Strategic(json!({"spec": {"replicas": 3}}));
    let scaled = api.patch("web", &PatchParams::default(), &p).await.unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));

    // What a deployment controller would write, through /status only.
    let p = Patch::Merge(json!({"status": {"readyReplicas": 3, "observedGeneration": 2}}));
    let st = api
        .patch_status("web", &PatchParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(2));
    assert_eq!(st.status.unwrap().ready_replicas, Some(3));

    let current = api.get("web").await.unwrap();
    let same = api
        .replace("web", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), current.resource_version());
    assert_eq!(
        api.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let deleted = api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "built-ins answer DELETE with a Status");
    let (code, _) = api_error(api.get("web").await.unwrap_err());
    assert_eq!(code, 404);

    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }))
    .unwrap();
    let created = roles.create(&PostParams::default(), &role).await.unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert_eq!(created.rules.unwrap()[0].verbs, ["get"]);
    roles
        .delete("reader", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn update_with_stale_resource_version_conflicts() {
    let (_cluster, client, ns) = setup(Config::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, ns.name());
    let v1 = api
        .create(&PostParams::default(), &cm("c", &[]))
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data = Some(BTreeMap::from([("x".into(), "2".into())]));
    api.replace("c", &PostParams::default(), &v2).await.unwrap();
    let (code, reason) = api_error(
        api.replace("c", &PostParams::default(), &v2)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    // A patch carrying a stale resourceVersion is a precondition too.
    let p = Patch::Merge(
        json!({"metadata": {"resourceVersion": v1.resource_version()}, "data": {"x": "3"}}),
    );
    let (code, _) = api_error(
        api.patch("c", &PatchParams::default(), &p)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    // JSON patch works and is checked by `test` operations.
    // (kube pins json-patch 4, so let inference pick its Patch type.)
    let p = serde_json::from_value(json!([{"op": "test", "path": "/data/x", "value": "2"}, {"op": "replace", "path": "/data/x", "value": "4"}])).unwrap();
    let got = api
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(p))
        .await
        .unwrap();
    assert_eq!(got.data.unwrap()["x"], "4");
    // Server-side apply of a field the updates own: a conflict (409), unless forced.
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "5"}});
    let (code, reason) = api_error(
        api.patch("c", &PatchParams::apply("test"), &Patch::Apply(&config))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let got = api
        .patch(
            "c",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&config),
        )
        .await
        .unwrap();
    assert_eq!(got.data.unwrap()["x"], "5");
}

#[tokio::test]
async fn generate_name_secret_string_data_and_namespace_checks() {
    let (_cluster, client, ns) = setup(Config::default()).await;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"generateName": "gen-"},
        "stringData": {"password": "hunter2"},
    }))
    .unwrap();
    let a = api.create(&PostParams::default(), &s).await.unwrap();
    let b = api.create(&PostParams::default(), &s).await.unwrap();
    assert!(a.name_any().starts_with("gen-") && a.name_any().len() == 9);
    assert_ne!(a.name_any(), b.name_any());
    assert_eq!(a.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(a.type_.as_deref(), Some("Opaque"));
    let missing: Api<Secret> = Api::namespaced(client, "does-not-exist");
    let (code, _) = api_error(
        missing
            .create(&PostParams::default(), &s)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
    let bad: Secret = serde_json::from_value(json!({"metadata": {"name": "Not_Valid"}})).unwrap();
    let (code, reason) = api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn list_with_label_and_field_selectors_and_pages() {
    let (_cluster, client, ns) = setup(Config::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    for (name, tier) in [
        ("a", "db"),
        ("b", "web"),
        ("c", "db"),
        ("d", "cache"),
        ("e", "web"),
    ] {
        api.create(
            &PostParams::default(),
            &cm(name, &[("tier", tier), ("app", "x")]),
        )
        .await
        .unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=db"))
                .await
                .unwrap()
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier in (web,cache),app"))
                .await
                .unwrap()
        ),
        ["b", "d", "e"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier!=db,!missing"))
                .await
                .unwrap()
        ),
        ["b", "d", "e"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name!=c"))
                .await
                .unwrap()
        )
        .len(),
        4
    );
    let all: Api<ConfigMap> = Api::all(client);
    let by_ns = all
        .list(&ListParams::default().fields(&format!("metadata.namespace={}", ns.name())))
        .await
        .unwrap();
    assert_eq!(by_ns.items.len(), 5);
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(page.clone()), ["a", "b"]);
    let token = page.metadata.continue_.clone().unwrap();
    let page2 = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(page2), ["c", "d"]);
    // kube-runtime's paged initial list reads everything.
    let stream = watcher(api, watcher::Config::default().page_size(2)).default_backoff();
    let mut seen = 0;
    futures::pin_mut!(stream);
    while let Some(ev) = stream.try_next().await.unwrap() {
        match ev {
            watcher::Event::InitApply(_) => seen += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, 5);
}

#[tokio::test]
async fn raw_watch_events_selectors_and_410_gone() {
    let (cluster, client, ns) = setup(Config::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, ns.name());
    let first = api
        .create(&PostParams::default(), &cm("w1", &[("sel", "yes")]))
        .await
        .unwrap();
    let from = first.resource_version().unwrap();
    let stream = api
        .watch(&WatchParams::default().labels("sel=yes").timeout(3), &from)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    api.create(&PostParams::default(), &cm("w2", &[("sel", "yes")]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("other", &[("sel", "no")]))
        .await
        .unwrap();
    // Leaving the selection is a DELETED event for this watcher.
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => got.push(format!("ADDED {}", o.name_any())),
            WatchEvent::Deleted(o) => got.push(format!("DELETED {}", o.name_any())),
            WatchEvent::Modified(o) => got.push(format!("MODIFIED {}", o.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, ["ADDED w2", "DELETED w1"]);

    let handle = cluster.standin_handle().unwrap();
    api.create(&PostParams::default(), &cm("w3", &[]))
        .await
        .unwrap();
    handle.compact();
    let stream = api
        .watch(&WatchParams::default().timeout(2), &from)
        .await
        .unwrap();
    futures::pin_mut!(stream);
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // timeoutSeconds ends the stream.
    let started = Instant::now();
    let stream = api
        .watch(
            &WatchParams::default().timeout(1).disable_bookmarks(),
            &handle.resource_version().to_string(),
        )
        .await
        .unwrap();
    let rest: Vec<_> = stream.collect().await;
    assert!(rest.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A reflector over `api` running in the background, counting its (re)lists.
struct Reflector {
    store: reflector::Store<ConfigMap>,
    inits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Reflector {
    async fn start(api: Api<ConfigMap>) -> Self {
        let (store, writer) = reflector::store();
        let inits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = inits.clone();
        let stream = reflector(writer, watcher(api, watcher::Config::default()))
            .inspect_ok(move |ev| {
                if matches!(ev, watcher::Event::Init) {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
            .default_backoff()
            .for_each(|_| async {});
        let task = tokio::spawn(stream);
        store.wait_until_ready().await.unwrap();
        Self { store, inits, task }
    }

    fn inits(&self) -> usize {
        self.inits.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.store.state().iter().map(|c| c.name_any()).collect();
        names.sort();
        names
    }

    async fn wait_for(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "reflector: timed out waiting for {what}; store has {:?}, {} lists",
                self.names(),
                self.inits()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn reflector_resumes_after_cut_streams_without_relisting() {
    let config = Config {
        faults: Faults {
            watch_cut_seconds: 1,
            ..Faults::default()
        },
        ..Config::default()
    };
    let (cluster, client, ns) = setup(config).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let handle = cluster.standin_handle().unwrap().clone();
    let before = handle.watches_started();
    let r = Reflector::start(api.clone()).await;
    for i in 0..6 {
        api.create(&PostParams::default(), &cm(&format!("r{i}"), &[]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    api.delete("r0", &DeleteParams::default()).await.unwrap();
    r.wait_for("all changes", |r| {
        r.names() == ["r1", "r2", "r3", "r4", "r5"]
    })
    .await;
    assert!(
        handle.watches_started() - before >= 3,
        "the stream should have been cut and resumed"
    );
    assert_eq!(
        r.inits(),
        1,
        "resuming from the last resourceVersion must not relist"
    );
}

#[tokio::test]
async fn reflector_relists_after_410_gone() {
    // No bookmarks during the test, so the watcher's resourceVersion stays at its list.
    let config = Config {
        faults: Faults {
            watch_cut_seconds: 1,
            ..Faults::default()
        },
        bookmark_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let (cluster, client, ns) = setup(config).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    api.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();
    let handle = cluster.standin_handle().unwrap().clone();
    let r = Reflector::start(api.clone()).await;
    assert_eq!(r.inits(), 1);
    // A change the watcher sees (perhaps), then one it does not see (another namespace), then
    // compaction past both: whatever it saw, its next watch asks for a compacted version.
    api.create(&PostParams::default(), &cm("after", &[]))
        .await
        .unwrap();
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    elsewhere
        .create(&PostParams::default(), &cm("noise", &[]))
        .await
        .unwrap();
    handle.compact();
    r.wait_for("a relist", |r| {
        r.inits() >= 2 && r.names() == ["after", "before"]
    })
    .await;
}

#[tokio::test]
async fn finalizers_and_garbage_collection() {
    let (_cluster, client, ns) = setup(Config::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let mut owner = cm("owner", &[]);
    owner.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let owned = |name: &str, owner: &ConfigMap| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid().unwrap(),
            }]},
            "data": {"k": "dg=="},
        }))
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &owned("dep", &owner))
        .await
        .unwrap();

    // Finalizer pending: DELETE answers 202 with the object, which stays with a deletionTimestamp.
    let pending = cms.delete("owner", &DeleteParams::default()).await.unwrap();
    let pending = pending.left().expect("object while finalizers are pending");
    assert!(pending.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        secrets.get("dep").await.is_ok(),
        "owner still exists, dependent stays"
    );
    // Adding finalizers to a terminating object is refused.
    let p =
        Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}}));
    assert_eq!(
        api_error(
            cms.patch("owner", &PatchParams::default(), &p)
                .await
                .unwrap_err()
        )
        .0,
        422
    );
    // Removing the last finalizer completes the deletion, then the GC removes the dependent.
    cms.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("owner").await.unwrap_err()).0, 404);
    eventually("GC of the dependent", Duration::from_secs(5), || async {
        secrets
            .get_opt("dep")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // Orphan propagation keeps the dependent and drops its ownerReference.
    let owner2 = cms
        .create(&PostParams::default(), &cm("owner2", &[]))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &owned("orphan", &owner2))
        .await
        .unwrap();
    cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    eventually("orphaned owner removed", Duration::from_secs(5), || async {
        cms.get_opt("owner2").await.unwrap().is_none().then_some(())
    })
    .await;
    let orphan = secrets.get("orphan").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Foreground: the owner disappears only after its dependents.
    let owner3 = cms
        .create(&PostParams::default(), &cm("owner3", &[]))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &owned("fg", &owner3))
        .await
        .unwrap();
    cms.delete("owner3", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("foreground deletion", Duration::from_secs(5), || async {
        (cms.get_opt("owner3").await.unwrap().is_none()
            && secrets.get_opt("fg").await.unwrap().is_none())
        .then_some(())
    })
    .await;

    // Deleting a namespace deletes its content, then the namespace.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete(ns.name(), &DeleteParams::default())
        .await
        .unwrap();
    let terminating = nss.get(ns.name()).await;
    if let Ok(t) = terminating {
        assert_eq!(t.status.unwrap().phase.as_deref(), Some("Terminating"));
    }
    eventually("namespace deletion", Duration::from_secs(5), || async {
        nss.get_opt(ns.name())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// A one-shot HTTP server answering every request with the request line it got.
async fn echo_server() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = req.lines().next().unwrap_or_default().to_owned();
                let auth = req.to_ascii_lowercase().contains("authorization:");
                let body = format!("{line} auth={auth}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn service_proxy_forwards_to_registered_endpoints() {
    let (cluster, client, ns) = setup(Config {
        token: Some("tok".into()),
        ..Config::default()
    })
    .await;
    let addr = echo_server().await;
    cluster
        .register_endpoint(
            "kube-system",
            "sealed-secrets-controller",
            &addr.to_string(),
        )
        .unwrap();
    // kubeseal's path, with the empty port upstream uses.
    let req = http::Request::get("/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:/proxy/v1/cert.pem?x=1").body(vec![]).unwrap();
    let text = client.request_text(req).await.unwrap();
    assert_eq!(text, "GET /v1/cert.pem?x=1 HTTP/1.1 auth=false");
    // The same path as the official Python client sends it (every path parameter escaped):
    // decoded before routing, as Go's net/http does for kube-apiserver.
    let req = http::Request::get(
        "/api/v1/namespaces/kube-system/services/http%3Asealed-secrets-controller%3A/proxy/v1%2Fcert.pem",
    )
    .body(vec![])
    .unwrap();
    assert_eq!(
        client.request_text(req).await.unwrap(),
        "GET /v1/cert.pem HTTP/1.1 auth=false"
    );
    // What the target must see escaped is escaped again.
    let req = http::Request::get(
        "/api/v1/namespaces/kube-system/services/sealed-secrets-controller%3Ahttp/proxy/a%20b%3Fc",
    )
    .body(vec![])
    .unwrap();
    assert_eq!(
        client.request_text(req).await.unwrap(),
        "GET /a%20b%3Fc HTTP/1.1 auth=false"
    );
    let req = http::Request::post(
        "/api/v1/namespaces/kube-system/services/sealed-secrets-controller:8080/proxy/v1/verify",
    )
    .body(b"data".to_vec())
    .unwrap();
    assert_eq!(
        client.request_text(req).await.unwrap(),
        "POST /v1/verify HTTP/1.1 auth=false"
    );

    // The annotation alternative.
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns.name());
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": "annotated", "annotations": {harness::standin::ENDPOINT_ANNOTATION: addr.to_string()}},
        "spec": {"ports": [{"name": "http", "port": 8080}]},
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{}/services/annotated:http/proxy/",
        ns.name()
    ))
    .body(vec![])
    .unwrap();
    assert_eq!(
        client.request_text(req).await.unwrap(),
        "GET / HTTP/1.1 auth=false"
    );

    // No endpoints: 503 ServiceUnavailable; no service: 404 (without retries to see them).
    let raw = no_retry_client(&cluster);
    svcs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "plain"}})).unwrap(),
    )
    .await
    .unwrap();
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{}/services/plain:80/proxy/",
        ns.name()
    ))
    .body(vec![])
    .unwrap();
    assert_eq!(
        api_error(raw.request_text(req).await.unwrap_err()),
        (503, "ServiceUnavailable".into())
    );
    let req = http::Request::get(format!(
        "/api/v1/namespaces/{}/services/missing:80/proxy/",
        ns.name()
    ))
    .body(vec![])
    .unwrap();
    assert_eq!(api_error(raw.request_text(req).await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let (cluster, client, _ns) = setup(Config {
        token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let ok: Api<Namespace> = Api::all(client);
    assert!(ok.get("default").await.is_ok());
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info.token = Some("wrong".to_owned().into());
    let bad: Api<Namespace> = Api::all(Client::try_from(config).unwrap());
    let (code, reason) = api_error(bad.get("default").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn fault_injection_knobs() {
    let (cluster, client, ns) = setup(Config {
        fault_seed: Some(7),
        ..Config::default()
    })
    .await;
    let handle = cluster.standin_handle().unwrap().clone();
    let raw: Api<ConfigMap> = Api::namespaced(no_retry_client(&cluster), ns.name());
    let api: Api<ConfigMap> = Api::namespaced(client, ns.name());
    api.create(&PostParams::default(), &cm("f", &[]))
        .await
        .unwrap();

    handle.set_faults(Faults {
        error500_fraction: 1.0,
        ..Faults::default()
    });
    assert_eq!(
        api_error(raw.get("f").await.unwrap_err()),
        (500, "InternalError".into())
    );
    // Discovery is spared so that clients can still find resources.
    assert!(raw.clone().into_client().apiserver_version().await.is_ok());

    handle.set_faults(Faults {
        error429_fraction: 1.0,
        ..Faults::default()
    });
    assert_eq!(
        api_error(raw.get("f").await.unwrap_err()),
        (429, "TooManyRequests".into())
    );
    // kube-rs' default client retries 429s (honouring Retry-After); with half of the requests
    // failing it gets through.
    handle.set_faults(Faults {
        error429_fraction: 0.5,
        ..Faults::default()
    });
    for _ in 0..3 {
        api.get("f").await.unwrap();
    }

    handle.set_faults(Faults {
        error500_fraction: 0.5,
        ..Faults::default()
    });
    let mut failures = 0;
    for _ in 0..200 {
        if raw.get("f").await.is_err() {
            failures += 1;
        }
    }
    assert!(
        (60..=140).contains(&failures),
        "{failures} of 200 failed at fraction 0.5"
    );

    handle.set_faults(Faults {
        conflict_fraction: 1.0,
        ..Faults::default()
    });
    let current = raw.get("f").await.unwrap();
    assert_eq!(
        api_error(
            raw.replace("f", &PostParams::default(), &current)
                .await
                .unwrap_err()
        )
        .0,
        409
    );
    let p = Patch::Merge(json!({"data": {"y": "1"}}));
    assert_eq!(
        api_error(
            raw.patch("f", &PatchParams::default(), &p)
                .await
                .unwrap_err()
        )
        .0,
        409
    );
    raw.create(&PostParams::default(), &cm("g", &[]))
        .await
        .unwrap();

    handle.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let started = Instant::now();
    raw.get("f").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    handle.set_faults(Faults {
        watch_cut_seconds: 1,
        ..Faults::default()
    });
    let started = Instant::now();
    let stream = raw
        .watch(&WatchParams::default().timeout(60).disable_bookmarks(), "0")
        .await
        .unwrap();
    let events: Vec<_> = stream.collect().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stream was not cut"
    );
    assert_eq!(events.len(), 2, "initial ADDED events for f and g");
    handle.set_faults(Faults::default());
}
