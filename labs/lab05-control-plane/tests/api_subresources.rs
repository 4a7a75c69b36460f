//! The subresources: scale (an autoscaling/v1 Scale), binding (the
//! scheduler's), eviction, log.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use support::{api, kubia_pod, PODS};

const RCS: &str = "/api/v1/namespaces/default/replicationcontrollers";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn rc(replicas: i64) -> Value {
    json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "kubia"},
        "spec": {"replicas": replicas, "template": {
            "metadata": {"labels": {"app": "kubia"}},
            "spec": {"containers": [{"name": "k", "image": "luksa/kubia"}]}}}})
}

#[tokio::test]
async fn scale_reads_and_writes_the_replica_count() {
    let api = api().await;
    let created = api.post(RCS, &rc(3)).await.body;
    let scale = api.get(&format!("{RCS}/kubia/scale")).await;
    assert_eq!(scale.status, StatusCode::OK);
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    assert_eq!(scale.body["spec"]["replicas"], 3);
    assert_eq!(
        scale.body["status"],
        json!({"replicas": 0, "selector": "app=kubia"})
    );
    assert_eq!(scale.body["metadata"]["uid"], created["metadata"]["uid"]);
    let mut five = scale.body.clone();
    five["spec"]["replicas"] = json!(5);
    let put = api.put(&format!("{RCS}/kubia/scale"), &five).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["kind"], "Scale");
    assert_eq!(put.body["spec"]["replicas"], 5);
    let object = api.get(&format!("{RCS}/kubia")).await.body;
    assert_eq!(object["spec"]["replicas"], 5);
    assert_eq!(object["metadata"]["generation"], 2);
    // The Scale's resourceVersion is a precondition.
    let stale = api.put(&format!("{RCS}/kubia/scale"), &five).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let wrong = api.put(&format!("{RCS}/kubia/scale"), &rc(1)).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_deployments_scale_has_its_selector_as_text() {
    let api = api().await;
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kiada"},
        "spec": {"selector": {"matchLabels": {"app": "kiada"}},
            "template": {"metadata": {"labels": {"app": "kiada"}},
            "spec": {"containers": [{"name": "k", "image": "luksa/kiada:0.1"}]}}}});
    let created = api.post(DEPLOYS, &deploy).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let spec = &created.body["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate",
               "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let image = &spec["template"]["spec"]["containers"][0];
    assert_eq!(image["imagePullPolicy"], "IfNotPresent");
    let scale = api.get(&format!("{DEPLOYS}/kiada/scale")).await.body;
    assert_eq!(scale["status"]["selector"], "app=kiada");
    let missing = api.get(&format!("{DEPLOYS}/nope/scale")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

fn binding(pod: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "namespace": "default"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

#[tokio::test]
async fn binding_puts_a_pod_on_a_node_once() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let bound = api
        .post(
            &format!("{PODS}/kubia/binding"),
            &binding("kubia", "node-1"),
        )
        .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    assert_eq!(bound.body["kind"], "Status");
    assert_eq!(bound.body["status"], "Success");
    let pod = api.get(&format!("{PODS}/kubia")).await.body;
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    let condition = &pod["status"]["conditions"][0];
    assert_eq!(
        (&condition["type"], &condition["status"]),
        (&json!("PodScheduled"), &json!("True"))
    );
    assert_eq!(
        pod["status"]["phase"], "Pending",
        "the rest of status stays"
    );
    let again = api
        .post(
            &format!("{PODS}/kubia/binding"),
            &binding("kubia", "node-2"),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        again.message(),
        "Operation cannot be fulfilled on pods/binding \"kubia\": pod kubia is \
         already assigned to node \"node-1\""
    );
    let renamed = api
        .post(
            &format!("{PODS}/kubia/binding"),
            &binding("other", "node-2"),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::BAD_REQUEST);
    let missing = api
        .post(&format!("{PODS}/nope/binding"), &binding("nope", "node-1"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_pod_being_deleted_is_not_bound() {
    let api = api().await;
    let mut pod = kubia_pod("kubia");
    pod["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post(PODS, &pod).await;
    api.delete(&format!("{PODS}/kubia"), None).await;
    let refused = api
        .post(
            &format!("{PODS}/kubia/binding"),
            &binding("kubia", "node-1"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.message().ends_with(
            "pod kubia is being deleted, cannot be assigned to a host"
        ),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn eviction_deletes_the_pod() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "kubia", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0}});
    let evicted = api.post(&format!("{PODS}/kubia/eviction"), &eviction).await;
    assert_eq!(evicted.status, StatusCode::CREATED, "{}", evicted.text);
    assert_eq!(evicted.body["status"], "Success");
    assert_eq!(
        api.get(&format!("{PODS}/kubia")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn logs_need_a_node() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let unbound = api.get(&format!("{PODS}/kubia/log")).await;
    assert_eq!(unbound.status, StatusCode::BAD_REQUEST);
    assert_eq!(unbound.message(), "pod kubia does not have a host assigned");
    api.post(
        &format!("{PODS}/kubia/binding"),
        &binding("kubia", "node-1"),
    )
    .await;
    // Bound to a node that does not exist: kube-apiserver looks the node
    // up to find its kubelet, and says it is not there.
    let bound = api.get(&format!("{PODS}/kubia/log")).await;
    assert_eq!(bound.status, StatusCode::NOT_FOUND);
    assert_eq!(bound.message(), "nodes \"node-1\" not found");
}

#[tokio::test]
async fn subresources_take_only_their_verbs() {
    let api = api().await;
    api.post(PODS, &kubia_pod("kubia")).await;
    let wrong = api.delete(&format!("{PODS}/kubia/status"), None).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    let unknown = api.get(&format!("{PODS}/kubia/scale")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "pods have no scale");
}
