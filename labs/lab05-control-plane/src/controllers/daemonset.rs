//! The DaemonSet controller: one pod of the template on every node that
//! should run it (upstream's `pkg/controller/daemon`).
//!
//! A node should run the daemon pod when it fits the template's
//! nodeSelector and required node affinity and has no NoSchedule or
//! NoExecute taint the pod does not tolerate; a pod already there keeps
//! running through a NoSchedule taint, not through a NoExecute one. The
//! pod made for a node carries the daemon tolerations (a daemon stays on
//! a not-ready or unreachable node, and on one under pressure or
//! cordoned) and a required node affinity on `metadata.name`: the
//! scheduler binds it, as since ScheduleDaemonSetPods.
//!
//! Left out: the rolling update of `spec.updateStrategy` (a changed
//! template reaches a node when its pod is deleted, as OnDelete) and
//! ControllerRevisions (pods carry `pod-template-generation`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity as NodeAffinitySpec, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Toleration,
};
use lab04::selector::Selector;

use super::expectations::Expectations;
use super::pods::{self, is_available, is_ready};
use super::replicaset::{
    claim, pods_in, slow_start_batches, write_status_of, PodOwner,
    SLOW_START_INITIAL_BATCH,
};
use super::{split_key, SyncError};
use crate::client::Client;
use crate::events::{reference, Recorder};
use crate::informer::{key_of, Cache, Change};
use crate::scheduler::affinity::NodeAffinity;
use crate::scheduler::filter::tolerated;
use crate::scheduler::NodeInfo;
use crate::workqueue::WorkQueue;

/// The label a daemon pod carries with its DaemonSet's generation (the
/// deprecated twin of `controller-revision-hash`): pods with the current
/// one are up to date.
pub const TEMPLATE_GENERATION: &str = "pod-template-generation";

impl PodOwner for DaemonSet {
    fn pod_selector(&self) -> Option<Selector> {
        let spec = self.spec.as_ref()?;
        Selector::from_label_selector(&spec.selector, "spec.selector").ok()
    }
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".into()),
        effect: Some(effect.to_string()),
        toleration_seconds: None,
        value: None,
    }
}

// ANCHOR: daemon_tolerations
/// The tolerations every daemon pod gets (upstream's
/// `AddOrUpdateDaemonPodTolerations`): NoExecute for not-ready and
/// unreachable with no time limit, so the node lifecycle controller
/// never evicts it; NoSchedule for pressure and cordon, so it is
/// placed anyway; network-unavailable too for a host-network pod.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in wanted {
        // One the template has for the same key and effect is replaced.
        list.retain(|o| !(o.key == t.key && o.effect == t.effect));
        list.push(t);
    }
}
// ANCHOR_END: daemon_tolerations

// ANCHOR: pin
/// Replaces the pod's required node affinity by one term selecting the
/// node by name (`ReplaceDaemonSetPodNodeNameNodeAffinity`); the
/// preferred terms stay. The controller has checked the template's own
/// terms already.
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinitySpec::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector {
            node_selector_terms: vec![term],
        });
}
// ANCHOR_END: pin

/// The node a daemon pod is for: its `nodeName` once bound, else the
/// name its required affinity pins (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            match (r.key.as_str(), r.operator.as_str(), values) {
                ("metadata.name", "In", [v]) => Some(v.clone()),
                _ => None,
            }
        })
    })
}

/// The pod the DaemonSet makes for `node`: its template, owned by it,
/// with the daemon tolerations, pinned to the node.
pub fn daemon_pod(ds: &DaemonSet, node: &str) -> Pod {
    let spec = ds.spec.clone().unwrap_or_default();
    let ns = ds.metadata.namespace.as_deref().unwrap_or("default");
    let owner = pods::owner_ref("apps/v1", "DaemonSet", &ds.metadata);
    let mut pod = pods::pod_from_template(&spec.template, ns, owner);
    let generation = ds.metadata.generation.unwrap_or(0).to_string();
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_GENERATION.into(), generation);
    let pod_spec = pod.spec.get_or_insert_with(PodSpec::default);
    add_daemon_tolerations(pod_spec);
    pin_to_node(pod_spec, node);
    pod
}

/// Whether a node should run the daemon pod, and whether one already
/// there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeVerdict {
    pub should_run: bool,
    pub should_continue_running: bool,
}

