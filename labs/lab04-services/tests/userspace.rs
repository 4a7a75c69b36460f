//! The userspace proxy on a real kernel (root): a throwaway node network
//! with a few "pods" (network namespaces the test makes, attached to the
//! node's bridge), each running a tiny server; clients in other pods
//! connect to ClusterIPs and NodePorts and see where they land.
//!
//! Every socket operation has a timeout, so a broken proxy fails a test
//! instead of hanging it. The tests take one lock, one at a time: they
//! count this process's descriptors, which another test would disturb.
#![cfg(target_os = "linux")]

mod support;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod as PodObject;
use kubelings_probe::{require, Privilege};
use lab03::ipam::node_cidr;
use lab03::network::scratch::ScratchNetns as PodNs;
use lab03::network::{run_in, NodeNetwork, PodNetwork};
use lab04::endpoints::{endpoint_slices, MAX_ENDPOINTS_PER_SLICE};
use lab04::manifest::parse_service;
use lab04::proxy::userspace::{UserspaceProxy, DEVICE};
use lab04::proxy::{
    Endpoint, Protocol, Proxier, ServicePortInfo, ServicePortName, ServiceTable,
};
use tokio::task::JoinSet;

const TIMEOUT: Duration = Duration::from_secs(3);
const PATIENT: Duration = Duration::from_secs(2);
const BACKEND_PORT: u16 = 8080;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time; a failed one does not stop the rest.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pod: its namespace and its address.
struct Pod {
    ns: PodNs,
    net: PodNetwork,
}

impl Pod {
    fn path(&self) -> PathBuf {
        self.ns.path()
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            ip: self.net.ip,
            port: BACKEND_PORT,
            ready: true,
            serving: true,
            terminating: false,
        }
    }
}

/// A node network, its pods, their servers and the proxy, taken down in
/// that order backwards however the test ends.
struct Cluster {
    proxy: Option<UserspaceProxy>,
    servers: Option<tokio::runtime::Runtime>,
    pods: BTreeMap<String, Pod>,
    node: Option<NodeNetwork>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Node `n` with pods named `pods`, and a proxy.
    fn new(n: u8, pods: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let node =
            NodeNetwork::create(dir.path(), &format!("node-{n}"), node_cidr(n))
                .expect("create the node network");
        let servers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the servers' runtime");
        let mut cluster = Cluster {
            proxy: None,
            servers: Some(servers),
            pods: BTreeMap::new(),
            node: Some(node),
            dir,
        };
        for name in pods {
            let ns = PodNs::new().expect("a network namespace");
            let net = cluster.node().attach(name, &ns.path()).expect("attach");
            cluster.pods.insert(name.to_string(), Pod { ns, net });
        }
        // Patient: on a loaded machine a pod may take longer than
        // kube-proxy's first 250 ms to answer, and a failover would
        // change whose turn it is.
        let proxy =
            UserspaceProxy::new(cluster.netns(), cluster.node().gateway())
                .expect("start the proxy")
                .with_dial_timeouts(&[PATIENT; 3]);
        cluster.proxy = Some(proxy);
        cluster
    }

    fn node(&self) -> &NodeNetwork {
        self.node.as_ref().expect("a node")
    }

    fn netns(&self) -> &Path {
        self.node().netns_path()
    }

    fn pod(&self, name: &str) -> &Pod {
        &self.pods[name]
    }

    fn proxy(&mut self) -> &mut UserspaceProxy {
        self.proxy.as_mut().expect("a proxy")
    }

    fn servers(&self) -> &tokio::runtime::Runtime {
        self.servers.as_ref().expect("a runtime")
    }

    /// Starts the TCP server of pod `name` (see [`serve_tcp`]).
    fn serve_tcp(&self, name: &str) -> tokio::task::AbortHandle {
        let pod = self.pod(name);
        let at = SocketAddrV4::new(pod.net.ip, BACKEND_PORT);
        let listener = run_in(&pod.path(), || listen(at))
            .expect("enter the pod")
            .expect("bind the pod's server");
        let _entered = self.servers().enter();
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("to tokio");
        let server = self
            .servers()
            .spawn(serve_tcp(listener, name.to_string()))
            .abort_handle();
        // Once from the node, so that its neighbour entry (ARP) is there
        // before the proxy's first connect: the first contact with a
        // fresh address waits for it.
        let to = SocketAddr::V4(at);
        let stream =
            run_in(self.netns(), || TcpStream::connect_timeout(&to, TIMEOUT))
                .expect("enter the node")
                .expect("the node reaches the pod's server");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut hello = String::new();
        BufReader::new(stream)
            .read_line(&mut hello)
            .expect("the pod's server greets");
        assert_eq!(hello, format!("{name}\n"));
        server
    }

