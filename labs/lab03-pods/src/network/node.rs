//! A node's network: its namespace, its bridge and its pods' veths, with
//! the state that lets the next node process find them.
//!
//! In `<state_dir>/network/`:
//! - `netns`: the node's network namespace, bind-mounted;
//! - `node.json`: its name, pod CIDR and bridge, written last, so a node
//!   network with it is whole;
//! - `ipam.json` and `ipam.lock`: the pods' addresses ([`Ipam`]).

use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rtnetlink::{Handle, LinkUnspec};
use serde::{Deserialize, Serialize};

use super::bridge::{create_bridge, delete_link, find_link, link_index, loopback_up};
use super::listing::{dump, Listing};
use super::netns::{forbidden, identity, open_netns, unbind, with_netlink, Target};
use super::veth::{configure_pod_end, create_veth_pair};
use super::{NetworkError, PodNetwork, VethNames, BRIDGE, POD_IFNAME};
use crate::ipam::{Cidr, Ipam, Range};
use rtnetlink::packet_route::link::LinkAttribute;

/// The node network's directory in the node's state directory.
pub const NETWORK_DIR: &str = "network";
/// The bind mount of the node's network namespace, in [`NETWORK_DIR`].
pub const NETNS_FILE: &str = "netns";
/// The node network's description, in [`NETWORK_DIR`].
pub const NODE_FILE: &str = "node.json";

/// What `node.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeRecord {
    name: String,
    cidr: Cidr,
    bridge: String,
}

/// The network of one node. Dropping it closes its handle and leaves the
/// network in place (a node process that exits or crashes keeps its
/// pods' network); [`NodeNetwork::destroy`] removes it.
#[derive(Debug)]
pub struct NodeNetwork {
    state_dir: PathBuf,
    netns_path: PathBuf,
    netns: File,
    name: String,
    cidr: Cidr,
    ipam: Ipam,
}

/// A pod the node has an address for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEntry {
    /// The pod's UID.
    pub uid: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The host end of its veth pair.
    pub host_ifname: String,
    /// Whether that host end exists: false once the pod's namespace is
    /// gone (its sandbox died), when only [`NodeNetwork::detach`] is left
    /// to do.
    pub linked: bool,
}

impl NodeNetwork {
    /// Makes the network of node `name` in `state_dir`: a new network
    /// namespace with loopback up and the bridge [`BRIDGE`] holding the
    /// gateway of `cidr` (which must lie in 198.18.0.0/15). Refuses if one
    /// is there already; on failure leaves nothing behind.
    pub fn create(state_dir: &Path, name: &str, cidr: Cidr) -> Result<NodeNetwork, NetworkError> {
        NodeNetwork::create_with(state_dir, name, cidr, false)
    }

    /// As [`NodeNetwork::create`], in the network namespace this process
    /// is in (never the root one): chapter 5's node agents run inside
    /// their node's namespace, whose `eth0` is on the cluster network.
    pub fn create_here(
        state_dir: &Path,
        name: &str,
        cidr: Cidr,
    ) -> Result<NodeNetwork, NetworkError> {
        NodeNetwork::create_with(state_dir, name, cidr, true)
    }

    // ANCHOR: create
    fn create_with(
        state_dir: &Path,
        name: &str,
        cidr: Cidr,
        here: bool,
    ) -> Result<NodeNetwork, NetworkError> {
        check_name(name)?;
        let dir = state_dir.join(NETWORK_DIR);
        let netns_path = dir.join(NETNS_FILE);
        if netns_path.exists() || dir.join(NODE_FILE).exists() {
            return Err(NetworkError::Exists { path: dir });
        }
        let fresh = !dir.exists();
        let mut undo = Undo(Some(Step::Create {
            dir: &dir,
            netns: &netns_path,
            fresh,
        }));
        let ipam = Ipam::open(&dir, cidr, Range::BenchmarkOnly)?;
        let at = netns_path.as_path();
        let target = if here {
            Target::Current(at)
        } else {
            Target::New(at)
        };
        with_netlink(target, at, |handle| async move {
            let failed = |what: String| failed(what, at);
            loopback_up(&handle)
                .await
                .map_err(failed("bringing lo up".into()))?;
            create_bridge(&handle, BRIDGE, cidr.gateway(), cidr.prefix())
                .await
                .map_err(failed(format!(
                    "adding the bridge {BRIDGE} with {}/{}",
                    cidr.gateway(),
                    cidr.prefix()
                )))?;
            Ok(())
        })?;
        let record = NodeRecord {
            name: name.to_string(),
            cidr,
            bridge: BRIDGE.to_string(),
        };
        write_record(&dir.join(NODE_FILE), &record)?;
        let netns = open_netns(&netns_path)?;
        undo.disarm();
        Ok(NodeNetwork {
            state_dir: state_dir.to_path_buf(),
            netns_path: netns_path.clone(),
            netns,
            name: name.to_string(),
            cidr,
            ipam,
        })
    }
    // ANCHOR_END: create

