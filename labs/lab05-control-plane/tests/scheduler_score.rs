//! The scheduler's scores against upstream's unit tests, each named for
//! the upstream case (least_allocated_test.go, balanced_allocation_test.go,
//! taint_toleration_test.go, node_affinity_test.go, image_locality_test.go,
//! schedule_one_test.go; kube-scheduler 1.32).

mod scheduler_support;

use std::collections::HashMap;
use std::sync::Arc;

use lab05::scheduler::feasible::{
    num_feasible_nodes_to_find, select_host, Rng,
};
use lab05::scheduler::score::{self, default_normalize};
use lab05::scheduler::{Algorithm, NodeInfo, PodInfo, Snapshot};
use scheduler_support::*;
use serde_json::{json, Value};

fn cm(cpu: &str, memory: &str) -> Value {
    json!({"cpu": cpu, "memory": memory})
}

/// st.MakeNode().Capacity({cpu, memory}): cpu in whole cores as upstream
/// writes it ("4000" is 4000 cores; only the ratios matter).
fn cap_node(name: &str, cpu: &str, memory: &str) -> NodeInfo {
    node(name, json!({"cpu": cpu, "memory": memory, "pods": "110"}))
}

fn least(pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
    nodes
        .iter()
        .map(|n| score::node_resources_fit_score(pod, n))
        .collect()
}

fn two_containers() -> PodInfo {
    pod_req("p", &[cm("1000", "2000"), cm("2000", "3000")])
}

// least_allocated_test.go TestLeastAllocatedScoringStrategy ------------

#[test]
fn least_allocated_nothing_scheduled() {
    // "nothing scheduled, nothing requested"
    let nodes = [
        cap_node("node1", "4000", "10000"),
        cap_node("node2", "4000", "10000"),
    ];
    let empty = pod_spec("p", json!({"containers": []}));
    assert_eq!(least(&empty, &nodes), [100, 100]);
    // "nothing scheduled, resources requested, differently sized nodes"
    let nodes = [
        cap_node("node1", "4000", "10000"),
        cap_node("node2", "6000", "10000"),
    ];
    assert_eq!(least(&two_containers(), &nodes), [37, 50]);
}

#[test]
fn least_allocated_pods_scheduled() {
    // "no resources requested, pods scheduled"
    let mut nodes = [
        cap_node("node1", "4000", "10000"),
        cap_node("node2", "4000", "10000"),
    ];
    for n in nodes.iter_mut() {
        for i in 0..2 {
            place(n, &pod_spec(&format!("e{i}"), json!({"containers": []})));
        }
    }
    let empty = pod_spec("p", json!({"containers": []}));
    assert_eq!(least(&empty, &nodes), [100, 100]);
    // "no resources requested, pods scheduled with resources"
    let mut nodes = [
        cap_node("node1", "10000", "20000"),
        cap_node("node2", "10000", "20000"),
    ];
    place(&mut nodes[0], &pod_req("a", &[cm("3000", "0")]));
    place(&mut nodes[0], &pod_req("b", &[cm("3000", "0")]));
    place(&mut nodes[1], &pod_req("c", &[cm("3000", "0")]));
    place(&mut nodes[1], &pod_req("d", &[cm("3000", "5000")]));
    assert_eq!(least(&empty, &nodes), [70, 57]);
}

#[test]
fn least_allocated_resources_requested() {
    // "resources requested, pods scheduled with resources"
    let mut nodes = [
        cap_node("node1", "10000", "20000"),
        cap_node("node2", "10000", "20000"),
    ];
    place(&mut nodes[0], &pod_req("a", &[cm("3000", "0")]));
    place(&mut nodes[1], &pod_req("b", &[cm("3000", "5000")]));
    assert_eq!(least(&two_containers(), &nodes), [57, 45]);
    // "resources requested, pods scheduled with resources, differently
    // sized nodes"
    let mut nodes = [
        cap_node("node1", "10000", "20000"),
        cap_node("node2", "10000", "50000"),
    ];
    place(&mut nodes[0], &pod_req("a", &[cm("3000", "0")]));
    place(&mut nodes[1], &pod_req("b", &[cm("3000", "5000")]));
    assert_eq!(least(&two_containers(), &nodes), [57, 60]);
    // "requested resources exceed node capacity"
    let mut nodes = [
        cap_node("node1", "4000", "10000"),
        cap_node("node2", "4000", "10000"),
    ];
    place(&mut nodes[0], &pod_req("a", &[cm("3000", "0")]));
    place(&mut nodes[1], &pod_req("b", &[cm("3000", "5000")]));
    assert_eq!(least(&pod_req("p", &[cm("3000", "0")]), &nodes), [50, 25]);
    // "zero node resources, pods scheduled with resources"
    let mut nodes = [node("node1", json!({})), node("node2", json!({}))];
    place(&mut nodes[0], &pod_req("a", &[cm("3000", "0")]));
    place(&mut nodes[1], &pod_req("b", &[cm("3000", "5000")]));
    assert_eq!(
        least(&pod_spec("p", json!({"containers": []})), &nodes),
        [0, 0]
    );
}

