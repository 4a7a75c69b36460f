//! The cluster network: nodes as network namespaces, plugged into a
//! switch of their own.
//!
//! ```text
//!  cluster netns (<dir>/netns/cluster): no uplink, nothing routes out
//!  ┌────────────────────────────────────────────────────────────────┐
//!  │ cluster0 (bridge) 198.18.0.254/24: the API server listens here │
//!  │    │ veth-node1         │ veth-node2         │ veth-node3      │
//!  └────┼────────────────────┼────────────────────┼─────────────────┘
//!       │ eth0 198.18.0.1    │ eth0 198.18.0.2    │ eth0 198.18.0.3
//!   node-1 netns         node-2 netns         node-3 netns
//!   kube0 198.18.1.1/24  kube0 198.18.2.1/24  kube0 198.18.3.1/24
//!   (the node agent's pod bridge, pods 198.18.N.2 …)
//! ```
//!
//! - The node network is 198.18.0.0/24: node N is 198.18.0.N on its
//!   `eth0`, the API server 198.18.0.254 on the bridge. Node N's pods are
//!   in 198.18.N.0/24 ([`lab03::ipam::node_cidr`]), on the bridge its
//!   node agent makes in the node's namespace.
//! - Every node, and the cluster namespace, routes each other node's pod
//!   CIDR via that node's address: a pod's packet leaves its node by
//!   `eth0` and is forwarded by the other node to its pod, with its own
//!   source address (no NAT between pods). The nodes forward
//!   (`ip_forward` 1 in their namespaces); the cluster namespace only
//!   switches.
//! - Node N's `eth0` has the fixed MAC `02:00:c6:12:00:NN` (locally
//!   administered; c6:12 is 198.18), and the bridge has one too: a node
//!   made again (`ch05 start-node`) answers with the MAC the others' ARP
//!   caches hold, so they reach it at once instead of after a stale entry
//!   times out.
//! - Services (198.19.0.0/16) are the node proxies' business: nothing
//!   here routes them.
//!
//! Every namespace is a bind mount under `<dir>/netns` (made with lab03's
//! [`create_netns`]), so a killed `ch05 up` leaves them where the next
//! one finds them: [`ClusterNetwork::remove`] takes away every namespace
//! mounted under `<dir>` (found in the mount table, as lab03's tests find
//! leftovers), and with a namespace go its veths and routes. The root
//! network namespace is never touched.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use lab03::ipam::{node_cidr, Cidr};
use lab03::network::{
    create_bridge, create_netns, delete_link, find_leftovers, link_index,
    loopback_up, netlink_in, remove_netns, run_in, NetworkError, VethNames,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

/// The cluster namespace's bridge.
pub const BRIDGE: &str = "cluster0";
/// The bridge's address: where the API server listens for the nodes.
pub const API_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The port of the cluster's image registry, beside the API server on
/// [`API_ADDRESS`].
pub const REGISTRY_PORT: u16 = 5000;
/// The prefix length of the node network, 198.18.0.0/24.
pub const NODE_PREFIX: u8 = 24;
/// The highest node index (198.18.0.253; .254 is the API server's).
pub const MAX_NODES: u8 = 253;
/// The bridge's MAC, fixed so that it never changes as ports come and go.
pub const BRIDGE_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0xfe];
/// The directory of the namespaces' bind mounts, in the network's dir.
pub const NETNS_DIR: &str = "netns";
/// The cluster namespace's file in [`NETNS_DIR`].
pub const CLUSTER_NETNS: &str = "cluster";

/// Node `n`'s name: `node-N`.
pub fn node_name(n: u8) -> String {
    format!("node-{n}")
}

/// Node `n`'s address on the cluster network: 198.18.0.N.
pub fn node_address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

/// Node `n`'s pod CIDR: 198.18.N.0/24.
pub fn pod_cidr(n: u8) -> Cidr {
    node_cidr(n)
}

