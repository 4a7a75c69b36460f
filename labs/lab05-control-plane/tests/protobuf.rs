//! Protobuf bodies as `kubectl create <generator>` (v1.32) sends them,
//! captured from the real kubectl into `fixtures/protobuf/*.bin`, decode
//! to the object kubectl's `--dry-run=client -o json` prints (the `.json`
//! next to each), less the nulls and empty objects JSON would omit.

use std::path::PathBuf;

#[path = "support_kubectl/mod.rs"]
mod support_kubectl;

use lab05::apiserver::protobuf::{decode, ProtobufError};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/protobuf");
    std::fs::read(dir.join(name)).unwrap()
}

/// Without `null`s and `{}`s, recursively (`creationTimestamp: null`,
/// `status: {}`, `resources: {}`).
fn pruned(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, pruned(v)))
                .filter(|(_, v)| {
                    !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty())
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(pruned).collect())
        }
        other => other,
    }
}

fn check(name: &str) {
    let got = decode(&fixture(&format!("{name}.bin"))).unwrap();
    let want: Value =
        serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap();
    assert_eq!(got, pruned(want), "{name}");
}

#[test]
fn create_namespace() {
    check("namespaces");
}

#[test]
fn create_deployment() {
    check("deployments");
    check("deployments-two");
}

#[test]
fn create_configmap() {
    check("configmaps");
}

#[test]
fn create_secrets_keep_their_bytes_base64() {
    check("secrets");
    check("secrets-docker");
    let secret = decode(&fixture("secrets.bin")).unwrap();
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}));
}

#[test]
fn create_service() {
    check("services");
    check("services-nodeport");
}

#[test]
fn create_job() {
    check("jobs");
}

#[test]
fn bad_bodies_say_why() {
    assert!(matches!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::Envelope(_))
    ));
    let mut truncated = fixture("deployments.bin");
    truncated.truncate(truncated.len() - 10);
    assert!(decode(&truncated).is_err());
    // runtime.Unknown{typeMeta: {apiVersion: v1, kind: Binding}}.
    let binding = b"k8s\0\x0a\x0d\x0a\x02v1\x12\x07Binding";
    assert!(matches!(
        decode(binding),
        Err(ProtobufError::UnsupportedKind(k)) if k == "v1/Binding"
    ));
}

#[test]
fn unknown_fields_with_content_are_refused() {
    // A Namespace whose message has field 9 = "x": nothing we know.
    let body = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x03\x4a\x01x";
    match decode(body) {
        Err(ProtobufError::Decode { kind, reason }) => {
            assert_eq!(kind, "Namespace");
            assert!(reason.contains("field 9"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// The kubectl on this machine, live: what its generators POST decodes
/// to what the same command prints with `--dry-run=client -o json`.
#[test]
fn live_kubectl_create_bodies_decode() {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let ok = |v: Value| {
        ([(header::CONTENT_TYPE, "application/json")], v.to_string())
            .into_response()
    };
    let list = |gv: &str, rs: &[(&str, &str, bool)]| {
        let rs: Vec<Value> = rs
            .iter()
            .map(|(name, kind, namespaced)| {
                json!({"name": name, "singularName": "", "namespaced": namespaced,
                       "kind": kind, "verbs": ["create", "get", "list"]})
            })
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1",
               "groupVersion": gv, "resources": rs})
    };
    let core = list(
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("configmaps", "ConfigMap", true),
            ("secrets", "Secret", true),
            ("services", "Service", true),
        ],
    );
    let apps = list("apps/v1", &[("deployments", "Deployment", true)]);
    let batch = list("batch/v1", &[("jobs", "Job", true)]);
    let groups = json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
        {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]});
    let seen = bodies.clone();
    let create = move |body: Bytes| {
        let seen = seen.clone();
        async move {
            match decode(&body) {
                Ok(object) => {
                    seen.lock().unwrap().push(object.clone());
                    (
                        StatusCode::CREATED,
                        [(header::CONTENT_TYPE, "application/json")],
                        object.to_string(),
                    )
                        .into_response()
                }
                Err(e) => {
                    (StatusCode::BAD_REQUEST, e.to_string()).into_response()
                }
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/api",
            get(move || async move {
                ok(json!({"kind": "APIVersions", "versions": ["v1"]}))
            }),
        )
        .route("/apis", get(move || async move { ok(groups) }))
        .route("/api/v1", get(move || async move { ok(core) }))
        .route("/apis/apps/v1", get(move || async move { ok(apps) }))
        .route("/apis/batch/v1", get(move || async move { ok(batch) }))
        .route("/api/v1/namespaces", post(create.clone()))
        .route("/api/v1/namespaces/default/{plural}", post(create.clone()))
        .route("/apis/{group}/v1/namespaces/default/{plural}", post(create));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(std::future::IntoFuture::into_future(axum::serve(
        listener, app,
    )));
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    support_kubectl::write_kubeconfig(h, addr);
    let kubectl = |args: &[&str]| -> String {
        let run = support_kubectl::run(h, args);
        assert!(run.ok, "kubectl {args:?}: {}", run.stderr);
        run.stdout
    };
    let commands: &[&[&str]] = &[
        &["create", "namespace", "live"],
        &[
            "create",
            "deployment",
            "kiada",
            "--image=luksa/kiada:0.2",
            "--replicas=0",
        ],
        &["create", "configmap", "c", "--from-literal=k=v"],
        &["create", "secret", "generic", "s", "--from-literal=k=v"],
        &["create", "service", "loadbalancer", "lb", "--tcp=80:8080"],
        &["create", "job", "j", "--image=busybox", "--", "true"],
    ];
    for (i, args) in commands.iter().enumerate() {
        kubectl(args);
        // The flags go before a `--` (after it they are the command's).
        let mut dry = args.to_vec();
        let at = dry.iter().position(|a| *a == "--").unwrap_or(dry.len());
        dry.splice(at..at, ["--dry-run=client", "-o", "json"]);
        let want: Value = serde_json::from_str(&kubectl(&dry)).unwrap();
        let got = bodies.lock().unwrap()[i].clone();
        assert_eq!(got, pruned(want), "{args:?}");
    }
    // `--replicas=0` is a pointer field's zero: it stays.
    assert_eq!(bodies.lock().unwrap()[1]["spec"]["replicas"], 0);
}
