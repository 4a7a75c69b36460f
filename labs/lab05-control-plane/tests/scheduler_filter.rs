//! The scheduler's filters against upstream's unit tests: each test
//! names the upstream test case it repeats (pkg/scheduler/framework/
//! plugins/*/…_test.go, kube-scheduler 1.32).

mod scheduler_support;

use std::sync::Arc;

use lab05::scheduler::feasible::Rng;
use lab05::scheduler::filter::{self, Code};
use lab05::scheduler::{Algorithm, NodeInfo, ScheduleError, Snapshot};
use scheduler_support::*;
use serde_json::{json, Value};

/// fit_test.go's node: makeAllocatableResources(10, 20, 32, 5, 20, 5)
/// with one pod already using `used` (cpu millicores, memory bytes).
fn fit_node(used: Value) -> NodeInfo {
    let mut n = node(
        "machine1",
        json!({"cpu": "10m", "memory": "20", "pods": "32", "example.com/aaa": "5",
               "ephemeral-storage": "20", "hugepages-2Mi": "5"}),
    );
    place(&mut n, &pod_req("existing", &[used]));
    n
}

fn cm(cpu: i64, memory: i64) -> Value {
    json!({"cpu": format!("{cpu}m"), "memory": memory.to_string()})
}

fn insufficient(
    pod: &lab05::scheduler::PodInfo,
    node: &NodeInfo,
) -> Vec<String> {
    filter::insufficient_resources(&pod.requests, node)
}

// fit_test.go TestEnoughRequests ----------------------------------------

#[test]
fn fit_no_resources_requested_always_fits() {
    // "no resources requested always fits"
    let pod = pod_spec("p", json!({"containers": []}));
    assert!(insufficient(&pod, &fit_node(cm(10, 20))).is_empty());
}

#[test]
fn fit_too_many_resources_fails() {
    // "too many resources fails"
    let pod = pod_req("p", &[cm(1, 1)]);
    assert_eq!(
        insufficient(&pod, &fit_node(cm(10, 20))),
        ["Insufficient cpu", "Insufficient memory"]
    );
}

#[test]
fn fit_init_containers_count_by_the_largest() {
    // "too many resources fails due to init container cpu"
    let pod = pod_init("p", &[cm(1, 1)], &[cm(3, 1)]);
    assert_eq!(
        insufficient(&pod, &fit_node(cm(8, 19))),
        ["Insufficient cpu"]
    );
    // "too many resources fails due to highest init container cpu"
    let pod = pod_init("p", &[cm(1, 1)], &[cm(3, 1), cm(2, 1)]);
    assert_eq!(
        insufficient(&pod, &fit_node(cm(8, 19))),
        ["Insufficient cpu"]
    );
    // "too many resources fails due to init container memory"
    let pod = pod_init("p", &[cm(1, 1)], &[cm(1, 3)]);
    assert_eq!(
        insufficient(&pod, &fit_node(cm(9, 19))),
        ["Insufficient memory"]
    );
    // "too many resources fails due to highest init container memory"
    let pod = pod_init("p", &[cm(1, 1)], &[cm(1, 3), cm(1, 2)]);
    assert_eq!(
        insufficient(&pod, &fit_node(cm(9, 19))),
        ["Insufficient memory"]
    );
    // "init container fits because it's the max, not sum, of containers
    // and init containers"
    let pod = pod_init("p", &[cm(1, 1)], &[cm(1, 1)]);
    assert!(insufficient(&pod, &fit_node(cm(9, 19))).is_empty());
    // "multiple init containers fit because it's the max, not sum, of
    // containers and init containers"
    let pod = pod_init("p", &[cm(1, 1)], &[cm(1, 1), cm(1, 1)]);
    assert!(insufficient(&pod, &fit_node(cm(9, 19))).is_empty());
}

#[test]
fn fit_one_resource_short_names_only_that_one() {
    // "both resources fit"
    assert!(
        insufficient(&pod_req("p", &[cm(1, 1)]), &fit_node(cm(5, 5)))
            .is_empty()
    );
    // "one resource memory fits"
    assert_eq!(
        insufficient(&pod_req("p", &[cm(2, 1)]), &fit_node(cm(9, 5))),
        ["Insufficient cpu"]
    );
    // "one resource cpu fits"
    assert_eq!(
        insufficient(&pod_req("p", &[cm(1, 2)]), &fit_node(cm(5, 19))),
        ["Insufficient memory"]
    );
    // "equal edge case"
    assert!(
        insufficient(&pod_req("p", &[cm(5, 1)]), &fit_node(cm(5, 19)))
            .is_empty()
    );
    // "equal edge case for init container"
    let pod = pod_init("p", &[cm(4, 1)], &[cm(5, 1)]);
    assert!(insufficient(&pod, &fit_node(cm(5, 19))).is_empty());
}

