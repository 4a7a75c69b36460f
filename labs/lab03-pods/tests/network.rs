//! The pod network on a real kernel (root): a node's namespace and bridge,
//! pods connected by veth pairs, what they reach and what they do not,
//! and nothing left afterwards, also after a node process is killed.
//!
//! A "pod" here is a network namespace the test makes (a thread unshares
//! it, a descriptor keeps it), as a sandbox process would hold one.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lab01::probe::{require, Privilege};
use lab03::ipam::node_cidr;
use lab03::network::scratch::{ScratchNetns as PodNs, ScratchNode as TestNode};
use lab03::network::{
    find_leftovers, host_ifname, run_in, show, NetworkError, NodeNetwork, BRIDGE, NETWORK_DIR,
};

const TIMEOUT: Duration = Duration::from_secs(2);

/// A server in namespace `server_ns` on `ip`, a client in `client_ns`:
/// the client connects, sends, and reads its message back.
fn echo(server_ns: &Path, ip: Ipv4Addr, client_ns: &Path) -> std::io::Result<()> {
    let listener = run_in(server_ns, || TcpListener::bind((ip, 0))).expect("enter")?;
    let to = listener.local_addr()?;
    let mut client =
        run_in(client_ns, || TcpStream::connect_timeout(&to, TIMEOUT)).expect("enter")?;
    // The connection is in the backlog already: accept cannot hang.
    let (mut server, _) = listener.accept()?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(TIMEOUT))?;
    }
    client.write_all(b"hello pod")?;
    let mut buf = [0u8; 9];
    server.read_exact(&mut buf)?;
    server.write_all(&buf)?;
    let mut back = [0u8; 9];
    client.read_exact(&mut back)?;
    assert_eq!(&back, b"hello pod");
    Ok(())
}

/// Connects from namespace `ns` to `to`, giving up after a short while.
fn connect_from(ns: &Path, to: SocketAddr) -> std::io::Result<TcpStream> {
    run_in(ns, || {
        TcpStream::connect_timeout(&to, Duration::from_millis(300))
    })
    .expect("enter")
}

#[test]
fn two_pods_on_a_node_reach_each_other() {
    if !require(Privilege::Root) {
        return;
    }
    let node = TestNode::new(2).expect("a node network");
    let (a, b) = (
        PodNs::new().expect("a network namespace"),
        PodNs::new().expect("a network namespace"),
    );
    let pa = node.get().attach("pod-a", &a.path()).expect("attach a");
    let pb = node.get().attach("pod-b", &b.path()).expect("attach b");
    assert_eq!(pa.ip, "198.18.2.2".parse::<Ipv4Addr>().expect("ip"));
    assert_eq!(pb.ip, "198.18.2.3".parse::<Ipv4Addr>().expect("ip"));
    assert_eq!(pa.gateway, "198.18.2.1".parse::<Ipv4Addr>().expect("ip"));
    assert_eq!(pa.host_ifname, host_ifname("pod-a"));
    echo(&a.path(), pa.ip, &b.path()).expect("b reaches a");
    echo(&b.path(), pb.ip, &a.path()).expect("a reaches b");
    // A pod reaches itself by its own address too.
    echo(&a.path(), pa.ip, &a.path()).expect("a reaches a");
}

