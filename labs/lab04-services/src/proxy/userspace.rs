//! The userspace proxy: kube-proxy's first mode, as a process that owns
//! every ClusterIP on the node and copies bytes between the client and
//! an endpoint it picks.
//!
//! ```text
//!  node netns
//!  ┌────────────────────────────────────────────────────────────┐
//!  │ kube-svc0 198.19.0.10/32 …           UserspaceProxy        │
//!  │        ▲ accept on 198.19.0.10:80 ──► pick ──► connect     │
//!  │ kube0 198.18.N.1 ◄──────── copy both ways ────────┘        │
//!  └───┼─────────────────────────────────────────┼──────────────┘
//!   client pod                              endpoint pod
//! ```
//!
//! - Every ClusterIP is a /32 on the device [`DEVICE`], so the node's
//!   kernel delivers what a pod sends there to a local socket (IPVS mode
//!   does the same with its dummy device `kube-ipvs0`). Sockets are made
//!   in the node's namespace by [`run_in`], then handed to tokio.
//! - TCP: one listener per Service port (and one on the node's address
//!   for a NodePort); each connection is spliced to an endpoint the
//!   port's [`RoundRobin`] picks, the next one if a connect fails, with
//!   kube-proxy's growing dial timeouts.
//! - UDP: one socket per Service port; each client address gets a socket
//!   of its own to an endpoint, kept until it has been idle a while.
//! - The runtime's worker threads live in the node's namespace too, so
//!   the sockets they open to endpoints are made there.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lab03::network::{errno, io_of, link_index, run_in};
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::{AddressMessageBuilder, Handle, LinkBridge, LinkUnspec};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::pick::RoundRobin;
use super::{
    Protocol, Proxier, ProxyError, ServicePortInfo, ServicePortName,
    ServiceTable, SyncReport,
};

/// The device that holds the ClusterIPs in the node's namespace: a
/// bridge with no ports, which forwards nothing and is only there to own
/// addresses. (IPVS mode uses a dummy device; not every kernel has the
/// dummy driver, every kernel that runs pods has bridges.)
pub const DEVICE: &str = "kube-svc0";

/// How long each connect to an endpoint may take, one per attempt: the
/// attempts a connection gets, as kube-proxy's `EndpointDialTimeouts`.
pub const DIAL_TIMEOUTS: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// How long a UDP client's association lives without a datagram either
/// way (kube-proxy's `--udp-timeout` was 250 ms; we are more patient on
/// a loaded machine).
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Worker threads of the proxy's runtime: copying is I/O, not work.
const WORKERS: usize = 2;

/// The accept queue of each listener, enough for a burst of clients.
const BACKLOG: i32 = 1024;

/// How long stopping one listener may take before we give up waiting.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The largest datagram we relay.
const DATAGRAM: usize = 65_535;