#[test]
fn least_allocated_weights() {
    // "nothing scheduled, resources requested with different weight on
    // CPU and memory, differently sized nodes": memory weight 2, cpu 1.
    // node1: cpu (4000-3000)*100/4000 = 25, memory 50 → (25+100)/3 = 41.
    assert_eq!(
        score::least_allocated(&[3000, 5000], &[4000, 10000], &[1, 2]),
        41
    );
    assert_eq!(
        score::least_allocated(&[3000, 5000], &[6000, 10000], &[1, 2]),
        50
    );
    // A resource the node has none of is left out.
    assert_eq!(
        score::least_allocated(&[3000, 5000], &[0, 10000], &[1, 1]),
        50
    );
    assert_eq!(score::least_allocated(&[1, 1], &[0, 0], &[1, 1]), 0);
}

#[test]
fn least_allocated_non_zero_defaults() {
    // A container without requests counts 100m and 200Mi; an explicit 0
    // stays 0 (non_zero.go).
    let n = [make_node("n", 1000, 1000 * 1024 * 1024)];
    let none = pod_req("p", &[json!({})]);
    // cpu (1000-100)*100/1000 = 90, memory (1000-200)*100/1000 = 80.
    assert_eq!(least(&none, &n), [85]);
    let zero = pod_req("p", &[json!({"cpu": "0", "memory": "0"})]);
    assert_eq!(least(&zero, &n), [100]);
}

// balanced_allocation_test.go TestNodeResourcesBalancedAllocation ------

fn cpu_only() -> PodInfo {
    pod_req("cpu-only", &[cm("1000m", "0"), cm("2000m", "0")])
}

fn cpu_and_memory() -> PodInfo {
    pod_req(
        "cpu-and-memory",
        &[cm("1000m", "2000"), cm("2000m", "3000")],
    )
}