#[test]
fn pods_reach_the_node_and_nothing_beyond() {
    if !require(Privilege::Root) {
        return;
    }
    let node = TestNode::new(3).expect("a node network");
    let pod = PodNs::new().expect("a network namespace");
    let net = node.get().attach("pod-a", &pod.path()).expect("attach");
    // The node reaches its pods (probes come from it) and they it.
    echo(&pod.path(), net.ip, node.get().netns_path()).expect("the node reaches the pod");
    echo(node.get().netns_path(), net.gateway, &pod.path()).expect("the pod reaches the node");

    // A server on the root namespace's loopback: the pod's 127.0.0.1 is
    // its own, so it is not there.
    let root = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind root loopback");
    let port = root.local_addr().expect("addr").port();
    assert!(
        connect_from(&pod.path(), (Ipv4Addr::LOCALHOST, port).into()).is_err(),
        "the pod reached the root namespace's 127.0.0.1"
    );
    // The root namespace's own addresses: nothing answers, not even with
    // a refusal (which would mean the packet got there).
    let host_ips: Vec<Ipv4Addr> = nix::ifaddrs::getifaddrs()
        .expect("root addresses")
        .filter_map(|i| i.address?.as_sockaddr_in().map(|a| a.ip()))
        .filter(|ip| !ip.is_loopback())
        .collect();
    for ip in host_ips.iter().take(2) {
        let err = connect_from(&pod.path(), (*ip, port).into()).expect_err("reached the host");
        assert_ne!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{ip} answered"
        );
    }
    // Another node's pod range and the service range: no route.
    for ip in [Ipv4Addr::new(198, 18, 4, 2), Ipv4Addr::new(198, 19, 0, 1)] {
        let err = connect_from(&pod.path(), (ip, 80).into()).expect_err("reached outside");
        assert_ne!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{ip} answered"
        );
    }
    // Because the node has no way out: loopback, the bridge, the veth.
    let listing = node.get().show().expect("list the node");
    let kinds: Vec<&str> = listing.links.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["loopback", "bridge", "veth"], "{listing}");
    assert!(
        listing
            .routes
            .iter()
            .all(|r| r.gateway.is_none() && r.destination.is_some()),
        "the node has a route out:\n{listing}"
    );
}

