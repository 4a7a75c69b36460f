//! The node lifecycle controller: it notices nodes that stopped
//! reporting and moves their pods away.
//!
//! Every node agent renews its Lease in `kube-node-lease` every 10 s.
//! Every node-monitor-period (5 s) this controller looks at each node's
//! last sign of life, the Lease's renewTime or its Ready condition's
//! heartbeat; none within the node-monitor-grace-period (50 s) and the
//! node's conditions become Unknown and it gets the
//! `node.kubernetes.io/unreachable` taints: NoSchedule keeps new pods
//! away, NoExecute evicts the pods there once their toleration of it
//! runs out (300 s for the tolerations the API server's
//! DefaultTolerationSeconds admission gives every pod).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::SyncError;
use crate::client::{Client, Patch};
use crate::events::{reference, Recorder};
use crate::informer::Cache;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The durations, kube-controller-manager's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLifecycleOptions {
    /// `--node-monitor-period`, 5 s.
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period`, 50 s since 1.32 (40 s before).
    pub grace_period: Duration,
}

impl Default for NodeLifecycleOptions {
    fn default() -> NodeLifecycleOptions {
        NodeLifecycleOptions {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(50),
        }
    }
}

/// What one look at a node finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It reported within the grace period.
    Healthy,
    /// It has not: its conditions are to become Unknown.
    MarkUnknown,
    /// It has not, and they are Unknown already.
    AlreadyUnknown,
}

/// The decision about one node: its health and the taints (key, effect)
/// it should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVerdict {
    pub health: Health,
    pub taints: Vec<(&'static str, &'static str)>,
}

// ANCHOR: node_verdict
/// The decision about a node whose Lease was last renewed at `renewed`
/// and whose Ready condition is `ready`, at `now`. The last sign of
/// life is the later of the renewal and the condition's heartbeat; none
/// within `grace` means unreachable. A node that reports says through
/// its Ready condition whether it is ready (`True`: no taints), not
/// ready (`False`) or unknown.
pub fn node_verdict(
    renewed: Option<DateTime<Utc>>,
    ready: Option<&NodeCondition>,
    now: DateTime<Utc>,
    grace: Duration,
) -> NodeVerdict {
    // EXERCISE: lab05-node-lifecycle
    let heartbeat = ready
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let last = renewed.max(heartbeat);
    let grace =
        chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let status = ready.map(|c| c.status.as_str()).unwrap_or("Unknown");
    let unreachable =
        vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")];
    let stale = match last {
        Some(t) => t + grace < now,
        None => true,
    };
    if stale {
        let health = if status == "Unknown" {
            Health::AlreadyUnknown
        } else {
            Health::MarkUnknown
        };
        return NodeVerdict {
            health,
            taints: unreachable,
        };
    }
    let taints = match status {
        "True" => Vec::new(),
        "False" => vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")],
        _ => unreachable,
    };
    NodeVerdict {
        health: Health::Healthy,
        taints,
    }
    // EXERCISE_END: lab05-node-lifecycle
}
// ANCHOR_END: node_verdict

pub use crate::scheduler::filter::tolerates;

/// When `pod`, on a node with `taints`, is to be evicted: `None` never
/// (every NoExecute taint tolerated for ever), now if it does not
/// tolerate one of them, else when the shortest tolerationSeconds of
/// the tolerations that apply has passed since its taint was added.
pub fn eviction_time(
    pod: &Pod,
    taints: &[Taint],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut at: Option<DateTime<Utc>> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        // For ever unless one of them says how long.
        let seconds =
            matching.iter().filter_map(|t| t.toleration_seconds).min();
        if let Some(s) = seconds {
            let when = added + chrono::Duration::seconds(s.max(0));
            at = Some(at.map_or(when, |a| a.min(when)));
        }
    }
    at
}

pub struct NodeLifecycleController {
    pub client: Client,
    pub nodes: Cache<Node>,
    pub leases: Cache<Lease>,
    pub pods: Cache<Pod>,
    pub recorder: Recorder,
    pub options: NodeLifecycleOptions,
    /// When this controller first saw each node: a node is given its
    /// grace period from then, as upstream's probe timestamp, so a node
    /// that registered before its first Lease (or a controller that just
    /// took over) does not count as silent.
    pub first_seen:
        std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>,
}

fn is_managed(key: &str) -> bool {
    key == UNREACHABLE || key == NOT_READY
}

impl NodeLifecycleController {
    /// Looks every monitor period until `stop`.
    pub fn run(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            if let Err(e) = self.monitor(Utc::now()) {
                eprintln!("node-lifecycle-controller: {e}");
            }
            while !stop.load(Ordering::SeqCst)
                && started.elapsed() < self.options.monitor_period
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// One look at every node, and the evictions due.
    pub fn monitor(&self, now: DateTime<Utc>) -> Result<(), SyncError> {
        let mut first_error = None;
        for node in self.nodes.list() {
            let result = self
                .monitor_node(&node, now)
                .and_then(|taints| self.evict(&node, &taints, now));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Marks and taints `node` as its verdict says; the taints it has
    /// afterwards.
    fn monitor_node(
        &self,
        node: &Node,
        now: DateTime<Utc>,
    ) -> Result<Vec<Taint>, SyncError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease_key = format!("{NODE_LEASE_NAMESPACE}/{name}");
        let renewed = self.leases.get(&lease_key).and_then(|l| {
            l.spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0)
        });
        let seen = *self
            .first_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.clone())
            .or_insert(now);
        let renewed = renewed.max(Some(seen));
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let ready = conditions.iter().find(|c| c.type_ == "Ready");
        let verdict =
            node_verdict(renewed, ready, now, self.options.grace_period);
        if verdict.health == Health::MarkUnknown {
            self.mark_unknown(node, now)?;
            self.recorder.event(
                &reference(node),
                "Normal",
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
            );
        }
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        // Ours that should go, the others kept, ours that should come.
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| {
                !is_managed(&t.key)
                    || verdict
                        .taints
                        .iter()
                        .any(|(k, e)| t.key == *k && t.effect == *e)
            })
            .cloned()
            .collect();
        for (key, effect) in &verdict.taints {
            if !next.iter().any(|t| t.key == *key && t.effect == *effect) {
                next.push(Taint {
                    key: key.to_string(),
                    effect: effect.to_string(),
                    time_added: (*effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
        if next != current {
            let body = json!({"spec": {"taints": next}});
            self.client
                .patch::<Node>(None, &name, Patch::Merge, &body)
                .map_err(SyncError::api(format!("taint node {name}")))?;
        }
        Ok(next)
    }

    /// Ready, MemoryPressure, DiskPressure and PIDPressure become
    /// Unknown: nobody knows any more.
    fn mark_unknown(
        &self,
        node: &Node,
        now: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut next = node.clone();
        let status = next.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
        {
            match conditions.iter_mut().find(|c| c.type_ == type_) {
                Some(c) => {
                    if c.status != "Unknown" {
                        c.status = "Unknown".into();
                        c.reason = Some("NodeStatusUnknown".into());
                        c.message =
                            Some("Kubelet stopped posting node status.".into());
                        c.last_transition_time = Some(Time(now));
                    }
                }
                None => conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: Some(Time(now)),
                    last_transition_time: Some(Time(now)),
                }),
            }
        }
        self.client
            .replace_status(None, &name, &next)
            .map(|_| ())
            .map_err(SyncError::api(format!("mark node {name} unknown")))
    }

    /// Deletes the pods of `node` whose toleration of its NoExecute
    /// taints has run out.
    fn evict(
        &self,
        node: &Node,
        taints: &[Taint],
        now: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        if !taints.iter().any(|t| t.effect == "NoExecute") {
            return Ok(());
        }
        let name = node.metadata.name.as_deref().unwrap_or_default();
        for pod in self.pods.list() {
            let on_node =
                pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
                    == Some(name);
            if !on_node || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(at) = eviction_time(&pod, taints, now) else {
                continue;
            };
            if at > now {
                continue;
            }
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let ns = pod.metadata.namespace.as_deref();
            match self.client.delete::<Pod>(ns, &pod_name, None) {
                Ok(_) => self.recorder.event(
                    &reference(&*pod),
                    "Normal",
                    "TaintManagerEviction",
                    &format!(
                        "Marking for deletion Pod {}/{pod_name}",
                        ns.unwrap_or_default()
                    ),
                ),
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(
                        SyncError::api(format!("evict pod {pod_name}"))(e),
                    )
                }
            }
        }
        Ok(())
    }
}
