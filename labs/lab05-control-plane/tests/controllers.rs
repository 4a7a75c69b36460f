//! The controller manager (section 5.11) against a real API server, with
//! no real pods: the test plays the kubelet, writing each pod's status
//! (Running, Ready) through pods/status and finishing graceful deletes.
//! Every wait is bounded.

mod support_rel;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Event, Node, Pod, PodCondition, PodStatus, ReplicationController,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use lab05::client::{Client, Patch};
use lab05::controllers::deployment::{
    compute_hash, fenceposts, rolling_step, RsSize, Step,
};
use lab05::controllers::manager::{self, ManagerOptions};
use lab05::controllers::nodelifecycle::{
    node_verdict, zone_rate, zone_state, Health, NodeLifecycleOptions,
    TokenBucket, ZoneState, NOT_READY, UNREACHABLE,
};
use lab05::controllers::replicaset::{
    deletion_order, pods_to_delete, replica_diff, slow_start_batches, Ranked,
    Scale,
};
use serde_json::{json, Value};
use support_rel::{Backend, Cluster};

// ---- pure parts ----

#[test]
fn replica_diff_creates_or_deletes_the_difference_capped() {
    assert_eq!(replica_diff(0, 3, 500), Scale::Create(3));
    assert_eq!(replica_diff(3, 3, 500), Scale::Steady);
    assert_eq!(replica_diff(5, 2, 500), Scale::Delete(3));
    assert_eq!(replica_diff(0, 1000, 500), Scale::Create(500));
    assert_eq!(replica_diff(900, 0, 500), Scale::Delete(500));
    assert_eq!(replica_diff(2, 0, 500), Scale::Delete(2));
    assert_eq!(replica_diff(0, 0, 500), Scale::Steady);
}

#[test]
fn creates_go_in_slow_start_batches() {
    assert_eq!(slow_start_batches(1, 1), vec![1]);
    assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
    assert_eq!(
        slow_start_batches(500, 1),
        vec![1, 2, 4, 8, 16, 32, 64, 128, 245]
    );
    assert!(slow_start_batches(0, 1).is_empty());
}

fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"),
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "kubia"}]},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready {"True"} else {"False"},
             "lastTransitionTime": "2026-01-01T00:00:10Z"}]}
    }))
    .unwrap()
}

fn order(pods: &[Pod], colocated: &[usize]) -> Vec<String> {
    let mut ranked: Vec<Ranked> = pods
        .iter()
        .zip(colocated)
        .map(|(pod, &colocated)| Ranked { pod, colocated })
        .collect();
    let now = Utc::now();
    ranked.sort_by(|a, b| deletion_order(a, b, now));
    ranked
        .iter()
        .map(|r| r.pod.metadata.name.clone().unwrap())
        .collect()
}

#[test]
fn deletion_rank_unassigned_pending_unready_first() {
    let pods = vec![
        pod("running-ready", Some("n1"), "Running", true),
        pod("unassigned", None, "Pending", false),
        pod("pending", Some("n1"), "Pending", false),
        pod("running-unready", Some("n1"), "Running", false),
        pod("unknown", Some("n1"), "Unknown", false),
    ];
    assert_eq!(
        order(&pods, &[1, 1, 1, 1, 1]),
        [
            "unassigned",
            "pending",
            "unknown",
            "running-unready",
            "running-ready"
        ]
    );
}

#[test]
fn deletion_rank_cost_then_crowding_then_restarts_then_age() {
    let mut cheap = pod("cheap", Some("n1"), "Running", true);
    cheap.metadata.annotations = Some(BTreeMap::from([(
        "controller.kubernetes.io/pod-deletion-cost".into(),
        "-10".into(),
    )]));
    let crowded = pod("crowded", Some("n2"), "Running", true);
    let mut restarts = pod("restarts", Some("n1"), "Running", true);
    restarts.status.as_mut().unwrap().container_statuses = Some(vec![serde_json::from_value(json!({
        "name": "c", "image": "kubia", "imageID": "", "ready": true, "restartCount": 4
    }))
    .unwrap()]);
    let mut newer = pod("newer", Some("n1"), "Running", true);
    newer.metadata.creation_timestamp =
        Some(Time(Utc::now() - chrono::Duration::seconds(1)));
    let plain = pod("plain", Some("n1"), "Running", true);
    let pods = vec![plain, newer, restarts, crowded, cheap];
    assert_eq!(
        order(&pods, &[1, 1, 1, 3, 1]),
        ["cheap", "crowded", "restarts", "newer", "plain"]
    );
    // Ready for less time first.
    let mut recent = pod("recent", Some("n1"), "Running", true);
    recent.status.as_mut().unwrap().conditions.as_mut().unwrap()[0]
        .last_transition_time =
        Some(Time(Utc::now() - chrono::Duration::seconds(2)));
    let old = pod("old", Some("n1"), "Running", true);
    assert_eq!(order(&[old, recent], &[1, 1]), ["recent", "old"]);
}

