//! A cluster on one machine, as `ch05 up` makes it.
//!
//! - [`network`]: the cluster network: a network namespace with a bridge
//!   that the nodes' namespaces are plugged into, each node's `eth0` a
//!   veth with a fixed address and MAC, routes between the nodes' pod
//!   CIDRs, the API server's address on the bridge.
//! - [`state`]: what `ch05 up` records of the processes it started, so
//!   that `status`, `down` and the next `up` find them by pid (and start
//!   time, so a reused pid is never taken for ours).

pub mod network;
pub mod state;

pub use network::{ClusterNetwork, ClusterNetworkError, NodeNetns};
