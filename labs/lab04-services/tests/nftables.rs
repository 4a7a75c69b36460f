//! The nftables proxy: the text of its rules (pure), then the rules in a
//! real kernel, in a throwaway node namespace with "pods" (network
//! namespaces the test makes) that run tiny servers answering their name.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kubelings_probe::{require, require_program, Privilege};
use lab03::network::run_in;
use lab03::network::scratch::{ScratchNetns as PodNs, ScratchNode as TestNode};
use lab04::allocator::service_cidr;
use lab04::proxy::nftables::ruleset::{
    self, affinity_set, endpoint_chain, service_chain, service_chain_rules,
    EndpointTarget,
};
use lab04::proxy::nftables::{run_nft, NftablesProxy};
use lab04::proxy::{
    Endpoint, Protocol, Proxier, ServicePortInfo, ServicePortName, ServiceTable,
};

fn port(name: &str) -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: name.into(),
        port: String::new(),
        protocol: Protocol::Tcp,
    }
}

fn ready(ip: Ipv4Addr) -> Endpoint {
    Endpoint {
        ip,
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
    }
}

fn vip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, last)
}

/// kubia (port 80 to the pods' 8080), kubia-sticky (the same with
/// ClientIP affinity), kubia-nodeport (NodePort 30080), kubia-self (the
/// first pod alone) and nobody (no endpoints).
fn small_table(pods: &[Ipv4Addr]) -> ServiceTable {
    let mut table = ServiceTable::default();
    let services = [
        ("kubia", 10, None, None, pods),
        (
            "kubia-sticky",
            11,
            None,
            Some(Duration::from_secs(10800)),
            pods,
        ),
        ("kubia-nodeport", 12, Some(30080), None, pods),
        ("kubia-self", 13, None, None, &pods[..1]),
        ("nobody", 14, None, None, &[][..]),
    ];
    for (name, last, node_port, affinity, backends) in services {
        table.services.insert(
            port(name),
            ServicePortInfo {
                cluster_ip: vip(last),
                port: 80,
                node_port,
                affinity,
            },
        );
        let mut list: Vec<Endpoint> =
            backends.iter().map(|ip| ready(*ip)).collect();
        list.sort();
        table.endpoints.insert(port(name), list);
    }
    table
}

fn pod_ips(node: u8) -> Vec<Ipv4Addr> {
    (2..5).map(|i| Ipv4Addr::new(198, 18, node, i)).collect()
}

fn cidr() -> String {
    service_cidr().to_string()
}

fn target(chain: &str, affinity: Option<&str>) -> EndpointTarget {
    EndpointTarget {
        chain: chain.into(),
        affinity: affinity.map(Into::into),
    }
}

// ---------------------------------------------------------------- pure

#[test]
fn a_service_chain_picks_an_endpoint_at_random() {
    let rules = service_chain_rules(&[
        target("endpoint-A", None),
        target("endpoint-B", None),
        target("endpoint-C", None),
    ]);
    assert_eq!(
        rules,
        ["numgen random mod 3 vmap { 0 : goto endpoint-A, \
          1 : goto endpoint-B, 2 : goto endpoint-C }"]
    );
    let one = service_chain_rules(&[target("endpoint-A", None)]);
    assert_eq!(one, ["numgen random mod 1 vmap { 0 : goto endpoint-A }"]);
    assert!(service_chain_rules(&[]).is_empty());
}

#[test]
fn a_service_chain_sends_known_clients_back_first() {
    let rules = service_chain_rules(&[
        target("endpoint-A", Some("affinity-A")),
        target("endpoint-B", Some("affinity-B")),
    ]);
    assert_eq!(
        rules,
        [
            "ip saddr @affinity-A goto endpoint-A",
            "ip saddr @affinity-B goto endpoint-B",
            "numgen random mod 2 vmap { 0 : goto endpoint-A, \
             1 : goto endpoint-B }",
        ]
    );
}

#[test]
fn chain_names_are_stable_and_readable() {
    let mut id = port("kubia");
    id.port = "http".into();
    let to = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 8080);
    let names = [
        service_chain(&id),
        endpoint_chain(&id, to),
        affinity_set(&id, to),
    ];
    insta::assert_debug_snapshot!(names);
    // The hash tells apart what the readable part cannot.
    let mut other = id.clone();
    other.protocol = Protocol::Udp;
    assert_ne!(service_chain(&id), service_chain(&other));
    // A name nft would not read is cleaned, not passed on.
    let mut odd = id.clone();
    odd.name = "a b;c".into();
    assert!(service_chain(&odd).ends_with("-default/a_b_c/tcp/http"));
}