#[test]
fn pods_to_delete_counts_the_pods_sharing_a_node() {
    let pods: Vec<Arc<Pod>> = vec![
        Arc::new(pod("a", Some("n1"), "Running", true)),
        Arc::new(pod("b", Some("n2"), "Running", true)),
        Arc::new(pod("c", Some("n2"), "Running", true)),
    ];
    let victims = pods_to_delete(&pods, &pods, 1, Utc::now());
    let name = victims[0].metadata.name.clone().unwrap();
    assert!(
        name == "b" || name == "c",
        "one of the two on n2, not {name}"
    );
}

fn rs(replicas: i32, available: i32) -> RsSize {
    RsSize {
        replicas,
        available,
    }
}

#[test]
fn rolling_step_surges_up_then_scales_old_down_keeping_availability() {
    // 3 replicas, surge 1, unavailable 0: one new pod first.
    assert_eq!(
        rolling_step(3, 1, 0, rs(0, 0), &[rs(3, 3)]),
        Step {
            new: 1,
            old: vec![3]
        }
    );
    // It is available: one old goes.
    assert_eq!(
        rolling_step(3, 1, 0, rs(1, 1), &[rs(3, 3)]),
        Step {
            new: 1,
            old: vec![2]
        }
    );
    // Not yet available: nothing goes.
    assert_eq!(
        rolling_step(3, 1, 0, rs(1, 0), &[rs(3, 3)]),
        Step {
            new: 1,
            old: vec![3]
        }
    );
    // The defaults for 10: surge 3 (25% up), unavailable 2 (25% down).
    assert_eq!(
        rolling_step(10, 3, 2, rs(0, 0), &[rs(10, 10)]),
        Step {
            new: 3,
            old: vec![8]
        }
    );
    // Unavailable old pods go first, whatever the availability.
    // Unavailable old pods go first, as far as the budget goes: 5 pods,
    // at least 3 available, the new one not yet: 1 may go.
    assert_eq!(
        rolling_step(4, 1, 1, rs(1, 0), &[rs(2, 0), rs(2, 2)]),
        Step {
            new: 1,
            old: vec![1, 2]
        }
    );
    assert_eq!(
        rolling_step(4, 1, 1, rs(1, 1), &[rs(2, 0), rs(2, 2)]),
        Step {
            new: 1,
            old: vec![0, 2]
        }
    );
    // Done: nothing left to move.
    assert_eq!(
        rolling_step(3, 1, 0, rs(3, 3), &[rs(0, 0)]),
        Step {
            new: 3,
            old: vec![0]
        }
    );
    // A fresh deployment: all at once.
    assert_eq!(
        rolling_step(3, 1, 0, rs(0, 0), &[]),
        Step {
            new: 3,
            old: vec![]
        }
    );
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"replicas": 10, "selector": {}, "template": {}}
    }))
    .unwrap();
    assert_eq!(fenceposts(&d), (3, 2));
    let zero: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"replicas": 3, "selector": {}, "template": {},
                 "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}
    }))
    .unwrap();
    assert_eq!(fenceposts(&zero), (0, 1));
}

#[test]
fn the_template_hash_is_safe_encoded() {
    let template = serde_json::from_value(
        json!({"metadata": {"labels": {"app": "kubia"}}}),
    )
    .unwrap();
    let hash = compute_hash(&template, None);
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    assert_ne!(hash, compute_hash(&template, Some(1)));
    assert_eq!(hash, compute_hash(&template, None));
}

