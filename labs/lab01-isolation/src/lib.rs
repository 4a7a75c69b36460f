//! lab01: a small container runtime core.
//!
//! Chapter 1 of the kubelings book builds this crate: a process in its own
//! namespaces, on its own root filesystem, inside cgroup limits. Chapter 3's
//! pods and chapter 5's node agent build on it: [`Container::spawn`],
//! [`Container::wait`], [`Container::signal`], joining another container's
//! namespaces ([`ContainerSpec::join`]), [`Resources`], and cleanup on drop.
//!
//! A container's init is this same program, executed again: a constructor
//! of this crate takes over before `main` when `KUBELINGS_INIT` is set (see
//! `child.rs`), so any program that spawns containers needs no setup of its
//! own. Without the variable the constructor returns at once.
//!
//! The pure parts (limits, cgroup settings, probing) build on any OS; the
//! kernel parts only on Linux.

pub mod cgroup;
pub mod limits;
pub mod namespaces;
/// What this machine can do; shared with the workbook CLI, which links no lab.
pub use kubelings_probe as probe;

#[cfg(target_os = "linux")]
pub mod capabilities;
#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
pub mod container;
#[cfg(target_os = "linux")]
pub mod error;
#[cfg(target_os = "linux")]
pub mod init;
#[cfg(target_os = "linux")]
pub mod mounts;
#[cfg(target_os = "linux")]
pub mod network;
#[cfg(target_os = "linux")]
pub mod rootfs;
#[cfg(target_os = "linux")]
pub mod signals;

#[cfg(target_os = "linux")]
pub use child::Stage;
#[cfg(target_os = "linux")]
pub use container::{
    run_captured, run_captured_inspect, Container, ContainerSpec, ExitStatus, Output, Stdio,
};
#[cfg(target_os = "linux")]
pub use error::{Error, Result};
pub use limits::{CpuQuota, Resources};
#[cfg(target_os = "linux")]
pub use rootfs::RootfsBuilder;
