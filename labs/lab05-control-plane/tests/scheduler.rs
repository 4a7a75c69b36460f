//! The running scheduler against a real API server (HTTPS, tokens, the
//! embedded store), in-process: nodes and pods created through the API,
//! the scheduler started on its own thread, what it did read back from
//! the API (bindings, events, conditions). Every wait is bounded.

#[path = "support_rel/mod.rs"]
mod support_rel;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use lab05::client::Client;
use lab05::scheduler::queue::QueueTimes;
use lab05::scheduler::{Scheduler, SchedulerOptions};
use serde_json::{json, Value};
use support_rel::{Backend, Cluster};

/// A scheduler running on its own thread until dropped.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_scheduler(client: Client) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let options = SchedulerOptions {
        seed: Some(42),
        queue: QueueTimes {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            ..QueueTimes::default()
        },
        ..SchedulerOptions::default()
    };
    let scheduler = Scheduler::new(client, options);
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        scheduler.run(&flag).unwrap();
    });
    Running {
        stop,
        thread: Some(thread),
    }
}

fn node(
    name: &str,
    cpu: &str,
    memory: &str,
    labels: Value,
    taints: Value,
) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .unwrap()
}

fn add_node(client: &Client, node: &Node) {
    let created = client.create(None, node).unwrap();
    // Whatever the create kept of the status, the status is the node's.
    let mut with_status = created;
    with_status.status = node.status.clone();
    client
        .replace_status(
            None,
            with_status.metadata.name.as_deref().unwrap(),
            &with_status,
        )
        .unwrap();
}

fn pod(name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut spec = json!({"containers": [{
        "name": "c", "image": "pause",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }]});
    if let Value::Object(map) = extra {
        for (k, v) in map {
            spec[k] = v;
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

/// Waits (at most `secs`) until `check` gives a value.
fn wait_for<T>(
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_of(client: &Client, name: &str) -> Option<String> {
    let p: Pod = client.get(Some("default"), name).ok()?;
    p.spec?.node_name.filter(|n| !n.is_empty())
}

fn events(client: &Client, reason: &str) -> Vec<Event> {
    let listed = client.list::<Event>(Some("default"), "").unwrap();
    listed
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

fn three_nodes(client: &Client) {
    for i in 1..=3 {
        add_node(
            client,
            &node(&format!("node-{i}"), "4", "8Gi", json!({}), json!([])),
        );
    }
}

#[test]
fn six_pods_spread_as_least_allocated_says() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    three_nodes(&client);
    let _scheduler = start_scheduler(client.clone());
    for i in 0..6 {
        client
            .create(
                Some("default"),
                &pod(&format!("kubia-{i}"), "1", "1Gi", json!({})),
            )
            .unwrap();
    }
    let placed: Vec<String> = (0..6)
        .map(|i| {
            wait_for(20, "a binding", || {
                node_of(&client, &format!("kubia-{i}"))
            })
        })
        .collect();
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &placed {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    // Each pod goes where the most is free: two on each node.
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{placed:?}"
    );
    let scheduled = wait_for(10, "6 Scheduled events", || {
        let e = events(&client, "Scheduled");
        (e.len() >= 6).then_some(e)
    });
    let first = scheduled
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some("kubia-0"))
        .unwrap();
    assert_eq!(
        first.message.as_deref().unwrap(),
        format!("Successfully assigned default/kubia-0 to {}", placed[0])
    );
    assert_eq!(first.type_.as_deref(), Some("Normal"));
    let source = first.source.as_ref().and_then(|s| s.component.as_deref());
    assert_eq!(source, Some("default-scheduler"));
    // The binding set PodScheduled.
    let p: Pod = client.get(Some("default"), "kubia-0").unwrap();
    let conditions = p.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
}

#[test]
fn a_pod_too_big_waits_with_failed_scheduling_then_lands_on_a_new_node() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    three_nodes(&client);
    let _scheduler = start_scheduler(client.clone());
    client
        .create(Some("default"), &pod("big", "10", "1Gi", json!({})))
        .unwrap();
    let failed = wait_for(20, "FailedScheduling", || {
        events(&client, "FailedScheduling").pop()
    });
    let message = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are \
                   available: 3 No preemption victims found for incoming pod.";
    assert_eq!(failed.message.as_deref(), Some(message));
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let condition = wait_for(10, "PodScheduled False", || {
        let p: Pod = client.get(Some("default"), "big").ok()?;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False").then_some(c)
    });
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(condition.message.as_deref(), Some(message));
    assert_eq!(node_of(&client, "big"), None);
    // A node with room: the pod is placed as soon as it is there.
    add_node(&client, &node("node-4", "16", "32Gi", json!({}), json!([])));
    let placed =
        wait_for(20, "the big pod's binding", || node_of(&client, "big"));
    assert_eq!(placed, "node-4");
}

#[test]
fn a_node_selector_picks_the_labelled_node() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    for i in 1..=3 {
        let labels = if i == 2 {
            json!({"disk": "ssd"})
        } else {
            json!({})
        };
        add_node(
            &client,
            &node(&format!("node-{i}"), "4", "8Gi", labels, json!([])),
        );
    }
    let _scheduler = start_scheduler(client.clone());
    let selective = pod(
        "ssd",
        "100m",
        "64Mi",
        json!({"nodeSelector": {"disk": "ssd"}}),
    );
    client.create(Some("default"), &selective).unwrap();
    assert_eq!(
        wait_for(20, "a binding", || node_of(&client, "ssd")),
        "node-2"
    );
}

#[test]
fn a_tainted_node_is_avoided() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let taint =
        json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]);
    add_node(&client, &node("node-1", "64", "128Gi", json!({}), taint));
    add_node(&client, &node("node-2", "4", "8Gi", json!({}), json!([])));
    add_node(&client, &node("node-3", "4", "8Gi", json!({}), json!([])));
    let _scheduler = start_scheduler(client.clone());
    for i in 0..4 {
        client
            .create(
                Some("default"),
                &pod(&format!("p-{i}"), "500m", "256Mi", json!({})),
            )
            .unwrap();
    }
    for i in 0..4 {
        let n =
            wait_for(20, "a binding", || node_of(&client, &format!("p-{i}")));
        assert_ne!(n, "node-1", "p-{i} went to the tainted node");
    }
    // A pod that tolerates the taint may go there (it is the emptiest).
    let tolerant = pod(
        "infra",
        "500m",
        "256Mi",
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra",
                                 "effect": "NoSchedule"}]}),
    );
    client.create(Some("default"), &tolerant).unwrap();
    assert_eq!(
        wait_for(20, "a binding", || node_of(&client, "infra")),
        "node-1"
    );
}