    /// Finds the network a node process (maybe one that crashed) made in
    /// `state_dir`.
    pub fn open(state_dir: &Path) -> Result<NodeNetwork, NetworkError> {
        let dir = state_dir.join(NETWORK_DIR);
        let not_a_node = |why: String| NetworkError::NotANode {
            path: dir.clone(),
            why,
        };
        let record_path = dir.join(NODE_FILE);
        let text = std::fs::read(&record_path)
            .map_err(|e| not_a_node(format!("reading {}: {e}", record_path.display())))?;
        let record: NodeRecord = serde_json::from_slice(&text)
            .map_err(|e| not_a_node(format!("{}: {e}", record_path.display())))?;
        let netns_path = dir.join(NETNS_FILE);
        let netns = open_netns(&netns_path).map_err(|e| {
            not_a_node(format!(
                "its network namespace is gone ({e}); NodeNetwork::remove \
                 cleans up what is left"
            ))
        })?;
        let ipam = Ipam::open(&dir, record.cidr, Range::BenchmarkOnly)?;
        Ok(NodeNetwork {
            state_dir: state_dir.to_path_buf(),
            netns_path,
            netns,
            name: record.name,
            cidr: record.cidr,
            ipam,
        })
    }

    /// Opens the network in `state_dir` if there is a whole one for
    /// `cidr`; else removes what is there and creates it.
    pub fn open_or_create(
        state_dir: &Path,
        name: &str,
        cidr: Cidr,
    ) -> Result<NodeNetwork, NetworkError> {
        match NodeNetwork::open(state_dir) {
            Ok(node) if node.cidr == cidr => Ok(node),
            Ok(node) => Err(NetworkError::NotANode {
                path: state_dir.join(NETWORK_DIR),
                why: format!("it is for {}, not {cidr}; remove it first", node.cidr),
            }),
            Err(_) => {
                NodeNetwork::remove(state_dir)?;
                NodeNetwork::create(state_dir, name, cidr)
            }
        }
    }

    /// Removes whatever node network is in `state_dir`, whole or half
    /// made, alive or left by a killed process: its pods' veths, its
    /// bridge, its namespace's bind mount, its state. Answers whether
    /// there was anything.
    pub fn remove(state_dir: &Path) -> Result<bool, NetworkError> {
        let dir = state_dir.join(NETWORK_DIR);
        if !dir.exists() {
            return Ok(false);
        }
        let netns_path = dir.join(NETNS_FILE);
        if let Ok(netns) = open_netns(&netns_path) {
            let at = netns_path.as_path();
            // The namespace would take its links along when it goes, but
            // the kernel frees it later; deleting them now takes the pods'
            // eth0 away before this returns.
            with_netlink(Target::Join(netns.as_fd()), at, |handle| async move {
                delete_all(&handle)
                    .await
                    .map_err(failed("deleting the veths and the bridge".into(), at))
            })?;
        }
        unbind(&netns_path)?;
        std::fs::remove_dir_all(&dir).map_err(|source| NetworkError::Io {
            what: "removing",
            path: dir.clone(),
            source,
        })?;
        Ok(true)
    }

    /// Removes this node network: see [`NodeNetwork::remove`].
    pub fn destroy(self) -> Result<(), NetworkError> {
        let state_dir = self.state_dir.clone();
        // Close our descriptor first: it holds the namespace too.
        drop(self);
        NodeNetwork::remove(&state_dir).map(|_| ())
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's pod CIDR.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The bridge's address, the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.gateway()
    }

    /// The node's network namespace (its bind mount).
    pub fn netns_path(&self) -> &Path {
        &self.netns_path
    }