    /// Starts the UDP server of pod `name`: it answers `<name>:<data>`.
    fn serve_udp(&self, name: &str) {
        let pod = self.pod(name);
        let at = SocketAddrV4::new(pod.net.ip, BACKEND_PORT);
        let socket = run_in(&pod.path(), || UdpSocket::bind(at))
            .expect("enter the pod")
            .expect("bind the pod's server");
        socket.set_nonblocking(true).expect("nonblocking");
        let _entered = self.servers().enter();
        let socket = tokio::net::UdpSocket::from_std(socket).expect("to tokio");
        let name = name.to_string();
        let to = SocketAddr::V4(at);
        self.servers().spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let mut reply = format!("{name}:").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = socket.send_to(&reply, from).await;
            }
        });
        // Once from the node (see `serve_tcp`).
        let probe = run_in(self.netns(), || {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        })
        .expect("enter the node")
        .expect("bind");
        probe.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        probe.send_to(b"hi", to).expect("send");
        let mut buf = [0u8; 64];
        probe.recv(&mut buf).expect("the pod's server answers");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let unwinding = std::thread::panicking();
        if let Some(mut proxy) = self.proxy.take() {
            if let (Err(e), false) = (proxy.shutdown(), unwinding) {
                panic!("shutting the proxy down: {e}");
            }
        }
        if let Some(rt) = self.servers.take() {
            rt.shutdown_timeout(TIMEOUT);
        }
        self.pods.clear();
        drop(self.node.take());
        let removed = NodeNetwork::remove(self.dir.path());
        if let (Err(e), false) = (removed, unwinding) {
            panic!("removing the node network: {e}");
        }
    }
}

/// A listener with room for a thousand waiting clients.
fn listen(at: SocketAddrV4) -> io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::V4(at).into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A pod's server: says its name on a line, then echoes. Aborting it
/// closes its connections too (they are in its JoinSet).
async fn serve_tcp(listener: tokio::net::TcpListener, name: String) {
    use tokio::io::AsyncWriteExt;
    let mut connections = JoinSet::new();
    while let Ok((mut stream, _)) = listener.accept().await {
        let hello = format!("{name}\n");
        connections.spawn(async move {
            if stream.write_all(hello.as_bytes()).await.is_ok() {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

/// A client connection from a pod, with timeouts on everything.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(pod: &Pod, to: SocketAddrV4) -> io::Result<Client> {
        let to = SocketAddr::V4(to);
        let stream =
            run_in(&pod.path(), || TcpStream::connect_timeout(&to, TIMEOUT))
                .map_err(io::Error::other)??;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// The name of the pod it reached.
    fn hello(&mut self) -> io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        match line.strip_suffix('\n') {
            Some(name) => Ok(name.to_string()),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("no greeting, got {line:?}"),
            )),
        }
    }

    /// Sends `text` and reads it back.
    fn echo(&mut self, text: &str) -> io::Result<()> {
        self.reader.get_mut().write_all(text.as_bytes())?;
        let mut back = vec![0u8; text.len()];
        self.reader.read_exact(&mut back)?;
        assert_eq!(back, text.as_bytes());
        Ok(())
    }

    /// Whether the other end has closed: a read answers end of file (or
    /// a reset) before the timeout.
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }
}

/// Connects, reads the greeting, echoes once: the pod that answered.
fn ask(pod: &Pod, to: SocketAddrV4) -> io::Result<String> {
    let mut c = Client::connect(pod, to)?;
    let name = c.hello()?;
    c.echo("ping\n")?;
    Ok(name)
}

fn port_name(name: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: name.into(),
        port: String::new(),
        protocol,
    }
}

fn cluster_ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, last)
}

/// One Service port in a table.
fn add(
    table: &mut ServiceTable,
    id: &ServicePortName,
    info: ServicePortInfo,
    endpoints: Vec<Endpoint>,
) {
    table.services.insert(id.clone(), info);
    table.endpoints.insert(id.clone(), endpoints);
}

fn info(ip: Ipv4Addr, port: u16) -> ServicePortInfo {
    ServicePortInfo {
        cluster_ip: ip,
        port,
        node_port: None,
        affinity: None,
    }
}

