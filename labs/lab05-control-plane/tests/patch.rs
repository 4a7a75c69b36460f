//! PATCH bodies applied to objects: JSON merge patch, JSON patch and
//! strategic merge patch, as kubectl label/scale/apply send them.

use lab05::apiserver::patch::{apply_patch, PatchError, PatchType};
use lab05::apiserver::resources::{by_kind, Resource};
use serde_json::{json, Value};

fn res(group: &str, kind: &str) -> &'static Resource {
    by_kind(group, kind).unwrap()
}

fn patch(kind: &str, current: Value, body: Value, t: PatchType) -> Value {
    let group = if kind == "Deployment" { "apps" } else { "" };
    let body = serde_json::to_vec(&body).unwrap();
    apply_patch(res(group, kind), &current, &body, t).unwrap()
}

fn smp(kind: &str, current: Value, body: Value) -> Value {
    patch(kind, current, body, PatchType::StrategicMerge)
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kubia", "labels": {"app": "kubia"},
                     "finalizers": ["a"]},
        "spec": {
            "containers": [
                {"name": "main", "image": "luksa/kubia",
                 "args": ["-v"],
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                 "env": [{"name": "A", "value": "1"},
                         {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "busybox"}
            ],
            "tolerations": [{"key": "x", "operator": "Exists"}]
        }
    })
}

#[test]
fn content_types_name_the_patch_types() {
    let t = PatchType::from_content_type;
    assert_eq!(t("application/merge-patch+json"), Some(PatchType::Merge));
    assert_eq!(
        t("application/strategic-merge-patch+json; charset=utf-8"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(t("application/json-patch+json"), Some(PatchType::Json));
    assert_eq!(t("application/apply-patch+yaml"), Some(PatchType::Apply));
    assert_eq!(t("application/json"), None);
}

#[test]
fn merge_patch_deletes_nulls_and_replaces_lists() {
    let out = patch(
        "Pod",
        pod(),
        json!({"metadata": {"labels": {"app": null, "env": "prod"}},
               "spec": {"containers": [{"name": "only"}]}}),
        PatchType::Merge,
    );
    assert_eq!(out["metadata"]["labels"], json!({"env": "prod"}));
    assert_eq!(out["spec"]["containers"], json!([{"name": "only"}]));
    assert_eq!(out["spec"]["tolerations"], pod()["spec"]["tolerations"]);
}

#[test]
fn scale_merge_patch_sets_replicas() {
    let rc = json!({"kind": "ReplicationController",
                    "spec": {"replicas": 3, "selector": {"app": "kubia"}}});
    let out = patch(
        "ReplicationController",
        rc,
        json!({"spec": {"replicas": 5}}),
        PatchType::Merge,
    );
    assert_eq!(
        out["spec"],
        json!({"replicas": 5, "selector": {"app": "kubia"}})
    );
}

#[test]
fn json_patch_runs_every_operation() {
    let ops = json!([
        {"op": "test", "path": "/metadata/name", "value": "kubia"},
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name",
         "value": "k"},
        {"op": "replace", "path": "/spec/containers/0/image",
         "value": "luksa/kubia:v2"},
        {"op": "add", "path": "/spec/containers/0/args/-", "value": "-x"},
        {"op": "copy", "from": "/metadata/labels/app",
         "path": "/metadata/labels/copy"},
        {"op": "move", "from": "/metadata/labels/copy",
         "path": "/metadata/labels/moved"},
        {"op": "remove", "path": "/spec/containers/1"}
    ]);
    let out = patch("Pod", pod(), ops, PatchType::Json);
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "kubia", "app.kubernetes.io/name": "k",
               "moved": "kubia"})
    );
    let containers = out["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["image"], "luksa/kubia:v2");
    assert_eq!(containers[0]["args"], json!(["-v", "-x"]));
}