#[test]
fn fit_extended_resources() {
    // "extended resource fits"
    let pod = pod_req("p", &[json!({"example.com/aaa": "1"})]);
    assert!(insufficient(&pod, &fit_node(json!({}))).is_empty());
    // "extended resource capacity enforced"
    let pod = pod_req(
        "p",
        &[json!({"cpu": "1m", "memory": "1", "example.com/aaa": "10"})],
    );
    assert_eq!(
        insufficient(&pod, &fit_node(json!({"example.com/aaa": "0"}))),
        ["Insufficient example.com/aaa"]
    );
    // "extended resource allocatable enforced"
    let pod = pod_req(
        "p",
        &[json!({"cpu": "1m", "memory": "1", "example.com/aaa": "1"})],
    );
    assert_eq!(
        insufficient(&pod, &fit_node(json!({"example.com/aaa": "5"}))),
        ["Insufficient example.com/aaa"]
    );
    // "extended resource allocatable enforced for unknown resource"
    let pod = pod_req(
        "p",
        &[json!({"cpu": "1m", "memory": "1", "example.com/bbb": "1"})],
    );
    assert_eq!(
        insufficient(&pod, &fit_node(json!({}))),
        ["Insufficient example.com/bbb"]
    );
}

#[test]
fn fit_pod_overhead_counts() {
    // "resources + pod overhead fits"
    let mut spec = json!({"containers": [container(cm(1, 1))],
                          "overhead": {"cpu": "3m", "memory": "13"}});
    assert!(
        insufficient(&pod_spec("p", spec.clone()), &fit_node(cm(5, 5)))
            .is_empty()
    );
    // "requests + overhead does not fit for memory"
    spec["overhead"] = json!({"cpu": "1m", "memory": "15"});
    assert_eq!(
        insufficient(&pod_spec("p", spec), &fit_node(cm(5, 5))),
        ["Insufficient memory"]
    );
}

#[test]
fn fit_too_many_pods() {
    // TestPredicateNoEnoughPods (fit_test.go): allocatable pods 1, one
    // pod there already.
    let mut n = node(
        "machine1",
        json!({"cpu": "10m", "memory": "20", "pods": "1"}),
    );
    place(&mut n, &pod_req("existing", &[cm(10, 20)]));
    // "even without specified resources, predicate fails when there's no
    // space for additional pod"
    let none = pod_spec("p", json!({"containers": []}));
    assert_eq!(insufficient(&none, &n), ["Too many pods"]);
    // "even if both resources fit, predicate fails when there's no space
    // for additional pod"
    let mut roomy = node(
        "machine1",
        json!({"cpu": "10m", "memory": "20", "pods": "1"}),
    );
    place(&mut roomy, &pod_req("existing", &[cm(5, 5)]));
    assert_eq!(
        insufficient(&pod_req("p", &[cm(1, 1)]), &roomy),
        ["Too many pods"]
    );
    // Every reason is kept, pods first.
    assert_eq!(
        insufficient(&pod_req("p", &[cm(1, 1)]), &n),
        ["Too many pods", "Insufficient cpu", "Insufficient memory"]
    );
}

#[test]
fn fit_filter_is_resolvable_by_preemption() {
    let pod = pod_req("p", &[cm(1, 1)]);
    let r =
        filter::node_resources_fit(&pod, &fit_node(cm(10, 20))).unwrap_err();
    assert_eq!(r.code, Code::Unschedulable);
    assert_eq!(r.plugin, "NodeResourcesFit");
}

// taint_toleration_test.go TestTaintTolerationFilter --------------------

fn tainted(taints: Value) -> NodeInfo {
    NodeInfo::new(Arc::new(node_with("nodeA", json!({}), json!({}), taints)))
        .unwrap()
}

