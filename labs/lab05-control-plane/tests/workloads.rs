//! The DaemonSet and Job controllers (section 5.11): their pure
//! decisions, then the controller manager against a real API server with
//! the test playing the kubelet (pods become Running, Succeeded or Failed
//! as their `outcome` label says). Every wait is bounded.

mod support_rel;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lab05::client::{Client, Patch};
use lab05::controllers::daemonset::{
    add_daemon_tolerations, plan_node, should_run, target_node, NodeVerdict,
};
use lab05::controllers::job::active_diff;
use lab05::controllers::manager::{self, ManagerOptions};
use lab05::controllers::nodelifecycle::NodeLifecycleOptions;
use lab05::controllers::replicaset::Scale;
use lab05::scheduler::NodeInfo;
use serde_json::{json, Value};
use support_rel::{Backend, Cluster};

// ---- pure parts ----

fn node_json(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastHeartbeatTime": Utc::now().to_rfc3339()}]}
    }))
    .unwrap()
}

fn info(node: Node) -> NodeInfo {
    NodeInfo::new(Arc::new(node)).unwrap()
}

/// A daemon pod's template as the controller checks it: the spec with
/// the daemon tolerations.
fn daemon_template(spec: Value) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({"spec": spec})).unwrap();
    add_daemon_tolerations(pod.spec.as_mut().unwrap());
    pod
}

const RUN: NodeVerdict = NodeVerdict {
    should_run: true,
    should_continue_running: true,
};
const STAY: NodeVerdict = NodeVerdict {
    should_run: false,
    should_continue_running: true,
};
const NO: NodeVerdict = NodeVerdict {
    should_run: false,
    should_continue_running: false,
};

#[test]
fn daemon_nodes_follow_the_node_selector_and_affinity() {
    let containers = json!([{"name": "c", "image": "fluentd"}]);
    let pod = daemon_template(json!({
        "containers": containers, "nodeSelector": {"disk": "ssd"}
    }));
    let ssd = info(node_json("a", json!({"disk": "ssd"}), json!([])));
    let hdd = info(node_json("b", json!({"disk": "hdd"}), json!([])));
    let bare = info(node_json("c", json!({}), json!([])));
    assert_eq!(should_run(&pod, &ssd), RUN);
    assert_eq!(should_run(&pod, &hdd), NO);
    assert_eq!(should_run(&pod, &bare), NO);
    // Required node affinity, and matchFields on the name.
    let pod = daemon_template(json!({
        "containers": containers,
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}
            ]}}}
    }));
    assert_eq!(should_run(&pod, &ssd), NO);
    assert_eq!(should_run(&pod, &hdd), RUN);
    assert_eq!(should_run(&pod, &bare), RUN);
    // A template naming a node runs on that one only.
    let pod =
        daemon_template(json!({"containers": containers, "nodeName": "a"}));
    assert_eq!(should_run(&pod, &ssd), RUN);
    assert_eq!(should_run(&pod, &hdd), NO);
    // No selector at all: every node.
    let pod = daemon_template(json!({"containers": containers}));
    assert_eq!(should_run(&pod, &bare), RUN);
}

#[test]
fn daemon_nodes_respect_taints_but_tolerate_the_daemon_ones() {
    let pod = daemon_template(
        json!({"containers": [{"name": "c", "image": "fluentd"}]}),
    );
    let taint = |key: &str, effect: &str| {
        info(node_json(
            "n",
            json!({}),
            json!([{"key": key, "effect": effect}]),
        ))
    };
    // A NoSchedule taint: no new pod, the one there stays.
    assert_eq!(should_run(&pod, &taint("gpu", "NoSchedule")), STAY);
    // A NoExecute taint: not even that.
    assert_eq!(should_run(&pod, &taint("gpu", "NoExecute")), NO);
    // PreferNoSchedule keeps nothing off.
    assert_eq!(should_run(&pod, &taint("gpu", "PreferNoSchedule")), RUN);
    // What a daemon tolerates by design.
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ] {
        assert_eq!(should_run(&pod, &taint(key, effect)), RUN, "{key}");
    }
    // unreachable:NoSchedule is not among them.
    assert_eq!(
        should_run(
            &pod,
            &taint("node.kubernetes.io/unreachable", "NoSchedule")
        ),
        STAY
    );
    // The template's own toleration.
    let mut tolerant = daemon_template(json!({
        "containers": [{"name": "c", "image": "fluentd"}],
        "tolerations": [{"key": "gpu", "operator": "Exists"}]
    }));
    assert_eq!(should_run(&tolerant, &taint("gpu", "NoExecute")), RUN);
    tolerant.spec.as_mut().unwrap().tolerations = None;
    assert_eq!(should_run(&tolerant, &taint("gpu", "NoExecute")), NO);
}

