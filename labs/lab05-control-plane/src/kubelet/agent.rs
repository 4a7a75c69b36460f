//! [`NodeAgent`]: registration, heartbeat, and the sync loop that runs
//! the node's pods through lab03's [`Workers`].
//!
//! Three threads of its own, and the informer's:
//! - the heartbeat renews the Lease and writes the Node's status when it
//!   changed (or every `status_report_frequency`);
//! - the pods informer watches `pods?fieldSelector=spec.nodeName=<self>`
//!   and wakes the sync loop on each change;
//! - the sync loop owns the workers: it starts one per pod bound to the
//!   node, terminates the deleted ones with their grace period, writes
//!   each pod's status through `pods/status` when it changed, posts its
//!   events, and finally deletes a terminated pod with grace 0 and a uid
//!   precondition, as the kubelet's status manager does;
//! - the log server answers the API server's `pods/log`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{
    Node, NodeStatus, ObjectReference, Pod, PodStatus,
};
use lab03::backoff::BackoffPolicy;
use lab03::cri::{
    ContainerEvent, ImageService, PodSandboxFilter, RuntimeService,
};
use lab03::kubelet::{
    NodeLayout, PodEnvironment, PodWorker, WorkerOptions, Workers,
};
use serde_json::{json, Value};

use super::logs::{ContainerLogs, LogIndex, PodLogs};
use super::node::{self, Health, Identity, Resources};
use super::server::{AgentServer, Served};
use super::{lease, static_pods};
use crate::client::{Client, ClientError};
use crate::events::Recorder;
use crate::informer::{key_of, Cache, Change, Informer};

/// The runtime the agent drives, through the CRI's two services.
#[derive(Clone)]
pub struct Cri {
    pub runtime: Arc<dyn RuntimeService>,
    pub images: Arc<dyn ImageService>,
}

impl Cri {
    /// One object serving both (lab03's `LinuxRuntime`, or its fake).
    pub fn of<R: RuntimeService + ImageService + 'static>(r: Arc<R>) -> Cri {
        Cri {
            runtime: r.clone(),
            images: r,
        }
    }
}

/// How a node agent runs.
#[derive(Clone)]
pub struct AgentConfig {
    pub name: String,
    /// The node's address on the cluster network: its InternalIP, where
    /// the log server listens.
    pub node_ip: Ipv4Addr,
    /// `198.18.1.0/24`: the node's `spec.podCIDR`.
    pub pod_cidr: String,
    /// Where pods' logs and volumes go (`logs/`, `pods/` beneath it).
    pub data_dir: PathBuf,
    /// Static pods' manifests (the kubelet's `staticPodPath`).
    pub manifests: Option<PathBuf>,
    /// The log server's port (the kubelet's 10250; 0: any free one).
    pub port: u16,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
    /// How often the status is computed (the kubelet's
    /// `nodeStatusUpdateFrequency`, 10 s); written only if it changed.
    pub status_update_frequency: Duration,
    /// How often it is written even if unchanged
    /// (`nodeStatusReportFrequency`, 5 min).
    pub status_report_frequency: Duration,
    /// How often the manifest directory is read (`fileCheckFrequency`,
    /// 20 s).
    pub file_check_frequency: Duration,
    /// The containers' restart back-off.
    pub backoff: BackoffPolicy,
    /// What pods learn of the cluster: Services' variables and the
    /// cluster DNS in their resolv.conf (lab04's, fed by the node's
    /// informers); `None`: neither.
    pub environment: Option<Arc<dyn PodEnvironment>>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("name", &self.name)
            .field("node_ip", &self.node_ip)
            .field("pod_cidr", &self.pod_cidr)
            .field("data_dir", &self.data_dir)
            .field("manifests", &self.manifests)
            .field("port", &self.port)
            .field("environment", &self.environment.is_some())
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// The kubelet's defaults, on port 10250.
    pub fn new(
        name: &str,
        node_ip: Ipv4Addr,
        pod_cidr: &str,
        data_dir: PathBuf,
    ) -> AgentConfig {
        AgentConfig {
            name: name.to_string(),
            node_ip,
            pod_cidr: pod_cidr.to_string(),
            data_dir,
            manifests: None,
            port: 10250,
            lease_duration: lease::LEASE_DURATION,
            renew_interval: lease::RENEW_INTERVAL,
            status_update_frequency: Duration::from_secs(10),
            status_report_frequency: Duration::from_secs(300),
            file_check_frequency: Duration::from_secs(20),
            backoff: BackoffPolicy::KUBELET,
            environment: None,
        }
    }