fn tolerating(tolerations: Value) -> lab05::scheduler::PodInfo {
    pod_spec(
        "pod1",
        json!({"containers": [], "tolerations": tolerations}),
    )
}

fn taint_reasons(pod: Value, node: Value) -> Option<Vec<String>> {
    filter::taint_toleration(&tolerating(pod), &tainted(node))
        .err()
        .map(|r| r.reasons)
}

#[test]
fn taints_untolerated_noschedule_rejects() {
    let user1 =
        json!([{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]);
    // "A pod having no tolerations can't be scheduled onto a node with
    // nonempty taints" (1.32 names the taint; later versions say
    // "node(s) had untolerated taint(s)")
    assert_eq!(
        taint_reasons(json!([]), user1.clone()).unwrap(),
        ["node(s) had untolerated taint {dedicated: user1}"]
    );
    // "A pod which can be scheduled on a dedicated node assigned to user1
    // with effect NoSchedule"
    assert_eq!(taint_reasons(user1.clone(), user1.clone()), None);
    // "A pod which can't be scheduled on a dedicated node assigned to
    // user2 with effect NoSchedule"
    let user2 = json!([{"key": "dedicated", "operator": "Equal", "value": "user2",
                        "effect": "NoSchedule"}]);
    assert!(taint_reasons(user2.clone(), user1).is_some());
    // "A pod can be scheduled onto the node, with a toleration uses
    // operator Exists that tolerates the taints on the node"
    let foo = json!([{"key": "foo", "value": "bar", "effect": "NoSchedule"}]);
    let exists =
        json!([{"key": "foo", "operator": "Exists", "effect": "NoSchedule"}]);
    assert_eq!(taint_reasons(exists, foo.clone()), None);
    // "A pod has multiple tolerations, node has multiple taints, all the
    // taints are tolerated, pod can be scheduled onto the node"
    let both = json!([
        {"key": "dedicated", "operator": "Equal", "value": "user2", "effect": "NoSchedule"},
        {"key": "foo", "operator": "Exists", "effect": "NoSchedule"}]);
    let two = json!([{"key": "dedicated", "value": "user2", "effect": "NoSchedule"},
                     {"key": "foo", "value": "bar", "effect": "NoSchedule"}]);
    assert_eq!(taint_reasons(both, two), None);
}

#[test]
fn taints_effect_and_prefer_no_schedule() {
    let foo = json!([{"key": "foo", "value": "bar", "effect": "NoSchedule"}]);
    // "A pod has a toleration that keys and values match the taint on the
    // node, but (non-empty) effect doesn't match, can't be scheduled onto
    // the node"
    let prefer = json!([{"key": "foo", "operator": "Equal", "value": "bar",
                         "effect": "PreferNoSchedule"}]);
    assert!(taint_reasons(prefer, foo.clone()).is_some());
    // "The pod has a toleration that keys and values match the taint on
    // the node, the effect of toleration is empty, and the effect of
    // taint is NoSchedule. Pod can be scheduled onto the node"
    let any = json!([{"key": "foo", "operator": "Equal", "value": "bar"}]);
    assert_eq!(taint_reasons(any, foo), None);
    // "The pod has a toleration that key and value don't match the taint
    // on the node, but the effect of taint on node is PreferNoSchedule.
    // Pod can be scheduled onto the node"
    let soft = json!([{"key": "dedicated", "value": "user1", "effect": "PreferNoSchedule"}]);
    let user2 = json!([{"key": "dedicated", "operator": "Equal", "value": "user2",
                        "effect": "NoSchedule"}]);
    assert_eq!(taint_reasons(user2, soft.clone()), None);
    // "The pod has no toleration, but the effect of taint on node is
    // PreferNoSchedule. Pod can be scheduled onto the node"
    assert_eq!(taint_reasons(json!([]), soft), None);
    // NoExecute keeps pods off too.
    let evict = json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]);
    assert_eq!(
        taint_reasons(json!([]), evict).unwrap(),
        ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
    );
}

// node_affinity_test.go TestNodeAffinity -------------------------------

fn labelled(name: &str, labels: Value) -> NodeInfo {
    NodeInfo::new(Arc::new(node_with(name, json!({}), labels, json!([]))))
        .unwrap()
}

fn required(expressions: Value) -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": expressions}]}}})
}

