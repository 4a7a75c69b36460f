//! The supervisor of a cluster made by `ch05 up`: a detached process
//! that makes the cluster network, starts every component as its child,
//! records them in the state file, and owns them until it is told to stop
//! (`ch05 down`, or SIGTERM/SIGINT), when it stops them in reverse order
//! and removes the network. Its children get SIGTERM if it dies, however
//! it dies; what a SIGKILL of it leaves (namespaces, etcd) the next `up`
//! or `down` removes from the state file.
//!
//! It listens on a Unix socket (`supervisor.sock`) for one-line commands:
//! `stop-node NAME`, `start-node NAME`, `stop`; each answered with `ok …`
//! or `error: …`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Node;
use lab05::auth::Role;
use lab05::client::Client;
use lab05::cluster::network::{
    node_index, node_name, API_ADDRESS, REGISTRY_PORT,
};
use lab05::cluster::state::{ClusterState, Component, ProcessId};
use lab05::cluster::ClusterNetwork;
use lab05::store::EtcdProcess;

use crate::cluster_child::{spawn, stop};
use crate::cluster_cmds::{Paths, StoreKind};
use crate::{data, kubeconfig};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    nodes: u8,
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// How long to wait for the nodes to be Ready, in seconds.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// Node-lifecycle timings of seconds (see `cluster_cmds::UpArgs`).
    #[arg(long)]
    fast: bool,
}

/// The controller manager's node-lifecycle flags: kube-controller-
/// manager's defaults, or (`--fast`) seconds, for tours and tests. (How
/// long pods stay on a lost node is the API server's, below.)
fn lifecycle_flags(fast: bool) -> Vec<String> {
    let (period, grace) = if fast { ("1s", "8s") } else { ("5s", "50s") };
    vec![
        "--node-monitor-period".into(),
        period.into(),
        "--node-monitor-grace-period".into(),
        grace.into(),
    ]
}

/// Leader election's timings: the components' defaults (15 s, 10 s,
/// 2 s), or (`--fast`) a Lease of 4 s.
fn leader_flags(fast: bool) -> Vec<String> {
    let (lease, deadline, retry) = if fast {
        ("4s", "3s", "1s")
    } else {
        ("15s", "10s", "2s")
    };
    vec![
        "--lease-duration".into(),
        lease.into(),
        "--renew-deadline".into(),
        deadline.into(),
        "--retry-period".into(),
        retry.into(),
    ]
}

/// Replicas of the scheduler and of the controller manager: one acts,
/// the other waits for its Lease.
const REPLICAS: u8 = 2;

/// The API server's DefaultTolerationSeconds: how long new pods stay on
/// a node that is not ready or unreachable before they are evicted.
fn toleration_flags(fast: bool) -> Vec<String> {
    let seconds = if fast { "4" } else { "300" };
    vec![
        "--default-not-ready-toleration-seconds".into(),
        seconds.into(),
        "--default-unreachable-toleration-seconds".into(),
        seconds.into(),
    ]
}

/// The images the book's pods run (kubia:v1 and v2, the unhealthy kubia,
/// busybox, ssd-monitor, batch-job), built into `$KUBELINGS_HOME`'s store
/// if one is missing or out of date: the registry gets them from there.
pub(crate) fn ensure_images() -> anyhow::Result<()> {
    chapters::images::ensure(&lab02::home::Home::from_env())
}

