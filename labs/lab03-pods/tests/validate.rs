//! The API server's checks, with its field paths and message shapes.

use std::collections::BTreeSet;

use lab03::manifest::parse_pod;
use lab03::validate::{check_container_name, validate_pod, warnings, LABEL_MESSAGE};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/pods/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn messages(text: &str) -> Vec<String> {
    let pod = parse_pod(text).expect("a pod");
    validate_pod(&pod).iter().map(|e| e.to_string()).collect()
}

#[test]
fn container_names_are_required_labels_and_unique() {
    let mut seen = BTreeSet::new();
    let check = |name: &str, seen: &mut BTreeSet<String>| -> Vec<String> {
        check_container_name(name, "spec.containers[1]", seen)
            .iter()
            .map(|e| e.to_string())
            .collect()
    };
    assert!(check("main", &mut seen).is_empty());
    assert!(check("side-car-2", &mut seen).is_empty());
    assert_eq!(
        check("", &mut seen),
        ["spec.containers[1].name: Required value"]
    );
    assert_eq!(
        check("main", &mut seen),
        ["spec.containers[1].name: Duplicate value: \"main\""]
    );
    assert_eq!(
        check("Main_1", &mut seen),
        [format!(
            "spec.containers[1].name: Invalid value: \"Main_1\": {LABEL_MESSAGE}"
        )]
    );
    let long = "a".repeat(64);
    assert_eq!(
        check(&long, &mut seen),
        [format!(
            "spec.containers[1].name: Invalid value: \"{long}\": must be no more than 63 characters"
        )]
    );
    // Too long and badly formed: both rules are named, length first.
    let both = format!("{long}_");
    assert_eq!(check(&both, &mut seen).len(), 2);
    assert!(seen.contains("main") && seen.contains("side-car-2"));
}

#[test]
fn the_books_manifests_are_valid() {
    for name in [
        "kubia-labels.yaml",
        "kubia-liveness.yaml",
        "kubia-two-containers.yaml",
        "kubia.json",
    ] {
        assert_eq!(messages(&fixture(name)), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn a_broken_pod_gets_every_error() {
    insta::assert_snapshot!(messages(&fixture("broken.yaml")).join("\n"));
}

#[test]
fn init_containers_share_the_names() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: kubia}\nspec:\n  initContainers:\n  - {name: kubia, image: busybox, livenessProbe: {exec: {command: [\"true\"]}}}\n  containers:\n  - {name: kubia, image: kubia, livenessProbe: {exec: {command: [\"true\"]}, successThreshold: 2}}\n";
    insta::assert_snapshot!(messages(text).join("\n"));
}

#[test]
fn a_pod_without_containers_or_name() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {labels: {app: \"-kubia\"}}\nspec:\n  containers: []\n  hostname: Kubia.local\n";
    insta::assert_snapshot!(messages(text).join("\n"));
}

#[test]
fn duplicate_ports_are_a_warning() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: kubia}\nspec:\n  containers:\n  - {name: a, image: kubia, ports: [{containerPort: 8080}]}\n  - {name: b, image: kubia, ports: [{containerPort: 8080, protocol: TCP}, {containerPort: 8080, protocol: UDP}]}\n";
    let pod = parse_pod(text).expect("a pod");
    assert_eq!(
        warnings(&pod),
        ["spec.containers[1].ports[0]: duplicate port definition with spec.containers[0].ports[0]"]
    );
}

/// The broken pod's errors as the book shows them: each message wrapped
/// at 78 columns, continued with an indent.
#[test]
fn the_books_listing_of_the_broken_pod() {
    let mut listing = String::new();
    for message in messages(&fixture("broken.yaml")) {
        let mut line = String::new();
        for word in message.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > 78 {
                listing.push_str(&line);
                listing.push('\n');
                line = "    ".to_string();
            } else if !line.is_empty() && line != "    " {
                line.push(' ');
            }
            line.push_str(word);
        }
        listing.push_str(&line);
        listing.push('\n');
    }
    assert!(
        listing.lines().all(|l| l.chars().count() <= 80),
        "{listing}"
    );
    insta::assert_snapshot!(listing);
}
