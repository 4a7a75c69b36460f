//! The seam between the node agent and the runtime, shaped like the CRI.
//!
//! The kubelet never starts a process itself: it asks a container runtime,
//! over the Container Runtime Interface (a gRPC service, `runtime.v1` in
//! `k8s.io/cri-api`), to run a pod sandbox, then to create and start
//! containers in it. These traits are that interface in Rust: the same
//! calls, the same messages (by their CRI names, trimmed to what the book
//! uses), called in-process instead of over a socket. Chapter 3's node and
//! chapter 5's kubelet drive a runtime only through them.
//!
//! Calls return at once; nothing here blocks until a container ends. Exits
//! come back as [`ContainerEvent`]s on a channel (the CRI's
//! `GetContainerEvents`), so one thread can supervise hundreds of
//! containers.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime};

/// Labels and annotations, as the CRI carries them.
pub type Labels = BTreeMap<String, String>;

/// Which pod a sandbox is for (CRI `PodSandboxMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSandboxMetadata {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    /// 0 for the first sandbox of this pod, one more for each re-creation.
    pub attempt: u32,
}

/// How a sandbox shares a namespace (CRI `NamespaceMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    /// One namespace for the whole pod, held by the sandbox.
    #[default]
    Pod,
    /// Each container gets its own.
    Container,
    /// The node's own (hostNetwork, hostPID, hostIPC).
    Node,
}

/// CRI `NamespaceOption`: which of the pod's namespaces are shared how.
/// UTS follows the network namespace, as in the CRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceOption {
    pub network: NamespaceMode,
    /// `Pod` when `shareProcessNamespace: true`, else `Container`.
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
}

impl Default for NamespaceOption {
    fn default() -> Self {
        NamespaceOption {
            network: NamespaceMode::Pod,
            pid: NamespaceMode::Container,
            ipc: NamespaceMode::Pod,
        }
    }
}

/// CRI `DNSConfig`: what goes into the pod's /etc/resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// CRI `PodSandboxConfig`: everything the runtime needs to make a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSandboxConfig {
    pub metadata: PodSandboxMetadata,
    /// The pod's hostname (the pod name unless `spec.hostname` says other).
    pub hostname: String,
    /// Where the containers' log files go; [`ContainerConfig::log_path`] is
    /// relative to it. The kubelet uses
    /// `/var/log/pods/<namespace>_<name>_<uid>`.
    pub log_directory: PathBuf,
    pub dns_config: Option<DnsConfig>,
    pub labels: Labels,
    pub annotations: Labels,
    /// The pod's cgroup, relative to the node's cgroup (the kubelet's
    /// `kubepods/burstable/pod<uid>`), made by the runtime if missing.
    pub cgroup_parent: String,
    pub namespace_options: NamespaceOption,
}

/// CRI `PodSandboxState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSandboxState {
    /// The sandbox process runs and its namespaces (and network) are set up.
    Ready,
    /// Stopped, or never fully set up: no containers can be started in it.
    NotReady,
}

/// CRI `PodSandboxStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandboxStatus {
    pub id: String,
    pub metadata: PodSandboxMetadata,
    pub state: PodSandboxState,
    pub created_at: SystemTime,
    /// The pod's IP on the node's pod network (`None` without a network).
    pub ip: Option<std::net::Ipv4Addr>,
    /// The sandbox process, which holds the pod's namespaces.
    pub pid: Option<i32>,
    pub labels: Labels,
    pub annotations: Labels,
}

/// One line of `ListPodSandbox`'s answer (CRI `PodSandbox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandbox {
    pub id: String,
    pub metadata: PodSandboxMetadata,
    pub state: PodSandboxState,
    pub created_at: SystemTime,
    pub labels: Labels,
    pub annotations: Labels,
}

/// CRI `PodSandboxFilter`: every field set must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSandboxFilter {
    pub id: Option<String>,
    pub state: Option<PodSandboxState>,
    pub label_selector: Labels,
}