thread_local! {
    /// Whether this thread is one of our workers and in the node's
    /// namespace: checked before every socket to an endpoint is made.
    static IN_NODE_NETNS: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

/// The userspace proxy of one node.
pub struct UserspaceProxy {
    netns: PathBuf,
    node_ip: Ipv4Addr,
    runtime: Option<tokio::runtime::Runtime>,
    /// The interface index of [`DEVICE`].
    device: u32,
    /// What runs, per Service port: exactly what [`Self::applied`] says.
    running: BTreeMap<ServicePortName, Running>,
    /// The table as far as it is applied, for [`ServiceTable::changed`].
    applied: ServiceTable,
    /// The ClusterIPs on [`DEVICE`].
    addresses: BTreeSet<Ipv4Addr>,
    synced: bool,
    dial_timeouts: Arc<[Duration]>,
}

/// One Service port's listeners and balancer.
struct Running {
    info: ServicePortInfo,
    balancer: Arc<Mutex<RoundRobin>>,
    listeners: Vec<Listener>,
}

/// A listener task: dropping `stop` ends it, `done` tells it has ended.
struct Listener {
    stop: Option<oneshot::Sender<()>>,
    done: mpsc::Receiver<()>,
}

impl Listener {
    /// Asks the task to end (it closes its socket and its connections).
    fn signal(&mut self) {
        drop(self.stop.take());
    }

    /// Waits until it has ended, boundedly.
    fn wait(&self) {
        // The sender is dropped when the task ends or is dropped; both
        // mean its sockets are closed.
        let _ = self.done.recv_timeout(STOP_WAIT);
    }
}

/// What a sync does to the Service ports that changed.
#[derive(Default)]
struct Plan {
    stop: Vec<ServicePortName>,
    start: Vec<(ServicePortName, ServicePortInfo)>,
    update: Vec<ServicePortName>,
}

/// A socket bound for a Service port, before tokio has it.
enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl UserspaceProxy {
    // ANCHOR: new
    /// A proxy for the node whose network namespace is bind-mounted at
    /// `netns`, with `node_ip` (its bridge address) for NodePorts. Makes
    /// [`DEVICE`] there, replacing one a crashed proxy left.
    pub fn new(netns: &Path, node_ip: Ipv4Addr) -> Result<Self, ProxyError> {
        let device = netlink(netns, "making the device", |h| async move {
            if let Some(index) = link_index(&h, DEVICE).await? {
                h.link().del(index).execute().await?;
            }
            h.link()
                .add(LinkBridge::new(DEVICE).build())
                .execute()
                .await?;
            let index = link_index(&h, DEVICE)
                .await?
                .ok_or(rtnetlink::Error::RequestFailed)?;
            let up = LinkUnspec::new_with_index(index).up().build();
            h.link().set(up).execute().await?;
            Ok(index)
        })?;
        let runtime = runtime(netns).inspect_err(|_| {
            let _ = delete_device(netns);
        })?;
        Ok(UserspaceProxy {
            netns: netns.to_path_buf(),
            node_ip,
            runtime: Some(runtime),
            device,
            running: BTreeMap::new(),
            applied: ServiceTable::default(),
            addresses: BTreeSet::new(),
            synced: false,
            dial_timeouts: DIAL_TIMEOUTS.into(),
        })
    }
    // ANCHOR_END: new

    /// Replaces [`DIAL_TIMEOUTS`] (one attempt per entry) for the
    /// Service ports opened from now on: a test on a loaded machine, or
    /// a node whose pods answer slowly, wants more patience.
    pub fn with_dial_timeouts(mut self, timeouts: &[Duration]) -> Self {
        self.dial_timeouts = timeouts.into();
        self
    }

    /// The network namespace it proxies in.
    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// The ClusterIPs it has on [`DEVICE`] now.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addresses.iter().copied()
    }

    /// Stops the listeners of `ids`: all are told first, then waited for.
    fn stop(&mut self, ids: &[ServicePortName]) {
        let mut stopped: Vec<Running> = ids
            .iter()
            .filter_map(|id| {
                self.applied.services.remove(id);
                self.applied.endpoints.remove(id);
                self.running.remove(id)
            })
            .collect();
        for r in &mut stopped {
            r.listeners.iter_mut().for_each(Listener::signal);
        }
        for r in &stopped {
            r.listeners.iter().for_each(Listener::wait);
        }
    }

    /// Makes [`DEVICE`] hold exactly `wanted`.
    fn set_addresses(
        &mut self,
        wanted: BTreeSet<Ipv4Addr>,
    ) -> Result<(), ProxyError> {
        let remove: Vec<Ipv4Addr> =
            self.addresses.difference(&wanted).copied().collect();
        let add: Vec<Ipv4Addr> =
            wanted.difference(&self.addresses).copied().collect();
        if remove.is_empty() && add.is_empty() {
            return Ok(());
        }
        let index = self.device;
        let (done, failed) =
            netlink(&self.netns, "changing the ClusterIPs", |h| async move {
                let mut done = Vec::new();
                for ip in remove.iter().copied() {
                    let msg = address(index, ip);
                    match h.address().del(msg).execute().await {
                        Err(e) if errno(&e) != Some(EADDRNOTAVAIL) => {
                            return Ok((done, Some((ip, false, e))));
                        }
                        _ => done.push((ip, false)),
                    }
                }
                for ip in add.iter().copied() {
                    let request = h.address().add(index, ip.into(), 32);
                    match request.execute().await {
                        Err(e) if errno(&e) != Some(EEXIST) => {
                            return Ok((done, Some((ip, true, e))));
                        }
                        _ => done.push((ip, true)),
                    }
                }
                Ok((done, None))
            })?;
        for (ip, added) in done {
            if added {
                self.addresses.insert(ip);
            } else {
                self.addresses.remove(&ip);
            }
        }
        match failed {
            None => Ok(()),
            Some((ip, added, e)) => Err(ProxyError::Io {
                what: format!(
                    "{} {ip}/32 {} {DEVICE} in {}",
                    if added { "adding" } else { "removing" },
                    if added { "to" } else { "from" },
                    self.netns.display()
                ),
                source: io_of(e),
            }),
        }
    }

    /// Binds the sockets of the Service ports `ids` in the node's
    /// namespace, all on one trip there.
    fn bind(
        &self,
        ids: &[(ServicePortName, ServicePortInfo)],
    ) -> Result<Vec<io::Result<Vec<Bound>>>, ProxyError> {
        let node_ip = self.node_ip;
        run_in(&self.netns, || {
            ids.iter()
                .map(|(id, info)| {
                    let mut at =
                        vec![SocketAddrV4::new(info.cluster_ip, info.port)];
                    if let Some(port) = info.node_port {
                        at.push(SocketAddrV4::new(node_ip, port));
                    }
                    at.into_iter()
                        .map(|addr| bind_one(id.protocol, addr))
                        .collect()
                })
                .collect()
        })
        .map_err(|e| ProxyError::Other(e.to_string()))
    }

    /// Starts the listener tasks of one Service port on its sockets.
    fn start(
        &mut self,
        id: &ServicePortName,
        info: &ServicePortInfo,
        table: &ServiceTable,
        sockets: Vec<Bound>,
    ) -> io::Result<()> {
        let runtime = self.runtime.as_ref().ok_or_else(shut_down)?;
        let endpoints = usable(table, id);
        let balancer =
            Arc::new(Mutex::new(RoundRobin::new(endpoints, info.affinity)));
        // from_std registers with the runtime's reactor, which must be
        // the current one.
        let _entered = runtime.enter();
        let mut listeners = Vec::new();
        for socket in sockets {
            let (stop, stopped) = oneshot::channel();
            let (done_tx, done) = mpsc::channel();
            let balancer = balancer.clone();
            match socket {
                Bound::Tcp(l) => {
                    let l = TcpListener::from_std(l)?;
                    let timeouts = self.dial_timeouts.clone();
                    runtime.spawn(serve_tcp(
                        l, balancer, timeouts, stopped, done_tx,
                    ));
                }
                Bound::Udp(s) => {
                    let s = Arc::new(UdpSocket::from_std(s)?);
                    runtime.spawn(serve_udp(s, balancer, stopped, done_tx));
                }
            }
            listeners.push(Listener {
                stop: Some(stop),
                done,
            });
        }
        self.running.insert(
            id.clone(),
            Running {
                info: info.clone(),
                balancer,
                listeners,
            },
        );
        self.record(id, table);
        Ok(())
    }

    /// The ClusterIPs of the running Service ports.
    fn cluster_ips(&self) -> BTreeSet<Ipv4Addr> {
        self.running.values().map(|r| r.info.cluster_ip).collect()
    }

    /// Sorts the changed Service ports: new ones start, deleted ones
    /// stop, and ones whose address or ports changed do both; the rest
    /// keep their sockets and get new endpoints or affinity.
    fn plan(&self, changed: &[ServicePortName], table: &ServiceTable) -> Plan {
        let mut plan = Plan::default();
        for id in changed {
            let old = self.running.get(id).map(|r| &r.info);
            match (old, table.services.get(id)) {
                (Some(old), Some(new)) if same_sockets(old, new) => {
                    plan.update.push(id.clone());
                }
                (old, new) => {
                    if old.is_some() {
                        plan.stop.push(id.clone());
                    }
                    if let Some(new) = new {
                        plan.start.push((id.clone(), new.clone()));
                    }
                }
            }
        }
        plan
    }

    /// Binds and starts the Service ports `start`; answers what failed,
    /// one line each.
    fn open(
        &mut self,
        start: &[(ServicePortName, ServicePortInfo)],
        table: &ServiceTable,
    ) -> Vec<String> {
        if start.is_empty() {
            return Vec::new();
        }
        let bound = match self.bind(start) {
            Ok(bound) => bound,
            Err(e) => return vec![e.to_string()],
        };
        let mut errors = Vec::new();
        for ((id, info), sockets) in start.iter().zip(bound) {
            let started = sockets.and_then(|s| self.start(id, info, table, s));
            if let Err(e) = started {
                errors.push(format!(
                    "{id} ({}:{}): {e}",
                    info.cluster_ip, info.port
                ));
            }
        }
        errors
    }

    // ANCHOR: live
    /// Gives the balancers of `ids` their new endpoints and affinity, in
    /// place: connections they already made are not touched.
    fn update_live(&mut self, ids: &[ServicePortName], table: &ServiceTable) {
        let now = Instant::now();
        for id in ids {
            let (Some(r), Some(info)) =
                (self.running.get_mut(id), table.services.get(id))
            else {
                continue;
            };
            r.info = info.clone();
            let mut balancer = lock(&r.balancer);
            balancer.set_affinity(info.affinity);
            balancer.set_endpoints(usable(table, id));
            balancer.sweep(now);
            drop(balancer);
            self.record(id, table);
        }
    }
    // ANCHOR_END: live

    /// Notes that `id` now runs as `table` has it.
    fn record(&mut self, id: &ServicePortName, table: &ServiceTable) {
        if let Some(info) = table.services.get(id) {
            self.applied.services.insert(id.clone(), info.clone());
        }
        let endpoints = table.endpoints.get(id).cloned().unwrap_or_default();
        self.applied.endpoints.insert(id.clone(), endpoints);
    }
}