#[test]
fn node_verdicts_follow_the_lease_and_the_ready_condition() {
    let now = Utc::now();
    let grace = Duration::from_secs(50);
    let cond = |status: &str,
                beat: i64|
     -> k8s_openapi::api::core::v1::NodeCondition {
        serde_json::from_value(json!({"type": "Ready", "status": status,
            "lastHeartbeatTime": (now - chrono::Duration::seconds(beat)).to_rfc3339()}))
        .unwrap()
    };
    let fresh = Some(now - chrono::Duration::seconds(10));
    let stale = Some(now - chrono::Duration::seconds(60));
    let v = node_verdict(fresh, Some(&cond("True", 300)), now, grace);
    assert_eq!(v.health, Health::Healthy);
    assert!(v.taints.is_empty());
    let v = node_verdict(stale, Some(&cond("True", 300)), now, grace);
    assert_eq!(v.health, Health::MarkUnknown);
    assert_eq!(
        v.taints,
        vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
    );
    let v = node_verdict(stale, Some(&cond("Unknown", 300)), now, grace);
    assert_eq!(v.health, Health::AlreadyUnknown);
    // A recent heartbeat in the condition counts as much as the Lease.
    let v = node_verdict(stale, Some(&cond("True", 5)), now, grace);
    assert_eq!(v.health, Health::Healthy);
    let v = node_verdict(fresh, Some(&cond("False", 5)), now, grace);
    assert_eq!(v.health, Health::Healthy);
    assert_eq!(
        v.taints,
        vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
    );
    let v = node_verdict(None, None, now, grace);
    assert_eq!(v.health, Health::AlreadyUnknown);
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

fn start_manager(
    client: Client,
    node_lifecycle: NodeLifecycleOptions,
) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let options = ManagerOptions {
        node_lifecycle,
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

/// The test's kubelet: every pod it sees becomes Running and Ready
/// (unless its name is in `unready`), and a pod marked for deletion is
/// deleted for good, as a kubelet does once its containers stopped.
struct FakeKubelet {
    stop: Arc<AtomicBool>,
    /// While set, it writes nothing.
    paused: Arc<AtomicBool>,
    unready: Arc<Mutex<HashSet<String>>>,
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
    let unready: Arc<Mutex<HashSet<String>>> = Arc::default();
    let paused = Arc::new(AtomicBool::new(false));
    let (flag, names, pause) = (stop.clone(), unready.clone(), paused.clone());
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            if pause.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
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
                let ready = !names.lock().unwrap().contains(&name);
                let want = if ready { "True" } else { "False" };
                let now_ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.status.clone());
                if now_ready.as_deref() == Some(want) {
                    continue;
                }
                let mut next = pod.clone();
                next.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    pod_ip: Some("198.18.1.10".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: want.into(),
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
        paused,
        unready,
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

/// The active pods with label app=`app`.
fn active_pods(client: &Client, app: &str) -> Vec<Pod> {
    client
        .list::<Pod>(Some("default"), &format!("labelSelector=app%3D{app}"))
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn owned_by(pod: &Pod, uid: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "kubia", "image": image}]}
    })
}

fn replica_set(name: &str, app: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                 "template": template(app, "luksa/kubia")}
    }))
    .unwrap()
}

fn bare_pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "kubia", "image": "luksa/kubia"}]}
    }))
    .unwrap()
}

/// Waits until exactly `n` active pods with app=`app`, all owned by
/// `uid`.
fn wait_pods(client: &Client, app: &str, uid: &str, n: usize) -> Vec<Pod> {
    wait_until(LIMIT, &format!("{n} pods of {app}"), || {
        let pods = active_pods(client, app);
        (pods.len() == n && pods.iter().all(|p| owned_by(p, uid)))
            .then_some(pods)
    })
}

fn scale<T: k8s_openapi::Resource + serde::de::DeserializeOwned>(
    client: &Client,
    name: &str,
    replicas: i32,
) {
    client
        .patch::<T>(
            Some("default"),
            name,
            Patch::Merge,
            &json!({"spec": {"replicas": replicas}}),
        )
        .unwrap();
}