    /// Where lab03's workers keep logs and volumes.
    pub fn layout(&self) -> NodeLayout {
        NodeLayout::under(&self.data_dir.join("kubelet"))
    }
}

/// Why the agent could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("node {node}: registering with the API server: {source}")]
    Register {
        node: String,
        #[source]
        source: ClientError,
    },
    #[error("node {node}: serving container logs on {addr}: {source}")]
    Serve {
        node: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node}: {what}: {source}")]
    Io {
        node: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("node {node}: {pods} pod(s) still stopping after {waited:?}")]
    StopTimeout {
        node: String,
        pods: usize,
        waited: Duration,
    },
}

/// What wakes the sync loop.
enum Wake {
    /// The pods informer saw a change.
    Api,
    Runtime(ContainerEvent),
    /// A worker's job (pull, stop, probe) is done.
    Job(String),
    /// Stop every pod, answer how many were left, and end.
    Stop(Duration, Sender<usize>),
}

/// A running node agent; [`NodeAgent::stop`] stops its pods and threads.
pub struct NodeAgent {
    name: String,
    node: Arc<Node>,
    wake: Sender<Wake>,
    beat_stop: Sender<()>,
    threads: Vec<JoinHandle<()>>,
    informer: Option<Informer<Pod>>,
    server: Option<AgentServer>,
}

