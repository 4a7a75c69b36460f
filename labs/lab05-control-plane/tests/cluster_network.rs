//! The cluster network on a real kernel (root): nodes that reach each
//! other and each other's pods, a node made again that is reached at
//! once, and nothing left after destroy or after a crash.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use kubelings_probe::{require, Privilege};
use lab03::network::scratch::ScratchNetns;
use lab03::network::{
    configure_pod_end, create_bridge, create_veth_pair, find_leftovers,
    netlink_in, run_in, show, VethNames, BRIDGE,
};
use lab05::cluster::network::{
    node_address, node_mac, pod_cidr, API_ADDRESS, BRIDGE as CLUSTER_BRIDGE,
};
use lab05::cluster::ClusterNetwork;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A directory for a cluster network, whatever is left in it removed
/// when dropped (a failed assertion included), so that a failing test
/// leaves no namespace mounted.
struct Scratch {
    dir: tempfile::TempDir,
    at: std::path::PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().join("network");
        Scratch { dir, at }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = ClusterNetwork::remove(&self.at);
    }
}

/// A listener in namespace `server` on `ip`, a client in `client`: the
/// client connects and sends, the server reads and answers the address
/// the connection came from.
fn reach(
    server: &Path,
    ip: Ipv4Addr,
    client: &Path,
) -> std::io::Result<SocketAddr> {
    let listener =
        run_in(server, || TcpListener::bind((ip, 0))).expect("enter")?;
    let to = listener.local_addr()?;
    let mut conn = run_in(client, || TcpStream::connect_timeout(&to, TIMEOUT))
        .expect("enter")?;
    // The connection is in the backlog already: accept cannot hang.
    let (mut accepted, from) = listener.accept()?;
    for s in [&conn, &accepted] {
        s.set_read_timeout(Some(TIMEOUT))?;
    }
    conn.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf)?;
    accepted.write_all(&buf)?;
    conn.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    Ok(from)
}

/// What the node agent does for its pods, in short: the bridge with the
/// pod CIDR's gateway in node `n`'s namespace.
fn pod_bridge(netns: &Path, n: u8) {
    let cidr = pod_cidr(n);
    netlink_in(netns, "adding the pod bridge", |handle| async move {
        create_bridge(&handle, BRIDGE, cidr.gateway(), cidr.prefix())
            .await
            .map(drop)
    })
    .expect("a pod bridge");
}

/// A pod on node `n` (its namespace held by `pod`): a veth from the
/// node's bridge, 198.18.N.2 on its eth0, routed via the bridge.
fn pod_on(netns: &Path, n: u8, pod: &ScratchNetns) -> Ipv4Addr {
    let cidr = pod_cidr(n);
    let ip = Ipv4Addr::from(u32::from(cidr.gateway()) + 1);
    let names = VethNames::for_pod(&format!("pod-on-{n}"));
    let file = std::fs::File::open(pod.path()).expect("the pod's namespace");
    let (names, fd) = (&names, file.as_fd());
    netlink_in(netns, "plugging a pod", |handle| async move {
        let bridge = lab03::network::link_index(&handle, BRIDGE)
            .await?
            .ok_or(rtnetlink::Error::RequestFailed)?;
        create_veth_pair(&handle, names, bridge, fd).await
    })
    .expect("a veth pair");
    netlink_in(&pod.path(), "configuring the pod", |handle| async move {
        configure_pod_end(
            &handle,
            &names.peer,
            ip,
            cidr.prefix(),
            cidr.gateway(),
        )
        .await
    })
    .expect("the pod's eth0");
    ip
}

fn root_links() -> Vec<String> {
    show(Path::new("/proc/self/ns/net"))
        .expect("the root namespace's links")
        .links
        .into_iter()
        .map(|l| l.name)
        .collect()
}

