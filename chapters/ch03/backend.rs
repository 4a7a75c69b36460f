//! The one place where `ch03` meets lab03's node parts: the node network
//! (`lab03::network::NodeNetwork`), the runtime
//! (`lab03::runtime::LinuxRuntime`, used only as a
//! `lab03::cri::RuntimeService`) and the node agent's pod workers
//! (`lab03::kubelet::PodWorker`). Everything else in `ch03` sees only
//! [`Backend`].
//!
//! The workers are step functions; this module is the loop that steps
//! them, as the kubelet's pod workers are stepped by its sync loop: a
//! worker is synced when the runtime reports an event for its sandbox,
//! when one of its jobs (a pull, a probe, a graceful stop) has finished,
//! when the time it asked for has come, and once a second regardless (the
//! kubelet's PLEG relists every second too).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use lab02::home::Home;
use lab03::cri::RuntimeService;
use lab03::ipam::Cidr;

use crate::protocol::PodView;

/// What the node needs to start.
#[derive(Clone)]
pub struct Settings {
    pub name: String,
    pub cidr: Cidr,
    /// The node's directory: runtime state under `runtime/`, the kubelet's
    /// under `kubelet/` (logs in `kubelet/logs`, volumes in
    /// `kubelet/pods`), the network's under `network/`.
    pub dir: PathBuf,
    /// The home whose image store the runtime takes images from.
    pub images: Home,
    /// The crash-loop back-off's first delay.
    pub backoff_base: Duration,
    /// What pods learn of the cluster (chapter 4's Services and DNS).
    pub environment: Option<Arc<dyn lab03::kubelet::PodEnvironment>>,
}

/// A running node: its network, runtime and pod workers.
pub trait Backend: Send + Sync {
    /// Starts a pod's worker (the pod is new: its uid is set).
    fn add(&self, pod: Pod) -> Result<()>;
    /// Stops a pod gracefully and removes everything of it; returns once
    /// it is gone.
    fn remove(&self, namespace: &str, name: &str) -> Result<()>;
    /// Every pod with its status and events.
    fn pods(&self) -> Vec<PodView>;
    /// The runtime's id of a pod's running container (`None`: the first).
    fn container_id(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<String>;
    /// The runtime, for exec and for measuring.
    fn runtime(&self) -> Result<Arc<dyn RuntimeService>>;
    /// Stops every pod and removes the node's network and state.
    fn shutdown(&self) -> Result<()>;
    /// The node's network (its namespace, bridge and addresses), if it
    /// has one.
    fn network(&self) -> Option<Arc<lab03::network::NodeNetwork>> {
        None
    }
}

/// Starts a node: the network (found again if a killed node left it), the
/// runtime (which cleans up what a killed predecessor left), the loop.
pub fn start(settings: &Settings) -> Result<Box<dyn Backend>> {
    crate::linux_node::start(settings)
}
