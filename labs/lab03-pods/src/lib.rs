//! lab03: pods.
//!
//! Chapter 3 of the kubelings book builds this crate on lab01 (containers)
//! and lab02 (images). Kubernetes objects are `k8s-openapi`'s types, the
//! same ones chapter 5's API server and node agent share.
//!
//! - [`manifest`]: Pod YAML and JSON into `k8s_openapi` types, strictly.
//! - [`validate`]: the API server's checks, with field paths.
//! - [`qos`] and [`resources`]: requests and limits, the QoS class, and the
//!   cgroup settings the kubelet derives from them.
//! - [`phase`] and [`backoff`]: a pod's phase from its containers' states,
//!   and the restart back-off.
//! - [`columns`]: what `kubectl get pods` shows of a pod (READY,
//!   STATUS, RESTARTS, AGE), shared with chapter 5's API server.
//! - [`logs`]: the CRI log format.
//! - [`ipam`]: pod IPs from a node's CIDR, persistent across restarts.
//! - [`cri`]: the runtime interface the node agent drives, shaped like
//!   the CRI's RuntimeService and ImageService.

pub mod backoff;
pub mod columns;
pub mod cri;
pub mod ipam;
pub mod kubelet;
pub mod logs;
pub mod manifest;
pub mod network;
pub mod phase;
pub mod qos;
pub mod resources;
pub mod runtime;
pub mod validate;

/// Where time comes from: the runtime passes the system clock, tests a fake
/// one (the back-off and the log writer both take one).
pub use backoff::{Clock, FakeClock, SystemClock};