/// The number of descriptors this process has open.
fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Waits (boundedly) for the descriptor count to come back to `want`;
/// closing happens on the proxy's threads, a moment after the client's.
fn settle_descriptors(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = descriptors();
        if now <= want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The root namespace's addresses, by interface.
fn root_addresses() -> Vec<String> {
    let mut all: Vec<String> = nix::ifaddrs::getifaddrs()
        .expect("root addresses")
        .map(|i| {
            let addr = i.address.map(|a| a.to_string()).unwrap_or_default();
            format!("{} {addr}", i.interface_name)
        })
        .collect();
    all.sort();
    all
}

#[test]
fn connections_take_turns_across_the_pods() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(1, &["client", "kubia-a", "kubia-b", "kubia-c"]);
    for name in ["kubia-a", "kubia-b", "kubia-c"] {
        c.serve_tcp(name);
    }
    let id = port_name("kubia", Protocol::Tcp);
    let mut table = ServiceTable::default();
    let endpoints = ["kubia-a", "kubia-b", "kubia-c"]
        .map(|p| c.pod(p).endpoint())
        .to_vec();
    add(&mut table, &id, info(cluster_ip(10), 80), endpoints);
    let report = c.proxy().sync(&table).expect("sync");
    assert_eq!((report.changed, report.full), (1, true));

    let to = SocketAddrV4::new(cluster_ip(10), 80);
    let mut transcript = String::new();
    for i in 1..=6 {
        let name = ask(c.pod("client"), to).expect("through the proxy");
        transcript.push_str(&format!("connection {i}: {name}\n"));
    }
    let text = format!(
        "# the node's namespace\n{}\n# client -> {to}\n{transcript}",
        c.node().show().expect("list the node"),
    );
    insta::assert_snapshot!(text);

    // The same table again changes nothing.
    let report = c.proxy().sync(&table).expect("sync again");
    assert_eq!((report.changed, report.full), (0, false));
}

#[test]
fn affinity_pins_a_client_to_its_pod() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(2, &["client", "other", "kubia-a", "kubia-b"]);
    c.serve_tcp("kubia-a");
    c.serve_tcp("kubia-b");
    let id = port_name("kubia", Protocol::Tcp);
    let mut table = ServiceTable::default();
    let endpoints =
        vec![c.pod("kubia-a").endpoint(), c.pod("kubia-b").endpoint()];
    let pinned = ServicePortInfo {
        affinity: Some(Duration::from_secs(10800)),
        ..info(cluster_ip(10), 80)
    };
    add(&mut table, &id, pinned, endpoints);
    c.proxy().sync(&table).expect("sync");
    let to = SocketAddrV4::new(cluster_ip(10), 80);
    let first = ask(c.pod("client"), to).expect("connect");
    for _ in 0..4 {
        assert_eq!(ask(c.pod("client"), to).expect("connect"), first);
    }
    // Another client (another source address) takes the next turn.
    let other = ask(c.pod("other"), to).expect("connect");
    assert_ne!(other, first);
    assert_eq!(ask(c.pod("other"), to).expect("connect"), other);
}

#[test]
fn a_pod_that_refuses_is_skipped() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(3, &["client", "kubia-a", "kubia-b", "kubia-c"]);
    // kubia-b has an address and no server: its port refuses.
    c.serve_tcp("kubia-a");
    c.serve_tcp("kubia-c");
    let id = port_name("kubia", Protocol::Tcp);
    let mut table = ServiceTable::default();
    let endpoints = ["kubia-a", "kubia-b", "kubia-c"]
        .map(|p| c.pod(p).endpoint())
        .to_vec();
    add(&mut table, &id, info(cluster_ip(10), 80), endpoints);
    c.proxy().sync(&table).expect("sync");
    let to = SocketAddrV4::new(cluster_ip(10), 80);
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(ask(c.pod("client"), to).expect("a connection gets through"));
    }
    assert!(seen.iter().all(|n| n != "kubia-b"), "{seen:?}");
    assert!(seen.iter().any(|n| n == "kubia-a"), "{seen:?}");
    assert!(seen.iter().any(|n| n == "kubia-c"), "{seen:?}");
}