/// Node `n`'s `eth0` MAC: 02:00:c6:12:00:NN.
pub fn node_mac(n: u8) -> [u8; 6] {
    [0x02, 0x00, 0xc6, 0x12, 0x00, n]
}

/// The index in a node name `node-N`, if it is one.
pub fn node_index(name: &str) -> Option<u8> {
    let n: u8 = name.strip_prefix("node-")?.parse().ok()?;
    (1..=MAX_NODES).contains(&n).then_some(n)
}

/// Why the cluster network could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterNetworkError {
    /// lab03's namespaces or netlink failed.
    #[error("{what}: {source}")]
    Network {
        /// What was being done.
        what: String,
        /// Why.
        source: NetworkError,
    },
    /// `create` found a cluster network there already.
    #[error("{0} already holds a cluster network: remove it first")]
    Exists(PathBuf),
    /// `open` or `join` found no cluster network.
    #[error("{0} holds no cluster network")]
    Missing(PathBuf),
    /// A node index outside 1…253.
    #[error("node {0}: nodes are numbered 1 to {MAX_NODES}")]
    BadNode(u16),
    /// The node has joined already.
    #[error("node-{0} is on the cluster network already")]
    Joined(u8),
    /// A file or directory could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn net(
    what: impl Into<String>,
) -> impl FnOnce(NetworkError) -> ClusterNetworkError {
    let what = what.into();
    move |source| ClusterNetworkError::Network { what, source }
}

/// A node's network namespace on the cluster network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNetns {
    /// Its index N.
    pub index: u8,
    /// `node-N`.
    pub name: String,
    /// Its namespace's bind mount: what `ch05 ssh` and the node agent
    /// enter.
    pub path: PathBuf,
    /// 198.18.0.N, on its `eth0`.
    pub address: Ipv4Addr,
    /// 198.18.N.0/24.
    pub pod_cidr: Cidr,
}

impl NodeNetns {
    fn new(dir: &Path, n: u8) -> NodeNetns {
        NodeNetns {
            index: n,
            name: node_name(n),
            path: dir.join(NETNS_DIR).join(node_name(n)),
            address: node_address(n),
            pod_cidr: pod_cidr(n),
        }
    }
}

/// The cluster network in its directory. Dropping it leaves everything in
/// place; [`ClusterNetwork::destroy`] removes it.
#[derive(Debug)]
pub struct ClusterNetwork {
    dir: PathBuf,
    netns: PathBuf,
}

impl ClusterNetwork {
    // ANCHOR: create
    /// Makes the cluster network in `dir`: its namespace, with loopback
    /// up and the bridge [`BRIDGE`] holding [`API_ADDRESS`]/24 with the
    /// fixed [`BRIDGE_MAC`]. Refuses if one is there; on failure leaves
    /// nothing behind.
    pub fn create(dir: &Path) -> Result<ClusterNetwork, ClusterNetworkError> {
        let netns = dir.join(NETNS_DIR).join(CLUSTER_NETNS);
        if netns.exists() {
            return Err(ClusterNetworkError::Exists(dir.to_path_buf()));
        }
        let netns_dir = dir.join(NETNS_DIR);
        std::fs::create_dir_all(&netns_dir).map_err(|source| {
            ClusterNetworkError::Io {
                what: "creating",
                path: netns_dir.clone(),
                source,
            }
        })?;
        create_netns(&netns)
            .map_err(net("making the cluster's network namespace"))?;
        let network = ClusterNetwork {
            dir: dir.to_path_buf(),
            netns,
        };
        let made = netlink_in(
            &network.netns,
            "adding the bridge",
            |handle| async move {
                loopback_up(&handle).await?;
                let index =
                    create_bridge(&handle, BRIDGE, API_ADDRESS, NODE_PREFIX)
                        .await?;
                let mac = LinkUnspec::new_with_index(index)
                    .address(BRIDGE_MAC.to_vec());
                handle.link().set(mac.build()).execute().await
            },
        );
        if let Err(e) = made {
            let _ = ClusterNetwork::remove(dir);
            return Err(net(format!(
                "setting up {BRIDGE} in the cluster namespace"
            ))(e));
        }
        Ok(network)
    }
    // ANCHOR_END: create