    /// The node's address allocator.
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    // ANCHOR: attach
    /// Connects pod `uid`, whose network namespace is at `pod_netns` (such
    /// as `/proc/<sandbox pid>/ns/net`), to the node: an address (the one
    /// it has, or a new one), a veth pair from the bridge to its `eth0`, a
    /// default route via the gateway, loopback up. Attaching a pod again
    /// replaces its pair. On failure the pod has neither pair nor address.
    pub fn attach(&self, uid: &str, pod_netns: &Path) -> Result<PodNetwork, NetworkError> {
        check_uid(uid)?;
        let pod = self.open_pod_netns(pod_netns)?;
        let names = VethNames::for_pod(uid);
        let (prefix, gateway) = (self.cidr.prefix(), self.cidr.gateway());
        let ip = self.ipam.allocate(uid)?;
        let mut undo = Undo(Some(Step::Attach { node: self, uid }));
        let (names, pod_fd) = (&names, pod.as_fd());
        self.in_node(|handle| async move {
            self.replace_stale(&handle, uid, names).await?;
            let failed = |what: String| failed(what, &self.netns_path);
            let bridge = link_index(&handle, BRIDGE)
                .await
                .map_err(failed(format!("looking up {BRIDGE}")))?
                .ok_or_else(|| NetworkError::NotANode {
                    path: self.netns_path.clone(),
                    why: format!("it has no bridge {BRIDGE}"),
                })?;
            create_veth_pair(&handle, names, bridge, pod_fd)
                .await
                .map_err(failed(format!(
                    "creating the veth pair {} and {} into {}",
                    names.host,
                    names.peer,
                    pod_netns.display()
                )))?;
            // The UID on the host end tells whose it is after a restart.
            let alias = LinkUnspec::new_with_name(&names.host).alias(uid);
            handle
                .link()
                .set(alias.build())
                .execute()
                .await
                .map_err(failed(format!("naming {} after pod {uid}", names.host)))
        })?;
        with_netlink(Target::Join(pod_fd), pod_netns, |handle| async move {
            configure_pod_end(&handle, &names.peer, ip, prefix, gateway)
                .await
                .map_err(failed(
                    format!(
                        "making {} the pod's {POD_IFNAME} with {ip}/{prefix} via {gateway}",
                        names.peer
                    ),
                    pod_netns,
                ))
        })?;
        undo.disarm();
        Ok(PodNetwork {
            uid: uid.to_string(),
            ip,
            prefix,
            gateway,
            host_ifname: names.host.clone(),
        })
    }
    // ANCHOR_END: attach

    /// Disconnects pod `uid`: deletes its veth pair (deleting the host end
    /// deletes both) and releases its address. Answers the address it had;
    /// detaching a pod that is not attached is no error.
    pub fn detach(&self, uid: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        check_uid(uid)?;
        let names = VethNames::for_pod(uid);
        let names = &names;
        self.in_node(|handle| async move {
            for name in [&names.host, &names.peer] {
                delete_link(&handle, name)
                    .await
                    .map_err(failed(format!("deleting {name}"), &self.netns_path))?;
            }
            Ok(())
        })?;
        Ok(self.ipam.release(uid)?)
    }

    /// The pods with an address on this node, and whether each still has
    /// its veth pair.
    pub fn pods(&self) -> Result<Vec<PodEntry>, NetworkError> {
        let listing = self.show()?;
        Ok(self
            .ipam
            .list()?
            .into_iter()
            .map(|(ip, uid)| {
                let host_ifname = super::host_ifname(&uid);
                let linked = listing.link(&host_ifname).is_some();
                PodEntry {
                    uid,
                    ip,
                    host_ifname,
                    linked,
                }
            })
            .collect())
    }

    /// The node namespace's interfaces and routes.
    pub fn show(&self) -> Result<Listing, NetworkError> {
        self.in_node(|handle| async move {
            dump(&handle).await.map_err(failed(
                "listing interfaces and routes".into(),
                &self.netns_path,
            ))
        })
    }

    /// Adds `ip/32` to the node namespace's loopback: an address the node
    /// itself answers on (chapter 4's DNS server on its Service address).
    /// It goes with the namespace.
    pub fn add_local_address(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        self.in_node(|handle| async move {
            let index = super::bridge::link_index(&handle, "lo")
                .await
                .map_err(failed("finding lo".into(), &self.netns_path))?
                .ok_or_else(|| {
                    failed("finding lo".into(), &self.netns_path)(rtnetlink::Error::RequestFailed)
                })?;
            handle
                .address()
                .add(index, std::net::IpAddr::V4(ip), 32)
                .execute()
                .await
                .map_err(failed(format!("adding {ip}/32 to lo"), &self.netns_path))
        })
    }