#[test]
fn udp_goes_through_the_proxy() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(4, &["client", "dns-a", "dns-b"]);
    c.serve_udp("dns-a");
    c.serve_udp("dns-b");
    let id = port_name("dns", Protocol::Udp);
    let mut table = ServiceTable::default();
    let endpoints = vec![c.pod("dns-a").endpoint(), c.pod("dns-b").endpoint()];
    add(&mut table, &id, info(cluster_ip(53), 53), endpoints);
    c.proxy().sync(&table).expect("sync");

    let to = SocketAddrV4::new(cluster_ip(53), 53);
    let socket = || {
        let s = run_in(&c.pod("client").path(), || {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        })
        .expect("enter")
        .expect("bind");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        // Connected: only the Service's address may answer.
        s.connect(to).expect("connect");
        s
    };
    let ask = |s: &UdpSocket, text: &str| {
        s.send(text.as_bytes()).expect("send");
        let mut buf = [0u8; 1500];
        let n = s.recv(&mut buf).expect("a reply from the Service");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let one = socket();
    assert_eq!(ask(&one, "hello"), "dns-a:hello");
    // The same client address stays with its endpoint.
    assert_eq!(ask(&one, "again"), "dns-a:again");
    let two = socket();
    assert_eq!(ask(&two, "hello"), "dns-b:hello");
}

#[test]
fn a_node_port_reaches_the_pods() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(5, &["client", "kubia-a"]);
    c.serve_tcp("kubia-a");
    let id = port_name("kubia-nodeport", Protocol::Tcp);
    let mut table = ServiceTable::default();
    let node_port = ServicePortInfo {
        node_port: Some(30123),
        ..info(cluster_ip(11), 80)
    };
    add(
        &mut table,
        &id,
        node_port,
        vec![c.pod("kubia-a").endpoint()],
    );
    c.proxy().sync(&table).expect("sync");
    let gateway = c.node().gateway();
    let via_node = SocketAddrV4::new(gateway, 30123);
    assert_eq!(
        ask(c.pod("client"), via_node).expect("node port"),
        "kubia-a"
    );
    let via_ip = SocketAddrV4::new(cluster_ip(11), 80);
    assert_eq!(ask(c.pod("client"), via_ip).expect("cluster ip"), "kubia-a");
}

#[test]
fn a_thousand_connections_at_once_leak_nothing() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    const N: usize = 1000;
    // Four descriptors a connection: client, proxy's two, server.
    let (soft, hard) = nix::sys::resource::getrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
    )
    .expect("getrlimit");
    let need = (4 * N + 512) as u64;
    if soft < need {
        assert!(hard >= need, "RLIMIT_NOFILE hard limit {hard} < {need}");
        nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
            need,
            hard,
        )
        .expect("raise RLIMIT_NOFILE");
    }
    let mut c = Cluster::new(6, &["client", "kubia-a", "kubia-b", "kubia-c"]);
    for name in ["kubia-a", "kubia-b", "kubia-c"] {
        c.serve_tcp(name);
    }
    let id = port_name("kubia", Protocol::Tcp);
    let mut table = ServiceTable::default();
    let endpoints = ["kubia-a", "kubia-b", "kubia-c"]
        .map(|p| c.pod(p).endpoint())
        .to_vec();
    add(&mut table, &id, info(cluster_ip(10), 80), endpoints);
    c.proxy().sync(&table).expect("sync");
    let before = descriptors();

    let started = Instant::now();
    let to = SocketAddr::V4(SocketAddrV4::new(cluster_ip(10), 80));
    let streams: Vec<TcpStream> = run_in(&c.pod("client").path(), || {
        (0..N)
            .map(|_| TcpStream::connect_timeout(&to, TIMEOUT))
            .collect::<io::Result<Vec<_>>>()
    })
    .expect("enter")
    .expect("every connect succeeds");
    // All open at once; now each says hello and echoes.
    let mut per_pod: BTreeMap<String, usize> = BTreeMap::new();
    let mut clients = Vec::new();
    for stream in streams {
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        let mut client = Client {
            reader: BufReader::new(stream),
        };
        let name = client.hello().expect("a greeting");
        client.echo("ping\n").expect("an echo");
        *per_pod.entry(name).or_default() += 1;
        clients.push(client);
    }
    let elapsed = started.elapsed();
    assert_eq!(per_pod.values().sum::<usize>(), N);
    // Round robin spreads them (exactly, unless a connect had to fail
    // over on a busy machine).
    assert_eq!(per_pod.len(), 3, "{per_pod:?}");
    assert!(per_pod.values().all(|&n| n >= N / 4), "{per_pod:?}");
    eprintln!("{N} concurrent connections through the proxy in {elapsed:?}");
    drop(clients);
    // Fewer is no leak (a test beside this one closed some of its own).
    let after = settle_descriptors(before);
    assert!(after <= before, "descriptors leaked: {after} > {before}");
}

