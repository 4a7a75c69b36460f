//! The node agent: chapter 5's kubelet. It drives lab03's pod workers
//! (the same code `ch03 node` drives from a manifest directory) from the
//! API server instead:
//!
//! - [`node`]: the Node it registers — capacity, addresses, podCIDR,
//!   nodeInfo, conditions — and keeps true in its status;
//! - [`lease`]: its heartbeat, a Lease in `kube-node-lease`;
//! - [`agent`]: [`NodeAgent`], which watches the pods bound to the node,
//!   runs them through lab03's `Workers` on a CRI runtime, writes their
//!   status through `pods/status`, posts their events, and deletes them
//!   once they are gone from the node;
//! - [`static_pods`]: pods from a manifest directory, shown as mirror
//!   pods;
//! - [`logs`]: container logs served for the API server's `pods/log`;
//! - [`exec`]: commands run in a container for `pods/exec`, over a
//!   WebSocket;
//! - [`server`]: the agent's own HTTP server, which serves those two.

pub mod agent;
pub mod exec;
pub mod lease;
pub mod logs;
pub mod node;
pub mod server;
pub mod static_pods;

pub use agent::{AgentConfig, AgentError, Cri, NodeAgent};