#[test]
fn replica_set_creates_heals_scales_adopts_and_releases() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let kubelet = fake_kubelet(client.clone());
    // An orphan that matches, there before its owner.
    client
        .create(Some("default"), &bare_pod("orphan", "kubia"))
        .unwrap();
    let _manager =
        start_manager(client.clone(), NodeLifecycleOptions::default());
    let created = client
        .create(Some("default"), &replica_set("kubia", "kubia", 3))
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    // 3 pods: the orphan adopted and 2 made, named kubia-xxxxx.
    let pods = wait_pods(&client, "kubia", &uid, 3);
    let names: HashSet<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert!(names.contains("orphan"), "the orphan is adopted: {names:?}");
    assert!(names
        .iter()
        .filter(|n| *n != "orphan")
        .all(|n| n.starts_with("kubia-")));
    let status = wait_until(LIMIT, "status 3 ready", || {
        let rs: ReplicaSet = client.get(Some("default"), "kubia").ok()?;
        let s = rs.status?;
        (s.replicas == 3
            && s.ready_replicas == Some(3)
            && s.available_replicas == Some(3))
        .then_some(s)
    });
    assert_eq!(status.fully_labeled_replicas, Some(3));
    assert_eq!(status.observed_generation, created.metadata.generation);

    // Self-healing: a deleted pod is replaced.
    let victim = names.iter().find(|n| *n != "orphan").unwrap().clone();
    client
        .delete::<Pod>(Some("default"), &victim, None)
        .unwrap();
    let pods = wait_until(LIMIT, "a replacement", || {
        let pods = active_pods(&client, "kubia");
        let names: HashSet<String> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        (pods.len() == 3 && !names.contains(&victim)).then_some(pods)
    });
    assert!(pods.iter().all(|p| owned_by(p, &uid)));

    // 3 → 5, two of them never ready; 5 → 2 deletes those two first.
    kubelet.paused.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    scale::<ReplicaSet>(&client, "kubia", 5);
    let five = wait_pods(&client, "kubia", &uid, 5);
    let old: HashSet<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    let new: Vec<String> = five
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .filter(|n| !old.contains(n))
        .collect();
    assert_eq!(new.len(), 2);
    kubelet.unready.lock().unwrap().extend(new.iter().cloned());
    kubelet.paused.store(false, Ordering::SeqCst);
    wait_until(LIMIT, "the two new pods running, not ready", || {
        let unready = active_pods(&client, "kubia")
            .iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref())
                    == Some("Running")
            })
            .filter(|p| !lab04::endpoints::pod_ready(p))
            .count();
        (unready == 2).then_some(())
    });
    scale::<ReplicaSet>(&client, "kubia", 2);
    let two = wait_pods(&client, "kubia", &uid, 2);
    for p in &two {
        let name = p.metadata.name.clone().unwrap();
        assert!(
            !new.contains(&name),
            "the unready {name} should have gone first"
        );
    }

    // A pod relabelled away is released and replaced.
    let leaving = two[0].metadata.name.clone().unwrap();
    client
        .patch::<Pod>(
            Some("default"),
            &leaving,
            Patch::Merge,
            &json!({"metadata": {"labels": {"app": "elsewhere"}}}),
        )
        .unwrap();
    let released = wait_until(LIMIT, "the release", || {
        let p: Pod = client.get(Some("default"), &leaving).ok()?;
        (!owned_by(&p, &uid)).then_some(p)
    });
    assert!(released
        .metadata
        .owner_references
        .unwrap_or_default()
        .is_empty());
    wait_pods(&client, "kubia", &uid, 2);

    // Events, with kube-controller-manager's reason and message.
    let events = client.list::<Event>(Some("default"), "").unwrap().items;
    assert!(events.iter().any(|e| e.reason.as_deref()
        == Some("SuccessfulCreate")
        && e.message
            .as_deref()
            .is_some_and(|m| m.starts_with("Created pod: kubia-"))));
    assert!(events.iter().any(|e| e.reason.as_deref()
        == Some("SuccessfulDelete")
        && e.message
            .as_deref()
            .is_some_and(|m| m.starts_with("Deleted pod: kubia-"))));
}