impl NodeAgent {
    // ANCHOR: start
    /// Registers the node (or takes over the Node of its name), starts
    /// the heartbeat, the log server, the pods informer and the sync loop.
    pub fn start(
        client: Client,
        config: AgentConfig,
        cri: Cri,
    ) -> Result<NodeAgent, AgentError> {
        let name = config.name.clone();
        let io = |what: &'static str| {
            let node = name.clone();
            move |source| AgentError::Io {
                node: node.clone(),
                what,
                source,
            }
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io("making its data directory"))?;
        let index = LogIndex::default();
        let addr = SocketAddr::from((config.node_ip, config.port));
        let served = Served {
            index: index.clone(),
            runtime: cri.runtime.clone(),
        };
        let server = AgentServer::start(addr, served).map_err(|source| {
            AgentError::Serve {
                node: name.clone(),
                addr,
                source,
            }
        })?;
        let id = Identity {
            name: name.clone(),
            node_ip: config.node_ip,
            pod_cidr: config.pod_cidr.clone(),
            port: server.addr().port(),
            runtime_version: {
                let v = cri.runtime.version();
                format!("{}://{}", v.runtime_name, v.runtime_version)
            },
        };
        let resources = Resources::measure(&config.data_dir);
        let health = health_of(&cri);
        let node =
            register(&client, &id, &resources, &health).map_err(|source| {
                AgentError::Register {
                    node: name.clone(),
                    source,
                }
            })?;
        let node = Arc::new(node);
        let (beat_stop, beat_rx) = channel();
        let heartbeat = Heartbeat {
            client: client.clone(),
            config: config.clone(),
            id,
            resources,
            cri: cri.clone(),
            node: node.clone(),
            last: node.status.clone().unwrap_or_default(),
        };
        let mut threads = vec![std::thread::Builder::new()
            .name("kubelet-heartbeat".into())
            .spawn(move || heartbeat.run(beat_rx))
            .map_err(io("starting the heartbeat"))?];
        let (wake, rx) = channel();
        let events = cri.runtime.events();
        let tx = wake.clone();
        threads.push(
            std::thread::Builder::new()
                .name("kubelet-pleg".into())
                .spawn(move || {
                    for e in events {
                        if tx.send(Wake::Runtime(e)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(io("starting the runtime's event reader"))?,
        );
        let tx = wake.clone();
        let query = format!("fieldSelector=spec.nodeName%3D{name}");
        let informer = Informer::<Pod>::start(
            client.clone(),
            None,
            &query,
            move |_: &Change<Pod>| {
                let _ = tx.send(Wake::Api);
            },
        );
        let mut options = WorkerOptions::new(config.layout());
        options.backoff = config.backoff;
        options.host_ip = Some(config.node_ip);
        options.environment = config.environment.clone();
        let tx = wake.clone();
        options.waker = Arc::new(move |uid: &str| {
            let _ = tx.send(Wake::Job(uid.to_string()));
        });
        let sync = SyncLoop {
            recorder: Recorder::new(client.clone(), "kubelet", Some(&name)),
            client,
            name: name.clone(),
            cri,
            options,
            workers: Workers::new(),
            pods: informer.cache(),
            node: node.clone(),
            index,
            manifests: config.manifests.clone(),
            file_check: config.file_check_frequency,
            statics: BTreeMap::new(),
            written: HashMap::new(),
            posted: HashMap::new(),
            finalized: BTreeSet::new(),
            mirror_tried: HashMap::new(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("kubelet-sync".into())
                .spawn(move || sync.run(rx))
                .map_err(io("starting the sync loop"))?,
        );
        Ok(NodeAgent {
            name,
            node,
            wake,
            beat_stop,
            threads,
            informer: Some(informer),
            server: Some(server),
        })
    }
    // ANCHOR_END: start

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Node as registered.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where the log server listens.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(AgentServer::addr)
    }

    /// Stops every pod (each with its grace period, `within` at most),
    /// then the agent's threads. The pods' objects stay in the API, as a
    /// kubelet that stops leaves them.
    pub fn stop(mut self, within: Duration) -> Result<(), AgentError> {
        let (tx, rx) = channel();
        let left = match self.wake.send(Wake::Stop(within, tx)) {
            Ok(()) => rx
                .recv_timeout(within + Duration::from_secs(5))
                .unwrap_or(0),
            Err(_) => 0,
        };
        self.shut();
        if left > 0 {
            return Err(AgentError::StopTimeout {
                node: self.name.clone(),
                pods: left,
                waited: within,
            });
        }
        Ok(())
    }

    fn shut(&mut self) {
        let _ = self.beat_stop.send(());
        if let Some(i) = self.informer.take() {
            i.stop();
        }
        self.server.take();
        // The runtime's event reader ends with the runtime; the others now.
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.threads)
            .into_iter()
            .partition(|t| t.thread().name() != Some("kubelet-pleg"));
        for t in done {
            let _ = t.join();
        }
        drop(rest);
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let (tx, _rx) = channel();
            let _ = self.wake.send(Wake::Stop(Duration::ZERO, tx));
            self.shut();
        }
    }
}

/// What the agent knows of its health: a runtime that does not answer
/// is down.
fn health_of(cri: &Cri) -> Health {
    Health {
        runtime_error: cri
            .runtime
            .list_pod_sandbox(&PodSandboxFilter::default())
            .err()
            .map(|e| format!("container runtime is down: {e}")),
        ..Health::default()
    }
}

// ANCHOR: register
/// Creates the Node; if one of that name exists, takes it over (a node
/// agent restarted, or the Node made by hand) and writes its status.
fn register(
    client: &Client,
    id: &Identity,
    resources: &Resources,
    health: &Health,
) -> Result<Node, ClientError> {
    let now = SystemTime::now();
    let wanted = node::node(id, resources, health, now);
    let node = match client.create(None, &wanted) {
        Ok(n) => n,
        Err(e) if e.code() == Some(409) => {
            let old: Node = client.get(None, &id.name)?;
            let spec_cidr = old.spec.as_ref().and_then(|s| s.pod_cidr.clone());
            if spec_cidr.is_none() {
                let cidr = &id.pod_cidr;
                let patch =
                    json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                client.patch::<Node>(
                    None,
                    &id.name,
                    crate::client::Patch::Merge,
                    &patch,
                )?;
            }
            old
        }
        Err(e) => return Err(e),
    };
    let old = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let status = node::status(id, resources, health, &old, now);
    patch_node_status(client, &id.name, &status)
}
// ANCHOR_END: register

/// A strategic merge patch of the node's status (conditions and
/// addresses merge by their type, as the kubelet's patches do).
fn patch_node_status(
    client: &Client,
    name: &str,
    status: &NodeStatus,
) -> Result<Node, ClientError> {
    let body = serde_json::to_vec(&json!({ "status": status }))
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let path = format!("/api/v1/nodes/{name}/status");
    let value = client.request(
        "PATCH",
        &path,
        Some(("application/strategic-merge-patch+json", body)),
    )?;
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        url: path,
        reason: e.to_string(),
    })
}