#[test]
fn a_pod_that_dies_ends_only_its_connections() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(7, &["client", "kubia-a", "kubia-b"]);
    let a = c.serve_tcp("kubia-a");
    c.serve_tcp("kubia-b");
    let id = port_name("kubia", Protocol::Tcp);
    let mut table = ServiceTable::default();
    let endpoints =
        vec![c.pod("kubia-a").endpoint(), c.pod("kubia-b").endpoint()];
    add(&mut table, &id, info(cluster_ip(10), 80), endpoints);
    c.proxy().sync(&table).expect("sync");
    let to = SocketAddrV4::new(cluster_ip(10), 80);
    // One after the other: each greeting means its pick is made.
    let mut one = Client::connect(c.pod("client"), to).expect("connect");
    assert_eq!(one.hello().expect("hello"), "kubia-a");
    let mut two = Client::connect(c.pod("client"), to).expect("connect");
    assert_eq!(two.hello().expect("hello"), "kubia-b");
    a.abort();
    assert!(one.closed(), "the connection to the dead pod stayed open");
    two.echo("still there\n")
        .expect("the other connection lives");
    two.echo("and again\n").expect("the other connection lives");
}

#[test]
fn endpoints_change_live_and_a_deleted_service_takes_its_connections() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(8, &["client", "kubia-a", "kubia-b"]);
    c.serve_tcp("kubia-a");
    c.serve_tcp("kubia-b");
    let id = port_name("kubia", Protocol::Tcp);
    let mut table = ServiceTable::default();
    add(
        &mut table,
        &id,
        info(cluster_ip(10), 80),
        vec![c.pod("kubia-a").endpoint()],
    );
    c.proxy().sync(&table).expect("sync");
    let to = SocketAddrV4::new(cluster_ip(10), 80);
    let mut old = Client::connect(c.pod("client"), to).expect("connect");
    assert_eq!(old.hello().expect("hello"), "kubia-a");

    // kubia-a is replaced by kubia-b: the open connection stays, new
    // ones go to kubia-b.
    let mut moved = table.clone();
    moved
        .endpoints
        .insert(id.clone(), vec![c.pod("kubia-b").endpoint()]);
    let report = c.proxy().sync(&moved).expect("sync");
    assert_eq!(report.changed, 1);
    old.echo("still here\n").expect("the old connection lives");
    assert_eq!(ask(c.pod("client"), to).expect("connect"), "kubia-b");

    // A Service without endpoints closes what connects.
    let mut empty = moved.clone();
    empty.endpoints.insert(id.clone(), vec![]);
    c.proxy().sync(&empty).expect("sync");
    let mut refused = Client::connect(c.pod("client"), to).expect("accepted");
    assert!(refused.closed(), "no endpoint, yet the connection stayed");

    // The Service is deleted: its listener, its address and its open
    // connections go.
    c.proxy().sync(&ServiceTable::default()).expect("sync");
    assert!(old.closed(), "a deleted Service's connection stayed open");
    assert_eq!(c.proxy().addresses().count(), 0);
    let listing = c.node().show().expect("list");
    let device = listing.link(DEVICE).expect("the device stays");
    assert!(device.addresses.is_empty(), "{listing}");
    let gone = Client::connect(c.pod("client"), to);
    assert!(gone.is_err(), "connected to a deleted Service");
}