impl Proxier for UserspaceProxy {
    fn mode(&self) -> &'static str {
        "userspace"
    }

    // ANCHOR: sync
    /// Opens and closes listeners only for the Service ports that
    /// changed; for those whose sockets stay (only endpoints or affinity
    /// changed) the balancer is updated in place and no connection drops.
    fn sync(&mut self, table: &ServiceTable) -> Result<SyncReport, ProxyError> {
        if self.runtime.is_none() {
            return Err(ProxyError::Io {
                what: format!("syncing in {}", self.netns.display()),
                source: shut_down(),
            });
        }
        let changed = self.applied.changed(table);
        let plan = self.plan(&changed, table);
        self.stop(&plan.stop);
        // Addresses first: a socket binds only to an address that is there.
        let mut wanted = self.cluster_ips();
        wanted.extend(plan.start.iter().map(|(_, info)| info.cluster_ip));
        self.set_addresses(wanted)?;
        let errors = self.open(&plan.start, table);
        self.update_live(&plan.update, table);
        if !errors.is_empty() {
            // Nothing half-made stays: an address whose ports all failed
            // goes again, and the next sync retries them.
            self.set_addresses(self.cluster_ips())?;
            return Err(ProxyError::Other(format!(
                "the userspace proxy could not open {} Service port(s): {}",
                errors.len(),
                errors.join("; ")
            )));
        }
        let full = !self.synced;
        self.synced = true;
        Ok(SyncReport {
            changed: changed.len(),
            full,
        })
    }
    // ANCHOR_END: sync

    /// Closes every listener and connection, deletes [`DEVICE`] (and so
    /// every ClusterIP) and stops the runtime. A second call does nothing.
    fn shutdown(&mut self) -> Result<(), ProxyError> {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        let ids: Vec<ServicePortName> = self.running.keys().cloned().collect();
        self.stop(&ids);
        let deleted = delete_device(&self.netns);
        self.addresses.clear();
        // Dropping a runtime blocks, which a caller on another runtime's
        // thread may not do; there we let it end in the background.
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.shutdown_background();
        } else {
            runtime.shutdown_timeout(STOP_WAIT);
        }
        deleted
    }
}

