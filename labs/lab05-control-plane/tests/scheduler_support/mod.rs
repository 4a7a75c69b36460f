//! What the scheduler's algorithm tests share: nodes and pods as
//! upstream's test helpers make them (st.MakeNode, st.MakePod, makeNode),
//! written as JSON and read into k8s-openapi's types.
#![allow(dead_code)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use lab05::scheduler::node_info::PlacedPod;
use lab05::scheduler::{NodeInfo, PodInfo};
use serde_json::{json, Value};

/// A node named `name` with `allocatable` (as strings: "4000m",
/// "10000"), `labels` and `taints` (JSON).
pub fn node_with(
    name: &str,
    allocatable: Value,
    labels: Value,
    taints: Value,
) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"capacity": allocatable, "allocatable": allocatable},
    }))
    .unwrap()
}

/// A NodeInfo of a node with this allocatable, no pods.
pub fn node(name: &str, allocatable: Value) -> NodeInfo {
    NodeInfo::new(Arc::new(node_with(name, allocatable, json!({}), json!([]))))
        .unwrap()
}

/// upstream's makeNode(name, milliCPU, memory, scalar): cpu in
/// millicores, memory in bytes.
pub fn make_node(name: &str, milli_cpu: i64, memory: i64) -> NodeInfo {
    node(
        name,
        json!({"cpu": format!("{milli_cpu}m"), "memory": memory.to_string(), "pods": "110"}),
    )
}

/// A pod from its spec (JSON), in namespace default.
pub fn pod_spec(name: &str, spec: Value) -> PodInfo {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap();
    PodInfo::new(Arc::new(pod)).unwrap()
}

/// A container requesting these resources (JSON map).
pub fn container(requests: Value) -> Value {
    json!({"name": "c", "image": "pause", "resources": {"requests": requests}})
}

/// A pod with one container per requests map (st.MakePod().Req(…)…).
pub fn pod_req(name: &str, requests: &[Value]) -> PodInfo {
    let containers: Vec<Value> =
        requests.iter().cloned().map(container).collect();
    pod_spec(name, json!({"containers": containers}))
}

/// A pod with containers and init containers.
pub fn pod_init(name: &str, requests: &[Value], init: &[Value]) -> PodInfo {
    let containers: Vec<Value> =
        requests.iter().cloned().map(container).collect();
    let init: Vec<Value> = init.iter().cloned().map(container).collect();
    pod_spec(
        name,
        json!({"containers": containers, "initContainers": init}),
    )
}

/// Puts a pod on a node (as if it ran there).
pub fn place(node: &mut NodeInfo, pod: &PodInfo) {
    node.add_pod(PlacedPod::from(pod));
}