#[test]
fn replication_controller_is_the_same_implementation() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let _kubelet = fake_kubelet(client.clone());
    client
        .create(Some("default"), &bare_pod("orphan", "kubia-rc"))
        .unwrap();
    let _manager =
        start_manager(client.clone(), NodeLifecycleOptions::default());
    // The book's RC: a map selector.
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "kubia", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"app": "kubia-rc"},
                 "template": template("kubia-rc", "luksa/kubia")}
    }))
    .unwrap();
    let uid = client
        .create(Some("default"), &rc)
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let pods = wait_pods(&client, "kubia-rc", &uid, 3);
    assert!(pods
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some("orphan")));
    let r = pods[0].metadata.owner_references.clone().unwrap().remove(0);
    assert_eq!(
        (r.kind.as_str(), r.api_version.as_str()),
        ("ReplicationController", "v1")
    );
    let victim = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() != Some("orphan"))
        .unwrap();
    client
        .delete::<Pod>(
            Some("default"),
            victim.metadata.name.as_deref().unwrap(),
            None,
        )
        .unwrap();
    wait_until(LIMIT, "a replacement", || {
        let pods = active_pods(&client, "kubia-rc");
        (pods.len() == 3
            && !pods.iter().any(|p| p.metadata.name == victim.metadata.name))
        .then_some(())
    });
    scale::<ReplicationController>(&client, "kubia", 1);
    wait_pods(&client, "kubia-rc", &uid, 1);
    wait_until(LIMIT, "the RC's status", || {
        let rc: ReplicationController =
            client.get(Some("default"), "kubia").ok()?;
        let s = rc.status?;
        (s.replicas == 1 && s.ready_replicas == Some(1)).then_some(())
    });
}

#[test]
fn deployment_rolls_with_surge_and_never_less_available() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let _kubelet = fake_kubelet(client.clone());
    let _manager =
        start_manager(client.clone(), NodeLifecycleOptions::default());
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kubia", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "kubia"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": template("kubia", "luksa/kubia:v1")}
    }))
    .unwrap();
    client.create(Some("default"), &d).unwrap();
    let done = |revision: &str| {
        let d: Deployment = client.get(Some("default"), "kubia").ok()?;
        let s = d.status.clone()?;
        let rev = d
            .metadata
            .annotations
            .as_ref()?
            .get("deployment.kubernetes.io/revision")?
            .clone();
        (s.updated_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.replicas == Some(3)
            && s.observed_generation == d.metadata.generation
            && rev == revision)
            .then_some(s)
    };
    let status = wait_until(LIMIT, "revision 1 rolled out", || done("1"));
    let available = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasAvailable")
    );

    // Watch availability through the update: ready, not deleting.
    let low = Arc::new(Mutex::new(usize::MAX));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (client, low, watching) =
            (client.clone(), low.clone(), watching.clone());
        std::thread::spawn(move || {
            while watching.load(Ordering::SeqCst) {
                let ready = active_pods(&client, "kubia")
                    .iter()
                    .filter(|p| lab04::endpoints::pod_ready(p))
                    .count();
                let mut l = low.lock().unwrap();
                *l = (*l).min(ready);
                drop(l);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    client
        .patch::<Deployment>(
            Some("default"),
            "kubia",
            Patch::Strategic,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "kubia", "image": "luksa/kubia:v2"}]}}}}),
        )
        .unwrap();
    wait_until(LIMIT, "revision 2 rolled out", || {
        let s = done("2")?;
        let rss = client.list::<ReplicaSet>(Some("default"), "").ok()?.items;
        let sizes: Vec<(i32, String)> = rss
            .iter()
            .map(|rs| {
                let rev = rs
                    .metadata
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .get("deployment.kubernetes.io/revision")
                    .cloned()
                    .unwrap_or_default();
                (rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0), rev)
            })
            .collect();
        let ok = sizes.contains(&(3, "2".into()))
            && sizes.contains(&(0, "1".into()))
            && sizes.len() == 2;
        ok.then_some(s)
    });
    watching.store(false, Ordering::SeqCst);
    watcher.join().unwrap();
    let low = *low.lock().unwrap();
    assert!(low >= 3, "never fewer than 3 ready pods, saw {low}");
    // The new ReplicaSet is <deployment>-<hash>, its pods labelled so.
    let rss = client
        .list::<ReplicaSet>(Some("default"), "")
        .unwrap()
        .items;
    for rs in rss {
        let name = rs.metadata.name.unwrap();
        let hash = rs.metadata.labels.unwrap()["pod-template-hash"].clone();
        assert_eq!(name, format!("kubia-{hash}"));
    }
}