    /// Finds the cluster network in `dir` again (after a restart).
    pub fn open(dir: &Path) -> Result<ClusterNetwork, ClusterNetworkError> {
        let netns = dir.join(NETNS_DIR).join(CLUSTER_NETNS);
        if !is_mounted(dir, &netns) {
            return Err(ClusterNetworkError::Missing(dir.to_path_buf()));
        }
        Ok(ClusterNetwork {
            dir: dir.to_path_buf(),
            netns,
        })
    }

    /// Removes whatever cluster network is in `dir`, whole or half made,
    /// or left by a killed process: every network namespace mounted under
    /// `dir` (the nodes' first, so their `eth0`s go with them), then the
    /// directory. Answers whether there was anything.
    pub fn remove(dir: &Path) -> Result<bool, ClusterNetworkError> {
        if !dir.exists() {
            return Ok(false);
        }
        let mut mounts =
            find_leftovers(dir).map_err(|source| ClusterNetworkError::Io {
                what: "reading the mount table for",
                path: dir.to_path_buf(),
                source,
            })?;
        // The cluster's own namespace last.
        mounts.sort_by_key(|p| p.ends_with(CLUSTER_NETNS));
        for path in &mounts {
            if !path.ends_with(CLUSTER_NETNS) {
                // Its eth0 now, not when the kernel frees the namespace
                // (a process may still be in it).
                let _ =
                    netlink_in(path, "deleting eth0", |handle| async move {
                        delete_link(&handle, "eth0").await.map(drop)
                    });
            }
            remove_netns(path)
                .map_err(net(format!("removing {}", path.display())))?;
        }
        std::fs::remove_dir_all(dir).map_err(|source| {
            ClusterNetworkError::Io {
                what: "removing",
                path: dir.to_path_buf(),
                source,
            }
        })?;
        Ok(true)
    }

    /// Removes this network: see [`ClusterNetwork::remove`].
    pub fn destroy(self) -> Result<(), ClusterNetworkError> {
        ClusterNetwork::remove(&self.dir).map(drop)
    }

    /// The cluster namespace (its bind mount): where the API server's
    /// second listener is opened.
    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The nodes on the network now, by index.
    pub fn nodes(&self) -> Vec<NodeNetns> {
        (1..=MAX_NODES)
            .map(|n| NodeNetns::new(&self.dir, n))
            .filter(|node| is_mounted(&self.dir, &node.path))
            .collect()
    }

    /// Node `n`, if it is on the network.
    pub fn node(&self, n: u8) -> Option<NodeNetns> {
        let node = NodeNetns::new(&self.dir, n);
        is_mounted(&self.dir, &node.path).then_some(node)
    }

    // ANCHOR: join
    /// Puts node `n` on the network: a new network namespace with
    /// loopback up and forwarding on, whose `eth0` (198.18.0.N/24, MAC
    /// [`node_mac`]) is a veth plugged into the bridge; routes from it to
    /// the other nodes' pod CIDRs, and from them (and the cluster
    /// namespace) to its own. On failure the node is not on the network.
    pub fn join(&self, n: u8) -> Result<NodeNetns, ClusterNetworkError> {
        if !(1..=MAX_NODES).contains(&n) {
            return Err(ClusterNetworkError::BadNode(n.into()));
        }
        if !is_mounted(&self.dir, &self.netns) {
            return Err(ClusterNetworkError::Missing(self.dir.clone()));
        }
        let others = self.nodes();
        if others.iter().any(|o| o.index == n) {
            return Err(ClusterNetworkError::Joined(n));
        }
        let node = NodeNetns::new(&self.dir, n);
        // A file left by a half-made join (not mounted): take it away.
        let _ = remove_netns(&node.path);
        create_netns(&node.path)
            .map_err(net(format!("making {}'s namespace", node.name)))?;
        // Taken back if plugging fails, or panics.
        let mut undo = LeaveOnDrop(self, Some(n));
        self.plug(&node, &others)?;
        undo.1 = None;
        Ok(node)
    }
    // ANCHOR_END: join