impl PodSandboxFilter {
    /// Whether a sandbox passes: every field set matches, and every
    /// selector label is among the sandbox's.
    pub fn matches(&self, id: &str, state: PodSandboxState, labels: &Labels) -> bool {
        self.id.as_deref().is_none_or(|f| f == id)
            && self.state.is_none_or(|f| f == state)
            && selects(&self.label_selector, labels)
    }
}

/// Equality on every pair of the selector, as the CRI's filters ask.
fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// CRI `ContainerMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerMetadata {
    pub name: String,
    /// How many times this container has been created before in this pod:
    /// the kubelet's restart count.
    pub attempt: u32,
}

/// CRI `Mount`: a host path bind-mounted into the container (emptyDir
/// volumes are directories the node makes and mounts this way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub readonly: bool,
}

/// CRI `LinuxContainerResources`, the numbers the kubelet computes from
/// requests and limits (see [`crate::resources`]). Zero means unset, as
/// in the CRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinuxContainerResources {
    pub cpu_period: u64,
    pub cpu_quota: i64,
    pub cpu_shares: u64,
    pub memory_limit_in_bytes: u64,
    pub oom_score_adj: i32,
}

/// CRI `ContainerConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    pub metadata: ContainerMetadata,
    /// The image reference, as the pod spec names it.
    pub image: String,
    /// Overrides the image's ENTRYPOINT when not empty (the pod's `command`).
    pub command: Vec<String>,
    /// Overrides the image's CMD when not empty (the pod's `args`).
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    /// `NAME=value` pairs, after the image's own.
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub labels: Labels,
    pub annotations: Labels,
    /// Relative to the sandbox's log directory: the kubelet uses
    /// `<container>/<attempt>.log`.
    pub log_path: PathBuf,
    pub stdin: bool,
    pub tty: bool,
    pub resources: LinuxContainerResources,
}

/// CRI `ContainerState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// CRI `ContainerStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub metadata: ContainerMetadata,
    pub state: ContainerState,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Set once [`ContainerState::Exited`]: the exit code, or 128 + the
    /// signal number for a container ended by a signal.
    pub exit_code: Option<i32>,
    /// The image as asked for, and the digest it resolved to.
    pub image: String,
    pub image_ref: String,
    /// Why it is in this state, in the CRI's words: `OOMKilled`,
    /// `Completed`, `Error`, or why creating it failed.
    pub reason: String,
    pub message: String,
    /// The container's init process while it runs.
    pub pid: Option<i32>,
    pub labels: Labels,
    pub annotations: Labels,
    /// Absolute path of its log file.
    pub log_path: PathBuf,
}

/// One line of `ListContainers`' answer (CRI `Container`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub sandbox_id: String,
    pub metadata: ContainerMetadata,
    pub image: String,
    pub image_ref: String,
    pub state: ContainerState,
    pub created_at: SystemTime,
    pub labels: Labels,
    pub annotations: Labels,
}

/// CRI `ContainerFilter`: every field set must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerFilter {
    pub id: Option<String>,
    pub sandbox_id: Option<String>,
    pub state: Option<ContainerState>,
    pub label_selector: Labels,
}

impl ContainerFilter {
    /// Whether a container passes: every field set matches, and every
    /// selector label is among the container's.
    pub fn matches(
        &self,
        id: &str,
        sandbox_id: &str,
        state: ContainerState,
        labels: &Labels,
    ) -> bool {
        self.id.as_deref().is_none_or(|f| f == id)
            && self.sandbox_id.as_deref().is_none_or(|f| f == sandbox_id)
            && self.state.is_none_or(|f| f == state)
            && selects(&self.label_selector, labels)
    }
}

/// CRI `ContainerEventResponse`'s event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventType {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// What the runtime reports without being asked (the CRI's
/// `GetContainerEvents`, which the kubelet's evented PLEG reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub sandbox_id: String,
    pub kind: ContainerEventType,
    pub at: SystemTime,
}