/// Pushes every image the book's pods run to the registry at `addr`,
/// once it answers.
fn push_all(
    store: &lab02::layout::ImageStore,
    addr: &str,
) -> anyhow::Result<()> {
    let tls = lab02::client::TlsOptions {
        insecure: vec![addr.to_string()],
        ..Default::default()
    };
    let client = lab02::client::Client::new(None).quiet(true).tls(tls);
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.login_check(addr).is_err() {
        if Instant::now() > deadline {
            bail!("the cluster's registry on {addr} does not answer");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for tag in chapters::images::ALL {
        let target: lab02::reference::Reference = format!("{addr}/{tag}")
            .parse()
            .with_context(|| format!("{addr}/{tag}"))?;
        client
            .push(store, tag, &target)
            .with_context(|| format!("pushing {tag} to {addr}"))?;
    }
    Ok(())
}

/// The grace a node agent gets to stop its pods.
const NODE_GRACE: Duration = Duration::from_secs(15);
/// The grace of the control plane's processes.
const GRACE: Duration = Duration::from_secs(5);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A command from the socket, and where its answer goes.
type Request = (String, mpsc::Sender<String>);

/// The children the supervisor owns, by component name.
struct Supervisor {
    paths: Paths,
    state: ClusterState,
    network: Option<ClusterNetwork>,
    etcd: Option<EtcdProcess>,
    children: BTreeMap<String, Child>,
    /// How each control-plane process was started, to start it again.
    commands: BTreeMap<String, Vec<String>>,
    args: Args,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let paths = Paths::from_env();
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        let handler = nix::sys::signal::SigHandler::Handler(on_signal);
        nix::sys::signal::signal(nix::sys::signal::Signal::SIGTERM, handler)?;
        nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, handler)?;
    }
    let mut sup = Supervisor {
        state: ClusterState {
            supervisor: ProcessId::of(std::process::id()),
            store: args.store.name().into(),
            nodes: args.nodes,
            network: paths.network(),
            kubeconfig: paths.admin_kubeconfig(),
            ..ClusterState::default()
        },
        paths,
        network: None,
        etcd: None,
        children: BTreeMap::new(),
        commands: BTreeMap::new(),
        args,
    };
    sup.save()?;
    let started = sup.start();
    let outcome = match started {
        Ok(()) => sup.supervise(),
        Err(e) => Err(e),
    };
    if let Err(e) = &outcome {
        eprintln!("supervisor: {e:#}");
        sup.state.error = Some(format!("{e:#}"));
        let _ = sup.save();
    }
    sup.shut_down();
    outcome
}

impl Supervisor {
    fn save(&self) -> anyhow::Result<()> {
        Ok(self.state.save(&self.paths.state())?)
    }

    fn record(
        &mut self,
        name: &str,
        child: Child,
        netns: Option<std::path::PathBuf>,
    ) -> anyhow::Result<()> {
        let process = ProcessId::of(child.id())
            .with_context(|| format!("{name} exited at once"))?;
        self.state.components.retain(|c| c.name != name);
        self.state.components.push(Component {
            name: name.into(),
            process,
            netns,
            log: self.paths.log(name),
        });
        self.children.insert(name.into(), child);
        self.save()
    }