/// A rollout whose new pods never become ready: after its
/// progressDeadlineSeconds without progress, Progressing turns False with
/// ProgressDeadlineExceeded, which `kubectl rollout status` reports as
/// "exceeded its progress deadline"; the old pods keep serving.
#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let kubelet = fake_kubelet(client.clone());
    let _manager =
        start_manager(client.clone(), NodeLifecycleOptions::default());
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "stuck", "namespace": "default"},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 2,
                 "selector": {"matchLabels": {"app": "stuck"}},
                 "template": template("stuck", "kubia:v1")}
    }))
    .unwrap();
    client.create(Some("default"), &d).unwrap();
    let progressing = |client: &Client| -> Option<(String, String, String)> {
        let d: Deployment = client.get(Some("default"), "stuck").ok()?;
        let c = d
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        Some((c.status, c.reason?, c.message?))
    };
    wait_until(LIMIT, "revision 1 available", || {
        progressing(&client)
            .filter(|(_, reason, _)| reason == "NewReplicaSetAvailable")
    });
    // Revision 2's pods never get ready: the kubelet writes no more.
    kubelet.paused.store(true, Ordering::SeqCst);
    let mut d: Deployment = client.get(Some("default"), "stuck").unwrap();
    d.spec.as_mut().unwrap().template =
        serde_json::from_value(template("stuck", "kubia:v2")).unwrap();
    client.replace(Some("default"), "stuck", &d).unwrap();
    let t0 = Instant::now();
    let (status, _, message) =
        wait_until(LIMIT, "the deadline exceeded", || {
            progressing(&client).filter(|(s, _, _)| s == "False")
        });
    let waited = t0.elapsed();
    assert_eq!(status, "False");
    assert!(message.ends_with("has timed out progressing."), "{message}");
    // Conditions keep whole seconds, so a 2 s deadline may end up to a
    // second sooner than 2 s after the change.
    assert!(waited >= Duration::from_secs(1), "too early: {waited:?}");
    let old_ready = active_pods(&client, "stuck")
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                })
        })
        .count();
    assert!(old_ready >= 1, "the old pods keep serving");
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastHeartbeatTime": Utc::now().to_rfc3339()}]}
    }))
    .unwrap()
}

fn renew(client: &Client, name: &str) {
    let lease = Lease {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("kube-node-lease".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(Utc::now())),
            ..Default::default()
        }),
    };
    match client.get::<Lease>(Some("kube-node-lease"), name) {
        Ok(mut current) => {
            current.spec = lease.spec;
            client
                .replace(Some("kube-node-lease"), name, &current)
                .unwrap();
        }
        Err(_) => {
            client.create(Some("kube-node-lease"), &lease).unwrap();
        }
    }
}