#[test]
fn a_port_that_cannot_be_had_is_refused_and_nothing_stays() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(9, &["client", "kubia-a"]);
    c.serve_tcp("kubia-a");
    // Something on the node holds the NodePort already.
    let gateway = c.node().gateway();
    let squatter =
        run_in(c.netns(), || listen(SocketAddrV4::new(gateway, 30200)))
            .expect("enter")
            .expect("bind");
    let good = port_name("kubia", Protocol::Tcp);
    let bad = port_name("clash", Protocol::Tcp);
    let mut table = ServiceTable::default();
    add(
        &mut table,
        &good,
        info(cluster_ip(10), 80),
        vec![c.pod("kubia-a").endpoint()],
    );
    let clash = ServicePortInfo {
        node_port: Some(30200),
        ..info(cluster_ip(20), 80)
    };
    add(&mut table, &bad, clash, vec![c.pod("kubia-a").endpoint()]);
    let err = c.proxy().sync(&table).expect_err("the clash is refused");
    let text = err.to_string();
    assert!(text.contains("default/clash"), "{text}");
    assert!(text.contains("30200"), "{text}");
    // The good Service works; the bad one left no address behind.
    let to = SocketAddrV4::new(cluster_ip(10), 80);
    assert_eq!(ask(c.pod("client"), to).expect("connect"), "kubia-a");
    assert_eq!(c.proxy().addresses().collect::<Vec<_>>(), [cluster_ip(10)]);
    // Once the port is free, the next sync opens it.
    drop(squatter);
    let report = c.proxy().sync(&table).expect("sync after the clash");
    assert_eq!(report.changed, 1);
    let via_node = SocketAddrV4::new(gateway, 30200);
    assert_eq!(
        ask(c.pod("client"), via_node).expect("node port"),
        "kubia-a"
    );
}

#[test]
fn shutdown_and_drop_leave_nothing_behind() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let root_before = root_addresses();
    // tokio makes a socket pair for signals once per process, with its
    // first runtime: made here, it is not counted as the proxy's.
    drop(
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime"),
    );
    let fds_before = descriptors();
    {
        let mut c = Cluster::new(10, &["client", "kubia-a"]);
        c.serve_tcp("kubia-a");
        let mut table = ServiceTable::default();
        for (i, name) in ["one", "two", "three"].into_iter().enumerate() {
            let id = port_name(name, Protocol::Tcp);
            let ip = cluster_ip(10 + i as u8);
            add(
                &mut table,
                &id,
                info(ip, 80),
                vec![c.pod("kubia-a").endpoint()],
            );
        }
        let udp = port_name("one", Protocol::Udp);
        add(&mut table, &udp, info(cluster_ip(10), 53), vec![]);
        c.proxy().sync(&table).expect("sync");
        let listing = c.node().show().expect("list");
        let device = listing.link(DEVICE).expect("the device");
        assert_eq!(device.kind, "bridge");
        assert_eq!(device.addresses.len(), 3, "{listing}");
        let mut open = Client::connect(
            c.pod("client"),
            SocketAddrV4::new(cluster_ip(11), 80),
        )
        .expect("connect");
        assert_eq!(open.hello().expect("hello"), "kubia-a");

        c.proxy().shutdown().expect("shutdown");
        assert!(open.closed(), "a connection outlived the proxy");
        let listing = c.node().show().expect("list");
        assert!(listing.link(DEVICE).is_none(), "{listing}");
        c.proxy()
            .shutdown()
            .expect("a second shutdown does nothing");
        assert!(c.proxy().sync(&table).is_err(), "synced after shutdown");

        // A proxy dropped without shutdown cleans up too; the node
        // program holds it as any other mode.
        let mut again: Box<dyn Proxier> = Box::new(
            UserspaceProxy::new(c.netns(), c.node().gateway())
                .expect("a new proxy"),
        );
        assert_eq!(again.mode(), "userspace");
        again.sync(&table).expect("sync");
        drop(again);
        let listing = c.node().show().expect("list");
        assert!(listing.link(DEVICE).is_none(), "{listing}");
    }
    assert_eq!(root_addresses(), root_before, "the root namespace changed");
    assert!(
        nix::net::if_::if_nametoindex(DEVICE).is_err(),
        "{DEVICE} appeared in the root namespace"
    );
    // The count is the process's: a test beside this one may have closed
    // one of its own meanwhile, so fewer is no leak; more is.
    let after = settle_descriptors(fds_before);
    assert!(
        after <= fds_before,
        "descriptors leaked: {after} > {fds_before}"
    );
}