fn pod_at(name: &str, created: &str, phase: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": phase}
        }))
        .unwrap(),
    )
}

#[test]
fn a_node_keeps_its_oldest_daemon_pod_and_loses_failed_ones() {
    let names = |pods: &[Arc<Pod>]| -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    };
    let plan = plan_node(RUN, &[]);
    assert!(plan.create && plan.delete.is_empty());
    let old = pod_at("old", "2026-01-01T00:00:00Z", "Running");
    let new = pod_at("new", "2026-01-02T00:00:00Z", "Running");
    let failed = pod_at("failed", "2026-01-01T00:00:00Z", "Failed");
    let plan = plan_node(RUN, &[new.clone(), old.clone()]);
    assert!(!plan.create);
    assert_eq!(names(&plan.delete), ["new"]);
    let plan = plan_node(RUN, std::slice::from_ref(&failed));
    assert!(plan.create);
    assert_eq!(names(&plan.delete), ["failed"]);
    let plan = plan_node(STAY, std::slice::from_ref(&old));
    assert!(!plan.create && plan.delete.is_empty());
    let plan = plan_node(NO, &[old.clone(), new.clone()]);
    assert!(!plan.create);
    assert_eq!(names(&plan.delete), ["old", "new"]);
}

#[test]
fn job_active_pods_are_min_of_parallelism_and_what_remains() {
    // completions 3, parallelism 2.
    assert_eq!(active_diff(0, 0, Some(3), 2, 500), Scale::Create(2));
    assert_eq!(active_diff(2, 0, Some(3), 2, 500), Scale::Steady);
    assert_eq!(active_diff(1, 1, Some(3), 2, 500), Scale::Create(1));
    assert_eq!(active_diff(1, 2, Some(3), 2, 500), Scale::Steady);
    assert_eq!(active_diff(0, 3, Some(3), 2, 500), Scale::Steady);
    // Parallelism lowered: the surplus goes.
    assert_eq!(active_diff(5, 0, Some(10), 2, 500), Scale::Delete(3));
    // More succeeded than wanted: nothing stays active.
    assert_eq!(active_diff(1, 4, Some(3), 2, 500), Scale::Delete(1));
    // Capped by the burst.
    assert_eq!(active_diff(0, 0, Some(1000), 1000, 500), Scale::Create(500));
    assert_eq!(active_diff(0, 0, Some(3), 0, 500), Scale::Steady);
}

#[test]
fn job_active_work_queue_stops_creating_after_one_success() {
    assert_eq!(active_diff(0, 0, None, 3, 500), Scale::Create(3));
    assert_eq!(active_diff(2, 0, None, 3, 500), Scale::Create(1));
    assert_eq!(active_diff(2, 1, None, 3, 500), Scale::Steady);
    assert_eq!(active_diff(4, 1, None, 3, 500), Scale::Delete(1));
    assert_eq!(active_diff(0, 1, None, 3, 500), Scale::Steady);
}

// ---- against an API server ----

/// A controller manager on its own thread, stopped when dropped.
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

fn start_manager(client: Client) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let options = ManagerOptions {
        // The test's nodes renew no Lease: never let them go Unknown.
        node_lifecycle: NodeLifecycleOptions {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(3600),
            ..Default::default()
        },
        gc_period: Duration::from_millis(200),
        ..Default::default()
    };
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        manager::run(client, &options, &flag).unwrap();
    });
    Running {
        stop,
        thread: Some(thread),
    }
}