    /// The veth pair, the node's side, the routes.
    fn plug(
        &self,
        node: &NodeNetns,
        others: &[NodeNetns],
    ) -> Result<(), ClusterNetworkError> {
        let n = node.index;
        let names = VethNames {
            host: format!("veth-node{n}"),
            peer: format!("peer-node{n}"),
        };
        let node_fd = std::fs::File::open(&node.path).map_err(|source| {
            ClusterNetworkError::Io {
                what: "opening",
                path: node.path.clone(),
                source,
            }
        })?;
        let what = format!("plugging {} into {BRIDGE}", node.name);
        netlink_in(&self.netns, &what, |handle| async move {
            // A pair left by a node whose namespace is still held by a
            // process that has not died yet.
            delete_link(&handle, &names.host).await?;
            delete_link(&handle, &names.peer).await?;
            let bridge = link_index(&handle, BRIDGE)
                .await?
                .ok_or(rtnetlink::Error::RequestFailed)?;
            use std::os::fd::AsFd;
            lab03::network::create_veth_pair(
                &handle,
                &names,
                bridge,
                node_fd.as_fd(),
            )
            .await
        })
        .map_err(net(format!("making {}'s eth0", node.name)))?;
        let peer = format!("peer-node{n}");
        let gateways: Vec<(Cidr, Ipv4Addr)> =
            others.iter().map(|o| (o.pod_cidr, o.address)).collect();
        let what = format!("setting up eth0 in {}", node.name);
        netlink_in(&node.path, &what, |handle| async move {
            configure_eth0(&handle, &peer, n).await?;
            for (cidr, via) in gateways {
                add_route(&handle, cidr, via).await?;
            }
            Ok(())
        })
        .map_err(net(format!("setting up {}'s eth0", node.name)))?;
        set_forwarding(&node.path).map_err(|source| {
            ClusterNetworkError::Io {
                what: "turning on forwarding in",
                path: node.path.clone(),
                source,
            }
        })?;
        let route = (node.pod_cidr, node.address);
        for ns in others
            .iter()
            .map(|o| o.path.as_path())
            .chain([self.netns.as_path()])
        {
            netlink_in(ns, "adding a route", |handle| async move {
                add_route(&handle, route.0, route.1).await
            })
            .map_err(net(format!(
                "routing {} via {} in {}",
                route.0,
                route.1,
                ns.display()
            )))?;
        }
        Ok(())
    }

    /// Takes node `n` off the network: its namespace (with its `eth0`,
    /// whose peer leaves the bridge) and the routes to its pod CIDR.
    /// Answers whether it was there. A process still in the namespace
    /// (a node agent not yet dead) keeps the namespace, not the link.
    pub fn leave(&self, n: u8) -> Result<bool, ClusterNetworkError> {
        let node = NodeNetns::new(&self.dir, n);
        let was = is_mounted(&self.dir, &node.path);
        if was {
            let _ =
                netlink_in(&node.path, "deleting eth0", |handle| async move {
                    delete_link(&handle, "eth0").await.map(drop)
                });
        }
        remove_netns(&node.path)
            .map_err(net(format!("removing {}'s namespace", node.name)))?;
        let (cidr, via) = (node.pod_cidr, node.address);
        let others = self.nodes();
        for ns in others
            .iter()
            .map(|o| o.path.as_path())
            .chain([self.netns.as_path()])
        {
            netlink_in(ns, "deleting a route", |handle| async move {
                delete_route(&handle, cidr, via).await
            })
            .map_err(net(format!("unrouting {cidr} in {}", ns.display())))?;
        }
        Ok(was)
    }