    /// Everything, in order; the nodes Ready last.
    fn start(&mut self) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let network = ClusterNetwork::create(&self.paths.network())?;
        let cluster_netns = network.netns().to_path_buf();
        self.network = Some(network);
        let cp = self.paths.control_plane();
        data::create(&cp)?;
        let mut api_args: Vec<String> = vec![
            "apiserver".into(),
            "--data".into(),
            cp.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.args.port),
            "--listen-netns".into(),
            format!("{}={API_ADDRESS}:6443", cluster_netns.display()),
            "--nodes".into(),
            self.args.nodes.to_string(),
        ];
        api_args.extend(toleration_flags(self.args.fast));
        if self.args.store == StoreKind::Etcd {
            let etcd = EtcdProcess::start(&cp.join("etcd"))
                .context("starting etcd")?;
            let process =
                ProcessId::of(etcd.pid()).context("etcd exited at once")?;
            self.state.components.push(Component {
                name: "etcd".into(),
                process,
                netns: None,
                log: cp.join("etcd").join("etcd.log"),
            });
            api_args.extend([
                "--store".into(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                etcd.endpoint().into(),
            ]);
            self.etcd = Some(etcd);
            self.save()?;
        }
        let log = self.paths.log("apiserver");
        let child = spawn("apiserver", &api_args, None, &log)?;
        self.record("apiserver", child, None)?;
        self.commands.insert("apiserver".into(), api_args);
        let client = self.wait_for_api(Duration::from_secs(30))?;
        println!(
            "supervisor: the API server answers after {:?}",
            t0.elapsed()
        );

        kubeconfig::write(&cp, &Role::Admin, &self.paths.admin_kubeconfig())?;
        for (kind, role, lease) in [
            ("scheduler", Role::Scheduler, "kube-scheduler"),
            (
                "controller-manager",
                Role::ControllerManager,
                "kube-controller-manager",
            ),
        ] {
            let config = self.paths.kubeconfig(kind);
            kubeconfig::write(&cp, &role, &config)?;
            for replica in 1..=REPLICAS {
                let name = format!("{kind}-{replica}");
                let mut args = vec![
                    kind.to_string(),
                    "--kubeconfig".into(),
                    config.display().to_string(),
                    "--name".into(),
                    name.clone(),
                ];
                args.extend(leader_flags(self.args.fast));
                if kind == "controller-manager" {
                    args.extend(lifecycle_flags(self.args.fast));
                }
                let child = spawn(&name, &args, None, &self.paths.log(&name))?;
                self.record(&name, child, None)?;
                self.commands.insert(name.clone(), args);
                // The first replica leads: the standby starts once it
                // holds the Lease, so who leads does not depend on luck.
                if replica == 1 {
                    wait_for_holder(
                        &client,
                        lease,
                        &name,
                        Duration::from_secs(30),
                    )?;
                }
            }
        }
        ensure_images()?;
        self.start_registry(&cluster_netns)?;
        for n in 1..=self.args.nodes {
            self.start_node(n)?;
        }
        let ready =
            self.wait_ready(&client, Duration::from_secs(self.args.wait));
        match ready {
            Ok(()) => {
                self.state.ready = true;
                self.state.took_ms = Some(t0.elapsed().as_millis() as u64);
            }
            Err(e) => self.state.error = Some(format!("{e:#}")),
        }
        self.save()
    }

    // ANCHOR: registry
    /// The cluster's registry, in the cluster network's namespace beside
    /// the API server, with the book's images pushed from
    /// `$KUBELINGS_HOME`'s store: the nodes pull from it.
    fn start_registry(
        &mut self,
        netns: &std::path::Path,
    ) -> anyhow::Result<()> {
        let addr = format!("{API_ADDRESS}:{REGISTRY_PORT}");
        let args: Vec<String> = vec![
            "registry".into(),
            "--addr".into(),
            addr.clone(),
            "--root".into(),
            self.paths
                .control_plane()
                .join("registry")
                .display()
                .to_string(),
        ];
        let child =
            spawn("registry", &args, Some(netns), &self.paths.log("registry"))?;
        self.record("registry", child, Some(netns.to_path_buf()))?;
        self.commands.insert("registry".into(), args);
        let home = lab02::home::Home::from_env();
        let store = lab02::layout::ImageStore::open(&home.images())?;
        // Pushed from a thread in that namespace: only it reaches the
        // registry's address.
        lab03::network::run_in(netns, || push_all(&store, &addr))
            .context("entering the cluster network")?
    }
    // ANCHOR_END: registry

    /// Node `n`: its namespace on the cluster network, then its agent in it.
    fn start_node(&mut self, n: u8) -> anyhow::Result<()> {
        let network = self.network.as_ref().context("no cluster network")?;
        let node = network.join(n)?;
        let cp = self.paths.control_plane();
        let config = self.paths.kubeconfig(&node.name);
        let url = format!("https://{API_ADDRESS}:6443");
        kubeconfig::write_for(
            &cp,
            &Role::Node(node.name.clone()),
            &config,
            &url,
        )?;
        let dir = self.paths.node_data(&node.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let args: Vec<String> = vec![
            "node-agent".into(),
            "--name".into(),
            node.name.clone(),
            "--kubeconfig".into(),
            config.display().to_string(),
            "--pod-cidr".into(),
            node.pod_cidr.to_string(),
            "--node-ip".into(),
            node.address.to_string(),
            "--data".into(),
            dir.display().to_string(),
            "--registry".into(),
            format!("{API_ADDRESS}:{REGISTRY_PORT}"),
        ];
        // The kubelet renews every quarter of the Lease (10 s of 40):
        // with --fast's 8 s of grace, every 2 s.
        let mut args = args;
        if self.args.fast {
            args.extend(["--lease-renew-interval".into(), "2".into()]);
        }
        let child = spawn(
            &node.name,
            &args,
            Some(&node.path),
            &self.paths.log(&node.name),
        )?;
        self.record(&node.name.clone(), child, Some(node.path))
    }

    /// Node `n`'s agent stopped (its pods with it), and its namespace.
    fn stop_node(&mut self, n: u8) -> anyhow::Result<bool> {
        let name = node_name(n);
        let ran = match self.state.component(&name).map(|c| c.process) {
            Some(id) => stop(id, self.children.get_mut(&name), NODE_GRACE),
            None => false,
        };
        self.children.remove(&name);
        self.state.components.retain(|c| c.name != name);
        self.save()?;
        if let Some(network) = &self.network {
            network.leave(n)?;
        }
        Ok(ran)
    }

    fn wait_for_api(&mut self, limit: Duration) -> anyhow::Result<Client> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.children.get_mut("apiserver") {
                if let Some(status) = child.try_wait()? {
                    bail!("the API server exited ({status}): see ch05 logs apiserver");
                }
            }
            // The server writes its URL once it listens (port 0 is any).
            let said = self.paths.control_plane().join("server-url").exists();
            if let Some(client) = said
                .then(|| crate::cluster_cmds::admin_client(&self.paths).ok())
                .flatten()
            {
                if client.request_bytes("GET", "/readyz", None).is_ok() {
                    return Ok(client);
                }
            }
            if Instant::now() > deadline {
                bail!("the API server did not answer within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(
        &mut self,
        client: &Client,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let want: Vec<String> = (1..=self.args.nodes).map(node_name).collect();
        loop {
            let ready = ready_nodes(client).unwrap_or_default();
            let missing: Vec<&String> =
                want.iter().filter(|n| !ready.contains(n)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if STOP.load(Ordering::SeqCst) {
                bail!("stopped while waiting for the nodes");
            }
            for name in &missing {
                if let Some(child) = self.children.get_mut(name.as_str()) {
                    if let Some(status) = child.try_wait()? {
                        bail!("{name}'s agent exited ({status}): see ch05 logs {name}");
                    }
                }
            }
            if Instant::now() > deadline {
                let names: Vec<&str> =
                    missing.iter().map(|s| s.as_str()).collect();
                bail!("not Ready after {limit:?}: {}", names.join(", "));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Until told to stop: commands from the socket, children that exit.
    fn supervise(&mut self) -> anyhow::Result<()> {
        let socket = self.paths.socket();
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve_conn(conn, tx));
            }
        });
        loop {
            if STOP.load(Ordering::SeqCst) {
                return Ok(());
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok((line, reply)) => {
                    let (answer, stop_now) = self.command(line.trim());
                    let _ = reply.send(answer);
                    if stop_now {
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("supervisor: {name} exited ({status})");
                }
            }
            self.children
                .retain(|_, c| !matches!(c.try_wait(), Ok(Some(_))));
        }
    }

    fn command(&mut self, line: &str) -> (String, bool) {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let arg = words.next().unwrap_or_default();
        let node = || node_index(arg).filter(|n| *n <= self.args.nodes.max(*n));
        let answer = match (verb, node()) {
            ("stop", _) => return ("ok stopping".into(), true),
            ("stop-node", Some(n)) => match self.stop_node(n) {
                Ok(true) => format!("ok {arg} stopped"),
                Ok(false) => format!("ok {arg} was not running"),
                Err(e) => format!("error: {e:#}"),
            },
            ("start-node", Some(n)) => {
                if self
                    .state
                    .component(arg)
                    .is_some_and(|c| c.process.is_alive())
                {
                    format!("error: {arg} is running")
                } else {
                    let _ = self.stop_node(n);
                    match self.start_node(n) {
                        Ok(()) => format!("ok {arg} started"),
                        Err(e) => format!("error: {e:#}"),
                    }
                }
            }
            ("kill", None) if self.children.contains_key(arg) => {
                // SIGKILL, as a crash: no cleanup, no Lease released.
                match self.children.get_mut(arg).map(|c| c.kill()) {
                    Some(Ok(())) => {
                        if let Some(mut child) = self.children.remove(arg) {
                            let _ = child.wait();
                        }
                        format!("ok {arg} killed")
                    }
                    Some(Err(e)) => format!("error: killing {arg}: {e}"),
                    None => format!("error: {arg} is not running"),
                }
            }
            ("restart", None) if self.commands.contains_key(arg) => {
                match self.restart(arg) {
                    Ok(pid) => format!("ok {arg} restarted (pid {pid})"),
                    Err(e) => format!("error: restarting {arg}: {e:#}"),
                }
            }
            ("restart", _) => format!(
                "error: {arg:?} is not a control-plane process (ch05 status lists them; nodes restart with stop-node and start-node)"
            ),
            ("kill", _) => format!(
                "error: {arg:?} is not a running component (ch05 status lists them; nodes stop with stop-node)"
            ),
            ("stop-node" | "start-node", None) => {
                format!("error: {arg:?} is not a node name (node-N)")
            }
            _ => format!("error: unknown command {line:?}"),
        };
        (answer, false)
    }

    /// SIGKILL to `name` if it runs (a crash), then the same command
    /// again: what a process supervisor does after a crash.
    fn restart(&mut self, name: &str) -> anyhow::Result<u32> {
        if let Some(mut child) = self.children.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut args = self.commands.get(name).cloned().unwrap_or_default();
        if name == "apiserver" {
            // Port 0 found a free port once; the kubeconfigs name that
            // one, so the server comes back on it.
            let url = data::url(&self.paths.control_plane());
            if let (Some(i), Some(addr)) = (
                args.iter().position(|a| a == "--listen"),
                url.strip_prefix("https://"),
            ) {
                if let Some(listen) = args.get_mut(i + 1) {
                    *listen = addr.to_string();
                }
            }
        }
        let child = spawn(name, &args, None, &self.paths.log(name))?;
        let pid = child.id();
        self.record(name, child, None)?;
        Ok(pid)
    }

    /// Everything stopped, in reverse order, and the network removed.
    fn shut_down(&mut self) {
        let mut order: Vec<Component> = self.state.components.clone();
        order.reverse();
        for c in &order {
            let grace = if node_index(&c.name).is_some() {
                NODE_GRACE
            } else {
                GRACE
            };
            if c.name == "etcd" {
                continue;
            }
            stop(c.process, self.children.get_mut(&c.name), grace);
        }
        self.children.clear();
        drop(self.etcd.take());
        if let Some(network) = self.network.take() {
            if let Err(e) = network.destroy() {
                eprintln!("supervisor: removing the cluster network: {e}");
            }
        }
        let _ = std::fs::remove_file(self.paths.socket());
        if let Err(e) = crate::cluster_cmds::remove_files(&self.paths) {
            eprintln!("supervisor: {e:#}");
        }
        eprintln!("supervisor: stopped");
    }
}

/// Each node's name and Ready condition (`Ready`, `NotReady`, `Unknown`),
/// as `kubectl get nodes` shows it.
pub fn node_rows(client: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let nodes = client.list::<Node>(None, "")?;
    Ok(nodes
        .items
        .into_iter()
        .map(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status.clone());
            let status = match ready.as_deref() {
                Some("True") => "Ready",
                Some("False") => "NotReady",
                _ => "Unknown",
            };
            (n.metadata.name.unwrap_or_default(), status.to_string())
        })
        .collect())
}

/// The Ready nodes' names.
pub fn ready_nodes(client: &Client) -> anyhow::Result<Vec<String>> {
    Ok(node_rows(client)?
        .into_iter()
        .filter(|(_, s)| s == "Ready")
        .map(|(n, _)| n)
        .collect())
}

fn serve_conn(conn: UnixStream, tx: mpsc::Sender<Request>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(read) = conn.try_clone() else { return };
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).is_err() {
        return;
    }
    let (reply, answer) = mpsc::channel();
    if tx.send((line, reply)).is_err() {
        return;
    }
    if let Ok(text) = answer.recv() {
        let mut conn = conn;
        let _ = writeln!(conn, "{text}");
    }
}

/// Waits until `name` holds the Lease `kube-system/lease`.
fn wait_for_holder(
    client: &Client,
    lease: &str,
    name: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    let deadline = Instant::now() + limit;
    loop {
        let holder = client
            .get::<Lease>(Some("kube-system"), lease)
            .ok()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if holder.as_deref() == Some(name) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not take the Lease {lease} within {limit:?}: see ch05 logs {name}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