/// The test's kubelet: a new pod becomes what its `outcome` label says
/// (`succeed`, `fail`, else Running and Ready); a pod marked for
/// deletion is deleted for good.
struct FakeKubelet {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fake_kubelet(client: Client) -> FakeKubelet {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            let Ok(list) = client.list::<Pod>(None, "") else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let ns = pod.metadata.namespace.clone();
                if pod.metadata.deletion_timestamp.is_some() {
                    let _ = client.delete::<Pod>(
                        ns.as_deref(),
                        &name,
                        Some(&json!({"gracePeriodSeconds": 0})),
                    );
                    continue;
                }
                if pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|p| p != "Pending")
                {
                    continue;
                }
                let outcome = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("outcome"))
                    .cloned()
                    .unwrap_or_default();
                let (phase, ready) = match outcome.as_str() {
                    "succeed" => ("Succeeded", "False"),
                    "fail" => ("Failed", "False"),
                    _ => ("Running", "True"),
                };
                let mut next = pod.clone();
                next.status = Some(PodStatus {
                    phase: Some(phase.into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: ready.into(),
                        last_transition_time: Some(Time(Utc::now())),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                let _ = client.replace_status(ns.as_deref(), &name, &next);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    FakeKubelet {
        stop,
        thread: Some(thread),
    }
}

/// Polls `f` every 100 ms for at most `limit`; panics with `what`.
fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const LIMIT: Duration = Duration::from_secs(20);

/// The live pods with label app=`app`.
fn live_pods(client: &Client, app: &str) -> Vec<Pod> {
    client
        .list::<Pod>(Some("default"), &format!("labelSelector=app%3D{app}"))
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Node name → how many live daemon pods target it.
fn per_node(client: &Client, app: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in live_pods(client, app) {
        *m.entry(target_node(&p).unwrap_or_default()).or_default() += 1;
    }
    m
}

fn label_node(client: &Client, name: &str, value: Option<&str>) {
    client
        .patch::<Node>(
            None,
            name,
            Patch::Merge,
            &json!({"metadata": {"labels": {"disk": value}}}),
        )
        .unwrap();
}

#[test]
fn daemon_set_runs_one_pod_on_each_matching_node() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    for (name, labels) in [
        ("n1", json!({"disk": "ssd"})),
        ("n2", json!({"disk": "ssd"})),
        ("n3", json!({})),
    ] {
        client
            .create(None, &node_json(name, labels, json!([])))
            .unwrap();
    }
    let _kubelet = fake_kubelet(client.clone());
    let _manager = start_manager(client.clone());
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "ssd-monitor", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "ssd-monitor"}},
                 "template": {"metadata": {"labels": {"app": "ssd-monitor"}},
                              "spec": {"nodeSelector": {"disk": "ssd"},
                                       "containers": [{"name": "main", "image": "luksa/ssd-monitor"}]}}}
    }))
    .unwrap();
    client.create(Some("default"), &ds).unwrap();
    let want = BTreeMap::from([("n1".to_string(), 1), ("n2".to_string(), 1)]);
    wait_until(LIMIT, "a pod on n1 and n2", || {
        (per_node(&client, "ssd-monitor") == want).then_some(())
    });
    // Pinned by affinity, tolerating what a daemon tolerates.
    let pod = live_pods(&client, "ssd-monitor").remove(0);
    let spec = pod.spec.unwrap();
    assert!(spec.node_name.is_none(), "the scheduler binds it");
    let term = &spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap()
        .node_selector_terms[0];
    assert_eq!(term.match_fields.as_ref().unwrap()[0].key, "metadata.name");
    let keys: Vec<String> = spec
        .tolerations
        .unwrap()
        .into_iter()
        .filter_map(|t| t.key)
        .collect();
    assert!(keys.contains(&"node.kubernetes.io/unreachable".to_string()));
    let status = wait_until(LIMIT, "status 2/2 ready", || {
        let ds: DaemonSet = client.get(Some("default"), "ssd-monitor").ok()?;
        let s = ds.status?;
        (s.number_ready == 2).then_some(s)
    });
    assert_eq!(status.desired_number_scheduled, 2);
    assert_eq!(status.current_number_scheduled, 2);
    assert_eq!(status.number_misscheduled, 0);
    assert_eq!(status.updated_number_scheduled, Some(2));
    assert_eq!(status.observed_generation, Some(1));

    // n3 gains the label, n1 loses it.
    label_node(&client, "n3", Some("ssd"));
    label_node(&client, "n1", None);
    let want = BTreeMap::from([("n2".to_string(), 1), ("n3".to_string(), 1)]);
    wait_until(LIMIT, "pods on n2 and n3 only", || {
        (per_node(&client, "ssd-monitor") == want).then_some(())
    });
    // A surplus pod on a node goes.
    let mut extra = live_pods(&client, "ssd-monitor")
        .into_iter()
        .find(|p| target_node(p).as_deref() == Some("n2"))
        .unwrap();
    let original = extra.metadata.name.clone().unwrap();
    extra.metadata.name = Some("ssd-monitor-extra".into());
    extra.metadata.resource_version = None;
    extra.metadata.uid = None;
    extra.metadata.generate_name = None;
    extra.status = None;
    client.create(Some("default"), &extra).unwrap();
    // One of the two goes (the newer; in the same second, either).
    wait_until(LIMIT, "one of the two pods on n2 deleted", || {
        let gone = |name: &str| {
            client
                .get::<Pod>(Some("default"), name)
                .map_or(true, |p| p.metadata.deletion_timestamp.is_some())
        };
        (gone(&original) != gone("ssd-monitor-extra")).then_some(())
    });
    wait_until(LIMIT, "one pod on n2 again", || {
        (per_node(&client, "ssd-monitor") == want).then_some(())
    });
}