#[test]
fn the_listing_of_a_node_with_two_pods() {
    if !require(Privilege::Root) {
        return;
    }
    let node = TestNode::new(1).expect("a node network");
    let (a, b) = (
        PodNs::new().expect("a network namespace"),
        PodNs::new().expect("a network namespace"),
    );
    node.get().attach("kubia", &a.path()).expect("attach");
    node.get().attach("client", &b.path()).expect("attach");
    let text = format!(
        "# the node's namespace\n{}\n# the pod kubia's namespace\n{}",
        node.get().show().expect("list the node"),
        show(&a.path()).expect("list the pod"),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn allocations_persist_across_reopen() {
    if !require(Privilege::Root) {
        return;
    }
    let mut node = TestNode::new(5).expect("a node network");
    let (a, b) = (
        PodNs::new().expect("a network namespace"),
        PodNs::new().expect("a network namespace"),
    );
    let first = node.get().attach("pod-a", &a.path()).expect("attach");
    // The node process goes away and comes back.
    node.reopen().expect("reopen");
    let pods = node.get().pods().expect("pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(
        (pods[0].uid.as_str(), pods[0].ip, pods[0].linked),
        ("pod-a", first.ip, true)
    );
    let other = node.get().attach("pod-b", &b.path()).expect("attach b");
    assert_ne!(other.ip, first.ip);
    // Attaching a pod again (its sandbox's network set up anew) keeps its
    // address and replaces its pair.
    let again = node.get().attach("pod-a", &a.path()).expect("attach again");
    assert_eq!(again, first);
    echo(&a.path(), again.ip, &b.path()).expect("b reaches a");
}

#[test]
fn detach_releases_the_address_and_the_pair() {
    if !require(Privilege::Root) {
        return;
    }
    let node = TestNode::new(6).expect("a node network");
    let pod = PodNs::new().expect("a network namespace");
    let net = node.get().attach("pod-a", &pod.path()).expect("attach");
    assert!(show(&pod.path()).expect("list").link("eth0").is_some());
    assert_eq!(node.get().detach("pod-a").expect("detach"), Some(net.ip));
    let in_pod = show(&pod.path()).expect("list the pod");
    assert_eq!(in_pod.links.len(), 1, "more than lo left:\n{in_pod}");
    assert!(node
        .get()
        .show()
        .expect("list")
        .link(&net.host_ifname)
        .is_none());
    assert_eq!(node.get().ipam().lookup("pod-a").expect("lookup"), None);
    assert!(node.get().pods().expect("pods").is_empty());
    // Twice is no error.
    assert_eq!(node.get().detach("pod-a").expect("detach again"), None);
}

#[test]
fn destroy_leaves_nothing() {
    if !require(Privilege::Root) {
        return;
    }
    let mut node = TestNode::new(7).expect("a node network");
    let (a, b) = (
        PodNs::new().expect("a network namespace"),
        PodNs::new().expect("a network namespace"),
    );
    node.get().attach("pod-a", &a.path()).expect("attach");
    node.get().attach("pod-b", &b.path()).expect("attach");
    assert_eq!(find_leftovers(node.dir()).expect("mounts").len(), 1);
    node.destroy().expect("destroy");
    assert_eq!(
        find_leftovers(node.dir()).expect("mounts"),
        Vec::<PathBuf>::new()
    );
    assert!(!node.dir().join(NETWORK_DIR).exists());
    // The pods' ends went with it, at once.
    for pod in [&a, &b] {
        let left = show(&pod.path()).expect("list the pod");
        assert_eq!(left.links.len(), 1, "more than lo left:\n{left}");
    }
    assert!(matches!(
        NodeNetwork::open(node.dir()),
        Err(NetworkError::NotANode { .. })
    ));
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    if !require(Privilege::Root) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let outside = "10.1.0.0/24".parse().expect("cidr");
    let err = NodeNetwork::create(dir.path(), "n", outside).expect_err("outside 198.18/15");
    assert!(
        err.to_string()
            .contains("10.1.0.0/24 is outside 198.18.0.0/15"),
        "{err}"
    );
    let err = NodeNetwork::create(dir.path(), "", node_cidr(8)).expect_err("no name");
    assert_eq!(err.to_string(), "node name \"\": it must not be empty");
    assert!(!dir.path().join(NETWORK_DIR).exists(), "half a node left");
    let err = NodeNetwork::open(dir.path()).expect_err("nothing there");
    assert!(err.to_string().contains("is not a node network"), "{err}");

    let node = TestNode::new(8).expect("a node network");
    let err = NodeNetwork::create(node.dir(), "again", node_cidr(8)).expect_err("twice");
    assert!(matches!(err, NetworkError::Exists { .. }), "{err}");
    // Ours (the root namespace, in this test) and the node's own.
    let refused = [
        PathBuf::from("/proc/self/ns/net"),
        PathBuf::from("/proc/thread-self/ns/net"),
        node.get().netns_path().to_path_buf(),
    ];
    for path in &refused {
        let err = node.get().attach("p", path).expect_err("not a pod's");
        assert!(
            matches!(err, NetworkError::NotAPodNamespace { .. }),
            "{err}"
        );
    }
    let missing = node.dir().join("no-such-netns");
    let err = node.get().attach("p", &missing).expect_err("missing");
    assert!(err.to_string().contains("no-such-netns"), "{err}");
    let err = node
        .get()
        .attach("", &PodNs::new().expect("a network namespace").path())
        .expect_err("no uid");
    assert!(matches!(err, NetworkError::BadInput { .. }), "{err}");
    assert!(
        node.get().pods().expect("pods").is_empty(),
        "an address was kept"
    );
    let listing = node.get().show().expect("list");
    assert_eq!(listing.links.len(), 2, "something was made:\n{listing}");
    assert!(listing.link(BRIDGE).is_some());
}

/// Where the child keeps its node, and the pod namespace it attaches.
const CHILD_DIR: &str = "LAB03_NETWORK_CHILD_DIR";
const CHILD_POD: &str = "LAB03_NETWORK_CHILD_POD";

/// The child process of a_killed_node_process_is_cleaned_up (run through
/// `--ignored`): makes a node, attaches a pod, says so, and waits to be
/// killed.
#[test]
#[ignore = "the child process of a_killed_node_process_is_cleaned_up"]
fn network_child() {
    let dir = PathBuf::from(std::env::var(CHILD_DIR).expect("run as a child"));
    let pod = PathBuf::from(std::env::var(CHILD_POD).expect("run as a child"));
    let node = NodeNetwork::create(&dir, "crashy", node_cidr(9)).expect("create");
    let net = node.attach("crash-pod", &pod).expect("attach");
    println!("READY {}", net.ip);
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn a_killed_node_process_is_cleaned_up() {
    if !require(Privilege::Root) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pod = PodNs::new().expect("a network namespace");
    // The child opens our descriptor through /proc/<our pid>/fd.
    let pod_path = format!("/proc/{}/fd/{}", std::process::id(), pod.as_raw_fd());
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "network_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_POD, &pod_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("piped");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("READY ").map(|(_, ip)| ip.to_string()));
    child.kill().expect("kill -9 the child");
    child.wait().expect("reap the child");
    // Whatever happened, the next process cleans up.
    let cleanup = Cleanup(dir.path());
    let ip = ready.expect("the child made its node and attached its pod");
    // The network outlived its maker…
    assert_eq!(find_leftovers(dir.path()).expect("mounts").len(), 1);
    let node = NodeNetwork::open(dir.path()).expect("the next process finds it");
    let pods = node.pods().expect("pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(
        (pods[0].uid.as_str(), pods[0].ip.to_string(), pods[0].linked),
        ("crash-pod", ip, true)
    );
    // …and works: the node still reaches the pod.
    echo(&pod.path(), pods[0].ip, node.netns_path()).expect("the node reaches the pod");
    // …until it is destroyed, and then nothing is left.
    node.destroy().expect("destroy");
    assert_eq!(
        find_leftovers(dir.path()).expect("mounts"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(show(&pod.path()).expect("list the pod").links.len(), 1);
    drop(cleanup);
}

/// Removes the node network in a directory when dropped, so a failing
/// test leaves nothing either.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = NodeNetwork::remove(self.0);
    }
}

/// Not a test: how long attach and detach take, for the book's figures.
/// `cargo test -p lab03 --test network -- --ignored --nocapture
/// attach_and_detach_timings` (LAB03_BENCH_PODS pods, default 100).
#[test]
#[ignore = "a benchmark, run by hand"]
fn attach_and_detach_timings() {
    if !require(Privilege::Root) {
        return;
    }
    let n: usize = std::env::var("LAB03_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let node = TestNode::new(10).expect("a node network");
    let pods: Vec<PodNs> = (0..n)
        .map(|_| PodNs::new().expect("a network namespace"))
        .collect();
    let timed = |f: &mut dyn FnMut(usize)| {
        let mut times: Vec<Duration> = (0..n)
            .map(|i| {
                let start = std::time::Instant::now();
                f(i);
                start.elapsed()
            })
            .collect();
        times.sort();
        let total: Duration = times.iter().sum();
        (times[n / 2], times[n * 9 / 10], total)
    };
    let attach = timed(&mut |i| {
        node.get()
            .attach(&format!("bench-{i}"), &pods[i].path())
            .expect("attach");
    });
    let detach = timed(&mut |i| {
        node.get().detach(&format!("bench-{i}")).expect("detach");
    });
    // The allocator's share: a flock and an fsync'd write per change.
    let dir = tempfile::tempdir().expect("temp dir");
    let ipam =
        lab03::ipam::Ipam::open(dir.path(), node_cidr(10), lab03::ipam::Range::BenchmarkOnly)
            .expect("ipam");
    let allocate = timed(&mut |i| {
        ipam.allocate(&format!("bench-{i}")).expect("allocate");
    });
    let release = timed(&mut |i| {
        ipam.release(&format!("bench-{i}")).expect("release");
    });
    for (what, (median, p90, total)) in [
        ("attach", attach),
        ("detach", detach),
        ("ipam allocate", allocate),
        ("ipam release", release),
    ] {
        println!("{what} x{n}: median {median:?}, p90 {p90:?}, total {total:?}");
    }
}
