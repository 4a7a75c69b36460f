//! From a Pod to the CRI's configs: what the kubelet's
//! `generatePodSandboxConfig` and `generateContainerConfig` work out
//! before they call the runtime.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cri::{
    ContainerConfig, ContainerMetadata, Labels, LinuxContainerResources, Mount, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};
use crate::qos::{qos_class, QosClass};
use crate::resources::{container_cgroup, ResourceError, QUOTA_PERIOD_US};

/// The labels the kubelet puts on every sandbox and container, by which
/// it finds them again (and `crictl ps` shows them).
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// An annotation on each container: its restart count when created.
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// Where a node keeps a pod's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    /// Logs: the kubelet's `/var/log/pods`.
    pub log_root: PathBuf,
    /// Per-pod state, volumes among it: the kubelet's
    /// `/var/lib/kubelet/pods`.
    pub pods_root: PathBuf,
    /// The node's memory in bytes, for a Burstable container's
    /// `oom_score_adj`; `None` counts it as unknown.
    pub memory_capacity: Option<u64>,
}

impl NodeLayout {
    /// Logs in `<dir>/logs`, pods in `<dir>/pods`.
    pub fn under(dir: &Path) -> NodeLayout {
        NodeLayout {
            log_root: dir.join("logs"),
            pods_root: dir.join("pods"),
            memory_capacity: None,
        }
    }
}

/// Why a pod cannot become a sandbox or a container config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("pod has no {0}")]
    Missing(&'static str),
    #[error("{path}: {error}")]
    Resources { path: String, error: ResourceError },
    #[error("{path}: volume {volume:?} is not defined in spec.volumes")]
    UnknownVolume { path: String, volume: String },
    #[error("{path}: only emptyDir volumes are supported here")]
    UnsupportedVolume { path: String },
}

/// The parts of a pod's identity every config repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl PodIdentity {
    /// Name, namespace (`default` if unset) and uid; a pod without a name
    /// or a uid cannot run (the node gives static pods their uid).
    pub fn of(pod: &Pod) -> Result<PodIdentity, ConfigError> {
        let meta = &pod.metadata;
        Ok(PodIdentity {
            name: meta
                .name
                .clone()
                .ok_or(ConfigError::Missing("metadata.name"))?,
            namespace: meta
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            uid: meta
                .uid
                .clone()
                .ok_or(ConfigError::Missing("metadata.uid"))?,
        })
    }

    fn labels(&self) -> Labels {
        Labels::from([
            (POD_NAME.to_string(), self.name.clone()),
            (POD_NAMESPACE.to_string(), self.namespace.clone()),
            (POD_UID.to_string(), self.uid.clone()),
        ])
    }
}

// ANCHOR: cgroup_parent
/// The pod's cgroup under the node's: Guaranteed pods sit right under
/// `kubepods`, the others under a cgroup per class, as the kubelet's
/// QoS container manager lays them out.
pub fn cgroup_parent(qos: QosClass, uid: &str) -> String {
    match qos {
        QosClass::Guaranteed => format!("kubepods/pod{uid}"),
        QosClass::Burstable => format!("kubepods/burstable/pod{uid}"),
        QosClass::BestEffort => format!("kubepods/besteffort/pod{uid}"),
    }
}
// ANCHOR_END: cgroup_parent

/// The pod's QoS class, read as BestEffort if a quantity does not parse
/// (validation has refused such a pod before it gets here).
pub fn qos_of(pod: &Pod) -> QosClass {
    qos_class(pod).unwrap_or(QosClass::BestEffort)
}

/// The pod's directory under the node's pods root.
pub fn pod_dir(layout: &NodeLayout, uid: &str) -> PathBuf {
    layout.pods_root.join(uid)
}

/// Where an emptyDir volume lives on the node, as the kubelet names it.
pub fn empty_dir_path(layout: &NodeLayout, uid: &str, volume: &str) -> PathBuf {
    pod_dir(layout, uid)
        .join("volumes")
        .join("kubernetes.io~empty-dir")
        .join(volume)
}

// ANCHOR: sandbox_config
/// The CRI `PodSandboxConfig` of a pod, `attempt` counting re-creations.
pub fn sandbox_config(
    pod: &Pod,
    layout: &NodeLayout,
    attempt: u32,
) -> Result<PodSandboxConfig, ConfigError> {
    let id = PodIdentity::of(pod)?;
    let spec = pod.spec.as_ref().ok_or(ConfigError::Missing("spec"))?;
    let hostname = spec.hostname.clone().unwrap_or_else(|| id.name.clone());
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.extend(id.labels());
    let pid = match spec.share_process_namespace {
        Some(true) => NamespaceMode::Pod,
        _ => NamespaceMode::Container,
    };
    Ok(PodSandboxConfig {
        log_directory: crate::logs::pod_log_dir(&layout.log_root, &id.namespace, &id.name, &id.uid),
        cgroup_parent: cgroup_parent(qos_of(pod), &id.uid),
        namespace_options: NamespaceOption {
            pid,
            ..NamespaceOption::default()
        },
        hostname: hostname.chars().take(63).collect(),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        labels,
        dns_config: None,
        metadata: PodSandboxMetadata {
            name: id.name,
            uid: id.uid,
            namespace: id.namespace,
            attempt,
        },
    })
}
// ANCHOR_END: sandbox_config