#[test]
fn json_patch_failures_name_the_path() {
    let body = serde_json::to_vec(&json!([
        {"op": "replace", "path": "/metadata/name", "value": "other"},
        {"op": "test", "path": "/spec/containers/0/image", "value": "nginx"}
    ]))
    .unwrap();
    let err = apply_patch(res("", "Pod"), &pod(), &body, PatchType::Json)
        .unwrap_err();
    match err {
        PatchError::NotApplicable(m) => {
            assert!(m.contains("/spec/containers/0/image"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let body = br#"[{"op": "remove", "path": "/no/such"}]"#;
    let err =
        apply_patch(res("", "Pod"), &pod(), body, PatchType::Json).unwrap_err();
    assert!(
        matches!(err, PatchError::NotApplicable(m) if m.contains("/no/such"))
    );
}

#[test]
fn malformed_bodies_are_malformed() {
    for t in [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ] {
        let err =
            apply_patch(res("", "Pod"), &pod(), b"{\"a\": [", t).unwrap_err();
        assert!(matches!(err, PatchError::Malformed(_)), "{t:?}: {err:?}");
    }
    let err = apply_patch(
        res("", "Pod"),
        &pod(),
        br#"[{"op": "frobnicate", "path": "/a"}]"#,
        PatchType::Json,
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::Malformed(_)));
    let err = apply_patch(
        res("", "Pod"),
        &pod(),
        b"[1, 2]",
        PatchType::StrategicMerge,
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::Malformed(_)));
}

#[test]
fn strategic_maps_merge_and_null_deletes() {
    let out = smp(
        "Pod",
        pod(),
        json!({"metadata": {"labels": {"app": null, "tier": "web"},
                            "annotations": {"a": "b"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"tier": "web"}));
    assert_eq!(out["metadata"]["annotations"], json!({"a": "b"}));
    assert_eq!(out["spec"], pod()["spec"]);
}

#[test]
fn strategic_merges_containers_by_name() {
    let out = smp(
        "Pod",
        pod(),
        json!({"spec": {"containers": [
            {"name": "sidecar", "image": "busybox:1.36"},
            {"name": "log-tailer", "image": "log-tailer-1.0"}
        ]}}),
    );
    let names: Vec<&str> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "sidecar", "log-tailer"]);
    assert_eq!(out["spec"]["containers"][1]["image"], "busybox:1.36");
    // The untouched container keeps everything it had.
    assert_eq!(out["spec"]["containers"][0], pod()["spec"]["containers"][0]);
}

#[test]
fn strategic_delete_directive_removes_by_key() {
    let out = smp(
        "Pod",
        pod(),
        json!({"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}
        ]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([pod()["spec"]["containers"][0]])
    );
}

#[test]
fn strategic_delete_then_add_with_the_same_key() {
    let out = smp(
        "Pod",
        pod(),
        json!({"spec": {"containers": [
            {"name": "sidecar", "image": "fresh"},
            {"name": "sidecar", "$patch": "delete"}
        ]}}),
    );
    assert_eq!(
        out["spec"]["containers"][1],
        json!({"name": "sidecar", "image": "fresh"})
    );
}

#[test]
fn strategic_merges_nested_lists_by_their_keys() {
    let out = smp(
        "Pod",
        pod(),
        json!({"spec": {"containers": [{
            "name": "main",
            "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"},
                    {"name": "A", "$patch": "delete"}],
            "ports": [{"containerPort": 8080, "name": "http"},
                      {"containerPort": 9090}],
            "args": ["--new"]
        }]}}),
    );
    let main = &out["spec"]["containers"][0];
    assert_eq!(
        main["env"],
        json!([{"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        main["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP", "name": "http"},
               {"containerPort": 9090}])
    );
    // args has no patchStrategy: replaced.
    assert_eq!(main["args"], json!(["--new"]));
}

#[test]
fn strategic_lists_without_a_strategy_are_replaced() {
    let out = smp(
        "Pod",
        pod(),
        json!({"spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}}),
    );
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "y", "operator": "Exists"}])
    );
}

