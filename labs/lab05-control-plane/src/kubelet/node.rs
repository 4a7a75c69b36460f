//! The node agent's Node: what it registers and then keeps true in
//! `status` — capacity and allocatable, addresses, the pod CIDR, the
//! system's versions, and the four conditions the kubelet's node status
//! setters (`pkg/kubelet/nodestatus/setters.go`) report.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// The kubelet's default `maxPods`.
pub const MAX_PODS: u32 = 110;
/// What the node agent says it is (the API server's version, as a
/// kubelet of the same release).
pub const KUBELET_VERSION: &str = "v1.32.0-kubelings";
/// The kubelet's default hard eviction threshold for memory
/// (`memory.available<100Mi`), which allocatable leaves out.
pub const EVICTION_MEMORY: u64 = 100 << 20;
/// The same for the node's filesystem (`nodefs.available<10%`).
pub const EVICTION_NODEFS_PERCENT: u64 = 10;

/// The node's resources, measured once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    pub memory_bytes: u64,
    /// The filesystem of the agent's data directory, if it could be read.
    pub ephemeral_bytes: Option<u64>,
    pub pods: u32,
}

impl Resources {
    /// This machine's CPUs and memory, and the filesystem under `data`.
    pub fn measure(data: &Path) -> Resources {
        let cpus =
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| mem_total(&t))
            .unwrap_or(0);
        let ephemeral_bytes = nix::sys::statvfs::statvfs(data)
            .ok()
            .map(|s| s.blocks().saturating_mul(s.fragment_size()));
        Resources {
            cpus,
            memory_bytes,
            ephemeral_bytes,
            pods: MAX_PODS,
        }
    }

    /// `status.capacity`: what the machine has.
    pub fn capacity(&self) -> BTreeMap<String, Quantity> {
        self.quantities(0, 0)
    }

    /// `status.allocatable`: capacity less the hard eviction thresholds
    /// (nothing is reserved for the system here, as a kubelet without
    /// `--kube-reserved` and `--system-reserved`).
    pub fn allocatable(&self) -> BTreeMap<String, Quantity> {
        let disk = self
            .ephemeral_bytes
            .map_or(0, |b| b / 100 * EVICTION_NODEFS_PERCENT);
        self.quantities(EVICTION_MEMORY, disk)
    }

    fn quantities(
        &self,
        less_memory: u64,
        less_disk: u64,
    ) -> BTreeMap<String, Quantity> {
        let mut out = BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "memory".to_string(),
                Quantity(format!(
                    "{}Ki",
                    self.memory_bytes.saturating_sub(less_memory) / 1024
                )),
            ),
            ("pods".to_string(), Quantity(self.pods.to_string())),
        ]);
        if let Some(bytes) = self.ephemeral_bytes {
            let left = bytes.saturating_sub(less_disk);
            out.insert(
                "ephemeral-storage".into(),
                Quantity(format!("{}Ki", left / 1024)),
            );
        }
        out
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the node agent knows of its own health, from which it words
/// the Ready condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Why the container runtime cannot run pods (`container runtime is
    /// down`), if it cannot.
    pub runtime_error: Option<String>,
    /// Why pods would get no network, if so.
    pub network_error: Option<String>,
    /// Capacities the node should report and does not have (`cpu`,
    /// `memory`, `pods`).
    pub missing_capacity: Vec<String>,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
}

/// A condition's status, reason and message, without its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

// ANCHOR: ready_condition
/// The Ready condition from what the node agent knows: True with
/// `KubeletReady` when nothing is wrong, else False with `KubeletNotReady`
/// and every problem in the message, as the kubelet's `ReadyCondition`
/// setter aggregates them.
pub fn ready_condition(health: &Health) -> Verdict {
    // EXERCISE: lab05-node-ready
    let mut errors: Vec<String> = Vec::new();
    errors.extend(health.runtime_error.iter().cloned());
    errors.extend(health.network_error.iter().cloned());
    if !health.missing_capacity.is_empty() {
        errors.push(format!(
            "missing node capacity for resources: {}",
            health.missing_capacity.join(", ")
        ));
    }
    match errors.len() {
        0 => Verdict {
            status: "True",
            reason: "KubeletReady",
            message: "kubelet is posting ready status".into(),
        },
        // An aggregate of one error reads as that error, of several as a
        // bracketed list (apimachinery's `utilerrors.NewAggregate`).
        1 => Verdict {
            status: "False",
            reason: "KubeletNotReady",
            message: errors.remove(0),
        },
        _ => Verdict {
            status: "False",
            reason: "KubeletNotReady",
            message: format!("[{}]", errors.join(", ")),
        },
    }
    // EXERCISE_END: lab05-node-ready
}
// ANCHOR_END: ready_condition