#[test]
fn three_nodes_reach_each_other_and_each_others_pods() {
    if !require(Privilege::Root) {
        return;
    }
    let before = root_links();
    let scratch = Scratch::new();
    let (dir, at) = (&scratch.dir, scratch.at.clone());
    let network = ClusterNetwork::create(&at).expect("the cluster network");
    let nodes: Vec<_> =
        (1..=3).map(|n| network.join(n).expect("join")).collect();
    assert_eq!(network.nodes(), nodes);
    for node in &nodes {
        pod_bridge(&node.path, node.index);
        let eth0 = show(&node.path).expect("listing");
        let link = eth0.link("eth0").expect("an eth0");
        assert_eq!(link.addresses, vec![(node_address(node.index), 24)]);
    }
    // Every node reaches every other node's address and an address of
    // its pod CIDR, and sees it from the other's own address.
    for a in &nodes {
        for b in &nodes {
            if a.index == b.index {
                continue;
            }
            let from =
                reach(&b.path, b.address, &a.path).expect("node to node");
            assert_eq!(from.ip(), std::net::IpAddr::V4(a.address));
            reach(&b.path, b.pod_cidr.gateway(), &a.path)
                .expect("node to a pod CIDR");
        }
        // And the API server's address, from the cluster namespace.
        reach(network.netns(), API_ADDRESS, &a.path)
            .expect("node to the API server");
    }
    // Pod to pod across nodes, forwarded by both nodes, with no NAT: the
    // server sees the client pod's own address.
    let (p1, p3) = (
        ScratchNetns::new().expect("ns"),
        ScratchNetns::new().expect("ns"),
    );
    let ip1 = pod_on(&nodes[0].path, 1, &p1);
    let ip3 = pod_on(&nodes[2].path, 3, &p3);
    let from = reach(&p3.path(), ip3, &p1.path()).expect("pod to pod");
    assert_eq!(from.ip(), std::net::IpAddr::V4(ip1));
    drop((p1, p3));

    network.destroy().expect("destroy");
    assert!(!at.exists(), "the network's directory is gone");
    assert_eq!(
        find_leftovers(dir.path()).expect("mounts"),
        Vec::<std::path::PathBuf>::new()
    );
    let after = root_links();
    assert_eq!(before, after, "the root namespace's links are as they were");
    assert!(!after
        .iter()
        .any(|l| l.starts_with("veth-node") || l == CLUSTER_BRIDGE));
}

#[test]
fn a_node_made_again_is_reached_at_once() {
    if !require(Privilege::Root) {
        return;
    }
    let scratch = Scratch::new();
    let (dir, at) = (&scratch.dir, scratch.at.clone());
    let network = ClusterNetwork::create(&at).expect("the cluster network");
    let one = network.join(1).expect("join 1");
    let two = network.join(2).expect("join 2");
    // node-1 learns node-2's MAC.
    reach(&two.path, two.address, &one.path).expect("before");
    assert!(network.leave(2).expect("leave"));
    assert_eq!(network.node(2), None);
    assert!(!two.path.exists(), "node-2's namespace is gone");
    let two = network.join(2).expect("join 2 again");
    let eth0 = show(&two.path).expect("listing");
    assert_eq!(eth0.link("eth0").map(|l| l.name.as_str()), Some("eth0"));
    // At once: the first connection, with node-1's ARP cache as it was
    // (a new MAC would be unknown to it for seconds).
    reach(&two.path, two.address, &one.path).expect("after");
    // node-2 has its route to node-1's pods again, node-1 kept its own.
    pod_bridge(&one.path, 1);
    reach(&one.path, one.pod_cidr.gateway(), &two.path)
        .expect("to node-1's pod CIDR");
    assert_eq!(node_mac(2)[5], 2);
    network.destroy().expect("destroy");
    assert_eq!(
        find_leftovers(dir.path()).expect("mounts"),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn remove_cleans_up_after_a_crash() {
    if !require(Privilege::Root) {
        return;
    }
    let scratch = Scratch::new();
    let (dir, at) = (&scratch.dir, scratch.at.clone());
    {
        let network = ClusterNetwork::create(&at).expect("the cluster network");
        network.join(1).expect("join");
        network.join(2).expect("join");
        // Dropped, not destroyed: what a killed `ch05 up` leaves.
    }
    assert!(matches!(
        ClusterNetwork::create(&at),
        Err(lab05::cluster::ClusterNetworkError::Exists(_))
    ));
    let found = ClusterNetwork::open(&at).expect("open");
    assert_eq!(found.nodes().len(), 2);
    assert!(ClusterNetwork::remove(&at).expect("remove"));
    assert!(!ClusterNetwork::remove(&at).expect("again"));
    assert_eq!(
        find_leftovers(dir.path()).expect("mounts"),
        Vec::<std::path::PathBuf>::new()
    );
    // And a new one can be made at once.
    let again = ClusterNetwork::create(&at).expect("made again");
    again.destroy().expect("destroy");
}
