//! The score plugins of the default profile, each 0 to 100 per node,
//! then the weighted sum. Integer arithmetic as kube-scheduler's, which
//! its unit tests pin: `(capacity - requested) * 100 / capacity`
//! truncates, BalancedAllocation truncates a float, normalizing divides
//! by the best score.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Toleration;

use super::node_info::{NodeInfo, PodInfo, Resources};

/// The best score a plugin gives a node (framework.MaxNodeScore).
pub const MAX_NODE_SCORE: i64 = 100;

// ANCHOR: least_allocated
/// LeastAllocated: per resource, the share left free after the pod,
/// `(allocatable - requested) * 100 / allocatable` in integers (0 when
/// `requested` exceeds `allocatable`); then their average weighted by
/// `weights`, also in integers. A resource the node has none of
/// (allocatable 0) is left out, and a node with none at all scores 0.
pub fn least_allocated(
    requested: &[i64],
    allocatable: &[i64],
    weights: &[i64],
) -> i64 {
    // EXERCISE: lab05-least-allocated
    let mut score = 0;
    let mut weight_sum = 0;
    for ((&req, &alloc), &weight) in
        requested.iter().zip(allocatable).zip(weights)
    {
        if alloc == 0 {
            continue;
        }
        let free = if req > alloc {
            0
        } else {
            (alloc - req) * MAX_NODE_SCORE / alloc
        };
        score += free * weight;
        weight_sum += weight;
    }
    if weight_sum == 0 {
        return 0;
    }
    score / weight_sum
    // EXERCISE_END: lab05-least-allocated
}
// ANCHOR_END: least_allocated

// ANCHOR: balanced_allocation
/// BalancedAllocation: how evenly the node's resources would be used.
/// Each resource's fraction `requested / allocatable` (at most 1; a
/// resource with allocatable 0 left out); their standard deviation (for
/// two fractions that is half their difference, for more the population
/// deviation); the score `(1 - std) * 100`, truncated to an integer.
pub fn balanced_allocation(requested: &[i64], allocatable: &[i64]) -> i64 {
    // EXERCISE: lab05-balanced-allocation
    // The fractions are walked, not collected: this runs for every node
    // of every cycle, and a Vec each time would cost more than the sums.
    let fractions = || {
        requested
            .iter()
            .zip(allocatable)
            .filter(|(_, &alloc)| alloc != 0)
            .map(|(&req, &alloc)| (req as f64 / alloc as f64).min(1.0))
    };
    let std = match fractions().count() {
        0 | 1 => 0.0,
        2 => {
            let mut two = fractions();
            let (a, b) = (two.next().unwrap_or(0.0), two.next().unwrap_or(0.0));
            ((a - b) / 2.0).abs()
        }
        n => {
            let mean = fractions().sum::<f64>() / n as f64;
            let sum: f64 = fractions().map(|f| (f - mean) * (f - mean)).sum();
            (sum / n as f64).sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    // EXERCISE_END: lab05-balanced-allocation
}
// ANCHOR_END: balanced_allocation

/// The resources NodeResourcesFit and BalancedAllocation score, with
/// their weights (the default: cpu 1, memory 1).
pub const SCORED_RESOURCES: [(&str, i64); 2] = [("cpu", 1), ("memory", 1)];

/// What the node would hold with the pod (`node` the node's sum, `pod`
/// the pod's), and what it has, for the scored resources.
fn requested_allocatable(
    node: &Resources,
    pod: &Resources,
    alloc: &Resources,
) -> ([i64; 2], [i64; 2]) {
    let mut requested = [0; 2];
    let mut allocatable = [0; 2];
    for (i, (name, _)) in SCORED_RESOURCES.iter().enumerate() {
        allocatable[i] = alloc.get(name);
        requested[i] = node.get(name) + pod.get(name);
    }
    (requested, allocatable)
}

/// NodeResourcesFit's score (strategy LeastAllocated): with the non-zero
/// requests, so that pods asking nothing still spread.
pub fn node_resources_fit_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let (req, alloc) = requested_allocatable(
        &node.non_zero_requested,
        &pod.non_zero,
        &node.allocatable,
    );
    let weights = SCORED_RESOURCES.map(|(_, w)| w);
    least_allocated(&req, &alloc, &weights)
}

/// BalancedAllocation's score, with the actual requests. Skipped (None)
/// for a pod that requests nothing: it would pile such pods onto one node.
pub fn balanced_allocation_score(
    pod: &PodInfo,
    node: &NodeInfo,
) -> Option<i64> {
    if SCORED_RESOURCES
        .iter()
        .all(|(n, _)| pod.requests.get(n) == 0)
    {
        return None;
    }
    let (req, alloc) = requested_allocatable(
        &node.requested,
        &pod.requests,
        &node.allocatable,
    );
    Some(balanced_allocation(&req, &alloc))
}

/// TaintToleration's raw score: the node's PreferNoSchedule taints the
/// pod does not tolerate (with a toleration of effect PreferNoSchedule or
/// none); fewer is better, so it is normalized in reverse.
pub fn taint_toleration_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    intolerable_taints(&prefer_no_schedule_tolerations(pod), node)
}

