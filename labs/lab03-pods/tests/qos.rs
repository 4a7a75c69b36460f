//! The QoS class, case by case as Kubernetes decides it.

use lab03::manifest::parse_pod;
use lab03::qos::{qos_class, QosClass};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/pods/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A pod whose containers have these resources (YAML flow maps), the
/// last `init` of them init containers.
fn pod(resources: &[&str], init: usize) -> k8s_openapi::api::core::v1::Pod {
    let entry = |i: usize, r: &&str| format!("  - {{name: c{i}, image: kubia, resources: {r}}}\n");
    let split = resources.len() - init;
    let regular: String = resources[..split]
        .iter()
        .enumerate()
        .map(|(i, r)| entry(i, r))
        .collect();
    let inits: String = resources[split..]
        .iter()
        .enumerate()
        .map(|(i, r)| entry(i + 10, r))
        .collect();
    let mut text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: q}}\nspec:\n  containers:\n{regular}"
    );
    if init > 0 {
        text.push_str(&format!("  initContainers:\n{inits}"));
    }
    parse_pod(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn class(resources: &[&str], init: usize) -> QosClass {
    qos_class(&pod(resources, init)).expect("quantities parse")
}

#[test]
fn nothing_requested_is_best_effort() {
    assert_eq!(class(&["{}"], 0), QosClass::BestEffort);
    assert_eq!(class(&["{}", "{}"], 1), QosClass::BestEffort);
    // Zero counts as nothing; other resources do not count at all.
    assert_eq!(
        class(&["{requests: {cpu: 0, ephemeral-storage: 1Gi}}"], 0),
        QosClass::BestEffort
    );
    assert_eq!(
        qos_class(&parse_pod(&fixture("kubia-labels.yaml")).expect("pod")).expect("qos"),
        QosClass::BestEffort
    );
}

#[test]
fn equal_limits_everywhere_are_guaranteed() {
    let full = "{requests: {cpu: 500m, memory: 64Mi}, limits: {cpu: 500m, memory: 64Mi}}";
    assert_eq!(class(&[full], 0), QosClass::Guaranteed);
    assert_eq!(class(&[full, full], 1), QosClass::Guaranteed);
    // Limits alone: the requests default to them.
    assert_eq!(
        class(&["{limits: {cpu: 1, memory: 1Gi}}"], 0),
        QosClass::Guaranteed
    );
    // The same amount written two ways is equal.
    assert_eq!(
        class(
            &["{requests: {cpu: '0.5', memory: 1Gi}, limits: {cpu: 500m, memory: 1024Mi}}"],
            0
        ),
        QosClass::Guaranteed
    );
}

#[test]
fn anything_between_is_burstable() {
    assert_eq!(class(&["{requests: {cpu: 100m}}"], 0), QosClass::Burstable);
    assert_eq!(class(&["{limits: {cpu: 1}}"], 0), QosClass::Burstable);
    assert_eq!(
        class(
            &["{requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 64Mi}}"],
            0
        ),
        QosClass::Burstable
    );
    // One container without limits spoils the pod, an init container too.
    let full = "{limits: {cpu: 1, memory: 1Gi}}";
    assert_eq!(class(&[full, "{}"], 0), QosClass::Burstable);
    assert_eq!(
        class(&[full, "{requests: {memory: 1Mi}}"], 1),
        QosClass::Burstable
    );
    assert_eq!(
        qos_class(&parse_pod(&fixture("kubia-two-containers.yaml")).expect("pod")).expect("qos"),
        QosClass::Burstable
    );
    assert_eq!(QosClass::Burstable.to_string(), "Burstable");
}

#[test]
fn a_bad_quantity_is_an_error() {
    let error = qos_class(&pod(&["{limits: {cpu: lots}}"], 0)).expect_err("bad quantity");
    assert!(
        error
            .to_string()
            .starts_with("resources.limits[cpu]: \"lots\""),
        "{error}"
    );
}