/// Not a check but a measurement (`--ignored --nocapture`): how long a
/// first sync of 500 Service ports takes, and an incremental one that
/// changes one of them, a thousand connections through the proxy, and
/// the same thousand straight to the pods.
#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn bench_sync_and_connections() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(11, &["client", "kubia-a"]);
    c.serve_tcp("kubia-a");
    let endpoint = c.pod("kubia-a").endpoint();
    let mut table = ServiceTable::default();
    for i in 0..500u16 {
        let id = port_name(&format!("svc-{i}"), Protocol::Tcp);
        let ip =
            Ipv4Addr::new(198, 19, (i / 250) as u8 + 1, (i % 250) as u8 + 1);
        add(&mut table, &id, info(ip, 80), vec![endpoint]);
    }
    let started = Instant::now();
    c.proxy().sync(&table).expect("sync");
    let full = started.elapsed();
    let mut one_more = table.clone();
    let id = port_name("svc-0", Protocol::Tcp);
    one_more.endpoints.insert(id, vec![]);
    let started = Instant::now();
    let report = c.proxy().sync(&one_more).expect("sync");
    let incremental = started.elapsed();
    assert_eq!(report.changed, 1);
    let started = Instant::now();
    c.proxy().sync(&ServiceTable::default()).expect("sync");
    let removed = started.elapsed();
    eprintln!("sync of 500 Service ports: {full:?}; one changed: {incremental:?}; all removed: {removed:?}");

    let mut small = ServiceTable::default();
    let id = port_name("kubia", Protocol::Tcp);
    add(&mut small, &id, info(cluster_ip(10), 80), vec![endpoint]);
    c.proxy().sync(&small).expect("sync");
    for (what, to) in [
        ("through the proxy", SocketAddrV4::new(cluster_ip(10), 80)),
        (
            "straight to the pod",
            SocketAddrV4::new(endpoint.ip, endpoint.port),
        ),
    ] {
        let started = Instant::now();
        for _ in 0..1000 {
            ask(c.pod("client"), to).expect("ask");
        }
        eprintln!(
            "1000 connections one after another {what}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_path_that_is_no_namespace_is_refused() {
    // Needs no root: the path is checked before anything is made.
    let dir = tempfile::tempdir().expect("temp dir");
    for path in [dir.path().to_path_buf(), dir.path().join("missing")] {
        let err = UserspaceProxy::new(&path, Ipv4Addr::new(198, 18, 1, 1))
            .expect_err("not a namespace");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}

/// A pod object for test pod `name` at `ip`, labelled `app: kubia`.
fn pod_object(name: &str, ip: Ipv4Addr, ready: bool) -> PodObject {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  \
         labels: {{app: kubia}}\nspec:\n  containers:\n  - name: kubia\n    \
         image: kubia\n    ports:\n    - {{containerPort: {BACKEND_PORT}}}\n"
    );
    let pod = lab03::manifest::parse_pod(&yaml).expect("a pod");
    support::running(pod, &ip.to_string(), ready)
}

#[test]
fn from_the_api_objects_to_a_ready_pod() {
    if !require(Privilege::Root) {
        return;
    }
    let _serial = serial();
    let mut c = Cluster::new(12, &["client", "kubia-a", "kubia-b"]);
    c.serve_tcp("kubia-a");
    c.serve_tcp("kubia-b");
    let path = format!(
        "{}/tests/services/kubia-nodeport.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("the manifest");
    let mut svc = parse_service(&text).expect("a Service");
    svc.metadata.namespace = Some("default".into());
    svc.metadata.uid = Some("uid-svc".into());
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = Some(cluster_ip(12).to_string());
    }
    let (a_ip, b_ip) = (c.pod("kubia-a").net.ip, c.pod("kubia-b").net.ip);
    let table = |b_ready: bool| {
        let pods = [
            pod_object("kubia-a", a_ip, true),
            pod_object("kubia-b", b_ip, b_ready),
        ];
        let slices = endpoint_slices(&svc, &pods, MAX_ENDPOINTS_PER_SLICE);
        ServiceTable::build(std::slice::from_ref(&svc), &slices)
    };
    let via_ip = SocketAddrV4::new(cluster_ip(12), 80);
    let via_node = SocketAddrV4::new(c.node().gateway(), 30123);

    // kubia-b is not ready: everything goes to kubia-a.
    let not_yet = table(false);
    c.proxy().sync(&not_yet).expect("sync");
    for to in [via_ip, via_node, via_ip, via_node] {
        assert_eq!(ask(c.pod("client"), to).expect("ask"), "kubia-a");
    }
    // Its readiness probe passes: it takes turns too.
    let ready = table(true);
    let report = c.proxy().sync(&ready).expect("sync");
    assert_eq!(report.changed, 1);
    let mut seen: Vec<String> = (0..4)
        .map(|_| ask(c.pod("client"), via_ip).expect("ask"))
        .collect();
    seen.sort();
    assert_eq!(seen, ["kubia-a", "kubia-a", "kubia-b", "kubia-b"]);
}