#[test]
fn the_ruleset_of_a_small_table() {
    let table = small_table(&pod_ips(1));
    let text = ruleset::full(&table, Ipv4Addr::new(198, 18, 1, 1), &cidr());
    insta::assert_snapshot!(text);
}

/// Breaks lines longer than `width` at spaces, ending each broken part
/// with ` \\`: nft reads that as one line, so the text stays a ruleset.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + word.len() + 3 > width {
                out.push_str(&format!("{current} \\\n"));
                current = format!("    {word}");
                continue;
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

/// The book's example: two pods behind kubia, the same two behind
/// kubia-sticky (ClientIP affinity), and nobody, which has none.
fn book_table() -> ServiceTable {
    let pods = [Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)];
    let mut table = small_table(&pods);
    for name in ["kubia-nodeport", "kubia-self"] {
        table.services.remove(&port(name));
        table.endpoints.remove(&port(name));
    }
    table
}

#[test]
fn the_ruleset_as_the_book_shows_it() {
    let text =
        ruleset::full(&book_table(), Ipv4Addr::new(198, 18, 1, 1), &cidr());
    let wrapped = wrap(&text, 78);
    assert!(wrapped.lines().all(|l| l.len() <= 80), "{wrapped}");
    insta::assert_snapshot!(wrapped);
    if can_run() {
        let ns = PodNs::new().expect("a network namespace");
        run_nft(&ns.path(), &["-c", "-f", "-"], Some(&wrapped))
            .expect("the wrapped text is a ruleset too");
    }
}

#[test]
fn one_endpoint_change_rewrites_one_service() {
    let ips = pod_ips(1);
    let old = small_table(&ips);
    let mut new = old.clone();
    // kubia loses its last pod; nobody gains one; kubia-sticky's timeout
    // changes (its sets are made anew).
    new.endpoints.insert(
        port("kubia"),
        ips[..2].iter().map(|ip| ready(*ip)).collect(),
    );
    new.endpoints.insert(port("nobody"), vec![ready(ips[0])]);
    if let Some(info) = new.services.get_mut(&port("kubia-sticky")) {
        info.affinity = Some(Duration::from_secs(60));
    }
    let changed = old.changed(&new);
    assert_eq!(
        changed,
        [port("kubia"), port("kubia-sticky"), port("nobody")]
    );
    let text = ruleset::incremental(&old, &new, &changed);
    assert!(!text.contains("kubia-nodeport"), "{text}");
    assert!(!text.contains("table"), "no table-wide change:\n{text}");
    insta::assert_snapshot!(text);
    assert_eq!(ruleset::incremental(&new, &new, &[]), "");
}

// --------------------------------------------------------- the kernel

/// Whether the kernel tests can run: root and nft.
fn can_run() -> bool {
    require(Privilege::Root) && require_program("nft")
}

