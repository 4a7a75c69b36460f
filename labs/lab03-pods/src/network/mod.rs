//! The pod network of one node: a network namespace with a bridge, and a
//! veth pair per pod, all made through netlink (rtnetlink), never with
//! `ip` in a subprocess.
//!
//! ```text
//!  node netns (bind-mounted at <state>/network/netns)
//!  ┌──────────────────────────────────────────────┐
//!  │ lo 127.0.0.1      kube0 (bridge) 198.18.N.1  │
//!  │                    │            │            │
//!  │              veth0123456789  vethabcdef0123  │
//!  └────────────────────┼────────────┼────────────┘
//!           pod netns   │ eth0        │ eth0  pod netns
//!                  198.18.N.2     198.18.N.3
//! ```
//!
//! - [`NodeNetwork::create`] makes the node's namespace (on a thread of
//!   its own that `unshare`s, so the caller's namespace never changes),
//!   bind-mounts it at `<state_dir>/network/netns` so that it outlives a
//!   crashed node process and can be found again, brings loopback up and
//!   adds the bridge [`BRIDGE`] holding the CIDR's gateway address.
//! - [`NodeNetwork::open`] finds it again after a restart;
//!   [`NodeNetwork::remove`] cleans up whatever a crash left.
//! - [`NodeNetwork::attach`] gives a pod (its UID and the path of its
//!   network namespace, such as `/proc/<sandbox pid>/ns/net`) an address
//!   from the node's [`Ipam`](crate::ipam::Ipam) and a veth pair: the host
//!   end, named by [`host_ifname`], in the bridge, the other end `eth0` in
//!   the pod, up, with the address and a default route via the gateway.
//! - [`NodeNetwork::detach`] deletes the pair and releases the address;
//!   [`NodeNetwork::destroy`] deletes everything.
//!
//! Every netlink request runs on a short-lived thread that has `setns`'d
//! into the namespace it works on, because a netlink socket talks to the
//! namespace of the thread that opened it. The root network namespace is
//! never touched.
//!
//! Nothing routes out: the node's namespace has no uplink, only its
//! loopback, the bridge and the pods' veths, so its routing table knows
//! the pod CIDR and nothing else. Pods on one node reach each other and
//! the node (the gateway address), and nothing beyond.
//!
//! The bind mount is made in the caller's mount namespace. A process that
//! makes a mount namespace of its own while it exists gets a copy, which
//! holds the node's namespace until that process drops it (a container's
//! `pivot_root` and unmount of the old root do); the node's pods die
//! before the node anyway.
//!
//! How the runtime uses it:
//!
//! ```ignore
//! use lab03::{ipam::node_cidr, network::NodeNetwork};
//! let node = NodeNetwork::open_or_create(state_dir, "node-1", node_cidr(1))?;
//! let netns = format!("/proc/{sandbox_pid}/ns/net");
//! let pod = node.attach(&uid, netns.as_ref())?; // pod.ip: status.podIP
//! // A probe from the node: the socket is made in the node's namespace.
//! let conn = node.run_in(|| TcpStream::connect_timeout(&to, timeout))?;
//! node.detach(&uid)?; // the pod is deleted
//! node.destroy()?; // the node goes down
//! ```

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::ipam::IpamError;

#[cfg(target_os = "linux")]
mod bridge;
#[cfg(target_os = "linux")]
mod listing;
#[cfg(target_os = "linux")]
mod netns;
#[cfg(target_os = "linux")]
mod node;
pub mod scratch;
#[cfg(target_os = "linux")]
mod veth;

#[cfg(target_os = "linux")]
pub use bridge::{create_bridge, delete_link, errno, link_index, loopback_up};
#[cfg(target_os = "linux")]
pub use listing::{show, Link, Listing, Route};
pub use netns::{create_netns, find_leftovers, netlink_in, remove_netns, run_in};
pub use node::io_of;
#[cfg(target_os = "linux")]
pub use node::{NodeNetwork, PodEntry, NETNS_FILE, NETWORK_DIR, NODE_FILE};
#[cfg(target_os = "linux")]
pub use veth::{configure_pod_end, create_veth_pair};