/// CRI `ExecSyncResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSyncResponse {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// CRI `ExecRequest`: a command run inside a running container, attached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A running exec. The CRI answers `Exec` with a URL to stream from; in
/// process, the streams are the descriptors themselves.
pub struct ExecSession {
    pub pid: i32,
    /// Write end of the command's stdin, when asked for.
    pub stdin: Option<OwnedFd>,
    /// Read ends of its stdout and stderr (with a tty, stdout is the
    /// terminal's master side and stderr is `None`).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Reaps the command: its exit code (128 + signal when killed).
    pub wait: Box<dyn FnOnce() -> std::io::Result<i32> + Send>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("pid", &self.pid)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

/// CRI `VersionResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionResponse {
    pub version: String,
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
}

/// What a runtime call can fail with. The node agent turns these into the
/// kubelet's reasons (`CreateContainerError`, `ErrImagePull`, …), so the
/// messages name what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id:?} is {state}, not {wanted}")]
    WrongState {
        kind: &'static str,
        id: String,
        state: String,
        wanted: &'static str,
    },
    #[error("image {image:?}: {message}")]
    Image { image: String, message: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("deadline of {0:?} exceeded")]
    DeadlineExceeded(Duration),
    #[error("{context}: {source}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type CriResult<T> = Result<T, CriError>;

/// CRI `RuntimeService`. Every call returns without waiting for a
/// container to end; exits arrive through [`RuntimeService::events`].
pub trait RuntimeService: Send + Sync {
    fn version(&self) -> VersionResponse;

    /// Makes the pod's sandbox: its infra process holding the shared
    /// namespaces, its network (IP, veth into the node's bridge) and its
    /// cgroup. Answers the sandbox's id.
    fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> CriResult<String>;
    /// Stops every container in the sandbox (forcibly) and the sandbox's
    /// process, and releases its network. Stopping twice is no error.
    fn stop_pod_sandbox(&self, id: &str) -> CriResult<()>;
    /// Removes a stopped sandbox and its containers. Removing one that is
    /// gone is no error.
    fn remove_pod_sandbox(&self, id: &str) -> CriResult<()>;
    fn pod_sandbox_status(&self, id: &str) -> CriResult<PodSandboxStatus>;
    fn list_pod_sandbox(&self, filter: &PodSandboxFilter) -> CriResult<Vec<PodSandbox>>;

    /// Prepares a container in a sandbox (its root filesystem from the
    /// image, its log file) without starting it.
    fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> CriResult<String>;
    fn start_container(&self, id: &str) -> CriResult<()>;
    /// SIGTERM, then SIGKILL to every process of the container after
    /// `timeout` (zero: at once). Returns once they are all gone.
    fn stop_container(&self, id: &str, timeout: Duration) -> CriResult<()>;
    fn remove_container(&self, id: &str) -> CriResult<()>;
    fn container_status(&self, id: &str) -> CriResult<ContainerStatus>;
    fn list_containers(&self, filter: &ContainerFilter) -> CriResult<Vec<ContainerInfo>>;

    /// Runs a command in a running container and collects its output (what
    /// exec probes use).
    fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration)
        -> CriResult<ExecSyncResponse>;
    /// Runs a command in a running container with its streams attached
    /// (what `exec` uses).
    fn exec(&self, id: &str, request: &ExecRequest) -> CriResult<ExecSession>;

    /// Container lifecycle events, from now on. Each call makes a new
    /// subscriber.
    fn events(&self) -> Receiver<ContainerEvent>;
}

/// CRI `Image`: an image the runtime's store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The manifest digest.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub size: u64,
}

/// CRI `ImageService`, on lab02's store.
pub trait ImageService: Send + Sync {
    fn list_images(&self) -> CriResult<Vec<Image>>;
    /// `None` when the store does not hold it (the kubelet then pulls, as
    /// `imagePullPolicy` says).
    fn image_status(&self, image: &str) -> CriResult<Option<Image>>;
    /// Pulls from the image's registry; answers the image's id.
    fn pull_image(&self, image: &str) -> CriResult<String>;
    fn remove_image(&self, image: &str) -> CriResult<()>;
}
