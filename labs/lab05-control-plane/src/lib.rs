//! Chapter 5's lab, first half: the control plane's heart.
//!
//! - [`store`]: a watchable, versioned key-value store, embedded (our own
//!   MVCC over a file) or real etcd, behind one trait.
//! - [`apiserver`]: the Kubernetes REST API over that store, as the real
//!   `kubectl` and the Python client use it.
//! - [`auth`]: who may do what: TLS, bearer tokens, the node rule.
//! - [`client`]: the API client the control plane's own components use.
//! - [`cluster`]: a cluster on one machine: the cluster network of the
//!   nodes' network namespaces, and the state `ch05 up` keeps.
//! - [`informer`], [`workqueue`], [`events`]: how those components read
//!   the cluster, queue their work and tell people what they did.
//! - [`scheduler`]: which node each pod runs on.
//! - [`leader`]: leader election through a Lease.
//! - [`controllers`]: the controller manager's reconcile loops.
//! - [`kubelet`]: the node agent, driving lab03's pod workers from the API.

pub mod apiserver;
pub mod auth;
pub mod bench;
pub mod client;
#[cfg(target_os = "linux")]
pub mod cluster;
pub mod controllers;
pub mod events;
pub mod informer;
pub mod kubelet;
pub mod leader;
pub mod node_proxy;
pub mod scheduler;
pub mod store;
pub mod workqueue;
