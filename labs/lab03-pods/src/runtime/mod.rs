//! The Linux implementation of the CRI traits: [`LinuxRuntime`].
//!
//! A sandbox is a `pause` process ([`pause`]) in the pod's new network,
//! IPC and UTS (and maybe PID) namespaces, inside the pod's cgroup
//! ([`cgroups`]), with the pod's IP from an optional [`PodNetwork`]. A
//! container is a lab01 container that joins those namespaces
//! ([`sandbox::sandbox_joins`]) and makes its own mount namespace on a root
//! filesystem from its image ([`rootfs`]), in a cgroup beneath the pod's.
//! One thread ([`engine`]) starts every process and watches them all: exits
//! become [`ContainerEvent`]s, output goes into CRI log files. What runs is
//! recorded under the state directory ([`state`]), so a runtime started
//! after a crash of its predecessor cleans up what that one left.

#[cfg(target_os = "linux")]
pub mod cgroups;
#[cfg(target_os = "linux")]
mod engine;
#[cfg(target_os = "linux")]
mod exec;
#[cfg(target_os = "linux")]
pub mod images;
pub mod logpump;
#[cfg(target_os = "linux")]
mod pause;
#[cfg(target_os = "linux")]
pub mod rootfs;
#[cfg(target_os = "linux")]
pub mod sandbox;
#[cfg(target_os = "linux")]
pub mod state;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{LinuxRuntime, RuntimeConfig};

use std::net::Ipv4Addr;
use std::path::Path;

/// A boxed error from a network plugin.
pub type NetworkError = Box<dyn std::error::Error + Send + Sync>;

/// The pod network, as the runtime needs it (what CNI is to containerd):
/// give the pod's network namespace an interface and an IP on the node's
/// network, and take them back.
pub trait PodNetwork: Send + Sync {
    /// Connects the network namespace at `netns` (the sandbox's
    /// `/proc/PID/ns/net`) for the pod `pod_uid`; answers its IP.
    fn attach(&self, pod_uid: &str, netns: &Path) -> Result<Ipv4Addr, NetworkError>;
    /// Releases what `attach` made for the pod (its IP, its veth). Called
    /// also for pods a crashed runtime left, so it must accept a pod it
    /// has nothing of.
    fn detach(&self, pod_uid: &str) -> Result<(), NetworkError>;
}
