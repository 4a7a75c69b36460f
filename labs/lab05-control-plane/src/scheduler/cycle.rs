//! The scheduling cycle for one pod, pure and in memory: filter the
//! nodes (as many as percentageOfNodesToScore asks, from where the last
//! cycle stopped), score the feasible ones, pick the best. What to do
//! with the answer (assume, bind, report) is [`super::run`]'s business.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::feasible::{num_feasible_nodes_to_find, select_host, Rng};
use super::filter::{run_filters, Code, Rejection};
use super::fit_error::{FitError, NO_VICTIMS, PREEMPTION_NOT_HELPFUL};
use super::node_info::{InfoError, NodeInfo, PodInfo};
use super::score::score_nodes;

/// The nodes as the scheduler sees them, in a stable order, with how
/// many nodes hold each image (ImageLocality's spread).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    image_holders: HashMap<String, usize>,
}

impl Snapshot {
    pub fn new(nodes: Vec<NodeInfo>) -> Snapshot {
        let mut s = Snapshot::default();
        for n in nodes {
            s.insert(n);
        }
        s
    }

    fn count_images(&mut self, node: &NodeInfo, delta: isize) {
        for name in node.images.keys() {
            let e = self.image_holders.entry(name.clone()).or_default();
            *e = e.saturating_add_signed(delta);
        }
    }

    /// Adds a node (or replaces the one of the same name, keeping its
    /// pods).
    pub fn insert(&mut self, node: NodeInfo) {
        match self.index.get(&node.name) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.nodes[i], node);
                self.count_images(&old, -1);
                let fresh = self.nodes[i].clone();
                self.count_images(&fresh, 1);
                self.nodes[i].pods = old.pods;
                self.nodes[i].requested = old.requested;
                self.nodes[i].non_zero_requested = old.non_zero_requested;
            }
            None => {
                self.count_images(&node, 1);
                self.index.insert(node.name.clone(), self.nodes.len());
                self.nodes.push(node);
            }
        }
    }

    /// A node's new version.
    pub fn update_node(&mut self, node: Arc<Node>) -> Result<(), InfoError> {
        self.insert(NodeInfo::new(node)?);
        Ok(())
    }

    /// Removes a node (and what its pods took).
    pub fn remove(&mut self, name: &str) -> Option<NodeInfo> {
        let i = self.index.remove(name)?;
        let node = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
        self.count_images(&node, -1);
        Some(node)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let i = *self.index.get(name)?;
        self.nodes.get_mut(i)
    }

    pub fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(*self.index.get(name)?)
    }

    pub fn image_holders(&self) -> &HashMap<String, usize> {
        &self.image_holders
    }
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    /// Nodes filtered to find the feasible ones.
    pub evaluated: usize,
    pub feasible: usize,
}

/// Why a pod was not placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// kube-scheduler's ErrNoNodesAvailable.
    #[error("no nodes available to schedule pods")]
    NoNodes,
    #[error("{0}")]
    Unfit(FitError),
}

impl ScheduleError {
    /// The reason of the pod's PodScheduled condition: Unschedulable when
    /// nodes rejected it, SchedulerError otherwise.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            ScheduleError::NoNodes => "SchedulerError",
            ScheduleError::Unfit(_) => "Unschedulable",
        }
    }
}

/// The algorithm's state between cycles.
#[derive(Debug, Clone)]
pub struct Algorithm {
    /// percentageOfNodesToScore; 0 is adaptive.
    pub percentage: u32,
    next_start: usize,
    rng: Rng,
}

impl Algorithm {
    pub fn new(percentage: u32, rng: Rng) -> Algorithm {
        Algorithm {
            percentage,
            next_start: 0,
            rng,
        }
    }

    /// One scheduling cycle: the node for `pod`, or why there is none.
    pub fn schedule(
        &mut self,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<Placement, ScheduleError> {
        let nodes = &snapshot.nodes;
        if nodes.is_empty() {
            return Err(ScheduleError::NoNodes);
        }
        // ANCHOR: schedule
        let wanted = num_feasible_nodes_to_find(self.percentage, nodes.len());
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(wanted);
        let mut rejections: Vec<(String, Rejection)> = Vec::new();
        let start = self.next_start % nodes.len();
        for i in 0..nodes.len() {
            let node = &nodes[(start + i) % nodes.len()];
            match run_filters(pod, node) {
                Ok(()) => feasible.push(node),
                Err(r) => rejections.push((node.name.clone(), r)),
            }
            if feasible.len() >= wanted {
                break;
            }
        }
        let evaluated = feasible.len() + rejections.len();
        self.next_start = (start + evaluated) % nodes.len();
        if feasible.is_empty() {
            let post_filter = preemption_message(pod, snapshot, &rejections);
            return Err(ScheduleError::Unfit(FitError {
                num_all_nodes: nodes.len(),
                rejections,
                absent_reasons: Vec::new(),
                post_filter,
            }));
        }
        // ANCHOR_END: schedule
        // One feasible node needs no scores.
        let chosen = if feasible.len() == 1 {
            0
        } else {
            let (_, totals) = score_nodes(
                pod,
                &feasible,
                snapshot.image_holders(),
                nodes.len(),
            );
            select_host(&totals, &mut self.rng).unwrap_or(0)
        };
        Ok(Placement {
            node: feasible[chosen].name.clone(),
            evaluated,
            feasible: feasible.len(),
        })
    }
}

/// What DefaultPreemption's dry run would say, without evicting anyone
/// (this scheduler does not preempt): nodes rejected for good are "not
/// helpful"; on the others, a node with no pod of lower priority has "no
/// victims", and one that still rejects the pod without those pods keeps
/// its reasons. If some node would take the pod after evictions, upstream
/// would preempt and say nothing: so do we (`None`).
pub fn preemption_message(
    pod: &PodInfo,
    snapshot: &Snapshot,
    rejections: &[(String, Rejection)],
) -> Option<String> {
    let policy = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref());
    if policy == Some("Never") {
        return Some(
            "preemption: not eligible due to preemptionPolicy=Never.".into(),
        );
    }
    let mut statuses: Vec<(String, Rejection)> = Vec::new();
    for (name, _) in rejections
        .iter()
        .filter(|(_, r)| r.code == Code::Unschedulable)
    {
        let Some(node) = snapshot.get(name) else {
            continue;
        };
        let victims: Vec<String> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .map(|p| p.key.clone())
            .collect();
        if victims.is_empty() {
            statuses.push((
                name.clone(),
                Rejection {
                    plugin: "DefaultPreemption",
                    code: Code::UnschedulableAndUnresolvable,
                    reasons: vec![NO_VICTIMS.to_string()],
                },
            ));
            continue;
        }
        let mut without = node.clone();
        for v in &victims {
            without.remove_pod(v);
        }
        match run_filters(pod, &without) {
            Ok(()) => return None,
            Err(still) => statuses.push((name.clone(), still)),
        }
    }
    let error = FitError {
        num_all_nodes: snapshot.nodes.len(),
        rejections: statuses,
        absent_reasons: vec![PREEMPTION_NOT_HELPFUL.to_string()],
        post_filter: None,
    };
    Some(format!("preemption: {error}"))
}