    /// Runs `f` on a thread inside the node's network namespace: sockets
    /// it makes belong there (the node reaching a pod, for a probe).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetworkError> {
        super::netns::run_in(&self.netns_path, f)
    }

    fn in_node<T, F, Fut>(&self, f: F) -> Result<T, NetworkError>
    where
        T: Send,
        F: FnOnce(Handle) -> Fut + Send,
        Fut: Future<Output = Result<T, NetworkError>>,
    {
        with_netlink(Target::Join(self.netns.as_fd()), &self.netns_path, f)
    }

    /// Opens a pod's namespace, refusing ours, the node's and the root's.
    fn open_pod_netns(&self, path: &Path) -> Result<File, NetworkError> {
        let pod = open_netns(path)?;
        let id = identity(&pod, path)?;
        let refuse = |what| NetworkError::NotAPodNamespace {
            path: path.to_path_buf(),
            what,
        };
        if id == identity(&self.netns, &self.netns_path)? {
            return Err(refuse("the node's network namespace"));
        }
        if let Some((_, _, what)) = forbidden().into_iter().find(|(d, i, _)| (*d, *i) == id) {
            return Err(refuse(what));
        }
        Ok(pod)
    }

    /// Deletes the leftovers of an earlier attach of pod `uid` (its host
    /// end, or a peer that never left), refusing another pod's.
    async fn replace_stale(
        &self,
        handle: &Handle,
        uid: &str,
        names: &VethNames,
    ) -> Result<(), NetworkError> {
        let failed = |what: String| failed(what, &self.netns_path);
        let host = find_link(handle, &names.host)
            .await
            .map_err(failed(format!("looking up {}", names.host)))?;
        if let Some(link) = host {
            let owner = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfAlias(a) => Some(a.clone()),
                _ => None,
            });
            // No alias: a pair whose attach was cut short; ours to replace.
            if let Some(owner) = owner.filter(|o| o != uid) {
                return Err(NetworkError::NameClash {
                    ifname: names.host.clone(),
                    netns: self.netns_path.clone(),
                    owner,
                    uid: uid.to_string(),
                });
            }
        }
        for name in [&names.host, &names.peer] {
            delete_link(handle, name)
                .await
                .map_err(failed(format!("deleting the old {name}")))?;
        }
        Ok(())
    }
}

/// Deletes every veth and the bridge of a node's namespace.
async fn delete_all(handle: &Handle) -> Result<(), rtnetlink::Error> {
    let listing = dump(handle).await?;
    for link in &listing.links {
        // Only the pods' veths: a node's own eth0 may be a veth too.
        let pods = link.name.starts_with("veth") || link.name.starts_with("vpod");
        if (link.kind == "veth" && pods) || link.name == BRIDGE {
            delete_link(handle, &link.name).await?;
        }
    }
    Ok(())
}

/// What to take back if an operation fails (or panics) halfway.
enum Step<'a> {
    Create {
        dir: &'a Path,
        netns: &'a Path,
        fresh: bool,
    },
    Attach {
        node: &'a NodeNetwork,
        uid: &'a str,
    },
}

/// Takes its step back when dropped, unless disarmed.
struct Undo<'a>(Option<Step<'a>>);

impl Undo<'_> {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        let Some(step) = self.0.take() else { return };
        // Best effort, and never a panic while one may be unwinding.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match step {
            Step::Create { dir, netns, fresh } => {
                let _ = unbind(netns);
                let _ = std::fs::remove_file(dir.join(NODE_FILE));
                if fresh {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Step::Attach { node, uid } => {
                let _ = node.detach(uid);
            }
        }));
    }
}

fn check_name(name: &str) -> Result<(), NetworkError> {
    let bad = |why| NetworkError::BadInput {
        what: "node name",
        value: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(bad("it must not be empty"));
    }
    if name.len() > 253 || name.chars().any(char::is_control) {
        return Err(bad("it must be at most 253 printable characters"));
    }
    Ok(())
}

fn check_uid(uid: &str) -> Result<(), NetworkError> {
    let bad = |why| NetworkError::BadInput {
        what: "pod UID",
        value: uid.to_string(),
        why,
    };
    if uid.is_empty() {
        return Err(bad("it must not be empty"));
    }
    // It becomes an interface alias (at most 255 bytes) and a JSON key.
    if uid.len() > 255 || uid.chars().any(char::is_control) {
        return Err(bad("it must be at most 255 printable characters"));
    }
    Ok(())
}

/// Writes `node.json` whole or not at all.
fn write_record(path: &Path, record: &NodeRecord) -> Result<(), NetworkError> {
    let temp = path.with_extension("json.tmp");
    let io = |what| {
        move |source| NetworkError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut text = serde_json::to_vec_pretty(record).map_err(|e| io("writing")(e.into()))?;
    text.push(b'\n');
    let mut file = File::create(&temp).map_err(io("creating"))?;
    file.write_all(&text).map_err(io("writing"))?;
    file.sync_all().map_err(io("syncing"))?;
    std::fs::rename(&temp, path).map_err(io("renaming"))
}

/// A netlink error, with what was asked and where.
fn failed<'a>(what: String, netns: &'a Path) -> impl FnOnce(rtnetlink::Error) -> NetworkError + 'a {
    move |e| NetworkError::Netlink {
        what,
        netns: netns.to_path_buf(),
        source: io_of(e),
    }
}

/// rtnetlink's error as the errno it carries, if it is the kernel's.
/// A netlink error as the `io::Error` of the errno it carries.
pub fn io_of(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}