fn balanced(pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<Option<i64>> {
    nodes
        .iter()
        .map(|n| score::balanced_allocation_score(pod, n))
        .collect()
}

#[test]
fn balanced_best_effort_is_skipped() {
    // "nothing scheduled, nothing requested, skip in PreScore"
    let nodes = [
        make_node("node1", 4000, 10000),
        make_node("node2", 4000, 10000),
    ];
    let empty = pod_spec("p", json!({"containers": []}));
    assert_eq!(balanced(&empty, &nodes), [None, None]);
}

#[test]
fn balanced_differently_sized_nodes() {
    // "nothing scheduled, resources requested, differently sized nodes"
    let nodes = [
        make_node("node1", 4000, 10000),
        make_node("node2", 6000, 10000),
    ];
    assert_eq!(balanced(&cpu_and_memory(), &nodes), [Some(87), Some(100)]);
}

#[test]
fn balanced_pods_scheduled_with_resources() {
    // "resources requested, pods scheduled with resources"
    let mut nodes = [
        make_node("node1", 10000, 20000),
        make_node("node2", 10000, 20000),
    ];
    place(&mut nodes[0], &cpu_only());
    place(&mut nodes[1], &cpu_and_memory());
    assert_eq!(balanced(&cpu_and_memory(), &nodes), [Some(82), Some(95)]);
    // "resources requested, pods scheduled with resources, differently
    // sized nodes"
    let mut nodes = [
        make_node("node1", 10000, 20000),
        make_node("node2", 10000, 50000),
    ];
    place(&mut nodes[0], &cpu_only());
    place(&mut nodes[1], &cpu_and_memory());
    assert_eq!(balanced(&cpu_and_memory(), &nodes), [Some(82), Some(80)]);
    // "requested resources at node capacity"
    let mut nodes = [
        make_node("node1", 6000, 10000),
        make_node("node2", 6000, 10000),
    ];
    place(&mut nodes[0], &cpu_only());
    place(&mut nodes[1], &cpu_and_memory());
    assert_eq!(balanced(&cpu_only(), &nodes), [Some(50), Some(75)]);
}

#[test]
fn balanced_more_than_two_resources() {
    // "include scalar resource on a node for balanced resource
    // allocation": cpu, memory and nvidia.com/gpu; population deviation.
    assert_eq!(
        score::balanced_allocation(&[3000, 5000, 4], &[3500, 40000, 8]),
        70
    );
    assert_eq!(
        score::balanced_allocation(&[3000, 5000, 1], &[3500, 40000, 8]),
        65
    );
    // "node without the scalar resource should skip the scalar resource"
    assert_eq!(
        score::balanced_allocation(&[3000, 5000, 0], &[3500, 40000, 0]),
        63
    );
    // A fraction above 1 counts as 1.
    assert_eq!(score::balanced_allocation(&[9000, 0], &[6000, 10000]), 50);
}

// taint_toleration_test.go TestTaintTolerationScore --------------------

fn taint_scores(tolerations: Value, nodes: &[Value]) -> Vec<i64> {
    let pod = pod_spec(
        "pod1",
        json!({"containers": [], "tolerations": tolerations}),
    );
    let infos: Vec<NodeInfo> = nodes
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let n =
                node_with(&format!("node{i}"), json!({}), json!({}), t.clone());
            NodeInfo::new(Arc::new(n)).unwrap()
        })
        .collect();
    let mut scores: Vec<i64> = infos
        .iter()
        .map(|n| score::taint_toleration_score(&pod, n))
        .collect();
    default_normalize(&mut scores, true);
    scores
}

fn prefer(key: &str, value: &str) -> Value {
    json!({"key": key, "value": value, "effect": "PreferNoSchedule"})
}