    /// Runs `f` on a thread in node `n`'s namespace (a socket it makes
    /// stays there): how tests and `ch05` reach pods from a node.
    pub fn run_in_node<T: Send>(
        &self,
        n: u8,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, ClusterNetworkError> {
        let node = NodeNetns::new(&self.dir, n);
        run_in(&node.path, f).map_err(net(format!("entering {}", node.name)))
    }
}

/// Takes node `.1` off the network when dropped, unless disarmed.
struct LeaveOnDrop<'a>(&'a ClusterNetwork, Option<u8>);

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.1.take() {
            // Best effort, and never a panic while one may be unwinding.
            let network = std::panic::AssertUnwindSafe(self.0);
            let _ = std::panic::catch_unwind(move || network.leave(n));
        }
    }
}

/// Whether `path` is a namespace bind mount (under `dir`).
fn is_mounted(dir: &Path, path: &Path) -> bool {
    find_leftovers(dir).is_ok_and(|mounts| {
        let want = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        mounts.contains(&want)
    })
}

// ANCHOR: eth0
/// In node `n`'s namespace: renames the veth's end `eth0`, gives it its
/// fixed MAC and 198.18.0.N/24, brings it and loopback up.
async fn configure_eth0(
    handle: &Handle,
    peer: &str,
    n: u8,
) -> Result<(), rtnetlink::Error> {
    // EXERCISE: lab05-eth0
    let index = link_index(handle, peer)
        .await?
        .ok_or(rtnetlink::Error::RequestFailed)?;
    // Renamed and re-addressed while it is still down.
    let eth0 = LinkUnspec::new_with_index(index)
        .name("eth0")
        .address(node_mac(n).to_vec());
    handle.link().set(eth0.build()).execute().await?;
    handle
        .address()
        .add(index, node_address(n).into(), NODE_PREFIX)
        .execute()
        .await?;
    let up = LinkUnspec::new_with_index(index).up();
    handle.link().set(up.build()).execute().await?;
    loopback_up(handle).await
    // EXERCISE_END: lab05-eth0
}
// ANCHOR_END: eth0

/// `cidr via via`, replacing one that is there.
async fn add_route(
    handle: &Handle,
    cidr: Cidr,
    via: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(cidr.network(), cidr.prefix())
        .gateway(via)
        .build();
    handle.route().add(route).replace().execute().await
}

/// Deletes `cidr via via`; one that is gone is no error.
async fn delete_route(
    handle: &Handle,
    cidr: Cidr,
    via: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(cidr.network(), cidr.prefix())
        .gateway(via)
        .build();
    match handle.route().del(route).execute().await {
        // ESRCH: no such route.
        Err(e) if lab03::network::errno(&e) == Some(3) => Ok(()),
        other => other,
    }
}

/// `ip_forward` 1 in the namespace at `netns`: `/proc/sys/net` shows the
/// namespace of the thread that opens it.
fn set_forwarding(netns: &Path) -> io::Result<()> {
    run_in(netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(node_address(2), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(pod_cidr(2).to_string(), "198.18.2.0/24");
        assert_eq!(node_mac(3), [2, 0, 0xc6, 0x12, 0, 3]);
        assert_eq!(node_index("node-12"), Some(12));
        assert_eq!(node_index("node-0"), None);
        assert_eq!(node_index("node-254"), None);
        assert_eq!(node_index("nodes-1"), None);
        // The API server's address is on the node network, and no node's.
        let net =
            Cidr::new(Ipv4Addr::new(198, 18, 0, 0), NODE_PREFIX).expect("cidr");
        assert!(net.contains(API_ADDRESS));
        assert!((1..=MAX_NODES).all(|n| node_address(n) != API_ADDRESS));
    }
}
