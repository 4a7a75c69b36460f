//! What the scheduler knows of a node and of a pod, in integers: a node's
//! allocatable resources, what its pods request (actually, and with the
//! non-zero defaults), how many pods it has, the host ports they hold and
//! the images it has; a pod's requests, computed once, not once per node.
//!
//! Quantities are read with lab03's parser: cpu in millicores (rounded up,
//! as `MilliValue`), everything else in units (`Value`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use lab03::resources::{parse_quantity, quantity_of, Amount, ResourceError};

use super::affinity::NodeAffinity;

/// A container with no cpu request counts as 100m when spreading pods
/// (pkg/scheduler/util `DefaultMilliCPURequest`)…
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// …and one with no memory request as 200 MiB (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources: cpu in millicores, the rest in units. Resources
/// other than cpu, memory and ephemeral-storage (extended resources,
/// hugepages) are "scalar" ones, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub scalar: BTreeMap<String, i64>,
}

/// Whether the scheduler counts `name` as a scalar resource (upstream's
/// IsScalarResourceName: extended, hugepages, attachable volumes and
/// `kubernetes.io/`-prefixed ones).
pub fn is_scalar(name: &str) -> bool {
    name.contains('/')
        || name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
}

fn saturate(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

impl Resources {
    /// Sets one resource from an exact amount.
    pub fn set(&mut self, name: &str, amount: Amount) {
        match name {
            "cpu" => self.milli_cpu = saturate(amount.milli()),
            "memory" => self.memory = saturate(amount.value()),
            "ephemeral-storage" => {
                self.ephemeral_storage = saturate(amount.value())
            }
            n if is_scalar(n) => {
                self.scalar.insert(n.to_string(), saturate(amount.value()));
            }
            // pods, storage…: not a request the scheduler counts.
            _ => {}
        }
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource the larger of the two.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage =
            self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// The amount of `name` (0 for one not held). Inlined, so that a
    /// constant name (the scored "cpu" and "memory") costs no compare.
    #[inline]
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            n => self.scalar.get(n).copied().unwrap_or(0),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// A container's requests. A limit without a request counts as the
/// request, as kube-apiserver's defaulting has made it by the time
/// kube-scheduler reads the pod. With `non_zero`, a missing cpu or memory
/// request counts as the defaults above (an explicit "0" stays 0).
fn container_requests(
    c: &Container,
    non_zero: bool,
) -> Result<Resources, ResourceError> {
    let mut names: Vec<&str> = Vec::new();
    if let Some(r) = &c.resources {
        for map in [&r.requests, &r.limits].into_iter().flatten() {
            names.extend(map.keys().map(String::as_str));
        }
    }
    names.sort_unstable();
    names.dedup();
    let mut out = Resources::default();
    let mut has = (false, false);
    for name in names {
        let amount = match quantity_of(c, "requests", name)? {
            Some(a) => Some(a),
            None => quantity_of(c, "limits", name)?,
        };
        if let Some(amount) = amount {
            out.set(name, amount);
            match name {
                "cpu" => has.0 = true,
                "memory" => has.1 = true,
                _ => {}
            }
        }
    }
    if non_zero {
        if !has.0 {
            out.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has.1 {
            out.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    Ok(out)
}

/// What a pod requests (component-helpers' PodRequests): the sum of its
/// containers, or more if an init container needs more while it runs.
/// Init containers run one at a time, so they count by the largest, not
/// the sum; sidecars (init containers with restartPolicy Always) keep
/// running, so they add up, to the pod and under each later init
/// container. Then the pod's overhead.
// ANCHOR: pod_requests
pub fn pod_requests(
    pod: &Pod,
    non_zero: bool,
) -> Result<Resources, ResourceError> {
    let mut total = Resources::default();
    let Some(spec) = &pod.spec else {
        return Ok(total);
    };
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero)?);
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero)?;
        let running = if c.restart_policy.as_deref() == Some("Always") {
            total.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut r = r;
            r.add(&sidecars);
            r
        };
        init_max.max_with(&running);
    }
    total.max_with(&init_max);
    for (name, Quantity(text)) in spec.overhead.iter().flatten() {
        let amount =
            parse_quantity(text).map_err(|error| ResourceError::Quantity {
                map: "overhead",
                name: name.clone(),
                error,
            })?;
        let mut one = Resources::default();
        one.set(name, amount);
        total.add(&one);
    }
    Ok(total)
}
// ANCHOR_END: pod_requests

/// A host port a pod takes on its node: (protocol, hostIP, port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports collide: same protocol and port, and the
    /// same address or either one every address (0.0.0.0).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.protocol == other.protocol
            && self.port == other.port
            && (self.ip == other.ip
                || self.ip == "0.0.0.0"
                || other.ip == "0.0.0.0")
    }
}