/// Renews a node's Lease every 300 ms until dropped.
struct KeepRenewing(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl KeepRenewing {
    fn start(client: Client, name: &str) -> KeepRenewing {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                renew(&client, &name);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        KeepRenewing(stop, Some(thread))
    }
}

impl Drop for KeepRenewing {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn zone_states_and_rates_are_kube_controller_managers() {
    let t = 0.55;
    assert_eq!(zone_state(0, 1, t), ZoneState::FullDisruption);
    assert_eq!(zone_state(0, 0, t), ZoneState::Normal, "an empty zone");
    assert_eq!(
        zone_state(1, 2, t),
        ZoneState::Normal,
        "two are never enough"
    );
    assert_eq!(zone_state(2, 3, t), ZoneState::PartialDisruption);
    assert_eq!(zone_state(3, 3, t), ZoneState::Normal, "half is below 0.55");
    assert_eq!(
        zone_state(9, 11, t),
        ZoneState::PartialDisruption,
        "exactly 0.55"
    );
    let o = NodeLifecycleOptions::default();
    assert_eq!(zone_rate(ZoneState::Normal, 3, &o), 0.1);
    assert_eq!(zone_rate(ZoneState::PartialDisruption, 50, &o), 0.0);
    assert_eq!(zone_rate(ZoneState::PartialDisruption, 51, &o), 0.01);
    assert_eq!(zone_rate(ZoneState::FullDisruption, 3, &o), 0.1);
    let start = Instant::now();
    let mut bucket = TokenBucket::new(0.5, start);
    assert!(bucket.try_take(start), "a new bucket is full");
    assert!(!bucket.try_take(start + Duration::from_secs(1)));
    assert!(bucket.try_take(start + Duration::from_secs(2)));
    assert!(
        !TokenBucket::new(0.0, start).try_take(start),
        "rate 0: never"
    );
}

#[test]
fn every_node_down_evicts_nothing_and_a_zone_taints_at_its_rate() {
    let (_cluster, client) = lease_cluster();
    for name in ["node-a", "node-b"] {
        client.create(None, &node(name)).unwrap();
        renew(&client, name);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "brief", "namespace": "default"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "luksa/kubia"}],
                 "tolerations": [{"key": UNREACHABLE, "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 0}]}
    }))
    .unwrap();
    client.create(Some("default"), &pod).unwrap();
    let options = NodeLifecycleOptions {
        monitor_period: Duration::from_millis(200),
        grace_period: Duration::from_secs(1),
        eviction_rate: 0.5,
        ..Default::default()
    };
    let _manager = start_manager(client.clone(), options);
    let no_execute = |name: &str| {
        taints(&client, name)
            .contains(&(UNREACHABLE.into(), "NoExecute".into()))
    };
    // Both silent: the only zone is fully disrupted, so is every zone.
    for name in ["node-a", "node-b"] {
        wait_until(LIMIT, "NoSchedule on a silent node", || {
            taints(&client, name)
                .contains(&(UNREACHABLE.into(), "NoSchedule".into()))
                .then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(!no_execute("node-a") && !no_execute("node-b"));
    let brief: Pod = client.get(Some("default"), "brief").unwrap();
    assert!(
        brief.metadata.deletion_timestamp.is_none(),
        "nothing evicted"
    );

    // A healthy node joins the zone: two of three down is Normal, and
    // the two get their NoExecute taints one at a time, 2 s apart.
    client.create(None, &node("node-c")).unwrap();
    let _node_c = KeepRenewing::start(client.clone(), "node-c");
    let first = wait_until(LIMIT, "the first NoExecute taint", || {
        ["node-a", "node-b"].into_iter().find(|n| no_execute(n))
    });
    let other = if first == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    assert!(!no_execute(other), "one token, one node");
    wait_until(LIMIT, "the second NoExecute taint", || {
        no_execute(other).then_some(())
    });
    wait_until(LIMIT, "brief evicted", || {
        match client.get::<Pod>(Some("default"), "brief") {
            Ok(p) => p.metadata.deletion_timestamp.is_some(),
            Err(e) => e.is_not_found(),
        }
        .then_some(())
    });
    assert!(!no_execute("node-c"));
}

/// A server with the `kube-node-lease` namespace, and its admin.
fn lease_cluster() -> (Cluster, Client) {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    // The API server may have made it already.
    let _ = client.create(
        None,
        &serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(
            json!({"metadata": {"name": "kube-node-lease"}}),
        )
        .unwrap(),
    );
    (cluster, client)
}

fn taints(client: &Client, name: &str) -> Vec<(String, String)> {
    let n: Node = client.get(None, name).unwrap();
    n.spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

#[test]
fn a_silent_node_is_tainted_and_its_pods_evicted_after_their_toleration() {
    let (_cluster, client) = lease_cluster();
    client.create(None, &node("node-1")).unwrap();
    renew(&client, "node-1");
    // A healthy node beside it: with every node down, nothing would be
    // evicted (the next test).
    client.create(None, &node("node-2")).unwrap();
    let _node_2 = KeepRenewing::start(client.clone(), "node-2");
    // One pod tolerates unreachability 1 s, one 3 s, one for ever, and
    // one says nothing: the API server's DefaultTolerationSeconds gives
    // it 300 s.
    let on_node = |name: &str, tolerations: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "node-1", "tolerations": tolerations,
                     "containers": [{"name": "c", "image": "luksa/kubia"}]}
        }))
        .unwrap()
    };
    let unreachable = |seconds: Option<i64>| json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}]);
    client
        .create(Some("default"), &on_node("short", unreachable(Some(1))))
        .unwrap();
    client
        .create(Some("default"), &on_node("longer", unreachable(Some(3))))
        .unwrap();
    client
        .create(Some("default"), &on_node("default", json!([])))
        .unwrap();
    client
        .create(Some("default"), &on_node("forever", unreachable(None)))
        .unwrap();
    let options = NodeLifecycleOptions {
        monitor_period: Duration::from_millis(200),
        grace_period: Duration::from_secs(2),
        ..Default::default()
    };
    let _manager = start_manager(client.clone(), options);
    let started = Instant::now();
    let gone = |name: &str| match client.get::<Pod>(Some("default"), name) {
        Ok(p) => p.metadata.deletion_timestamp.is_some(),
        Err(e) => e.is_not_found(),
    };
    // The node stops renewing: Unknown and tainted.
    let n = wait_until(LIMIT, "the node marked Unknown", || {
        let n: Node = client.get(None, "node-1").ok()?;
        let ready = n
            .status
            .clone()?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "Unknown").then_some(ready)
    });
    assert_eq!(n.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        n.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before the grace period"
    );
    wait_until(LIMIT, "the unreachable taints", || {
        let t = taints(&client, "node-1");
        (t.contains(&(UNREACHABLE.into(), "NoExecute".into()))
            && t.contains(&(UNREACHABLE.into(), "NoSchedule".into())))
        .then_some(())
    });
    wait_until(LIMIT, "the short toleration's eviction", || {
        gone("short").then_some(())
    });
    assert!(!gone("longer"), "3 s outlast 1 s");
    wait_until(LIMIT, "the longer toleration's eviction", || {
        gone("longer").then_some(())
    });
    assert!(!gone("forever"));
    assert!(!gone("default"), "300 s are not up");

    // The node is back: Ready, renewing; the taints go.
    renew(&client, "node-1");
    let mut n: Node = client.get(None, "node-1").unwrap();
    n.status.as_mut().unwrap().conditions =
        node("node-1").status.unwrap().conditions;
    client.replace_status(None, "node-1", &n).unwrap();
    wait_until(LIMIT, "the taints removed", || {
        renew(&client, "node-1");
        taints(&client, "node-1").is_empty().then_some(())
    });
    assert!(!gone("forever"));
    assert!(!gone("default"));
}