fn fits(spec: Value, node: &NodeInfo) -> bool {
    let mut spec = spec;
    spec["containers"] = json!([]);
    let pod = pod_spec("p", spec);
    match filter::node_affinity(&pod, node) {
        Ok(()) => true,
        Err(r) => {
            assert_eq!(r.reasons, [filter::NODE_AFFINITY]);
            assert_eq!(r.code, Code::UnschedulableAndUnresolvable);
            false
        }
    }
}

#[test]
fn affinity_node_selector() {
    let selector = json!({"nodeSelector": {"foo": "bar"}});
    // "missing labels"
    assert!(!fits(selector.clone(), &labelled("n", json!({}))));
    // "same labels"
    assert!(fits(
        selector.clone(),
        &labelled("n", json!({"foo": "bar"}))
    ));
    // "node labels are superset"
    assert!(fits(
        selector,
        &labelled("n", json!({"foo": "bar", "baz": "blah"}))
    ));
    // "node labels are subset"
    let two = json!({"nodeSelector": {"foo": "bar", "baz": "blah"}});
    assert!(!fits(two, &labelled("n", json!({"foo": "bar"}))));
}

#[test]
fn affinity_operators() {
    let n = |labels| labelled("n", labels);
    // "Pod with matchExpressions using In operator that matches the
    // existing node"
    let r = required(
        json!([{"key": "foo", "operator": "In", "values": ["bar", "value2"]}]),
    );
    assert!(fits(json!({"affinity": r}), &n(json!({"foo": "bar"}))));
    // "Pod with matchExpressions using Gt operator that matches the
    // existing node"
    let r = required(
        json!([{"key": "kernel-version", "operator": "Gt", "values": ["0204"]}]),
    );
    assert!(fits(
        json!({"affinity": r}),
        &n(json!({"kernel-version": "0206"}))
    ));
    // "Pod with matchExpressions using NotIn operator that matches the
    // existing node"
    let r = required(
        json!([{"key": "mem-type", "operator": "NotIn", "values": ["DDR", "DDR2"]}]),
    );
    assert!(fits(
        json!({"affinity": r}),
        &n(json!({"mem-type": "DDR3"}))
    ));
    // "Pod with matchExpressions using Exists operator that matches the
    // existing node"
    let r = required(json!([{"key": "GPU", "operator": "Exists"}]));
    assert!(fits(
        json!({"affinity": r}),
        &n(json!({"GPU": "NVIDIA-GRID-K1"}))
    ));
    // "Pod with affinity that don't match node's labels won't schedule
    // onto the node"
    let r = required(
        json!([{"key": "foo", "operator": "In", "values": ["value1", "value2"]}]),
    );
    assert!(!fits(json!({"affinity": r}), &n(json!({"foo": "bar"}))));
    // Lt, and DoesNotExist.
    let r =
        required(json!([{"key": "rank", "operator": "Lt", "values": ["10"]}]));
    assert!(fits(
        json!({"affinity": r.clone()}),
        &n(json!({"rank": "9"}))
    ));
    assert!(!fits(json!({"affinity": r}), &n(json!({"rank": "x"}))));
    let r = required(json!([{"key": "GPU", "operator": "DoesNotExist"}]));
    assert!(!fits(
        json!({"affinity": r.clone()}),
        &n(json!({"GPU": "yes"}))
    ));
    assert!(fits(json!({"affinity": r}), &n(json!({}))));
}

