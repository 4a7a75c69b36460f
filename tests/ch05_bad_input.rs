//! Bad input on `ch05 up --nodes 2` as root, with the real kubectl: an
//! invalid manifest gets kube-apiserver's message and changes nothing; a
//! pod that fits no node stays Pending with kube-scheduler's
//! FailedScheduling message and is placed as soon as a node frees up; an
//! image that is nowhere gives ImagePullBackOff naming the reference, and
//! a rollout to it exceeds its progress deadline.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Duration;

use lab01::probe::{require, require_program, Privilege};

#[path = "ch05/cluster.rs"]
mod cluster;
use cluster::{kubectl, run, text, wait_until};

/// The selector does not match the template's labels.
const INVALID: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kubia
spec:
  replicas: 1
  selector:
    matchLabels:
      app: kubia
  template:
    metadata:
      labels:
        app: foo
    spec:
      containers:
      - name: kubia
        image: kubia:v1
";

fn pod(name: &str, image: &str, cpu_milli: Option<u64>) -> String {
    let resources = cpu_milli
        .map(|m| {
            format!("\n    resources:\n      requests:\n        cpu: {m}m")
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  \
         - name: main\n    image: {image}{resources}\n"
    )
}

/// kubectl apply of `yaml` (written to a file in `home`).
fn apply(home: &Path, name: &str, yaml: &str) -> std::process::Output {
    let path = home.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("writing a manifest");
    run(
        Path::new("kubectl"),
        &["apply", "-f", path.to_str().expect("utf-8")],
        home,
        Duration::from_secs(60),
    )
}

fn node_of(home: &Path, pod: &str) -> String {
    kubectl(
        home,
        &["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"],
    )
}

#[test]
fn bad_input_is_named_and_changes_nothing() {
    if !require(Privilege::Root) || !require_program("kubectl") {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let _down = cluster::Up::two_nodes(home);

    // An invalid manifest: kube-apiserver's words, nothing stored.
    let out = apply(home, "invalid", INVALID);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("The Deployment \"kubia\" is invalid")
            && said.contains("spec.template.metadata.labels")
            && said.contains("`selector` does not match template `labels`"),
        "{said}"
    );
    let left = kubectl(home, &["get", "deployments", "-o", "name"]);
    assert_eq!(left.trim(), "", "something was stored: {left}");

    // Too big for any node: three pods of three quarters of a node's CPU.
    let allocatable = kubectl(
        home,
        &[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.status.allocatable.cpu}",
        ],
    );
    let milli = match allocatable.trim().strip_suffix('m') {
        Some(m) => m.parse::<u64>().expect("millicores"),
        None => allocatable.trim().parse::<u64>().expect("cores") * 1000,
    };
    let big = milli * 3 / 4;
    for name in ["big-1", "big-2", "big-3"] {
        let out = apply(home, name, &pod(name, "kubia:v1", Some(big)));
        assert!(out.status.success(), "{}", text(&out));
        // One at a time, so that big-3 is the one left over.
        if name != "big-3" {
            wait_until(Duration::from_secs(60), "bound", || {
                let n = node_of(home, name);
                if n.is_empty() {
                    Err(n)
                } else {
                    Ok(())
                }
            });
        }
    }
    let message =
        wait_until(Duration::from_secs(60), "FailedScheduling", || {
            let events = kubectl(
                home,
                &[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=big-3,reason=FailedScheduling",
                    "-o",
                    "jsonpath={.items[*].message}",
                ],
            );
            if events.is_empty() {
                Err(events)
            } else {
                Ok(events)
            }
        });
    assert!(
        message.contains("0/2 nodes are available: 2 Insufficient cpu."),
        "{message}"
    );
    assert_eq!(node_of(home, "big-3"), "", "big-3 fits nowhere");
    let freed = node_of(home, "big-1");
    kubectl(home, &["delete", "pod", "big-1", "--wait=false"]);
    let placed = wait_until(Duration::from_secs(90), "big-3 placed", || {
        let n = node_of(home, "big-3");
        if n.is_empty() {
            Err(n)
        } else {
            Ok(n)
        }
    });
    assert_eq!(placed, freed, "big-3 goes where big-1 was");

    // An image that is nowhere: the back-off names it.
    let out = apply(home, "ghost", &pod("ghost", "nothere:v1", None));
    assert!(out.status.success(), "{}", text(&out));
    let waiting =
        wait_until(Duration::from_secs(60), "ImagePullBackOff", || {
            let w = kubectl(
            home,
            &[
                "get",
                "pod",
                "ghost",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason} \
                 {.status.containerStatuses[0].state.waiting.message}",
            ],
        );
            if w.starts_with("ImagePullBackOff") {
                Ok(w)
            } else {
                Err(w)
            }
        });
    assert!(waiting.contains("nothere:v1"), "{waiting}");

    // A rollout to that image never progresses: after its deadline,
    // kubectl rollout status says so and fails.
    let stuck = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector:
    matchLabels:
      app: stuck
  template:
    metadata:
      labels:
        app: stuck
    spec:
      containers:
      - name: main
        image: nothere:v1
";
    let out = apply(home, "stuck", stuck);
    assert!(out.status.success(), "{}", text(&out));
    let status = run(
        Path::new("kubectl"),
        &["rollout", "status", "deployment/stuck", "--timeout=60s"],
        home,
        Duration::from_secs(90),
    );
    assert!(!status.status.success(), "{}", text(&status));
    assert!(
        text(&status)
            .contains("deployment \"stuck\" exceeded its progress deadline"),
        "{}",
        text(&status)
    );
}