impl Drop for UserspaceProxy {
    fn drop(&mut self) {
        // Best effort: the caller that wanted errors called shutdown.
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for UserspaceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserspaceProxy")
            .field("netns", &self.netns)
            .field("node_ip", &self.node_ip)
            .field("ports", &self.running.keys().collect::<Vec<_>>())
            .field("addresses", &self.addresses)
            .finish()
    }
}

/// Whether a change from `old` to `new` keeps the same sockets.
fn same_sockets(old: &ServicePortInfo, new: &ServicePortInfo) -> bool {
    (old.cluster_ip, old.port, old.node_port)
        == (new.cluster_ip, new.port, new.node_port)
}

/// The usable endpoints of `id` as socket addresses.
fn usable(table: &ServiceTable, id: &ServicePortName) -> Vec<SocketAddrV4> {
    table
        .usable(id)
        .iter()
        .map(|e| SocketAddrV4::new(e.ip, e.port))
        .collect()
}

/// The balancer, also after a panic in another task held it.
fn lock(b: &Mutex<RoundRobin>) -> MutexGuard<'_, RoundRobin> {
    b.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shut_down() -> io::Error {
    io::Error::other("the proxy has been shut down")
}

/// Binds one socket, on the calling thread (one in the node's namespace).
fn bind_one(protocol: Protocol, addr: SocketAddrV4) -> io::Result<Bound> {
    let what = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("binding {addr}/{}: {e}", protocol.as_str()),
        )
    };
    let kind = match protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let socket = Socket::new(Domain::IPV4, kind, None).map_err(what)?;
    // A listener closed a moment ago leaves connections in TIME_WAIT on
    // its port; a Service that comes back must bind it again at once.
    socket.set_reuse_address(true).map_err(what)?;
    socket.set_nonblocking(true).map_err(what)?;
    socket.bind(&SocketAddr::V4(addr).into()).map_err(what)?;
    Ok(match protocol {
        Protocol::Tcp => {
            socket.listen(BACKLOG).map_err(what)?;
            Bound::Tcp(socket.into())
        }
        Protocol::Udp => Bound::Udp(socket.into()),
    })
}