/// The kubelet's `oom_score_adj` for a container: the OOM killer picks
/// BestEffort first and Guaranteed last; Burstable by its memory request
/// as a share of the node's memory.
pub fn oom_score_adj(qos: QosClass, container: &Container, capacity: Option<u64>) -> i32 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = crate::qos::request_of(container, "memory")
                .ok()
                .flatten()
                .map_or(0, |a| a.value());
            match capacity {
                Some(cap) if cap > 0 => {
                    let adj = 1000 - (1000 * request) / i128::from(cap);
                    adj.clamp(2, 999) as i32
                }
                _ => 999,
            }
        }
    }
}

/// Where `container` is in the spec, for messages: `spec.containers[0]`.
pub fn container_path(pod: &Pod, name: &str) -> String {
    let spec = pod.spec.as_ref();
    let find =
        |list: Option<&Vec<Container>>| list.and_then(|l| l.iter().position(|c| c.name == name));
    if let Some(i) = find(spec.and_then(|s| s.init_containers.as_ref())) {
        return format!("spec.initContainers[{i}]");
    }
    match find(spec.map(|s| &s.containers)) {
        Some(i) => format!("spec.containers[{i}]"),
        None => format!("spec.containers{{{name}}}"),
    }
}

// ANCHOR: container_config
/// The CRI `ContainerConfig` of one of the pod's containers, for its
/// `attempt`-th creation (its restart count).
pub fn container_config(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    layout: &NodeLayout,
) -> Result<ContainerConfig, ConfigError> {
    let id = PodIdentity::of(pod)?;
    let path = container_path(pod, &container.name);
    let cgroup = container_cgroup(container).map_err(|error| ConfigError::Resources {
        path: format!("{path}.resources"),
        error,
    })?;
    let qos = qos_of(pod);
    let mut labels = id.labels();
    labels.insert(CONTAINER_NAME.to_string(), container.name.clone());
    let envs = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    Ok(ContainerConfig {
        metadata: ContainerMetadata {
            name: container.name.clone(),
            attempt,
        },
        image: container.image.clone().unwrap_or_default(),
        command: container.command.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        envs,
        mounts: mounts(pod, container, &path, layout, &id.uid)?,
        labels,
        annotations: Labels::from([(RESTART_COUNT.to_string(), attempt.to_string())]),
        log_path: PathBuf::from(&container.name).join(format!("{attempt}.log")),
        stdin: container.stdin.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        resources: LinuxContainerResources {
            cpu_period: if cgroup.cpu.quota.is_some() {
                QUOTA_PERIOD_US
            } else {
                0
            },
            cpu_quota: cgroup.cpu.quota.map_or(0, |q| q.quota_us as i64),
            cpu_shares: cgroup.cpu.shares,
            memory_limit_in_bytes: cgroup.memory_bytes.unwrap_or(0),
            oom_score_adj: oom_score_adj(qos, container, layout.memory_capacity),
        },
    })
}
// ANCHOR_END: container_config

/// The container's volume mounts as host directories: each emptyDir is a
/// directory of the pod's, the same one for every container that mounts
/// it.
fn mounts(
    pod: &Pod,
    container: &Container,
    path: &str,
    layout: &NodeLayout,
    uid: &str,
) -> Result<Vec<Mount>, ConfigError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, m) in container.volume_mounts.iter().flatten().enumerate() {
        let at = format!("{path}.volumeMounts[{i}]");
        let volume = volumes.iter().find(|v| v.name == m.name).ok_or_else(|| {
            ConfigError::UnknownVolume {
                path: at.clone(),
                volume: m.name.clone(),
            }
        })?;
        if volume.empty_dir.is_none() {
            return Err(ConfigError::UnsupportedVolume { path: at });
        }
        out.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: empty_dir_path(layout, uid, &m.name),
            readonly: m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

/// The emptyDir directories a pod needs, to make before its sandbox.
pub fn empty_dirs(pod: &Pod, layout: &NodeLayout) -> Result<Vec<PathBuf>, ConfigError> {
    let id = PodIdentity::of(pod)?;
    Ok(pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter(|v| v.empty_dir.is_some())
        .map(|v| empty_dir_path(layout, &id.uid, &v.name))
        .collect())
}