#[test]
fn garbage_collector_deletes_dependents_or_orphans_them() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let client = cluster.admin();
    let _kubelet = fake_kubelet(client.clone());
    let _manager =
        start_manager(client.clone(), NodeLifecycleOptions::default());
    let bg = client
        .create(Some("default"), &replica_set("bg", "bg", 2))
        .unwrap();
    let orphan = client
        .create(Some("default"), &replica_set("orphaned", "orphaned", 2))
        .unwrap();
    wait_pods(&client, "bg", bg.metadata.uid.as_deref().unwrap(), 2);
    let kept = wait_pods(
        &client,
        "orphaned",
        orphan.metadata.uid.as_deref().unwrap(),
        2,
    );

    client
        .delete::<ReplicaSet>(
            Some("default"),
            "bg",
            Some(&json!({"propagationPolicy": "Background"})),
        )
        .unwrap();
    wait_until(LIMIT, "the dependents deleted", || {
        active_pods(&client, "bg").is_empty().then_some(())
    });

    client
        .delete::<ReplicaSet>(
            Some("default"),
            "orphaned",
            Some(&json!({"propagationPolicy": "Orphan"})),
        )
        .unwrap();
    wait_until(LIMIT, "the owner gone", || {
        client
            .get::<ReplicaSet>(Some("default"), "orphaned")
            .err()
            .filter(|e| e.is_not_found())
            .map(|_| ())
    });
    let pods = active_pods(&client, "orphaned");
    assert_eq!(pods.len(), 2, "the pods stay");
    let names: HashSet<_> =
        kept.iter().map(|p| p.metadata.name.clone()).collect();
    for p in pods {
        assert!(names.contains(&p.metadata.name));
        assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
    }
}