#[test]
fn affinity_terms_and_fields() {
    let n = |labels| labelled("n", labels);
    // "Pod with empty MatchExpressions is not a valid value will match no
    // objects and won't schedule onto the node"
    assert!(!fits(
        json!({"affinity": required(json!([]))}),
        &n(json!({"foo": "bar"}))
    ));
    // "Pod with no Affinity will schedule onto a node"
    assert!(fits(json!({}), &n(json!({"foo": "bar"}))));
    // "Pod with multiple matchExpressions ANDed that doesn't match the
    // existing node"
    let r = required(json!([{"key": "GPU", "operator": "Exists"},
                            {"key": "GPU", "operator": "In", "values": ["AMD", "INTER"]}]));
    assert!(!fits(
        json!({"affinity": r}),
        &n(json!({"GPU": "NVIDIA-GRID-K1"}))
    ));
    // "Pod with multiple NodeSelectorTerms ORed in affinity, matches the
    // node's labels and will schedule onto the node"
    let ored = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar", "value2"]}]},
            {"matchExpressions": [{"key": "diffkey", "operator": "In", "values": ["wrong", "value2"]}]}]}}});
    assert!(fits(json!({"affinity": ored}), &n(json!({"foo": "bar"}))));
    // "Pod with an Affinity matches node's labels but the
    // PodSpec.NodeSelector(the old thing that we are deprecating) is not
    // satisfied, won't schedule onto the node"
    let r = required(json!([{"key": "foo", "operator": "Exists"}]));
    let spec = json!({"nodeSelector": {"foo": "bar"}, "affinity": r});
    assert!(!fits(spec, &n(json!({"foo": "barrrrrr"}))));
    // "Pod with an invalid value in Affinity term won't be scheduled onto
    // the node"
    let r = required(json!([{"key": "foo", "operator": "NotIn",
                             "values": ["invalid value: ___@#$%^"]}]));
    assert!(!fits(json!({"affinity": r}), &n(json!({"foo": "bar"}))));
    // "Pod with matchFields using In operator that matches the existing
    // node" / "… that does not match the existing node"
    let fields = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields":
            [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}]}}});
    assert!(fits(
        json!({"affinity": fields.clone()}),
        &labelled("node1", json!({}))
    ));
    assert!(!fits(
        json!({"affinity": fields}),
        &labelled("node2", json!({}))
    ));
    // "Pod with two terms: matchFields does not match, but
    // matchExpressions matches"
    let two = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]},
            {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}]}]}}});
    assert!(fits(
        json!({"affinity": two}),
        &labelled("node2", json!({"foo": "bar"}))
    ));
}

// node_unschedulable_test.go, node_name_test.go, node_ports_test.go ----

#[test]
fn unschedulable_name_and_ports() {
    let cordoned: k8s_openapi::api::core::v1::Node =
        serde_json::from_value(json!({
        "metadata": {"name": "n"}, "spec": {"unschedulable": true}}))
        .unwrap();
    let cordoned = NodeInfo::new(Arc::new(cordoned)).unwrap();
    // TestNodeUnschedulable: "a pod that tolerates the unschedulable
    // taint is allowed", others are not.
    let plain = pod_spec("p", json!({"containers": []}));
    let r = filter::node_unschedulable(&plain, &cordoned).unwrap_err();
    assert_eq!(r.reasons, ["node(s) were unschedulable"]);
    let tolerant =
        tolerating(json!([{"key": "node.kubernetes.io/unschedulable",
                                      "effect": "NoSchedule"}]));
    assert!(filter::node_unschedulable(&tolerant, &cordoned).is_ok());
    // TestNodeName: "node name does not match".
    let named = pod_spec("p", json!({"containers": [], "nodeName": "bar"}));
    let r = filter::node_name(&named, &labelled("foo", json!({}))).unwrap_err();
    assert_eq!(r.reasons, ["node(s) didn't match the requested node name"]);
    // TestNodePorts: "same udp port", "different host ip, same port".
    let port = |ip: &str, proto: &str| {
        pod_spec(
            "p",
            json!({"containers": [{"name": "c", "ports": [
            {"containerPort": 8080, "hostPort": 8080, "hostIP": ip, "protocol": proto}]}]}),
        )
    };
    let mut n = labelled("n", json!({}));
    place(&mut n, &port("127.0.0.1", "UDP"));
    let r = filter::node_ports(&port("127.0.0.1", "UDP"), &n).unwrap_err();
    assert_eq!(r.reasons, [filter::NODE_PORTS]);
    assert!(filter::node_ports(&port("127.0.0.2", "UDP"), &n).is_ok());
    assert!(filter::node_ports(&port("127.0.0.1", "TCP"), &n).is_ok());
    // "second port with 0.0.0.0 takes every address"
    assert!(filter::node_ports(&port("0.0.0.0", "UDP"), &n).is_err());
}

// The FailedScheduling message (FitError.Error and DefaultPreemption) --

fn cluster(nodes: Vec<NodeInfo>) -> Snapshot {
    Snapshot::new(nodes)
}

fn message(pod: &lab05::scheduler::PodInfo, snapshot: &Snapshot) -> String {
    let mut algorithm = Algorithm::new(0, Rng::seeded(1));
    match algorithm.schedule(pod, snapshot) {
        Err(e @ ScheduleError::Unfit(_)) => e.to_string(),
        other => panic!("expected no fit, got {other:?}"),
    }
}