/// The host ports of a pod's containers (ports without a hostPort take
/// none: containerPort 80 alone is not on the node).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else { return out };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for p in c.ports.iter().flatten() {
            let Some(port) = p.host_port.filter(|p| *p > 0) else {
                continue;
            };
            out.push(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                port,
            });
        }
    }
    out
}

/// An image name as the node lists it: with `:latest` when it has no tag
/// or digest (ImageLocality's normalizedImageName).
pub fn normalized_image(name: &str) -> String {
    let colon = name.rfind(':').map_or(-1, |i| i as i64);
    let slash = name.rfind('/').map_or(-1, |i| i as i64);
    if colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// Why a pod or a node cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("pod {pod}: {error}")]
    Pod { pod: String, error: ResourceError },
    #[error("node {node}: status.allocatable[{name}]: {error}")]
    Node {
        node: String,
        name: String,
        error: lab03::resources::QuantityError,
    },
}

/// A pod, read once for every node it is tried on.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// "namespace/name".
    pub key: String,
    /// What NodeResourcesFit's filter and BalancedAllocation use.
    pub requests: Resources,
    /// What LeastAllocated uses: missing cpu/memory requests as defaults.
    pub non_zero: Resources,
    pub priority: i32,
    pub host_ports: Vec<HostPort>,
    /// Its containers' images (init containers first), normalized.
    pub images: Vec<String>,
    /// Its nodeSelector and node affinity, parsed.
    pub affinity: NodeAffinity,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Result<PodInfo, InfoError> {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let wrap = |error| InfoError::Pod {
            pod: key.clone(),
            error,
        };
        let requests = pod_requests(&pod, false).map_err(wrap)?;
        let non_zero = pod_requests(&pod, true).map_err(wrap)?;
        let spec = pod.spec.as_ref();
        let images = spec
            .map(|s| {
                let init = s.init_containers.iter().flatten();
                init.chain(s.containers.iter())
                    .map(|c| {
                        normalized_image(c.image.as_deref().unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(PodInfo {
            affinity: NodeAffinity::of(&pod),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            host_ports: host_ports(&pod),
            images,
            requests,
            non_zero,
            key,
            pod,
        })
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }
}

/// What a pod placed on a node takes from it.
#[derive(Debug, Clone)]
pub struct PlacedPod {
    pub key: String,
    pub priority: i32,
    pub requests: Resources,
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
}

impl From<&PodInfo> for PlacedPod {
    fn from(p: &PodInfo) -> PlacedPod {
        PlacedPod {
            key: p.key.clone(),
            priority: p.priority,
            requests: p.requests.clone(),
            non_zero: p.non_zero.clone(),
            host_ports: p.host_ports.clone(),
        }
    }
}

/// A node and what its pods take from it (upstream's NodeInfo).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub allocatable: Resources,
    /// `allocatable.pods`.
    pub allowed_pods: i64,
    /// The sum of its pods' actual requests.
    pub requested: Resources,
    /// The sum with the non-zero defaults.
    pub non_zero_requested: Resources,
    pub pods: Vec<PlacedPod>,
    /// Image name → size in bytes, every name of every image.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    /// The node, with no pods yet. Its allocatable resources are
    /// `status.allocatable` (its capacity if it reports none).
    pub fn new(node: Arc<Node>) -> Result<NodeInfo, InfoError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut allocatable = Resources::default();
        let mut allowed_pods = 0;
        let status = node.status.as_ref();
        let list =
            status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        for (k, Quantity(text)) in list.into_iter().flatten() {
            let amount =
                parse_quantity(text).map_err(|error| InfoError::Node {
                    node: name.clone(),
                    name: k.clone(),
                    error,
                })?;
            if k == "pods" {
                allowed_pods = saturate(amount.value());
            } else {
                allocatable.set(k, amount);
            }
        }
        let mut images = HashMap::new();
        for image in
            status.and_then(|s| s.images.as_ref()).into_iter().flatten()
        {
            for n in image.names.iter().flatten() {
                images.insert(n.clone(), image.size_bytes.unwrap_or(0));
            }
        }
        Ok(NodeInfo {
            node,
            name,
            allocatable,
            allowed_pods,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: Vec::new(),
            images,
        })
    }

    /// The same node's new version, keeping its pods.
    pub fn update_node(&mut self, node: Arc<Node>) -> Result<(), InfoError> {
        let fresh = NodeInfo::new(node)?;
        self.node = fresh.node;
        self.allocatable = fresh.allocatable;
        self.allowed_pods = fresh.allowed_pods;
        self.images = fresh.images;
        Ok(())
    }

    pub fn add_pod(&mut self, pod: PlacedPod) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero);
        self.pods.push(pod);
    }

    /// Removes the pod of `key`; whether it was there.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero);
        true
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn taints(&self) -> &[Taint] {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }

    pub fn unschedulable(&self) -> bool {
        self.node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
    }
}