#[test]
fn strategic_replace_directive_on_list_and_map() {
    let out = smp(
        "Pod",
        pod(),
        json!({"spec": {"containers": [{"name": "solo"}, {"$patch": "replace"}]},
               "metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
    );
    assert_eq!(out["spec"]["containers"], json!([{"name": "solo"}]));
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
}

#[test]
fn strategic_finalizers_are_a_set() {
    let out = smp(
        "Pod",
        pod(),
        json!({"metadata": {"finalizers": ["b", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    let out = smp(
        "Pod",
        out,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn strategic_retain_keys_drops_unlisted_keys() {
    let deploy = json!({"spec": {"strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = smp(
        "Deployment",
        deploy,
        json!({"spec": {"strategy": {"$retainKeys": ["type"],
                                     "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let body = serde_json::to_vec(&json!({"spec": {"strategy": {
        "$retainKeys": ["type"], "rollingUpdate": {}}}}))
    .unwrap();
    let err = apply_patch(
        res("apps", "Deployment"),
        &json!({}),
        &body,
        PatchType::StrategicMerge,
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::Malformed(_)));
}

#[test]
fn strategic_merges_a_deployments_template_containers() {
    let deploy = json!({"kind": "Deployment", "spec": {"replicas": 1,
        "template": {"metadata": {"labels": {"app": "kiada"}},
                     "spec": {"containers": [
                         {"name": "kiada", "image": "luksa/kiada:0.1"},
                         {"name": "envoy", "image": "envoy"}]}}}});
    let out = smp(
        "Deployment",
        deploy,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "kiada"}, {"name": "envoy"}],
            "containers": [{"name": "kiada", "image": "luksa/kiada:0.2"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "kiada", "image": "luksa/kiada:0.2"},
               {"name": "envoy", "image": "envoy"}])
    );
}

#[test]
fn strategic_merges_node_conditions_by_type() {
    let node = json!({"status": {"conditions": [
        {"type": "Ready", "status": "False"},
        {"type": "MemoryPressure", "status": "False"}]}});
    let out = smp(
        "Node",
        node,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"},
               {"type": "MemoryPressure", "status": "False"}])
    );
}

#[test]
fn strategic_merge_key_must_be_present() {
    let body = br#"{"spec": {"containers": [{"image": "x"}]}}"#;
    let err =
        apply_patch(res("", "Pod"), &pod(), body, PatchType::StrategicMerge)
            .unwrap_err();
    assert!(
        matches!(&err, PatchError::NotApplicable(m) if m.contains("merge key: name")),
        "{err:?}"
    );
}

#[test]
fn kubectl_apply_three_way_patch() {
    // What `kubectl apply` sent after an edit of a service's file.
    let svc = json!({"kind": "Service", "metadata": {"name": "kubia",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"clusterIP": "10.96.0.10", "selector": {"app": "kubia"},
                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                           {"port": 443, "targetPort": 8443, "protocol": "TCP"}]}});
    let out = smp(
        "Service",
        svc,
        json!({"metadata": {"annotations": {
                   "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"},
                   "labels": {"tier": "web"}},
               "spec": {"$setElementOrder/ports": [{"port": 80}],
                        "ports": [{"port": 443, "$patch": "delete"},
                                  {"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"tier": "web"}));
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(out["spec"]["clusterIP"], "10.96.0.10");
}

#[test]
fn server_side_apply_takes_yaml_and_creates() {
    let yaml = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: kubia\n  labels:\n    env: prod\nspec:\n  containers:\n  - name: main\n    image: luksa/kubia:v2\n";
    let out =
        apply_patch(res("", "Pod"), &pod(), yaml, PatchType::Apply).unwrap();
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "kubia", "env": "prod"})
    );
    assert_eq!(out["spec"]["containers"][0]["image"], "luksa/kubia:v2");
    assert_eq!(out["spec"]["containers"][1]["name"], "sidecar");
    let created =
        apply_patch(res("", "Pod"), &Value::Null, yaml, PatchType::Apply)
            .unwrap();
    assert_eq!(created["metadata"]["name"], "kubia");
    assert_eq!(created["spec"]["containers"][0]["name"], "main");
}

#[test]
fn strategic_set_element_order_places_elements() {
    let current = json!({"spec": {"containers": [{"name": "main", "env": [
        {"name": "A", "value": "1"}, {"name": "S", "value": "server"},
        {"name": "B", "value": "2"}]}]}});
    let out = smp(
        "Pod",
        current.clone(),
        json!({"spec": {"containers": [{"name": "main",
            "$setElementOrder/env": [{"name": "A"}, {"name": "NEW"}, {"name": "B"}],
            "env": [{"name": "NEW", "value": "x"}]}]}}),
    );
    let names: Vec<&str> = out["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "NEW", "S", "B"]);
    let out = smp(
        "Pod",
        current,
        json!({"spec": {"containers": [{"name": "main",
            "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}]}}),
    );
    let names: Vec<&str> = out["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    // S was before B, the first listed element it preceded.
    assert_eq!(names, ["S", "B", "A"]);
}

/// The real kubectl's patches, applied by `apply_patch`: a tiny server
/// holds one pod and answers discovery, OpenAPI, GET, POST and PATCH.
#[path = "support_kubectl/mod.rs"]
mod support_kubectl;

mod with_kubectl {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use lab05::apiserver::openapi;
    use lab05::apiserver::patch::{apply_patch, PatchType};
    use lab05::apiserver::resources::by_kind;
    use serde_json::{json, Value};

    type Pod = Arc<Mutex<Option<Value>>>;

    fn reply(code: StatusCode, v: Value) -> Response {
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response()
    }

    fn ok(v: Value) -> Response {
        reply(StatusCode::OK, v)
    }

    fn not_found() -> Response {
        reply(
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": 404,
                   "message": "pods \"kubia\" not found",
                   "details": {"name": "kubia", "kind": "pods"}}),
        )
    }

    async fn patch(
        State(pod): State<Pod>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("");
        let Some(t) = PatchType::from_content_type(content_type) else {
            return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, json!({}));
        };
        let current = pod.lock().unwrap().clone().unwrap_or(Value::Null);
        match apply_patch(by_kind("", "Pod").unwrap(), &current, &body, t) {
            Ok(patched) => {
                *pod.lock().unwrap() = Some(patched.clone());
                ok(patched)
            }
            Err(e) => reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"kind": "Status", "apiVersion": "v1",
                       "status": "Failure", "reason": "Invalid",
                       "code": 422, "message": e.to_string()}),
            ),
        }
    }

    fn app(pod: Pod) -> axum::Router {
        let item = "/api/v1/namespaces/default/pods/kubia";
        axum::Router::new()
            .route(
                "/api",
                get(|| async { ok(json!({"kind": "APIVersions", "versions": ["v1"]})) }),
            )
            .route(
                "/apis",
                get(|| async {
                    ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
                }),
            )
            .route(
                "/api/v1",
                get(|| async {
                    ok(json!({"kind": "APIResourceList", "groupVersion": "v1",
                        "resources": [{"name": "pods", "singularName": "pod",
                            "namespaced": true, "kind": "Pod",
                            "verbs": ["create", "get", "list", "patch"]}]}))
                }),
            )
            .route("/openapi/v3", get(|| async { ok(openapi::root()) }))
            .route(
                "/openapi/v3/{*path}",
                get(|axum::extract::Path(p): axum::extract::Path<String>| async move {
                    openapi::document(&p).map(ok).unwrap_or_else(not_found)
                }),
            )
            .route(
                "/api/v1/namespaces/default/pods",
                axum::routing::post(|State(pod): State<Pod>, body: Bytes| async move {
                    let created: Value = serde_json::from_slice(&body).unwrap();
                    *pod.lock().unwrap() = Some(created.clone());
                    reply(StatusCode::CREATED, created)
                }),
            )
            .route(
                item,
                get(|State(pod): State<Pod>| async move {
                    pod.lock().unwrap().clone().map(ok).unwrap_or_else(not_found)
                })
                .patch(patch),
            )
            .with_state(pod)
    }

    /// kubectl's stdout and stderr; it must succeed.
    fn kubectl(home: &std::path::Path, args: &[&str]) -> String {
        let run = super::support_kubectl::run(home, args);
        let text = run.stdout + &run.stderr;
        assert!(run.ok, "kubectl {args:?}: {text}");
        text
    }

    const V1: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kubia
  labels: {app: kubia, env: dev}
spec:
  containers:
  - name: main
    image: luksa/kubia
    env: [{name: A, value: '1'}, {name: B, value: '2'}]
  - name: sidecar
    image: busybox
";

    const V2: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kubia
  labels: {app: kubia, tier: web}
spec:
  containers:
  - name: main
    image: luksa/kubia:v2
    env: [{name: A, value: '1'}, {name: NEW, value: x}, {name: B, value: '2'}]
";

    #[test]
    fn kubectl_apply_label_and_patch() {
        if !kubelings_probe::require_program("kubectl") {
            return;
        }
        let pod: Pod = Arc::default();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(std::future::IntoFuture::into_future(axum::serve(
            listener,
            app(pod.clone()),
        )));
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        super::support_kubectl::write_kubeconfig(h, addr);
        let file = |name: &str, text: &str| {
            let p = h.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        };
        let (v1, v2) = (file("v1.yaml", V1), file("v2.yaml", V2));
        let stored = || pod.lock().unwrap().clone().unwrap();

        kubectl(h, &["apply", "-f", &v1]);
        assert_eq!(stored()["spec"]["containers"][1]["name"], "sidecar");

        // A three-way strategic merge patch: a label dropped, a container
        // deleted by key, an env var inserted where the file has it.
        kubectl(h, &["apply", "-f", &v2]);
        let p = stored();
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": "kubia", "tier": "web"})
        );
        let containers = p["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{containers:?}");
        assert_eq!(containers[0]["image"], "luksa/kubia:v2");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "NEW", "value": "x"},
                   {"name": "B", "value": "2"}])
        );

        kubectl(h, &["label", "pod", "kubia", "env=prod"]);
        assert_eq!(stored()["metadata"]["labels"]["env"], "prod");

        kubectl(
            h,
            &[
                "patch",
                "pod",
                "kubia",
                "--type=json",
                "-p",
                r#"[{"op": "replace", "path": "/spec/containers/0/image", "value": "luksa/kubia:v3"}]"#,
            ],
        );
        assert_eq!(
            stored()["spec"]["containers"][0]["image"],
            "luksa/kubia:v3"
        );

        kubectl(
            h,
            &[
                "patch",
                "pod",
                "kubia",
                "-p",
                r#"{"spec": {"containers": [{"name": "main", "env": [{"name": "A", "$patch": "delete"}]}]}}"#,
            ],
        );
        let env = &stored()["spec"]["containers"][0]["env"];
        assert_eq!(env.as_array().unwrap().len(), 2, "{env}");

        kubectl(
            h,
            &["apply", "--server-side", "--force-conflicts", "-f", &v1],
        );
        let p = stored();
        assert_eq!(p["spec"]["containers"][0]["image"], "luksa/kubia");
        assert_eq!(p["spec"]["containers"][1]["name"], "sidecar");
    }
}