fn job(
    name: &str,
    completions: i32,
    parallelism: i32,
    outcome: &str,
    extra: Value,
) -> Job {
    let mut spec = json!({
        "completions": completions, "parallelism": parallelism,
        "template": {"metadata": {"labels": {"app": name, "outcome": outcome}},
                     "spec": {"restartPolicy": "Never",
                              "containers": [{"name": "main", "image": "luksa/batch-job"}]}}
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .unwrap()
}

fn condition(client: &Client, name: &str) -> Option<(String, Option<String>)> {
    let job: Job = client.get(Some("default"), name).ok()?;
    let c = job.status?.conditions?.into_iter().find(|c| {
        c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed")
    })?;
    Some((c.type_, c.reason))
}

fn all_pods(client: &Client, app: &str) -> Vec<Pod> {
    client
        .list::<Pod>(Some("default"), &format!("labelSelector=app%3D{app}"))
        .map(|l| l.items)
        .unwrap_or_default()
}

#[test]
fn job_with_three_completions_two_at_a_time_completes() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let _kubelet = fake_kubelet(client.clone());
    let _manager = start_manager(client.clone());
    client
        .create(Some("default"), &job("batch", 3, 2, "succeed", json!({})))
        .unwrap();
    let mut most_active = 0;
    let done = wait_until(LIMIT, "the Job Complete", || {
        let running = all_pods(&client, "batch")
            .iter()
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .count();
        most_active = most_active.max(running);
        condition(&client, "batch")
    });
    assert_eq!(done, ("Complete".into(), Some("CompletionsReached".into())));
    assert!(most_active <= 2, "{most_active} pods active at once");
    let job: Job = client.get(Some("default"), "batch").unwrap();
    let status = job.status.unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.active, None);
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let pods = all_pods(&client, "batch");
    assert_eq!(pods.len(), 3);
    let uid = job.metadata.uid.unwrap();
    for p in &pods {
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels
                .get("batch.kubernetes.io/job-name")
                .map(String::as_str),
            Some("batch")
        );
        assert_eq!(
            labels.get("batch.kubernetes.io/controller-uid"),
            Some(&uid)
        );
    }
    // The Job deleted, the garbage collector takes its pods.
    client
        .delete::<Job>(Some("default"), "batch", None)
        .unwrap();
    wait_until(LIMIT, "the Job's pods collected", || {
        all_pods(&client, "batch").is_empty().then_some(())
    });
}

#[test]
fn job_past_its_backoff_limit_fails() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let _kubelet = fake_kubelet(client.clone());
    let _manager = start_manager(client.clone());
    client
        .create(
            Some("default"),
            &job("flaky", 1, 1, "fail", json!({"backoffLimit": 1})),
        )
        .unwrap();
    let done =
        wait_until(LIMIT, "the Job Failed", || condition(&client, "flaky"));
    assert_eq!(done, ("Failed".into(), Some("BackoffLimitExceeded".into())));
    // One try and one retry, then no more.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(all_pods(&client, "flaky").len(), 2);
    let job: Job = client.get(Some("default"), "flaky").unwrap();
    assert_eq!(job.status.unwrap().failed, Some(2));
}

#[test]
fn job_past_its_active_deadline_fails_and_its_pods_go() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let _kubelet = fake_kubelet(client.clone());
    let _manager = start_manager(client.clone());
    client
        .create(
            Some("default"),
            &job("slow", 2, 2, "run", json!({"activeDeadlineSeconds": 2})),
        )
        .unwrap();
    wait_until(LIMIT, "two pods running", || {
        (live_pods(&client, "slow").len() == 2).then_some(())
    });
    let done =
        wait_until(LIMIT, "the Job Failed", || condition(&client, "slow"));
    assert_eq!(done, ("Failed".into(), Some("DeadlineExceeded".into())));
    wait_until(LIMIT, "its pods deleted", || {
        all_pods(&client, "slow").is_empty().then_some(())
    });
}