/// The three pressure conditions, in the kubelet's words.
pub fn pressure_conditions(health: &Health) -> [(&'static str, Verdict); 3] {
    let v = |on: bool, yes: (&'static str, &str), no: (&'static str, &str)| {
        let (reason, message) = if on { yes } else { no };
        Verdict {
            status: if on { "True" } else { "False" },
            reason,
            message: message.to_string(),
        }
    };
    [
        (
            "MemoryPressure",
            v(
                health.memory_pressure,
                (
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                ),
                (
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
            ),
        ),
        (
            "DiskPressure",
            v(
                health.disk_pressure,
                ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ),
        ),
        (
            "PIDPressure",
            v(
                health.pid_pressure,
                (
                    "KubeletHasInsufficientPID",
                    "kubelet has insufficient PID available",
                ),
                (
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
            ),
        ),
    ]
}

/// The node's conditions now: the pressures, then Ready last (as the
/// kubelet orders them). `old` keeps each `lastTransitionTime` while a
/// condition's status stays; every heartbeat time is `now`.
pub fn conditions(
    health: &Health,
    old: &[NodeCondition],
    now: SystemTime,
) -> Vec<NodeCondition> {
    let now = Time(now.into());
    let mut list: Vec<(&'static str, Verdict)> =
        pressure_conditions(health).into();
    list.push(("Ready", ready_condition(health)));
    list.into_iter()
        .map(|(type_, v)| {
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == v.status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            NodeCondition {
                type_: type_.to_string(),
                status: v.status.to_string(),
                reason: Some(v.reason.to_string()),
                message: Some(v.message),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(since),
            }
        })
        .collect()
}

/// Who the node is and where it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub node_ip: Ipv4Addr,
    /// `198.18.1.0/24`.
    pub pod_cidr: String,
    /// Where the agent serves container logs.
    pub port: u16,
    pub runtime_version: String,
}

/// `status.nodeInfo` of this machine: the kernel from uname, the OS from
/// /etc/os-release, the runtime's own version.
pub fn system_info(runtime_version: &str) -> NodeSystemInfo {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let machine_id = std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    NodeSystemInfo {
        architecture: go_arch().into(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        container_runtime_version: runtime_version.to_string(),
        kernel_version: kernel,
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id,
        operating_system: "linux".into(),
        os_image,
        system_uuid: String::new(),
    }
}

/// Go's name for this machine's architecture (`amd64`, `arm64`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The labels the kubelet puts on its Node.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("beta.kubernetes.io/arch".into(), go_arch().into()),
        ("beta.kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), go_arch().into()),
        ("kubernetes.io/hostname".into(), name.to_string()),
        ("kubernetes.io/os".into(), "linux".into()),
    ])
}

/// The node's status as of now.
pub fn status(
    id: &Identity,
    resources: &Resources,
    health: &Health,
    old: &[NodeCondition],
    now: SystemTime,
) -> NodeStatus {
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: id.name.clone(),
            },
        ]),
        capacity: Some(resources.capacity()),
        allocatable: Some(resources.allocatable()),
        conditions: Some(conditions(health, old, now)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(id.port),
            }),
        }),
        node_info: Some(system_info(&id.runtime_version)),
        ..NodeStatus::default()
    }
}

/// The Node the agent registers.
pub fn node(
    id: &Identity,
    resources: &Resources,
    health: &Health,
    now: SystemTime,
) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels(&id.name)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(id.pod_cidr.clone()),
            pod_cidrs: Some(vec![id.pod_cidr.clone()]),
            ..NodeSpec::default()
        }),
        status: Some(status(id, resources, health, &[], now)),
    }
}

/// Whether two statuses differ in more than their heartbeat times: the
/// kubelet writes a status that changed at once, an unchanged one only
/// every `nodeStatusReportFrequency`.
pub fn changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_in_bytes() {
        let text = "MemTotal:        8030372 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(text), Some(8030372 * 1024));
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn allocatable_leaves_the_eviction_thresholds_out() {
        let r = Resources {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_bytes: Some(100 << 30),
            pods: 110,
        };
        assert_eq!(r.capacity()["memory"].0, "4194304Ki");
        assert_eq!(r.allocatable()["memory"].0, "4091904Ki");
        assert_eq!(r.allocatable()["ephemeral-storage"].0, "94371840Ki");
        assert_eq!(r.allocatable()["pods"].0, "110");
    }
}
