//! The filter plugins of the default profile, in its order: a node that
//! one of them rejects is out, with that plugin's reasons (the first
//! rejection ends the node's filtering, as RunFilterPlugins does).
//!
//! A rejection is *resolvable* (Unschedulable: removing pods could make
//! room, so preemption may help) or not (UnschedulableAndUnresolvable:
//! labels, taints, names do not change by evicting anybody).

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::node_info::{NodeInfo, PodInfo, Resources};

/// NodeUnschedulable's reason (upstream's ErrReasonUnschedulable).
pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// NodeName's.
pub const NODE_NAME: &str = "node(s) didn't match the requested node name";
/// NodeAffinity's (ErrReasonPod).
pub const NODE_AFFINITY: &str =
    "node(s) didn't match Pod's node affinity/selector";
/// NodePorts'.
pub const NODE_PORTS: &str =
    "node(s) didn't have free ports for the requested pod ports";

/// How final a rejection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Preemption could help (resources, ports).
    Unschedulable,
    /// Nothing the scheduler can do changes it.
    UnschedulableAndUnresolvable,
}

/// Why one node does not fit a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: &'static str,
    pub code: Code,
    pub reasons: Vec<String>,
}

fn reject(
    plugin: &'static str,
    code: Code,
    reason: impl Into<String>,
) -> Rejection {
    Rejection {
        plugin,
        code,
        reasons: vec![reason.into()],
    }
}

/// Whether one toleration tolerates one taint (core/v1's ToleratesTaint):
/// an empty effect or key matches any; operator Exists any value, Equal
/// (or none) only the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// NodeUnschedulable: a cordoned node takes only pods that tolerate the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub fn node_unschedulable(
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Rejection> {
    if !node.unschedulable() {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    if tolerated(pod.tolerations(), &taint) {
        return Ok(());
    }
    Err(reject(
        "NodeUnschedulable",
        Code::UnschedulableAndUnresolvable,
        UNSCHEDULABLE,
    ))
}

/// NodeName: a pod that names its node fits that node only.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    let wanted = pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    match wanted {
        Some(name) if !name.is_empty() && name != node.name => Err(reject(
            "NodeName",
            Code::UnschedulableAndUnresolvable,
            NODE_NAME,
        )),
        _ => Ok(()),
    }
}

/// TaintToleration: the node's first NoSchedule or NoExecute taint that
/// the pod does not tolerate keeps it off, and is named in the reason.
pub fn taint_toleration(
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Rejection> {
    let untolerated = node.taints().iter().find(|t| {
        (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !tolerated(pod.tolerations(), t)
    });
    match untolerated {
        None => Ok(()),
        Some(t) => Err(reject(
            "TaintToleration",
            Code::UnschedulableAndUnresolvable,
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            ),
        )),
    }
}

/// NodeAffinity: the nodeSelector and the required terms.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    if pod.affinity.requires_nothing() || pod.affinity.required_match(node) {
        return Ok(());
    }
    Err(reject(
        "NodeAffinity",
        Code::UnschedulableAndUnresolvable,
        NODE_AFFINITY,
    ))
}

/// NodePorts: no host port the pod wants may be taken on the node.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    if pod.host_ports.is_empty() {
        return Ok(());
    }
    let taken = node.pods.iter().flat_map(|p| p.host_ports.iter());
    for used in taken {
        if pod.host_ports.iter().any(|want| want.conflicts(used)) {
            return Err(reject("NodePorts", Code::Unschedulable, NODE_PORTS));
        }
    }
    Ok(())
}

// ANCHOR: insufficient_resources
/// NodeResourcesFit's check (fitsRequest): the reasons the node lacks
/// room for a pod requesting `request`, in this order: "Too many pods"
/// when the node holds its `allowed_pods` already, then "Insufficient
/// cpu", "Insufficient memory", "Insufficient ephemeral-storage" and
/// "Insufficient <name>" for each scalar resource (by name) the pod
/// requests more of than the node has left (allocatable − requested).
/// A resource the pod requests none of never lacks.
pub fn insufficient_resources(
    request: &Resources,
    node: &NodeInfo,
) -> Vec<String> {
    // EXERCISE: lab05-fit-filter
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    // (name, wanted, left): the fixed resources read as fields, not by
    // name, since this runs for every node a pod is tried on.
    let (alloc, used) = (&node.allocatable, &node.requested);
    let fixed = [
        ("cpu", request.milli_cpu, alloc.milli_cpu - used.milli_cpu),
        ("memory", request.memory, alloc.memory - used.memory),
        (
            "ephemeral-storage",
            request.ephemeral_storage,
            alloc.ephemeral_storage - used.ephemeral_storage,
        ),
    ];
    for (name, wanted, left) in fixed {
        if wanted > 0 && wanted > left {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    for (name, &wanted) in &request.scalar {
        if wanted > 0 && wanted > alloc.get(name) - used.get(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
    // EXERCISE_END: lab05-fit-filter
}
// ANCHOR_END: insufficient_resources

/// NodeResourcesFit's filter, on the pod's actual requests.
pub fn node_resources_fit(
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Rejection> {
    let reasons = insufficient_resources(&pod.requests, node);
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Rejection {
        plugin: "NodeResourcesFit",
        code: Code::Unschedulable,
        reasons,
    })
}

/// A filter plugin.
pub type Filter = fn(&PodInfo, &NodeInfo) -> Result<(), Rejection>;

// ANCHOR: filters
/// The default profile's filters that this scheduler has, in its order
/// (volume, topology-spread and inter-pod affinity filters are left out).
pub const FILTERS: [(&str, Filter); 6] = [
    ("NodeUnschedulable", node_unschedulable),
    ("NodeName", node_name),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
    ("NodePorts", node_ports),
    ("NodeResourcesFit", node_resources_fit),
];
// ANCHOR_END: filters

/// Every filter, until one rejects the node.
pub fn run_filters(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    for (_, filter) in FILTERS {
        filter(pod, node)?;
    }
    Ok(())
}