/// A server on a pod's port 8080 that writes its name to every client
/// and hangs up; stopped and joined on drop.
struct NameServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NameServer {
    fn start(netns: &Path, ip: Ipv4Addr, name: &str) -> NameServer {
        let listener = run_in(netns, || TcpListener::bind((ip, 8080)))
            .expect("enter the pod")
            .expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name) = (stop.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(name.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        NameServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(2);

/// Connects from namespace `ns` to `to` and reads what the server says.
fn ask(ns: &Path, to: SocketAddr) -> std::io::Result<String> {
    let mut conn = run_in(ns, || TcpStream::connect_timeout(&to, TIMEOUT))
        .expect("enter")?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Who answers `times` connections from `ns` to `to`.
fn answers(ns: &Path, to: SocketAddr, times: usize) -> BTreeSet<String> {
    (0..times)
        .map(|_| ask(ns, to).unwrap_or_else(|e| panic!("{to}: {e}")))
        .collect()
}

fn root_ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft list ruleset");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A node with three pods serving their names, the small table synced.
struct Cluster {
    proxy: NftablesProxy,
    // Held for their Drop, which stops them.
    _servers: Vec<NameServer>,
    pods: Vec<PodNs>,
    ips: Vec<Ipv4Addr>,
    node: TestNode,
}

impl Cluster {
    fn new(n: u8) -> Cluster {
        let node = TestNode::new(n).expect("a node network");
        let pods: Vec<PodNs> = (0..3)
            .map(|_| PodNs::new().expect("a network namespace"))
            .collect();
        let mut ips = Vec::new();
        let mut servers = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            let name = format!("pod-{i}");
            let net = node.get().attach(&name, &pod.path()).expect("attach");
            servers.push(NameServer::start(&pod.path(), net.ip, &name));
            ips.push(net.ip);
        }
        let mut proxy = NftablesProxy::new(node.netns(), node.get().gateway())
            .expect("the proxy");
        let report = proxy.sync(&small_table(&ips)).expect("sync");
        assert!(report.full);
        Cluster {
            proxy,
            _servers: servers,
            pods,
            ips,
            node,
        }
    }

    fn pod(&self, i: usize) -> PathBuf {
        self.pods[i].path()
    }
}

fn service(last: u8) -> SocketAddr {
    SocketAddrV4::new(vip(last), 80).into()
}

#[test]
fn nft_accepts_the_ruleset_and_its_changes() {
    if !can_run() {
        return;
    }
    let ns = PodNs::new().expect("a network namespace");
    let ips = pod_ips(1);
    let old = small_table(&ips);
    let node_ip = Ipv4Addr::new(198, 18, 1, 1);
    let text = ruleset::full(&old, node_ip, &cidr());
    run_nft(&ns.path(), &["-c", "-f", "-"], Some(&text)).expect("nft -c");
    // Applied for real, then changed, in a namespace of its own.
    run_nft(&ns.path(), &["-f", "-"], Some(&text)).expect("nft -f");
    let mut new = old.clone();
    new.endpoints.insert(port("kubia"), vec![ready(ips[2])]);
    new.services.remove(&port("kubia-sticky"));
    let change = ruleset::incremental(&old, &new, &old.changed(&new));
    run_nft(&ns.path(), &["-f", "-"], Some(&change)).expect("incremental");
    let listed = run_nft(&ns.path(), &["list", "ruleset"], None).expect("ls");
    assert!(!listed.contains("kubia-sticky"), "{listed}");
    assert!(listed.contains(&format!("dnat to {}:8080", ips[2])));
    // Nonsense is refused with nft's own words, and changes nothing.
    let err = run_nft(&ns.path(), &["-f", "-"], Some("add rule ip nope x"))
        .expect_err("nonsense");
    assert!(err.to_string().contains("nft -f -"), "{err}");
}

#[test]
fn pods_and_the_node_reach_several_backends() {
    if !can_run() {
        return;
    }
    let c = Cluster::new(41);
    let all: BTreeSet<String> =
        ["pod-0", "pod-1", "pod-2"].map(String::from).into();
    // 30 tries miss one of three backends with odds (2/3)^30 < 1e-5.
    let from_pod = answers(&c.pod(1), service(10), 30);
    assert_eq!(from_pod, all, "from a pod");
    let from_node = answers(c.node.netns(), service(10), 30);
    assert_eq!(from_node, all, "from the node");
    // A NodePort, on the node's address.
    let node_port = SocketAddrV4::new(c.node.get().gateway(), 30080);
    assert_eq!(answers(&c.pod(2), node_port.into(), 30), all, "nodeport");
}

#[test]
fn a_pod_reaches_itself_through_its_service() {
    if !can_run() {
        return;
    }
    let c = Cluster::new(42);
    // kubia-self has pod-0 alone: the reply must come back through the
    // node to be un-NATed (masquerade), not straight over the bridge.
    let me = answers(&c.pod(0), service(13), 3);
    assert_eq!(me, BTreeSet::from(["pod-0".to_string()]));
    // And pod-1 reaches pod-0 on the same bridge the same way.
    assert_eq!(answers(&c.pod(1), service(13), 3), me);
}

#[test]
fn client_ip_affinity_pins_a_client() {
    if !can_run() {
        return;
    }
    let c = Cluster::new(43);
    for pod in 0..3 {
        let seen = answers(&c.pod(pod), service(11), 15);
        assert_eq!(seen.len(), 1, "pod-{pod} was sent to {seen:?}");
    }
    let seen = answers(c.node.netns(), service(11), 15);
    assert_eq!(seen.len(), 1, "the node was sent to {seen:?}");
}

#[test]
fn no_endpoints_is_refused_at_once() {
    if !can_run() {
        return;
    }
    let c = Cluster::new(44);
    // nobody has no endpoints; .99 is no Service at all; port 81 of
    // kubia is no port of it.
    for to in [
        service(14),
        service(99),
        SocketAddrV4::new(vip(10), 81).into(),
    ] {
        for ns in [c.pod(0), c.node.netns().to_path_buf()] {
            let err = ask(&ns, to).expect_err("answered");
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "{to} from {}: {err}",
                ns.display()
            );
        }
    }
}

#[test]
fn an_endpoint_change_lands_incrementally() {
    if !can_run() {
        return;
    }
    let mut c = Cluster::new(45);
    let mut table = small_table(&c.ips);
    // pod-2 leaves kubia; nobody gets pod-1.
    table.endpoints.insert(
        port("kubia"),
        c.ips[..2].iter().map(|ip| ready(*ip)).collect(),
    );
    table
        .endpoints
        .insert(port("nobody"), vec![ready(c.ips[1])]);
    let report = c.proxy.sync(&table).expect("sync");
    assert_eq!((report.full, report.changed), (false, 2));
    let seen = answers(&c.pod(0), service(10), 30);
    assert_eq!(seen, ["pod-0", "pod-1"].map(String::from).into());
    assert_eq!(
        answers(&c.pod(0), service(14), 3),
        BTreeSet::from(["pod-1".to_string()])
    );
    // Nothing changed, nothing written.
    let again = c.proxy.sync(&table).expect("sync");
    assert_eq!((again.full, again.changed), (false, 0));
    // Someone deleted our table: the incremental sync fails, a full one
    // repairs it.
    run_nft(
        c.node.netns(),
        &["delete", "table", "ip", "kubelings"],
        None,
    )
    .expect("delete");
    table.services.remove(&port("kubia-self"));
    let repaired = c.proxy.sync(&table).expect("sync");
    assert!(repaired.full);
    assert_eq!(answers(&c.pod(0), service(14), 1).len(), 1);
}

#[test]
fn the_kernel_holds_our_table_until_shutdown() {
    if !can_run() {
        return;
    }
    let root_before = root_ruleset();
    let node = TestNode::new(46).expect("a node network");
    let forward = || {
        run_in(node.netns(), || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        })
        .expect("enter")
        .expect("read")
    };
    assert_eq!(forward().trim(), "0");
    let mut proxy = NftablesProxy::new(node.netns(), node.get().gateway())
        .expect("the proxy");
    assert_eq!(forward().trim(), "1");
    assert_eq!(proxy.mode(), "nftables");
    proxy.sync(&small_table(&pod_ips(46))).expect("sync");
    insta::assert_snapshot!(proxy.list().expect("list"));
    let routes = node.get().show().expect("show").to_string();
    assert!(routes.contains("route 198.19.0.0/16 dev kube0"), "{routes}");
    proxy.shutdown().expect("shutdown");
    let left = run_nft(node.netns(), &["list", "ruleset"], None).expect("ls");
    assert_eq!(left, "");
    assert_eq!(forward().trim(), "0");
    let routes = node.get().show().expect("show").to_string();
    assert!(!routes.contains("198.19"), "{routes}");
    // Twice, and then drop, is no error.
    proxy.shutdown().expect("shutdown again");
    drop(proxy);
    assert_eq!(root_ruleset(), root_before, "the root namespace changed");
}

#[test]
fn a_namespace_without_a_bridge_is_refused() {
    if !can_run() {
        return;
    }
    let ns = PodNs::new().expect("a network namespace");
    let err = NftablesProxy::new(&ns.path(), Ipv4Addr::new(198, 18, 1, 1))
        .err()
        .expect("not a node");
    assert!(err.to_string().contains("has no bridge kube0"), "{err}");
    let listed = run_nft(&ns.path(), &["list", "ruleset"], None).expect("ls");
    assert_eq!(listed, "", "half a setup left");
}

/// The benchmark `ch04 bench` runs, here to run it alone:
/// `cargo test --release -p lab04 --test nftables -- --ignored --nocapture`.
/// It prints what it measured and asserts nothing about time.
#[test]
#[ignore = "a benchmark: run it on purpose, in release"]
fn bench_programming_time() {
    if !can_run() {
        return;
    }
    let rows = lab04::proxy::nftables::bench(&[10, 1000, 5000]).expect("bench");
    for r in &rows {
        println!(
            "{:>5} services x {} endpoints: full sync {:>8.1} ms \
             ({} KiB of rules), one endpoint changed {:>6.2} ms",
            r.services,
            r.endpoints_per_service,
            r.full_sync.as_secs_f64() * 1e3,
            r.full_bytes / 1024,
            r.endpoint_change.as_secs_f64() * 1e3,
        );
    }
    assert_eq!(rows.len(), 3);
}