/// The proxy's runtime, whose threads all enter the node's namespace.
fn runtime(netns: &Path) -> Result<tokio::runtime::Runtime, ProxyError> {
    let file = File::open(netns).map_err(|source| ProxyError::Io {
        what: format!("opening the network namespace {}", netns.display()),
        source,
    })?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("kube-proxy")
        .enable_io()
        .enable_time()
        .on_thread_start(move || {
            // A thread that fails to enter stays marked as outside, and
            // makes no socket to an endpoint (see `dial`).
            let entered = setns(&file, CloneFlags::CLONE_NEWNET).is_ok();
            IN_NODE_NETNS.with(|c| c.set(entered));
        })
        .build()
        .map_err(|source| ProxyError::Io {
            what: "starting the proxy's runtime".into(),
            source,
        })
}

/// A new socket in the node's namespace, connecting to `endpoint`.
fn dial(
    endpoint: SocketAddrV4,
) -> io::Result<impl Future<Output = io::Result<TcpStream>>> {
    if !IN_NODE_NETNS.with(|c| c.get()) {
        return Err(io::Error::other("not in the node's network namespace"));
    }
    // Made now, on this thread; connecting may finish on another.
    let socket = TcpSocket::new_v4()?;
    Ok(socket.connect(endpoint.into()))
}

// ANCHOR: connect
/// A connection to an endpoint for `client`: the balancer's pick, then
/// its next pick each time a connect fails, with a longer timeout each
/// time. `None` when there is no endpoint or none answered.
async fn connect(
    balancer: &Mutex<RoundRobin>,
    client: Ipv4Addr,
    timeouts: &[Duration],
) -> Option<TcpStream> {
    for &timeout in timeouts {
        let endpoint = lock(balancer).pick(client, Instant::now())?;
        let attempt = async { dial(endpoint)?.await };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(stream)) => return Some(stream),
            // Refused, unreachable or too slow: forget the client's
            // session there and let the balancer move on.
            _ => lock(balancer).failed(client, endpoint),
        }
    }
    None
}
// ANCHOR_END: connect

/// A client's IPv4 address (the proxy listens on IPv4 only).
fn client_ip(peer: SocketAddr) -> Ipv4Addr {
    match peer {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(a) => {
            a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)
        }
    }
}

/// One TCP listener: accepts until told to stop, then closes its open
/// connections (a deleted Service takes them along) and ends.
async fn serve_tcp(
    listener: TcpListener,
    balancer: Arc<Mutex<RoundRobin>>,
    timeouts: Arc<[Duration]>,
    mut stop: oneshot::Receiver<()>,
    done: mpsc::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let balancer = balancer.clone();
                    let timeouts = timeouts.clone();
                    connections.spawn(async move {
                        let ip = client_ip(peer);
                        let endpoint = connect(&balancer, ip, &timeouts).await;
                        if let Some(endpoint) = endpoint {
                            splice(client, endpoint).await;
                        }
                    });
                }
                // Out of descriptors, or the client gave up: pause
                // rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
    drop(done);
}

/// Copies both ways until both sides are done (or one fails).
async fn splice(mut client: TcpStream, mut endpoint: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = endpoint.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut endpoint).await;
}