#[test]
fn fit_error_message_as_kube_scheduler_words_it() {
    let nodes = (1..=3)
        .map(|i| make_node(&format!("node-{i}"), 1000, 1 << 30))
        .collect();
    let big = pod_req("big", &[json!({"cpu": "2"})]);
    assert_eq!(
        message(&big, &cluster(nodes)),
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are \
         available: 3 No preemption victims found for incoming pod."
    );
}

#[test]
fn fit_error_counts_and_sorts_mixed_reasons() {
    let tainted = NodeInfo::new(Arc::new(node_with(
        "node-1",
        json!({"cpu": "1", "memory": "1Gi", "pods": "110"}),
        json!({}),
        json!([{"key": "machine-check-exception", "value": "memory", "effect": "NoSchedule"}]),
    )))
    .unwrap();
    let nodes = vec![
        tainted,
        make_node("node-2", 1000, 1 << 30),
        make_node("node-3", 1000, 1 << 30),
    ];
    let big = pod_req("big", &[json!({"cpu": "2"})]);
    assert_eq!(
        message(&big, &cluster(nodes)),
        "0/3 nodes are available: 1 node(s) had untolerated taint \
         {machine-check-exception: memory}, 2 Insufficient cpu. preemption: 0/3 \
         nodes are available: 1 Preemption is not helpful for scheduling, 2 No \
         preemption victims found for incoming pod."
    );
    // Unresolvable everywhere: preemption is no help anywhere.
    let nodes = (1..=3)
        .map(|i| make_node(&format!("node-{i}"), 1000, 1 << 30))
        .collect();
    let picky = pod_spec(
        "p",
        json!({"containers": [], "nodeSelector": {"disk": "ssd"}}),
    );
    assert_eq!(
        message(&picky, &cluster(nodes)),
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

#[test]
fn fit_error_sorts_counts_as_text() {
    // sort.Strings: "10 Too many pods" comes before "2 Insufficient cpu".
    let mut nodes: Vec<NodeInfo> = (0..2)
        .map(|i| make_node(&format!("a-{i}"), 1000, 1 << 30))
        .collect();
    for i in 0..10 {
        nodes.push(node(
            &format!("b-{i}"),
            json!({"cpu": "4", "memory": "1Gi", "pods": "0"}),
        ));
    }
    let spec = json!({"containers": [container(json!({"cpu": "2"}))],
                      "preemptionPolicy": "Never"});
    assert_eq!(
        message(&pod_spec("p", spec), &cluster(nodes)),
        "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu. preemption: \
         not eligible due to preemptionPolicy=Never."
    );
}

#[test]
fn no_nodes_at_all() {
    let pod = pod_spec("p", json!({"containers": []}));
    let e = Algorithm::new(0, Rng::seeded(1))
        .schedule(&pod, &Snapshot::default())
        .unwrap_err();
    assert_eq!(e.to_string(), "no nodes available to schedule pods");
    assert_eq!(e.condition_reason(), "SchedulerError");
}

#[test]
fn failed_scheduling_messages_for_the_book() {
    // Three clusters of three nodes, three pods that fit none of them.
    let plain = || {
        (1..=3)
            .map(|i| make_node(&format!("node-{i}"), 1000, 1 << 30))
            .collect::<Vec<_>>()
    };
    let mut tainted = plain();
    tainted[0] = NodeInfo::new(Arc::new(node_with(
        "node-1",
        json!({"cpu": "1", "memory": "1Gi", "pods": "110"}),
        json!({}),
        json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
    )))
    .unwrap();
    let big = pod_req("big", &[json!({"cpu": "2"})]);
    let picky = pod_spec(
        "picky",
        json!({"containers": [], "nodeSelector": {"disk": "ssd"}}),
    );
    let text = [
        message(&big, &cluster(plain())),
        message(&big, &cluster(tainted)),
        message(&picky, &cluster(plain())),
    ]
    .join("\n\n");
    insta::assert_snapshot!("failed_scheduling_messages", textwrap(&text));
}

/// Wraps at 76 columns for the book, on spaces.
fn textwrap(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n") {
        let mut line = String::new();
        for word in para.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > 76 {
                out.push_str(&line);
                out.push('\n');
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push_str("\n\n");
    }
    out.trim_end().to_string()
}