/// The pod's tolerations that count for scoring: effect PreferNoSchedule
/// or none.
pub fn prefer_no_schedule_tolerations(pod: &PodInfo) -> Vec<Toleration> {
    pod.tolerations()
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect()
}

fn intolerable_taints(tolerations: &[Toleration], node: &NodeInfo) -> i64 {
    node.taints()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !super::filter::tolerated(tolerations, t))
        .count() as i64
}

/// NodeAffinity's raw score: the weights of the preferred terms the node
/// matches; normalized against the best node.
pub fn node_affinity_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.affinity.preferred_score(node)
}

const MB: i64 = 1024 * 1024;
/// ImageLocality's bounds: below 23 MiB an image saves nothing worth
/// having, above 1000 MiB per container no more.
pub const IMAGE_MIN: i64 = 23 * MB;
pub const IMAGE_MAX_PER_CONTAINER: i64 = 1000 * MB;

/// ImageLocality: the sizes of the pod's images the node has, each scaled
/// by the share of nodes that have it (an image everywhere says little),
/// clamped and mapped onto 0..100. `holders` counts the nodes holding
/// each image name, `nodes` is how many nodes there are.
pub fn image_locality_score(
    pod: &PodInfo,
    node: &NodeInfo,
    holders: &HashMap<String, usize>,
    nodes: usize,
) -> i64 {
    let mut sum: i64 = 0;
    // A node that lists no images (most, in a fresh cluster) needs no
    // lookups: its sum is 0.
    let images = if node.images.is_empty() {
        &[][..]
    } else {
        &pod.images[..]
    };
    for image in images {
        if let Some(size) = node.images.get(image) {
            let spread = holders.get(image).copied().unwrap_or(1) as f64
                / nodes.max(1) as f64;
            sum += (*size as f64 * spread) as i64;
        }
    }
    let max = IMAGE_MAX_PER_CONTAINER * pod.images.len() as i64;
    let sum = sum.clamp(IMAGE_MIN, max.max(IMAGE_MIN));
    if max <= IMAGE_MIN {
        return 0;
    }
    MAX_NODE_SCORE * (sum - IMAGE_MIN) / (max - IMAGE_MIN)
}

/// DefaultNormalizeScore: each score as a share of the best, `100 * s /
/// max`; reversed, `100 - that`. All zero stays zero (reversed, all 100).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

// ANCHOR: weights
/// The default profile's score weights, for the plugins this scheduler
/// has (PodTopologySpread and InterPodAffinity, weight 2 each, are left
/// out: they score pods that belong to services and affinity rules).
pub const WEIGHTS: [(&str, i64); 5] = [
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
];
// ANCHOR_END: weights

/// Each plugin's scores of the nodes, by plugin name.
pub type PluginScores = Vec<(&'static str, Vec<i64>)>;

/// Every plugin's score of every node, normalized, and the weighted sum:
/// `(plugin, scores)` in [`WEIGHTS`]' order (a plugin skipped for this
/// pod is absent), and the totals.
pub fn score_nodes(
    pod: &PodInfo,
    nodes: &[&NodeInfo],
    holders: &HashMap<String, usize>,
    all_nodes: usize,
) -> (PluginScores, Vec<i64>) {
    let mut plugins: PluginScores = Vec::with_capacity(WEIGHTS.len());
    let tolerations = prefer_no_schedule_tolerations(pod);
    let mut taints: Vec<i64> = nodes
        .iter()
        .map(|n| intolerable_taints(&tolerations, n))
        .collect();
    default_normalize(&mut taints, true);
    plugins.push(("TaintToleration", taints));
    if !pod.affinity.preferred.is_empty() {
        let mut affinity: Vec<i64> =
            nodes.iter().map(|n| node_affinity_score(pod, n)).collect();
        default_normalize(&mut affinity, false);
        plugins.push(("NodeAffinity", affinity));
    }
    plugins.push((
        "NodeResourcesFit",
        nodes
            .iter()
            .map(|n| node_resources_fit_score(pod, n))
            .collect(),
    ));
    let balanced: Option<Vec<i64>> = nodes
        .iter()
        .map(|n| balanced_allocation_score(pod, n))
        .collect();
    if let Some(balanced) = balanced {
        plugins.push(("NodeResourcesBalancedAllocation", balanced));
    }
    plugins.push((
        "ImageLocality",
        nodes
            .iter()
            .map(|n| image_locality_score(pod, n, holders, all_nodes))
            .collect(),
    ));
    let mut totals = vec![0; nodes.len()];
    for (name, scores) in &plugins {
        let weight = WEIGHTS
            .iter()
            .find(|(n, _)| n == name)
            .map_or(1, |(_, w)| *w);
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * weight;
        }
    }
    (plugins, totals)
}