/// A UDP client's socket to its endpoint and when it was last used.
struct Association {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

/// One UDP socket of a Service port: each client address gets its own
/// socket to an endpoint, whose replies go back from the Service's
/// address, until nothing has passed for [`UDP_IDLE_TIMEOUT`].
async fn serve_udp(
    socket: Arc<UdpSocket>,
    balancer: Arc<Mutex<RoundRobin>>,
    mut stop: oneshot::Receiver<()>,
    done: mpsc::Sender<()>,
) {
    let mut clients: HashMap<SocketAddr, Association> = HashMap::new();
    let mut replies = JoinSet::new();
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            // ANCHOR: udp
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let a = match clients.entry(from) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => {
                        let Some(a) = associate(&balancer, from).await else {
                            continue;
                        };
                        replies.spawn(relay_replies(
                            from,
                            a.upstream.clone(),
                            socket.clone(),
                            a.last.clone(),
                        ));
                        new.insert(a)
                    }
                };
                *a.last.lock().unwrap_or_else(PoisonError::into_inner) =
                    Instant::now();
                let _ = a.upstream.send(&buf[..n]).await;
            }
            // ANCHOR_END: udp
            Some(ended) = replies.join_next(), if !replies.is_empty() => {
                if let Ok(client) = ended {
                    clients.remove(&client);
                }
            }
        }
    }
    drop(clients);
    replies.shutdown().await;
    drop(done);
}

/// A socket connected to the endpoint the balancer picks for `client`.
async fn associate(
    balancer: &Mutex<RoundRobin>,
    client: SocketAddr,
) -> Option<Association> {
    let endpoint = lock(balancer).pick(client_ip(client), Instant::now())?;
    if !IN_NODE_NETNS.with(|c| c.get()) {
        return None;
    }
    // Made now, on this thread (one in the node's namespace).
    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let upstream = std::net::UdpSocket::bind(any).ok()?;
    upstream.set_nonblocking(true).ok()?;
    let upstream = UdpSocket::from_std(upstream).ok()?;
    upstream.connect(SocketAddr::V4(endpoint)).await.ok()?;
    Some(Association {
        upstream: Arc::new(upstream),
        last: Arc::new(Mutex::new(Instant::now())),
    })
}

/// Sends the endpoint's replies to `client` from the Service's socket;
/// ends when the association has been idle, and answers whose it was.
async fn relay_replies(
    client: SocketAddr,
    upstream: Arc<UdpSocket>,
    service: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
) -> SocketAddr {
    let idle = || {
        last.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    };
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let wait = UDP_IDLE_TIMEOUT.saturating_sub(idle());
        match tokio::time::timeout(wait, upstream.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                *last.lock().unwrap_or_else(PoisonError::into_inner) =
                    Instant::now();
                let _ = service.send_to(&buf[..n], client).await;
            }
            // The endpoint refused (ICMP port unreachable): done.
            Ok(Err(_)) => break,
            Err(_) if idle() >= UDP_IDLE_TIMEOUT => break,
            Err(_) => {}
        }
    }
    client
}

/// Runs `f` with a netlink handle in the namespace `netns` (lab03's
/// netlink thread), naming [`DEVICE`] when it fails.
fn netlink<T, F, Fut>(netns: &Path, what: &str, f: F) -> Result<T, ProxyError>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, rtnetlink::Error>>,
{
    let what = format!("{what} ({DEVICE})");
    lab03::network::netlink_in(netns, &what, f).map_err(|e| match e {
        lab03::network::NetworkError::Netlink {
            what,
            netns,
            source,
        } => ProxyError::Io {
            what: format!("{what} in {}", netns.display()),
            source,
        },
        other => ProxyError::Other(other.to_string()),
    })
}

/// Deletes [`DEVICE`] in `netns`, and with it every ClusterIP.
fn delete_device(netns: &Path) -> Result<(), ProxyError> {
    netlink(netns, "deleting the device", |h| async move {
        if let Some(index) = link_index(&h, DEVICE).await? {
            match h.link().del(index).execute().await {
                Err(e) if errno(&e) != Some(ENODEV) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
}

/// `ip/32` on interface `index`, as a delete request wants it.
fn address(index: u32, ip: Ipv4Addr) -> AddressMessage {
    AddressMessageBuilder::<Ipv4Addr>::new()
        .index(index)
        .address(ip, 32)
        .build()
}

const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
const EADDRNOTAVAIL: i32 = nix::errno::Errno::EADDRNOTAVAIL as i32;