#[test]
fn taint_score_cases() {
    let foo = json!([{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"}]);
    // "node with taints tolerated by the pod, gets a higher score than
    // those node with intolerable taints"
    assert_eq!(
        taint_scores(
            foo.clone(),
            &[
                json!([prefer("foo", "bar")]),
                json!([prefer("foo", "blah")])
            ]
        ),
        [100, 0]
    );
    // "the nodes that all of their taints are tolerated by the pod, get
    // the same score, no matter how many tolerable taints a node has"
    let both = json!([
        {"key": "cpu-type", "operator": "Equal", "value": "arm64", "effect": "PreferNoSchedule"},
        {"key": "disk-type", "operator": "Equal", "value": "ssd", "effect": "PreferNoSchedule"}]);
    let three = [
        json!([]),
        json!([prefer("cpu-type", "arm64")]),
        json!([prefer("cpu-type", "arm64"), prefer("disk-type", "ssd")]),
    ];
    assert_eq!(taint_scores(both, &three), [100, 100, 100]);
    // "the more intolerable taints a node has, the lower score it gets."
    assert_eq!(taint_scores(foo, &three), [100, 50, 0]);
    // "only taints and tolerations that have effect PreferNoSchedule are
    // checked by taints-tolerations priority function"
    let hard = json!([
        {"key": "cpu-type", "operator": "Equal", "value": "arm64", "effect": "NoSchedule"},
        {"key": "disk-type", "operator": "Equal", "value": "ssd", "effect": "NoSchedule"}]);
    let nodes = [
        json!([]),
        json!([{"key": "cpu-type", "value": "arm64", "effect": "NoSchedule"}]),
        json!([prefer("cpu-type", "arm64"), prefer("disk-type", "ssd")]),
    ];
    assert_eq!(taint_scores(hard, &nodes), [100, 100, 0]);
    // "Default behaviour No taints and tolerations, lands on node with no
    // taints"
    assert_eq!(
        taint_scores(
            json!([]),
            &[json!([]), json!([prefer("cpu-type", "arm64")])]
        ),
        [100, 0]
    );
}

// node_affinity_test.go TestNodeAffinityPriority -----------------------

fn term(weight: i32, exprs: Value) -> Value {
    json!({"weight": weight, "preference": {"matchExpressions": exprs}})
}

fn is(key: &str, value: &str) -> Value {
    json!({"key": key, "operator": "In", "values": [value]})
}

fn affinity_scores(preferred: Value, nodes: &[(&str, Value)]) -> Vec<i64> {
    let spec = json!({"containers": [], "affinity": {"nodeAffinity":
        {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}});
    let pod = pod_spec("p", spec);
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|(name, labels)| {
            let n = NodeInfo::new(Arc::new(node_with(
                name,
                json!({}),
                labels.clone(),
                json!([]),
            )))
            .unwrap();
            score::node_affinity_score(&pod, &n)
        })
        .collect();
    default_normalize(&mut scores, false);
    scores
}

#[test]
fn node_affinity_score_cases() {
    let label1 = json!({"foo": "bar"});
    let label2 = json!({"key": "value"});
    let label3 = json!({"az": "az1"});
    let label4 = json!({"abc": "az11", "def": "az22"});
    let label5 = json!({"foo": "bar", "key": "value", "az": "az1"});
    let affinity1 = json!([term(2, json!([is("foo", "bar")]))]);
    let affinity2 = json!([
        term(2, json!([is("foo", "bar")])),
        term(4, json!([is("key", "value")])),
        term(
            5,
            json!([is("foo", "bar"), is("key", "value"), is("az", "az1")])
        ),
    ]);
    // "no node matches preferred scheduling requirements in NodeAffinity
    // of pod so all nodes' priority is zero"
    let nodes = [
        ("node1", label4),
        ("node2", label2.clone()),
        ("node3", label3.clone()),
    ];
    assert_eq!(affinity_scores(affinity1.clone(), &nodes), [0, 0, 0]);
    // "only node1 matches the preferred scheduling requirements of pod"
    let nodes = [
        ("node1", label1.clone()),
        ("node2", label2.clone()),
        ("node3", label3),
    ];
    assert_eq!(affinity_scores(affinity1, &nodes), [100, 0, 0]);
    // "all nodes matches the preferred scheduling requirements of pod but
    // with different priorities "
    let nodes = [("node1", label1), ("node5", label5), ("node2", label2)];
    assert_eq!(affinity_scores(affinity2, &nodes), [18, 100, 36]);
}

// image_locality_test.go TestImageLocalityPriority ---------------------

const MB: i64 = 1024 * 1024;

fn image_node(name: &str, images: &[(&[&str], i64)]) -> NodeInfo {
    let images: Vec<Value> = images
        .iter()
        .map(|(names, mb)| json!({"names": names, "sizeBytes": mb * MB}))
        .collect();
    let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(
        json!({"metadata": {"name": name}, "status": {"images": images}}),
    )
    .unwrap();
    NodeInfo::new(Arc::new(n)).unwrap()
}

fn image_pod(images: &[&str]) -> PodInfo {
    let containers: Vec<Value> = images
        .iter()
        .map(|i| json!({"name": "c", "image": i}))
        .collect();
    pod_spec("p", json!({"containers": containers}))
}

fn image_scores(pod: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
    let snapshot = Snapshot::new(nodes.to_vec());
    let holders: &HashMap<String, usize> = snapshot.image_holders();
    nodes
        .iter()
        .map(|n| score::image_locality_score(pod, n, holders, nodes.len()))
        .collect()
}

#[test]
fn image_locality_cases() {
    let node403002000 = || {
        image_node(
            "node1",
            &[
                (&["gcr.io/40:latest", "gcr.io/40:v1", "gcr.io/40:v1"], 40),
                (&["gcr.io/300:latest", "gcr.io/300:v1"], 300),
                (&["gcr.io/2000:latest"], 2000),
            ],
        )
    };
    let node25010 = || {
        image_node(
            "node2",
            &[
                (&["gcr.io/250:latest"], 250),
                (&["gcr.io/10:latest", "gcr.io/10:v1"], 10),
            ],
        )
    };
    let node400030 = |name| {
        image_node(
            name,
            &[(&["gcr.io/4000:latest"], 4000), (&["gcr.io/30:latest"], 30)],
        )
    };
    let none = || image_node("node3", &[]);
    // "two images spread on two nodes, prefer the larger image one":
    // 100 * (250M/2 - 23M) / (1000M * 2 - 23M) = 5
    let nodes = [node403002000(), node25010()];
    assert_eq!(
        image_scores(&image_pod(&["gcr.io/40", "gcr.io/250"]), &nodes),
        [0, 5]
    );
    // "two images on one node, prefer this node"
    assert_eq!(
        image_scores(&image_pod(&["gcr.io/40", "gcr.io/300"]), &nodes),
        [7, 0]
    );
    // "if exceed limit, use limit"
    let nodes = [node400030("node1"), node25010()];
    assert_eq!(
        image_scores(&image_pod(&["gcr.io/10", "gcr.io/4000"]), &nodes),
        [100, 0]
    );
    // "if exceed limit, use limit (with node which has no images present)"
    let nodes = [node400030("node1"), node25010(), none()];
    assert_eq!(
        image_scores(&image_pod(&["gcr.io/10", "gcr.io/4000"]), &nodes),
        [66, 0, 0]
    );
    // "pod with multiple large images, node2 is preferred"
    let nodes = [
        image_node(
            "node1",
            &[
                (&["gcr.io/600:latest"], 600),
                (&["gcr.io/40:latest"], 40),
                (&["gcr.io/900:latest"], 900),
            ],
        ),
        image_node(
            "node2",
            &[
                (&["gcr.io/300:latest"], 300),
                (&["gcr.io/600:latest"], 600),
                (&["gcr.io/900:latest"], 900),
            ],
        ),
        none(),
    ];
    let pod = image_pod(&["gcr.io/300", "gcr.io/600", "gcr.io/900"]);
    assert_eq!(image_scores(&pod, &nodes), [32, 36, 0]);
    // "pod with multiple small images"
    let nodes = [
        image_node(
            "node1",
            &[
                (&["gcr.io/20:latest"], 20),
                (&["gcr.io/30:latest"], 30),
                (&["gcr.io/40:latest"], 40),
            ],
        ),
        node400030("node2"),
    ];
    assert_eq!(
        image_scores(&image_pod(&["gcr.io/30", "gcr.io/40"]), &nodes),
        [1, 0]
    );
}

#[test]
fn image_names_are_normalized() {
    // TestNormalizedImageName
    use lab05::scheduler::node_info::normalized_image;
    assert_eq!(normalized_image("root"), "root:latest");
    assert_eq!(
        normalized_image("gcr.io:5000/root"),
        "gcr.io:5000/root:latest"
    );
    assert_eq!(normalized_image("root:tag"), "root:tag");
    assert_eq!(normalized_image("root@sha256:abc"), "root@sha256:abc");
}

// helper.DefaultNormalizeScore (normalize_score_test.go) ---------------

#[test]
fn default_normalize_cases() {
    let run = |mut s: Vec<i64>, reverse| {
        default_normalize(&mut s, reverse);
        s
    };
    assert_eq!(run(vec![10, 20, 30, 40], false), [25, 50, 75, 100]);
    assert_eq!(run(vec![10, 20, 30, 40], true), [75, 50, 25, 0]);
    assert_eq!(run(vec![0, 0, 0], false), [0, 0, 0]);
    assert_eq!(run(vec![0, 0, 0], true), [100, 100, 100]);
    assert_eq!(run(vec![1000, 10, 20, 30], false), [100, 1, 2, 3]);
}

// schedule_one_test.go TestNumFeasibleNodesToFind, selectHost -----------

#[test]
fn num_feasible_nodes_cases() {
    // "not set percentageOfNodesToScore and nodes number not more than 50"
    assert_eq!(num_feasible_nodes_to_find(0, 10), 10);
    // "set percentageOfNodesToScore and nodes number not more than 50"
    assert_eq!(num_feasible_nodes_to_find(40, 10), 10);
    // "not set percentageOfNodesToScore and nodes number more than 50"
    assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
    // "set percentageOfNodesToScore and nodes number more than 50"
    assert_eq!(num_feasible_nodes_to_find(40, 1000), 400);
    // "not set percentageOfNodesToScore and nodes number more than 50*125"
    assert_eq!(num_feasible_nodes_to_find(0, 6000), 300);
    // "set percentageOfNodesToScore and nodes number more than 50*125"
    assert_eq!(num_feasible_nodes_to_find(40, 6000), 2400);
    for (n, want) in [
        (100, 100),
        (500, 230),
        (3000, 780),
        (5000, 500),
        (15000, 750),
    ] {
        assert_eq!(num_feasible_nodes_to_find(0, n), want, "{n} nodes");
    }
}

#[test]
fn select_host_breaks_ties_at_random() {
    let mut rng = Rng::seeded(7);
    assert_eq!(select_host(&[], &mut rng), None);
    assert_eq!(select_host(&[1, 5, 3], &mut rng), Some(1));
    let mut seen = [0; 3];
    for _ in 0..300 {
        seen[select_host(&[9, 4, 9], &mut rng).unwrap()] += 1;
    }
    assert_eq!(seen[1], 0);
    assert!(seen[0] > 50 && seen[2] > 50, "{seen:?}");
}

#[test]
fn the_search_starts_where_the_last_stopped() {
    // 200 nodes, percentage 50: 100 nodes a cycle, then the next 100.
    let nodes: Vec<NodeInfo> = (0..200)
        .map(|i| make_node(&format!("n{i:03}"), 1000, 1 << 30))
        .collect();
    let snapshot = Snapshot::new(nodes);
    let mut algorithm = Algorithm::new(50, Rng::seeded(3));
    let pod = pod_req("p", &[cm("100m", "1Mi")]);
    let first = algorithm.schedule(&pod, &snapshot).unwrap();
    assert_eq!((first.evaluated, first.feasible), (100, 100));
    assert!(first.node.as_str() < "n100", "{}", first.node);
    let second = algorithm.schedule(&pod, &snapshot).unwrap();
    assert!(second.node.as_str() >= "n100", "{}", second.node);
}

#[test]
fn the_cycle_sums_weighted_scores() {
    // A PreferNoSchedule taint (weight 3) outweighs free resources
    // (LeastAllocated and BalancedAllocation, weight 1 each).
    let tainted = NodeInfo::new(Arc::new(node_with(
        "big",
        json!({"cpu": "8", "memory": "16Gi", "pods": "110"}),
        json!({}),
        json!([prefer("soft", "x")]),
    )))
    .unwrap();
    let small = make_node("small", 2000, 4 << 30);
    let snapshot = Snapshot::new(vec![tainted, small]);
    let pod = pod_req("p", &[cm("500m", "1Gi")]);
    let placed = Algorithm::new(0, Rng::seeded(1))
        .schedule(&pod, &snapshot)
        .unwrap();
    assert_eq!(placed.node, "small");
    let nodes: Vec<&NodeInfo> = snapshot.nodes.iter().collect();
    let (plugins, totals) =
        score::score_nodes(&pod, &nodes, snapshot.image_holders(), 2);
    let names: Vec<&str> = plugins.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "TaintToleration",
            "NodeResourcesFit",
            "NodeResourcesBalancedAllocation",
            "ImageLocality"
        ]
    );
    // big: taint 0*3, fit (93+93)/2=93, balanced 100 → 193;
    // small: taint 100*3, fit (75+75)/2=75, balanced 100 → 475.
    assert_eq!(totals, [193, 475]);
}

#[test]
fn the_books_worked_example() {
    // Book 5.10: node A 4 CPU / 8Gi with 1 CPU / 2Gi requested, node B
    // 2 CPU / 8Gi empty; a pod of 500m / 1Gi.
    let mut a = node("a", json!({"cpu": "4", "memory": "8Gi", "pods": "110"}));
    place(&mut a, &pod_req("there", &[cm("1", "2Gi")]));
    let b = node("b", json!({"cpu": "2", "memory": "8Gi", "pods": "110"}));
    let pod = pod_req("p", &[cm("500m", "1Gi")]);
    assert_eq!(least(&pod, &[a.clone(), b.clone()]), [62, 81]);
    assert_eq!(
        balanced(&pod, &[a.clone(), b.clone()]),
        [Some(100), Some(93)]
    );
    let snapshot = Snapshot::new(vec![a, b]);
    let nodes: Vec<&NodeInfo> = snapshot.nodes.iter().collect();
    let (_, totals) =
        score::score_nodes(&pod, &nodes, snapshot.image_holders(), 2);
    assert_eq!(totals, [462, 474]);
}
