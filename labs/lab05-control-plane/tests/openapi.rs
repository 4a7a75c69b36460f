//! OpenAPI v3: the shapes kubectl reads, then the real kubectl against a
//! tiny server of discovery and OpenAPI only: `kubectl create -f` sends
//! `fieldValidation=Strict` with no `--validate=false`, and `kubectl
//! explain` finds the kind.

use std::sync::{Arc, Mutex};

#[path = "support_kubectl/mod.rs"]
mod support_kubectl;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use lab05::apiserver::openapi::{document, root};
use lab05::apiserver::resources::{groups, RESOURCES};
use serde_json::{json, Value};

#[test]
fn root_lists_every_group_version_with_a_stable_hash() {
    let r = root();
    let paths = r["paths"].as_object().unwrap();
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "api/v1",
            "apis/apps/v1",
            "apis/batch/v1",
            "apis/coordination.k8s.io/v1",
            "apis/discovery.k8s.io/v1",
        ]
    );
    let url = paths["api/v1"]["serverRelativeURL"].as_str().unwrap();
    assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
    assert_eq!(url.len(), "/openapi/v3/api/v1?hash=".len() + 128);
    assert_eq!(root(), r, "the hash is stable");
}

#[test]
fn documents_have_a_patch_with_field_validation_per_kind() {
    let doc = document("api/v1").unwrap();
    let op =
        &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(
        op["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"fieldValidation"));
    assert!(doc["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    let apps = document("apis/apps/v1").unwrap();
    let schema =
        &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    let slices = document("/apis/discovery.k8s.io/v1").unwrap();
    assert!(slices["components"]["schemas"]
        ["io.k8s.api.discovery.v1.EndpointSlice"]
        .is_object());
    assert!(document("apis/nope/v1").is_none());
    assert!(document("api/v2").is_none());
}

/// A JSON answer (lab05 builds axum without its `json` feature).
fn json_body(v: Value) -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Requests the server saw: method, path and query.
type Seen = Arc<Mutex<Vec<String>>>;

fn resource_list(group_version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.api_version() == group_version)
        .map(|r| {
            json!({"name": r.plural, "singularName": r.singular,
                   "namespaced": r.namespaced, "kind": r.kind,
                   "verbs": r.verbs(), "shortNames": r.short_names})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1",
           "groupVersion": group_version, "resources": resources})
}

fn app(seen: Seen) -> Router {
    let groups: Vec<Value> = groups()
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv], "preferredVersion": gv})
        })
        .collect();
    let apis =
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups});
    Router::new()
        .route(
            "/api",
            get(|| async {
                json_body(json!({"kind": "APIVersions", "versions": ["v1"]}))
            }),
        )
        .route("/apis", get(move || async move { json_body(apis) }))
        .route("/api/v1", get(|| async { json_body(resource_list("v1")) }))
        .route(
            "/apis/{group}/{version}",
            get(|Path((g, v)): Path<(String, String)>| async move {
                json_body(resource_list(&format!("{g}/{v}")))
            }),
        )
        .route("/openapi/v3", get(|| async { json_body(root()) }))
        .route(
            "/openapi/v3/{*path}",
            get(|Path(path): Path<String>| async move {
                document(&path).map(json_body).ok_or(StatusCode::NOT_FOUND)
            }),
        )
        .route(
            "/api/v1/namespaces/default/pods",
            axum::routing::post(|body: Bytes| async move {
                let pod: Value =
                    serde_json::from_slice(&body).unwrap_or_default();
                (StatusCode::CREATED, json_body(pod))
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            seen,
            |State(seen): State<Seen>,
             uri: Uri,
             req: axum::extract::Request,
             next: axum::middleware::Next| async move {
                let line = format!("{} {uri}", req.method());
                seen.lock().unwrap().push(line);
                next.run(req).await
            },
        ))
}

/// A child process killed when the test is done with it, on every path.
/// Runs kubectl with a 30 s limit; whether it succeeded, and its stdout
/// and stderr.
fn kubectl(home: &std::path::Path, args: &[&str]) -> (bool, String) {
    let run = support_kubectl::run(home, args);
    (run.ok, run.stdout + &run.stderr)
}

#[test]
fn kubectl_create_validates_on_the_server_and_explain_finds_the_kind() {
    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let seen: Seen = Arc::default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(std::future::IntoFuture::into_future(axum::serve(
        listener,
        app(seen.clone()),
    )));

    let home = tempfile::tempdir().unwrap();
    support_kubectl::write_kubeconfig(home.path(), addr);
    let pod = home.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kubia}\nspec: {containers: [{name: kubia, image: luksa/kubia}]}\n",
    )
    .unwrap();

    let (ok, out) =
        kubectl(home.path(), &["create", "-f", pod.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("pod/kubia created"), "{out}");
    let requests = seen.lock().unwrap().clone();
    let post = requests
        .iter()
        .find(|r| r.starts_with("POST /api/v1/namespaces/default/pods"))
        .unwrap_or_else(|| panic!("{requests:#?}"));
    assert!(post.contains("fieldValidation=Strict"), "{post}");
    assert!(
        !requests.iter().any(|r| r.contains("/openapi/v2")),
        "{requests:#?}"
    );

    let (ok, out) = kubectl(home.path(), &["explain", "pods"]);
    assert!(ok, "{out}");
    assert!(out.contains("KIND:       Pod"), "{out}");
    assert!(out.contains("VERSION:    v1"), "{out}");

    if cfg!(feature = "explain") {
        let (ok, out) =
            kubectl(home.path(), &["explain", "pods.spec.containers.ports"]);
        assert!(ok, "{out}");
        assert!(out.contains("containerPort"), "{out}");
        let (ok, out) = kubectl(home.path(), &["explain", "deploy.spec"]);
        assert!(ok, "{out}");
        assert!(out.contains("replicas"), "{out}");
    }
}

#[cfg(feature = "explain")]
#[test]
fn schemas_carry_the_merge_keys_strategic_merge_uses() {
    let doc = document("api/v1").unwrap();
    let schemas = &doc["components"]["schemas"];
    let spec = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"];
    assert_eq!(spec["containers"]["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(spec["containers"]["x-kubernetes-patch-strategy"], "merge");
    assert!(spec["tolerations"]
        .get("x-kubernetes-patch-strategy")
        .is_none());
    let container = &schemas["io.k8s.api.core.v1.Container"]["properties"];
    assert_eq!(
        container["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    let meta = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
        ["properties"];
    assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
    let apps = document("apis/apps/v1").unwrap();
    let template = &apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
        ["properties"]["containers"];
    assert_eq!(template["x-kubernetes-patch-merge-key"], "name");
}