// ANCHOR: should_run
/// Upstream's `NodeShouldRunDaemonPod` for `pod` (the template with the
/// daemon tolerations, not yet pinned) on `node`: the node must be the
/// one a `nodeName` names, fit the nodeSelector and required node
/// affinity, and have no untolerated NoSchedule taint (else it should
/// not run the pod, but one there stays) nor NoExecute taint (then not
/// even that).
pub fn should_run(pod: &Pod, node: &NodeInfo) -> NodeVerdict {
    // EXERCISE: lab05-daemon-nodes
    let no = NodeVerdict {
        should_run: false,
        should_continue_running: false,
    };
    let Some(spec) = pod.spec.as_ref() else {
        return no;
    };
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        if name != node.name {
            return no;
        }
    }
    let affinity = NodeAffinity::of(pod);
    if !affinity.requires_nothing() && !affinity.required_match(node) {
        return no;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let untolerated = |effect: &str| {
        node.taints()
            .iter()
            .any(|t| t.effect == effect && !tolerated(tolerations, t))
    };
    if untolerated("NoExecute") {
        return no;
    }
    NodeVerdict {
        should_run: !untolerated("NoSchedule"),
        should_continue_running: true,
    }
    // EXERCISE_END: lab05-daemon-nodes
}
// ANCHOR_END: should_run

/// The verdict for a node object (a node whose status cannot be read
/// runs nothing).
pub fn verdict_for(ds: &DaemonSet, node: &Arc<Node>) -> NodeVerdict {
    let mut pod = Pod {
        spec: ds.spec.as_ref().and_then(|s| s.template.spec.clone()),
        ..Pod::default()
    };
    add_daemon_tolerations(pod.spec.get_or_insert_with(PodSpec::default));
    match NodeInfo::new(node.clone()) {
        Ok(info) => should_run(&pod, &info),
        Err(_) => NodeVerdict {
            should_run: false,
            should_continue_running: false,
        },
    }
}

/// What to do about one node's pods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodePlan {
    pub create: bool,
    /// The pods to delete.
    pub delete: Vec<Arc<Pod>>,
}

/// Upstream's `podsShouldBeOnNode`: a node that should run the pod and
/// has none gets one; failed pods are deleted (and replaced); of several
/// the oldest stays; a node that may not keep it loses them all.
pub fn plan_node(verdict: NodeVerdict, pods: &[Arc<Pod>]) -> NodePlan {
    let failed = |p: &Pod| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    };
    let mut plan = NodePlan::default();
    if verdict.should_run {
        let mut running: Vec<&Arc<Pod>> = Vec::new();
        for p in pods {
            if failed(p) {
                plan.delete.push(p.clone());
            } else {
                running.push(p);
            }
        }
        if running.is_empty() {
            plan.create = true;
        }
        running.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        });
        plan.delete
            .extend(running.iter().skip(1).map(|p| (*p).clone()));
    } else if !verdict.should_continue_running {
        plan.delete.extend(pods.iter().cloned());
    }
    plan
}

/// The node informer's handler: a node added, relabelled or retainted
/// may change where every DaemonSet runs.
pub fn on_node_change(
    queue: &WorkQueue<String>,
    daemonsets: &Cache<DaemonSet>,
    change: &Change<Node>,
) {
    let relevant = match change {
        Change::Added(_) | Change::Deleted(_) => true,
        Change::Modified { old, new } => {
            old.metadata.labels != new.metadata.labels
                || old.spec.as_ref().and_then(|s| s.taints.as_ref())
                    != new.spec.as_ref().and_then(|s| s.taints.as_ref())
                || old.status.as_ref().map(|s| &s.allocatable)
                    != new.status.as_ref().map(|s| &s.allocatable)
        }
        Change::Synced => false,
    };
    if relevant {
        for ds in daemonsets.list() {
            queue.add(key_of(&ds.metadata));
        }
    }
}

