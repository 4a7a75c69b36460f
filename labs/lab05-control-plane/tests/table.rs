//! Server-side printing: the Tables `kubectl get` renders, per kind, with
//! a fixed `now` so ages are stable. Snapshots show each Table as
//! `kubectl get -o wide` would print it.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Node;
#[path = "support_kubectl/mod.rs"]
mod support_kubectl;

use lab05::apiserver::resources::{by_kind, Resource};
use lab05::apiserver::table::cluster::node_status;
use lab05::apiserver::table::{to_table, IncludeObject};
use serde_json::{json, Value};

/// 2026-01-01T12:00:00Z.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_268_800)
}

fn res(kind: &str) -> &'static Resource {
    let group = match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => "apps",
        "Job" => "batch",
        "EndpointSlice" => "discovery.k8s.io",
        "Lease" => "coordination.k8s.io",
        _ => "",
    };
    by_kind(group, kind).unwrap()
}

fn yaml(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// A Table as kubectl prints it wide: upper-case headers, columns padded
/// to their widest cell and three spaces apart.
fn render(table: &Value) -> String {
    let header: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect();
    let mut lines = vec![header];
    for row in table["rows"].as_array().unwrap() {
        lines.push(
            row["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    let mut widths = vec![0; lines[0].len()];
    for line in &lines {
        assert_eq!(line.len(), widths.len(), "cells match columns: {line:?}");
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    lines
        .iter()
        .map(|l| {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("   ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn table(kind: &str, objects: &[Value]) -> Value {
    to_table(res(kind), objects, "42", IncludeObject::Metadata, now())
}

const PODS: &str = r#"
metadata: {name: running, creationTimestamp: "2026-01-01T11:59:15Z"}
spec:
  nodeName: node1
  containers: [{name: main, image: luksa/kubia}]
status:
  phase: Running
  podIPs: [{ip: 10.1.0.5}]
  conditions: [{type: Ready, status: "True"}]
  containerStatuses:
  - name: main
    ready: true
    restartCount: 0
    image: luksa/kubia
    imageID: ""
    state: {running: {startedAt: "2026-01-01T11:59:20Z"}}
---
metadata: {name: pending, creationTimestamp: "2026-01-01T11:55:00Z"}
spec: {containers: [{name: main}]}
status: {phase: Pending}
---
metadata: {name: crashing, creationTimestamp: "2025-12-31T09:00:00Z"}
spec:
  nodeName: node1
  containers: [{name: main}, {name: sidecar}]
status:
  phase: Running
  podIP: 10.1.0.6
  containerStatuses:
  - name: main
    ready: false
    restartCount: 4
    image: ""
    imageID: ""
    state: {waiting: {reason: CrashLoopBackOff}}
    lastState: {terminated: {exitCode: 1, finishedAt: "2026-01-01T11:58:00Z"}}
  - name: sidecar
    ready: true
    restartCount: 0
    image: ""
    imageID: ""
    state: {running: {}}
---
metadata: {name: initializing, creationTimestamp: "2026-01-01T11:00:00Z"}
spec:
  initContainers: [{name: one}, {name: two}]
  containers: [{name: main}]
  readinessGates: [{conditionType: example.com/feature}]
status:
  phase: Pending
  conditions: [{type: example.com/feature, status: "True"}]
  initContainerStatuses:
  - {name: one, ready: false, restartCount: 0, image: "", imageID: "", state: {terminated: {exitCode: 0}}}
  - {name: two, ready: false, restartCount: 0, image: "", imageID: "", state: {running: {}}}
---
metadata:
  name: leaving
  creationTimestamp: "2026-01-01T10:00:00Z"
  deletionTimestamp: "2026-01-01T12:00:30Z"
spec: {containers: [{name: main}]}
status:
  phase: Running
  containerStatuses:
  - {name: main, ready: true, restartCount: 0, image: "", imageID: "", state: {running: {}}}
---
metadata: {name: done, creationTimestamp: "2025-12-20T12:00:00Z"}
spec: {containers: [{name: main}]}
status:
  phase: Succeeded
  containerStatuses:
  - {name: main, ready: false, restartCount: 0, image: "", imageID: "", state: {terminated: {exitCode: 0, reason: Completed}}}
"#;

#[test]
fn pods_table() {
    let t = table("Pod", &yaml(PODS));
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"]["resourceVersion"], "42");
    assert_eq!(
        t["rows"][5]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );
    insta::assert_snapshot!(render(&t));
}

#[test]
fn rows_carry_metadata_the_object_or_nothing() {
    let cm = yaml(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c, labels: {a: b}}\ndata: {k: v}\n",
    );
    let t = |i| to_table(res("ConfigMap"), &cm, "7", i, now());
    let meta = t(IncludeObject::Metadata);
    assert_eq!(
        meta["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"name": "c", "labels": {"a": "b"}}})
    );
    assert_eq!(t(IncludeObject::Object)["rows"][0]["object"], cm[0]);
    assert_eq!(t(IncludeObject::None)["rows"][0]["object"], Value::Null);
    assert_eq!(
        meta["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
               "description": "The object's name, unique in its namespace.",
               "priority": 0})
    );
    assert_eq!(meta["rows"][0]["cells"], json!(["c", 1, "<unknown>"]));
}

#[test]
fn nodes_table() {
    let nodes = yaml(
        r#"
metadata:
  name: node1
  creationTimestamp: "2025-12-25T12:00:00Z"
  labels: {node-role.kubernetes.io/control-plane: "", kubernetes.io/role: worker}
status:
  conditions: [{type: Ready, status: "True"}]
  addresses: [{type: InternalIP, address: 198.19.0.2}, {type: Hostname, address: node1}]
  nodeInfo: {kubeletVersion: v1.32.0-kubelings, osImage: Debian, kernelVersion: 6.1.0,
             containerRuntimeVersion: "kubelings://0.1", architecture: amd64,
             bootID: "", machineID: "", kubeProxyVersion: "", operatingSystem: linux,
             systemUUID: ""}
---
metadata: {name: node2, creationTimestamp: "2026-01-01T11:00:00Z"}
spec: {unschedulable: true}
status:
  conditions: [{type: Ready, status: "Unknown"}]
---
metadata: {name: node3}
"#,
    );
    insta::assert_snapshot!(render(&table("Node", &nodes)));
}

#[test]
fn node_status_says_ready_notready_unknown_and_cordoned() {
    let node = |v: Value| -> Node {
        let mut n = json!({"metadata": {"name": "n"}});
        n.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        serde_json::from_value(n).unwrap()
    };
    let ready = |s: &str| json!([{"type": "Ready", "status": s}]);
    let cases = [
        (json!({}), "Unknown"),
        (json!({"status": {"conditions": ready("True")}}), "Ready"),
        (
            json!({"status": {"conditions": ready("False")}}),
            "NotReady",
        ),
        (
            json!({"status": {"conditions": ready("Unknown")}}),
            "NotReady",
        ),
        (
            // Other conditions say nothing of STATUS.
            json!({"status": {"conditions": [
                {"type": "MemoryPressure", "status": "True"}]}}),
            "Unknown",
        ),
        (
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "Ready", "status": "True"}]}}),
            "Ready",
        ),
        (
            json!({"spec": {"unschedulable": true},
                   "status": {"conditions": ready("True")}}),
            "Ready,SchedulingDisabled",
        ),
        (
            json!({"spec": {"unschedulable": true}}),
            "Unknown,SchedulingDisabled",
        ),
        (
            json!({"spec": {"unschedulable": false},
                   "status": {"conditions": ready("False")}}),
            "NotReady",
        ),
    ];
    for (object, want) in cases {
        assert_eq!(node_status(&node(object.clone())), want, "{object}");
    }
}

#[test]
fn services_table() {
    let services = yaml(
        r#"
metadata: {name: kubia, creationTimestamp: "2026-01-01T11:00:00Z"}
spec: {type: ClusterIP, clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10],
       selector: {app: kubia}, ports: [{port: 80, targetPort: 8080, protocol: TCP}]}
---
metadata: {name: kubia-nodeport, creationTimestamp: "2026-01-01T11:00:00Z"}
spec: {type: NodePort, clusterIPs: [10.96.0.11], selector: {app: kubia, tier: web},
       ports: [{port: 80, nodePort: 30123, protocol: TCP}, {port: 443, nodePort: 30124, protocol: TCP}]}
---
metadata: {name: kubia-loadbalancer, creationTimestamp: "2026-01-01T11:00:00Z"}
spec: {type: LoadBalancer, clusterIPs: [10.96.0.12], ports: [{port: 80, nodePort: 32143}]}
---
metadata: {name: external, creationTimestamp: "2026-01-01T11:00:00Z"}
spec: {type: ExternalName, externalName: api.example.com}
"#,
    );
    insta::assert_snapshot!(render(&table("Service", &services)));
}

#[test]
fn workload_tables() {
    let template = r#"{metadata: {labels: {app: kubia}}, spec: {containers: [{name: kubia, image: luksa/kubia}, {name: envoy, image: envoy}]}}"#;
    let rc = yaml(&format!(
        "metadata: {{name: kubia, creationTimestamp: \"2026-01-01T11:50:00Z\"}}\nspec: {{replicas: 3, selector: {{app: kubia}}, template: {template}}}\nstatus: {{replicas: 3, readyReplicas: 2}}\n"
    ));
    let rs = yaml(&format!(
        "metadata: {{name: kubia, creationTimestamp: \"2026-01-01T11:50:00Z\"}}\nspec: {{replicas: 3, selector: {{matchLabels: {{app: kubia}}, matchExpressions: [{{key: env, operator: In, values: [prod, dev]}}, {{key: canary, operator: DoesNotExist}}]}}, template: {template}}}\nstatus: {{replicas: 2}}\n"
    ));
    let deploy = yaml(&format!(
        "metadata: {{name: kiada, creationTimestamp: \"2026-01-01T11:50:00Z\"}}\nspec: {{replicas: 3, selector: {{matchLabels: {{app: kubia}}}}, template: {template}}}\nstatus: {{readyReplicas: 1, updatedReplicas: 3, availableReplicas: 1}}\n"
    ));
    let ds = yaml(
        "metadata: {name: ssd-monitor, creationTimestamp: \"2026-01-01T11:50:00Z\"}\nspec: {selector: {matchLabels: {app: ssd}}, template: {spec: {nodeSelector: {disk: ssd}, containers: [{name: main, image: luksa/ssd-monitor}]}}}\nstatus: {desiredNumberScheduled: 2, currentNumberScheduled: 2, numberReady: 1, numberMisscheduled: 0}\n"
    );
    let jobs = yaml(
        r#"
metadata: {name: batch-job, creationTimestamp: "2026-01-01T11:50:00Z"}
spec: {completions: 5, parallelism: 2, template: {spec: {containers: [{name: main, image: luksa/batch-job}]}}}
status: {succeeded: 5, startTime: "2026-01-01T11:50:00Z", completionTime: "2026-01-01T11:52:30Z",
         conditions: [{type: Complete, status: "True"}]}
---
metadata: {name: running-job, creationTimestamp: "2026-01-01T11:58:00Z"}
spec: {parallelism: 3, template: {spec: {containers: [{name: main, image: busybox}]}}}
status: {startTime: "2026-01-01T11:58:00Z", active: 3}
---
metadata: {name: failed-job, creationTimestamp: "2026-01-01T10:00:00Z"}
spec: {template: {spec: {containers: [{name: main, image: busybox}]}}}
status: {failed: 1, conditions: [{type: Failed, status: "True"}]}
"#,
    );
    let text = [
        render(&table("ReplicationController", &rc)),
        render(&table("ReplicaSet", &rs)),
        render(&table("Deployment", &deploy)),
        render(&table("DaemonSet", &ds)),
        render(&table("Job", &jobs)),
    ]
    .join("\n\n");
    insta::assert_snapshot!(text);
}

#[test]
fn small_kinds_tables() {
    let namespaces = yaml(
        "metadata: {name: default, creationTimestamp: \"2025-12-01T12:00:00Z\"}\nstatus: {phase: Active}\n---\nmetadata: {name: old, creationTimestamp: \"2024-01-01T12:00:00Z\", deletionTimestamp: \"2026-01-01T11:59:00Z\"}\nstatus: {phase: Terminating}\n",
    );
    let config_maps = yaml(
        "metadata: {name: fortune-config, creationTimestamp: \"2026-01-01T11:59:00Z\"}\ndata: {sleep-interval: \"25\", my-nginx-config.conf: \"\"}\nbinaryData: {logo: aGk=}\n",
    );
    let secrets = yaml(
        "metadata: {name: fortune-https, creationTimestamp: \"2026-01-01T11:59:00Z\"}\ntype: kubernetes.io/tls\ndata: {tls.crt: aGk=, tls.key: aGk=}\n---\nmetadata: {name: empty, creationTimestamp: \"2026-01-01T11:59:00Z\"}\ntype: Opaque\n",
    );
    let endpoints = yaml(
        r#"
metadata: {name: kubia, creationTimestamp: "2026-01-01T11:00:00Z"}
subsets:
- addresses: [{ip: 10.1.0.5}, {ip: 10.1.0.6}, {ip: 10.1.0.7}]
  ports: [{port: 8080}, {name: https, port: 8443}]
---
metadata: {name: headless, creationTimestamp: "2026-01-01T11:00:00Z"}
subsets: [{addresses: [{ip: 10.1.0.8}]}]
---
metadata: {name: none, creationTimestamp: "2026-01-01T11:00:00Z"}
"#,
    );
    let slices = yaml(
        r#"
metadata: {name: kubia-abcde, creationTimestamp: "2026-01-01T11:00:00Z"}
addressType: IPv4
ports: [{port: 8080}, {name: https}]
endpoints: [{addresses: [10.1.0.5]}, {addresses: [10.1.0.6]}, {addresses: [10.1.0.7]}, {addresses: [10.1.0.9]}]
---
metadata: {name: empty-xyz, creationTimestamp: "2026-01-01T11:00:00Z"}
addressType: IPv4
endpoints: []
"#,
    );
    let events = yaml(
        r#"
metadata: {name: kubia.17a1, creationTimestamp: "2026-01-01T11:59:00Z"}
involvedObject: {kind: Pod, name: kubia, fieldPath: "spec.containers{kubia}"}
reason: Pulled
message: "Successfully pulled image \"luksa/kubia\"  \n"
type: Normal
source: {component: kubelet, host: node1}
firstTimestamp: "2026-01-01T11:50:00Z"
lastTimestamp: "2026-01-01T11:59:30Z"
count: 3
---
metadata: {name: kubia.17a2, creationTimestamp: "2026-01-01T11:59:00Z"}
involvedObject: {kind: Node}
reason: NodeReady
message: Node is ready
type: Normal
eventTime: "2026-01-01T11:58:00.000000Z"
reportingComponent: node-controller
"#,
    );
    let leases = yaml(
        "metadata: {name: node1, namespace: kube-node-lease, creationTimestamp: \"2026-01-01T11:00:00Z\"}\nspec: {holderIdentity: node1, leaseDurationSeconds: 40}\n",
    );
    let text = [
        render(&table("Namespace", &namespaces)),
        render(&table("ConfigMap", &config_maps)),
        render(&table("Secret", &secrets)),
        render(&table("Endpoints", &endpoints)),
        render(&table("EndpointSlice", &slices)),
        render(&table("Event", &events)),
        render(&table("Lease", &leases)),
    ]
    .join("\n\n");
    insta::assert_snapshot!(text);
}

/// The real kubectl renders our Tables: a tiny server answers discovery
/// and `GET pods` (Table or not, by the Accept header kubectl sends).
#[test]
fn kubectl_prints_our_table() {
    use axum::http::{header, HeaderMap};
    use axum::response::IntoResponse;

    if !kubelings_probe::require_program("kubectl") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let json = |v: Value| {
        ([(header::CONTENT_TYPE, "application/json")], v.to_string())
            .into_response()
    };
    let app = axum::Router::new()
        .route(
            "/api",
            axum::routing::get(move || async move {
                json(json!({"kind": "APIVersions", "versions": ["v1"]}))
            }),
        )
        .route(
            "/apis",
            axum::routing::get(move || async move {
                json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
            }),
        )
        .route(
            "/api/v1",
            axum::routing::get(move || async move {
                json(json!({"kind": "APIResourceList", "groupVersion": "v1",
                    "resources": [{"name": "pods", "singularName": "pod",
                        "namespaced": true, "kind": "Pod",
                        "verbs": ["get", "list"], "shortNames": ["po"]}]}))
            }),
        )
        .route(
            "/api/v1/namespaces/default/pods",
            axum::routing::get(move |headers: HeaderMap| async move {
                let accept = headers
                    .get(header::ACCEPT)
                    .and_then(|a| a.to_str().ok())
                    .unwrap_or("");
                assert!(accept.contains("as=Table"), "{accept}");
                let mut pods = yaml(PODS);
                for p in &mut pods {
                    p["metadata"]["namespace"] = json!("default");
                }
                let t = to_table(res("Pod"), &pods, "42", IncludeObject::Metadata, now());
                (
                    [(header::CONTENT_TYPE, "application/json;as=Table;v=v1;g=meta.k8s.io")],
                    t.to_string(),
                )
                    .into_response()
            }),
        );
    runtime.spawn(std::future::IntoFuture::into_future(axum::serve(
        listener, app,
    )));
    let home = tempfile::tempdir().unwrap();
    support_kubectl::write_kubeconfig(home.path(), addr);
    let run = support_kubectl::run(home.path(), &["get", "pods", "-o", "wide"]);
    assert!(run.ok, "{}", run.stderr);
    let stdout = run.stdout;
    // kubectl's tabwriter pads with three spaces too: the same text.
    let table = to_table(
        res("Pod"),
        &yaml(PODS),
        "42",
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(stdout.trim_end(), render(&table));
}