/// The node's bridge, the pods' switch and gateway.
pub const BRIDGE: &str = "kube0";

/// The pod end's name inside the pod.
pub const POD_IFNAME: &str = "eth0";

/// What [`NodeNetwork::attach`] gave a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetwork {
    /// The pod's UID.
    pub uid: String,
    /// Its address, on `eth0`.
    pub ip: Ipv4Addr,
    /// The prefix length of the node's CIDR (the pod's netmask).
    pub prefix: u8,
    /// The node's bridge address, the pod's default route.
    pub gateway: Ipv4Addr,
    /// The host end of the veth pair, in the node's namespace.
    pub host_ifname: String,
}

/// The two names of a pod's veth pair while it is being made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethNames {
    /// The end that stays in the node's namespace, in the bridge.
    pub host: String,
    /// The other end's name until it is in the pod and renamed `eth0`.
    pub peer: String,
}

impl VethNames {
    /// The names for pod `uid` (see [`host_ifname`]).
    pub fn for_pod(uid: &str) -> VethNames {
        let tag = tag(uid);
        VethNames {
            host: format!("veth{tag}"),
            peer: format!("vpod{tag}"),
        }
    }
}

/// The host end's name for pod `uid`: `veth` and ten hex digits of a hash
/// of the UID, 14 characters (Linux allows 15). The same UID always gives
/// the same name, so [`NodeNetwork::detach`] needs no record of it; the
/// link's alias holds the UID, so a clash of two hashes is noticed.
pub fn host_ifname(uid: &str) -> String {
    VethNames::for_pod(uid).host
}

/// 40 bits of the FNV-1a hash of `uid`, as ten hex digits.
fn tag(uid: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", h >> 24)
}

/// Why the pod network could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Making, opening, entering or removing a network namespace failed.
    #[error("{what} the network namespace {path}: {source}")]
    Netns {
        /// What was being done ("creating", "entering"…).
        what: &'static str,
        /// The namespace's file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("{what} in the network namespace {netns}: {source}")]
    Netlink {
        /// What was asked, naming the interface.
        what: String,
        /// The namespace it was asked in.
        netns: PathBuf,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `create` found a node network already there.
    #[error(
        "{path} already holds a node network; open it with \
         NodeNetwork::open, or remove it first"
    )]
    Exists {
        /// The node's network directory.
        path: PathBuf,
    },
    /// `open` found no (whole) node network.
    #[error("{path} is not a node network: {why}")]
    NotANode {
        /// The node's network directory.
        path: PathBuf,
        /// What is missing or wrong.
        why: String,
    },
    /// `attach` was given a namespace that is not a pod's own.
    #[error("{path} is {what}, not a pod's own network namespace")]
    NotAPodNamespace {
        /// What was given.
        path: PathBuf,
        /// Whose namespace it is.
        what: &'static str,
    },
    /// Two pods' UIDs hash to one interface name.
    #[error(
        "interface {ifname} in {netns} belongs to pod {owner:?}, \
         not {uid:?}: their names clash"
    )]
    NameClash {
        /// The interface.
        ifname: String,
        /// The node's namespace.
        netns: PathBuf,
        /// The pod it belongs to (its alias).
        owner: String,
        /// The pod that wanted the name.
        uid: String,
    },
    /// A node name or pod UID that cannot be used.
    #[error("{what} {value:?}: {why}")]
    BadInput {
        /// "node name" or "pod UID".
        what: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The address allocator failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A state file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ() {
        let a = VethNames::for_pod("0c3a8f5e-0000-4000-8000-000000000001");
        let b = VethNames::for_pod("0c3a8f5e-0000-4000-8000-000000000002");
        assert_eq!(a.host.len(), 14);
        assert_eq!(a.peer.len(), 14);
        assert_ne!(a.host, b.host);
        assert_eq!(
            a,
            VethNames::for_pod("0c3a8f5e-0000-4000-8000-000000000001")
        );
        assert_eq!(host_ifname("pod-a"), VethNames::for_pod("pod-a").host);
    }
}