/// The heartbeat thread's state.
struct Heartbeat {
    client: Client,
    config: AgentConfig,
    id: Identity,
    resources: Resources,
    cri: Cri,
    node: Arc<Node>,
    last: NodeStatus,
}

impl Heartbeat {
    fn run(mut self, stop: Receiver<()>) {
        let (mut next_renew, mut next_status) =
            (Instant::now(), Instant::now());
        let mut last_report = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_renew {
                let renewed = lease::renew(
                    &self.client,
                    &self.node,
                    self.config.lease_duration,
                    SystemTime::now(),
                );
                if let Err(e) = renewed {
                    eprintln!("node {}: renewing its lease: {e}", self.id.name);
                }
                next_renew = now + self.config.renew_interval;
            }
            if now >= next_status {
                self.report(&mut last_report);
                next_status = now + self.config.status_update_frequency;
            }
            let wait = next_renew
                .min(next_status)
                .saturating_duration_since(Instant::now());
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    // ANCHOR: heartbeat
    /// The node's status now; written if it changed since the last write
    /// (heartbeat times aside), or if the last write is older than
    /// `status_report_frequency`.
    fn report(&mut self, last_report: &mut Instant) {
        // Compared with the Node as the server has it, as the kubelet's
        // tryUpdateNodeStatus does: someone else (the node lifecycle
        // controller marking it Unknown) may have changed it since.
        if let Ok(node) = self.client.get::<Node>(None, &self.id.name) {
            if let Some(status) = node.status {
                self.last = status;
            }
        }
        let old = self.last.conditions.clone().unwrap_or_default();
        let health = health_of(&self.cri);
        let now = SystemTime::now();
        let status =
            node::status(&self.id, &self.resources, &health, &old, now);
        let due = last_report.elapsed() >= self.config.status_report_frequency;
        if !node::changed(&self.last, &status) && !due {
            return;
        }
        match patch_node_status(&self.client, &self.id.name, &status) {
            Ok(_) => {
                self.last = status;
                *last_report = Instant::now();
            }
            Err(e) => {
                eprintln!("node {}: updating its status: {e}", self.id.name)
            }
        }
    }
    // ANCHOR_END: heartbeat
}

/// The sync loop's state: the workers and what it last told the API.
struct SyncLoop {
    client: Client,
    recorder: Recorder,
    name: String,
    cri: Cri,
    options: WorkerOptions,
    workers: Workers,
    pods: Cache<Pod>,
    node: Arc<Node>,
    index: LogIndex,
    manifests: Option<PathBuf>,
    file_check: Duration,
    /// The static pods read from the manifest directory, by uid.
    statics: BTreeMap<String, Pod>,
    /// The status last written for each worker, by uid.
    written: HashMap<String, Value>,
    /// The last event (its sequence number) posted for each worker.
    posted: HashMap<String, u64>,
    /// API pods deleted for good (their last delete sent).
    finalized: BTreeSet<String>,
    /// When a mirror pod was last created, by static pod uid.
    mirror_tried: HashMap<String, Instant>,
}

/// The grace period a deletion asked for.
fn deletion_grace(pod: &Pod) -> Option<Duration> {
    pod.metadata
        .deletion_grace_period_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn ns_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl SyncLoop {
    fn run(mut self, rx: Receiver<Wake>) {
        const RELIST: Duration = Duration::from_secs(1);
        let mut last_all = Instant::now();
        let mut next_file_check = Instant::now();
        loop {
            let now = SystemTime::now();
            let wait = self
                .workers
                .next_wake()
                .map_or(RELIST, |t| t.duration_since(now).unwrap_or_default())
                .min(RELIST)
                .min(next_file_check.saturating_duration_since(Instant::now()));
            let mut wakes: Vec<Wake> = match rx.recv_timeout(wait) {
                Ok(w) => vec![w],
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            wakes.extend(rx.try_iter());
            // ANCHOR: sync_loop
            let mut api = false;
            for w in wakes {
                match w {
                    Wake::Api => api = true,
                    Wake::Runtime(e) => self.workers.handle(&e),
                    Wake::Job(uid) => self.workers.sync(&uid),
                    Wake::Stop(within, done) => {
                        let _ = done.send(self.stop_all(within));
                        return;
                    }
                }
            }
            if Instant::now() >= next_file_check {
                self.read_manifests();
                next_file_check = Instant::now() + self.file_check;
            }
            if api || last_all.elapsed() >= RELIST {
                self.reconcile();
            }
            let all = last_all.elapsed() >= RELIST;
            if all {
                last_all = Instant::now();
            }
            // Each pod's status goes out as soon as its worker has
            // synced, as the kubelet's status manager does: a burst of
            // new pods shows them started one by one, not all at the end.
            for uid in self.workers.due(SystemTime::now(), all) {
                self.workers.sync(&uid);
                self.publish(&uid);
            }
            for done in self.workers.take_terminated() {
                self.finish(&done);
            }
            self.publish_all();
            // ANCHOR_END: sync_loop
        }
    }

    fn new_worker(&mut self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let made = PodWorker::new(
            pod,
            self.cri.runtime.clone(),
            self.cri.images.clone(),
            self.options.clone(),
        );
        match made {
            Ok(w) => {
                // Added is synced once: its status goes out now, before
                // the next new pod is started.
                self.workers.add(w);
                self.publish(&uid);
            }
            Err(e) => eprintln!("node {}: pod {uid}: {e}", self.name),
        }
    }

    // ANCHOR: reconcile
    /// The API's pods against the workers: start the new, terminate the
    /// deleted (with the deletion's grace period), and those gone from
    /// the API altogether.
    fn reconcile(&mut self) {
        let api = self.pods.list();
        let mut seen = BTreeSet::new();
        for pod in &api {
            if static_pods::mirror_of(pod).is_some() {
                continue;
            }
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            seen.insert(uid.clone());
            let deleting = pod.metadata.deletion_timestamp.is_some();
            match self.workers.get(&uid) {
                None if deleting => {
                    // Never ran here, or already stopped: nothing to wait for.
                    self.delete_for_good(pod);
                }
                None if is_terminal(pod) => {}
                None => self.new_worker((**pod).clone()),
                Some(w) if deleting && !w.is_terminating() => {
                    self.workers.terminate(&uid, deletion_grace(pod));
                }
                Some(_) => {}
            }
        }
        // ANCHOR_END: reconcile
        let orphans: Vec<String> = self
            .workers
            .iter()
            .map(|w| w.uid().to_string())
            .filter(|uid| {
                !seen.contains(uid) && !self.statics.contains_key(uid)
            })
            .collect();
        for uid in orphans {
            if !self
                .workers
                .get(&uid)
                .is_some_and(PodWorker::is_terminating)
            {
                self.workers.terminate(&uid, None);
            }
        }
    }

    /// The last delete of a pod the node is done with: grace 0, and only
    /// that pod (a new one of the same name is another uid).
    fn delete_for_good(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if !self.finalized.insert(uid.clone()) {
            return;
        }
        let (ns, name) = ns_name(pod);
        let options =
            json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
        match self.client.delete::<Pod>(Some(&ns), &name, Some(&options)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => {
                eprintln!("node {}: deleting pod {ns}/{name}: {e}", self.name);
                self.finalized.remove(&uid);
            }
        }
    }

    /// The manifest directory now: new static pods start, gone ones stop.
    fn read_manifests(&mut self) {
        let Some(dir) = self.manifests.clone() else {
            return;
        };
        let (pods, problems) = static_pods::read_dir(&dir, &self.name);
        for p in problems {
            eprintln!("node {}: static pod: {p}", self.name);
        }
        for (uid, pod) in &pods {
            if !self.statics.contains_key(uid) {
                self.new_worker(pod.clone());
            }
        }
        let gone: Vec<String> = self
            .statics
            .keys()
            .filter(|u| !pods.contains_key(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.workers.terminate(&uid, None);
        }
        // The gone ones stay known until their workers are done.
        for (uid, pod) in pods {
            self.statics.insert(uid, pod);
        }
    }

    /// A worker is done: its pod is gone from the node.
    fn finish(&mut self, done: &PodWorker) {
        let uid = done.uid().to_string();
        let (ns, name) = ns_name(done.pod());
        self.index.set(&ns, &name, None);
        self.written.remove(&uid);
        self.posted.remove(&uid);
        if self.statics.remove(&uid).is_some() {
            // A static pod whose file went: its mirror pod goes too.
            if let Some(mirror) = self.mirror(&ns, &name, &uid) {
                self.delete_for_good(&mirror);
            }
            return;
        }
        let key = format!("{ns}/{name}");
        if let Some(pod) = self
            .pods
            .get(&key)
            .filter(|p| p.metadata.uid.as_deref() == Some(&uid))
        {
            // Its last status (a terminal phase), then the last delete.
            let status = done.status();
            self.write_status(&pod, &uid, &status);
            if pod.metadata.deletion_timestamp.is_some() {
                self.delete_for_good(&pod);
            }
        }
    }

    /// The API's mirror pod of static pod `uid`, if there is one.
    fn mirror(&self, ns: &str, name: &str, uid: &str) -> Option<Arc<Pod>> {
        self.pods
            .get(&format!("{ns}/{name}"))
            .filter(|p| static_pods::mirror_of(p) == Some(uid))
    }

    fn publish_all(&mut self) {
        let uids: Vec<String> =
            self.workers.iter().map(|w| w.uid().to_string()).collect();
        for uid in uids {
            self.publish(&uid);
        }
    }

    /// Tells the API (and the log server) what one worker knows.
    fn publish(&mut self, uid: &str) {
        let Some(w) = self.workers.get(uid) else {
            return;
        };
        let status = w.status();
        let (ns, name) = ns_name(w.pod());
        self.index.set(
            &ns,
            &name,
            Some(pod_logs(&self.options.layout, &ns, &name, uid, &status)),
        );
        let target = if self.statics.contains_key(uid) {
            match self.mirror(&ns, &name, uid) {
                Some(m) => Some(m),
                None => {
                    self.ensure_mirror(uid);
                    None
                }
            }
        } else {
            self.pods
                .get(&format!("{ns}/{name}"))
                .filter(|p| p.metadata.uid.as_deref() == Some(uid))
        };
        let Some(target) = target else {
            return;
        };
        self.write_status(&target, uid, &status);
        self.post_events(&target, uid);
    }

    /// Creates a static pod's mirror pod (again, if it was deleted).
    fn ensure_mirror(&mut self, uid: &str) {
        if self
            .mirror_tried
            .get(uid)
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
        {
            return;
        }
        let Some(pod) = self.statics.get(uid) else {
            return;
        };
        self.mirror_tried.insert(uid.to_string(), Instant::now());
        let (ns, name) = ns_name(pod);
        // A pod of that name that is not this one's mirror is in the way.
        if let Some(other) = self.pods.get(&format!("{ns}/{name}")) {
            if static_pods::mirror_of(&other).is_some() {
                self.delete_for_good(&other);
            }
            return;
        }
        let mirror = static_pods::mirror_pod(pod, &self.node);
        if let Err(e) = self.client.create(Some(&ns), &mirror) {
            if e.code() != Some(409) {
                eprintln!(
                    "node {}: creating mirror pod {ns}/{name}: {e}",
                    self.name
                );
            }
        }
    }

    // ANCHOR: write_status
    /// Writes a pod's status through `pods/status` if it changed since
    /// the last write: a merge patch of the whole status, with the
    /// fields it no longer has set to null.
    fn write_status(&mut self, pod: &Pod, uid: &str, status: &PodStatus) {
        let Ok(new) = serde_json::to_value(status) else {
            return;
        };
        if self.written.get(uid) == Some(&new) {
            return;
        }
        let mut patch = new.clone();
        let old = self.written.get(uid).cloned().or_else(|| {
            pod.status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
        });
        if let (Some(Value::Object(old)), Value::Object(p)) = (old, &mut patch)
        {
            for key in old.keys() {
                p.entry(key.clone()).or_insert(Value::Null);
            }
        }
        let (ns, name) = ns_name(pod);
        let body =
            json!({"metadata": {"uid": pod.metadata.uid}, "status": patch});
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        let sent = self.client.request(
            "PATCH",
            &path,
            Some((
                "application/merge-patch+json",
                body.to_string().into_bytes(),
            )),
        );
        match sent {
            Ok(_) => {
                self.written.insert(uid.to_string(), new);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                eprintln!("node {}: status of pod {ns}/{name}: {e}", self.name)
            }
        }
    }
    // ANCHOR_END: write_status

    /// Posts the worker's events that are new since the last post.
    fn post_events(&mut self, pod: &Pod, uid: &str) {
        let Some(w) = self.workers.get(uid) else {
            return;
        };
        let last = self.posted.get(uid).copied().unwrap_or(0);
        let (ns, name) = ns_name(pod);
        let mut newest = last;
        for e in w.events().list().iter().filter(|e| e.seq > last) {
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                field_path: e.field_path.clone(),
                ..ObjectReference::default()
            };
            self.recorder.event(
                &reference,
                e.type_.as_str(),
                &e.reason,
                &e.message,
            );
            newest = newest.max(e.seq);
        }
        self.posted.insert(uid.to_string(), newest);
    }

    /// Stops every pod, each with its grace period, waiting `within` at
    /// most; answers how many were still stopping.
    fn stop_all(&mut self, within: Duration) -> usize {
        let uids: Vec<String> =
            self.workers.iter().map(|w| w.uid().to_string()).collect();
        for uid in &uids {
            self.workers.terminate(uid, None);
        }
        let deadline = Instant::now() + within;
        while !self.workers.is_empty() && Instant::now() < deadline {
            for done in self.workers.tick(SystemTime::now(), true) {
                let (ns, name) = ns_name(done.pod());
                self.index.set(&ns, &name, None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.workers.len()
    }
}

/// What the log server needs of a pod: its directory and each
/// container's restart count and state.
fn pod_logs(
    layout: &NodeLayout,
    ns: &str,
    name: &str,
    uid: &str,
    status: &PodStatus,
) -> PodLogs {
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .map(|c| {
            let state = c.state.as_ref();
            (
                c.name.clone(),
                ContainerLogs {
                    restarts: c.restart_count.max(0) as u32,
                    running: state.is_some_and(|s| s.running.is_some()),
                    waiting: state
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.clone()),
                    started_once: c.container_id.is_some()
                        || c.restart_count > 0,
                    id: c
                        .container_id
                        .as_deref()
                        .and_then(|id| {
                            id.strip_prefix(lab03::kubelet::status::ID_PREFIX)
                        })
                        .map(str::to_string),
                },
            )
        })
        .collect();
    PodLogs {
        dir: lab03::logs::pod_log_dir(&layout.log_root, ns, name, uid),
        containers,
    }
}

/// The key of a pod in the informer's cache.
pub fn pod_key(pod: &Pod) -> String {
    key_of(&pod.metadata)
}