/// The DaemonSet controller over the shared caches.
pub struct DaemonSetController {
    pub client: Client,
    pub daemonsets: Cache<DaemonSet>,
    pub nodes: Cache<Node>,
    pub pods: Cache<Pod>,
    pub queue: WorkQueue<String>,
    pub expectations: Expectations,
    pub recorder: Recorder,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl DaemonSetController {
    /// Syncs the DaemonSet `key`.
    pub fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(ds) = self.daemonsets.get(key) else {
            self.expectations.forget(key);
            return Ok(());
        };
        let Some(selector) = ds.pod_selector() else {
            return Err(SyncError::Invalid(format!(
                "DaemonSet {key}: invalid selector"
            )));
        };
        let (ns, _) = split_key(key);
        let candidates: Vec<Arc<Pod>> = pods_in(&self.pods, ns)
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let claimed = claim::<DaemonSet>(
            &self.client,
            &ds.metadata,
            &selector,
            candidates,
        )?;
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in claimed {
            if let Some(n) = target_node(&p) {
                by_node.entry(n).or_default().push(p);
            }
        }
        let nodes = self.nodes.list();
        let verdicts: Vec<(String, NodeVerdict)> = nodes
            .iter()
            .map(|n| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    verdict_for(&ds, n),
                )
            })
            .collect();
        let mut result = Ok(());
        if self.expectations.satisfied(key)
            && ds.metadata.deletion_timestamp.is_none()
        {
            result = self.manage(key, &ds, &verdicts, &by_node);
        }
        let status = self.status(&ds, &verdicts, &by_node);
        if ds.status.as_ref() != Some(&status) {
            write_status_of(&self.client, ds.as_ref(), &status, |d, s| {
                d.status = Some(s.clone())
            })
            .map_err(SyncError::api(format!(
                "update status of DaemonSet {key}"
            )))?;
        }
        result
    }

    fn manage(
        &self,
        key: &str,
        ds: &DaemonSet,
        verdicts: &[(String, NodeVerdict)],
        by_node: &HashMap<String, Vec<Arc<Pod>>>,
    ) -> Result<(), SyncError> {
        let mut create = Vec::new();
        let mut delete = Vec::new();
        for (node, verdict) in verdicts {
            let pods = by_node.get(node).map(Vec::as_slice).unwrap_or_default();
            let plan = plan_node(*verdict, pods);
            if plan.create {
                create.push(node.clone());
            }
            delete.extend(plan.delete);
        }
        // A pod pinned to a node that is gone and never bound: deleted
        // (one bound to a gone node is the pod GC's).
        for (node, pods) in by_node {
            if verdicts.iter().all(|(n, _)| n != node) {
                delete.extend(
                    pods.iter()
                        .filter(|p| {
                            p.spec
                                .as_ref()
                                .and_then(|s| s.node_name.as_deref())
                                .is_none_or(str::is_empty)
                        })
                        .cloned(),
                );
            }
        }
        if create.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let dels: Vec<String> =
            delete.iter().map(|p| key_of(&p.metadata)).collect();
        self.expectations.expect(key, create.len(), &dels);
        let event_ref = reference(ds);
        let mut failed = None;
        for p in &delete {
            let name = p.metadata.name.clone().unwrap_or_default();
            match self.client.delete::<Pod>(
                p.metadata.namespace.as_deref(),
                &name,
                None,
            ) {
                Ok(_) => self.recorder.event(
                    &event_ref,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations
                        .deletion_observed(key, &key_of(&p.metadata));
                    if !e.is_not_found() {
                        failed = Some(e);
                    }
                }
            }
        }
        // Creates in slow-start batches; the first failure ends them.
        let mut nodes = create.iter();
        'batches: for batch in
            slow_start_batches(create.len(), SLOW_START_INITIAL_BATCH)
        {
            for node in nodes.by_ref().take(batch) {
                let pod = daemon_pod(ds, node);
                match self
                    .client
                    .create(pod.metadata.namespace.as_deref(), &pod)
                {
                    Ok(created) => self.recorder.event(
                        &event_ref,
                        "Normal",
                        "SuccessfulCreate",
                        &format!(
                            "Created pod: {}",
                            created.metadata.name.unwrap_or_default()
                        ),
                    ),
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        self.recorder.event(
                            &event_ref,
                            "Warning",
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                        );
                        failed = Some(e);
                        break 'batches;
                    }
                }
            }
        }
        for _ in nodes {
            self.expectations.creation_observed(key);
        }
        match failed {
            Some(e) => {
                Err(SyncError::api(format!("manage DaemonSet {key}"))(e))
            }
            None => Ok(()),
        }
    }

    /// Upstream's `updateDaemonSetStatus`, counted per node.
    fn status(
        &self,
        ds: &DaemonSet,
        verdicts: &[(String, NodeVerdict)],
        by_node: &HashMap<String, Vec<Arc<Pod>>>,
    ) -> DaemonSetStatus {
        let now = Utc::now();
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let generation = ds.metadata.generation.unwrap_or(0).to_string();
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available, mut updated) = (0, 0, 0);
        for (node, verdict) in verdicts {
            let pods: Vec<&Arc<Pod>> = by_node
                .get(node)
                .into_iter()
                .flatten()
                .filter(|p| pods::is_active(p))
                .collect();
            if !verdict.should_run {
                if !pods.is_empty() {
                    misscheduled += 1;
                }
                continue;
            }
            desired += 1;
            let Some(first) = pods.first() else { continue };
            current += 1;
            if is_ready(first) {
                ready += 1;
            }
            if is_available(first, min_ready, now) {
                available += 1;
            }
            if pods::labels(&first.metadata).get(TEMPLATE_GENERATION)
                == Some(&generation)
            {
                updated += 1;
            }
        }
        let old = ds.status.clone().unwrap_or_default();
        let unavailable = desired - available;
        DaemonSetStatus {
            desired_number_scheduled: count(desired),
            current_number_scheduled: count(current),
            number_misscheduled: count(misscheduled),
            number_ready: count(ready),
            number_available: Some(count(available)),
            number_unavailable: (unavailable > 0).then(|| count(unavailable)),
            updated_number_scheduled: Some(count(updated)),
            observed_generation: ds.metadata.generation,
            collision_count: old.collision_count,
            conditions: old.conditions,
        }
    }
}
