//! `ch05 up`, `down`, `status`, `ssh`, `stop-node`, `start-node`, `logs`:
//! a cluster on this machine, as minikube makes one, but with several
//! nodes, each a network namespace (see `lab05::cluster::network`).
//!
//! `up` starts a detached supervisor (`cluster_supervisor.rs`) that owns
//! every process of the cluster, and returns once the nodes are Ready.
//! Everything lives in `$KUBELINGS_HOME/cluster`: `state.json` (the
//! processes by pid and start time, their namespaces), `logs/`, the
//! control plane's data (store, CA, tokens, kubeconfigs), the nodes'
//! data, the network's namespaces.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lab02::home::Home;
use lab05::auth::tls::CA_CERT;
use lab05::auth::{Role, TokenFile};
use lab05::client::{Client, ClientConfig};
use lab05::cluster::network::node_index;
use lab05::cluster::state::ClusterState;
use lab05::cluster::ClusterNetwork;

use crate::cluster_child::stop;
use crate::data;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// Our own store.
    Embedded,
    /// etcd, started for the cluster.
    Etcd,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded",
            StoreKind::Etcd => "etcd",
        }
    }
}

/// Where a cluster's files are: `$KUBELINGS_HOME/cluster`.
#[derive(Clone, Debug)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        Paths {
            root: Home::from_env().root().join("cluster"),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("supervisor.sock")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }
    pub fn network(&self) -> PathBuf {
        self.root.join("network")
    }
    pub fn control_plane(&self) -> PathBuf {
        self.root.join("control-plane")
    }
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.control_plane().join("admin.kubeconfig")
    }
    pub fn kubeconfig(&self, component: &str) -> PathBuf {
        self.control_plane().join(format!("{component}.kubeconfig"))
    }
    pub fn node_data(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// How many nodes (node-1 … node-N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=253))]
    nodes: u8,
    /// Where the objects are kept.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// The API server's port on 127.0.0.1 (kubectl's side).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// How long to wait for the nodes to be Ready, in seconds.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// Node-lifecycle timings of seconds, not minutes: a node is
    /// unreachable after 8 s without a heartbeat (50 s), its pods are
    /// evicted 4 s later (300 s).
    #[arg(long)]
    fast: bool,
}

#[derive(clap::Args)]
pub struct SshArgs {
    /// The node: node-N.
    node: String,
    /// The command to run there (default: your shell).
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node: node-N.
    node: String,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// supervisor, etcd, apiserver, scheduler, controller-manager, node-N.
    component: String,
    /// Keep printing what is appended, until Ctrl-C.
    #[arg(short, long)]
    follow: bool,
}

// ANCHOR: up
pub fn up(args: UpArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env();
    if let Some(state) = ClusterState::load(&paths.state())? {
        if let Some(sup) = state.supervisor.filter(|s| s.is_alive()) {
            bail!(
                "a cluster is up already (its supervisor is pid {}): `ch05 down` first",
                sup.pid
            );
        }
    }
    // What a killed cluster left: its processes, namespaces, files.
    clean_up(&paths)?;
    let _ = std::fs::remove_dir_all(paths.logs());
    std::fs::create_dir_all(paths.logs())
        .with_context(|| format!("creating {}", paths.logs().display()))?;
    let t0 = Instant::now();
    let mut supervisor = start_supervisor(&paths, &args)?;
    let limit = Duration::from_secs(args.wait + 60);
    let state = loop {
        if let Some(state) = ClusterState::load(&paths.state())? {
            if state.ready || state.error.is_some() {
                break state;
            }
        }
        if let Some(status) = supervisor.try_wait()? {
            bail!(
                "the supervisor exited ({status}):\n{}",
                tail(&paths.log("supervisor"), 20)
            );
        }
        if t0.elapsed() > limit {
            bail!("the cluster did not come up within {limit:?}; `ch05 status`, `ch05 down`");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(error) = &state.error {
        bail!(
            "{error}\nthe cluster is left as it is: `ch05 status`, `ch05 logs COMPONENT`, `ch05 down`"
        );
    }
    println!(
        "ch05: the cluster is up: {} node(s) Ready after {:.1} s (store: {})",
        state.nodes,
        t0.elapsed().as_secs_f64(),
        state.store
    );
    println!(
        "ch05: the admin's kubeconfig is {}",
        state.kubeconfig.display()
    );
    println!("export KUBECONFIG={}", state.kubeconfig.display());
    Ok(())
}
// ANCHOR_END: up

/// The supervisor, in a session of its own (Ctrl-C in this terminal is
/// not for it), its output in `logs/supervisor.log`.
fn start_supervisor(
    paths: &Paths,
    args: &UpArgs,
) -> anyhow::Result<std::process::Child> {
    let log = std::fs::File::create(paths.log("supervisor"))?;
    let exe = std::env::current_exe().context("finding this program")?;
    let mut command = Command::new(exe);
    command
        .arg("cluster-supervisor")
        .args(["--nodes", &args.nodes.to_string()])
        .args(["--store", args.store.name()])
        .args(["--port", &args.port.to_string()])
        .args(["--wait", &args.wait.to_string()])
        .args(args.fast.then_some("--fast"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches nothing of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().context("starting the supervisor")
}

pub fn down() -> anyhow::Result<()> {
    let paths = Paths::from_env();
    let state = ClusterState::load(&paths.state())?;
    if state.is_none() && !paths.network().exists() {
        println!("ch05: no cluster is up");
        return Ok(());
    }
    if let Some(sup) = state.as_ref().and_then(|s| s.supervisor) {
        // It stops its children and removes the network itself.
        stop(sup, None, Duration::from_secs(60));
    }
    clean_up(&paths)?;
    println!("ch05: the cluster is down");
    Ok(())
}

/// Removes whatever a cluster left, by the state file: its processes
/// still alive (by pid and start time only), its namespaces, its files.
/// The logs stay, for `ch05 logs`.
fn clean_up(paths: &Paths) -> anyhow::Result<()> {
    if let Some(state) = ClusterState::load(&paths.state())? {
        let mut components = state.components.clone();
        components.reverse();
        for c in &components {
            if c.process.is_alive() {
                eprintln!(
                    "ch05: stopping {} (pid {}), left running",
                    c.name, c.process.pid
                );
                stop(c.process, None, Duration::from_secs(5));
            }
        }
    }
    if ClusterNetwork::remove(&paths.network())? {
        eprintln!("ch05: removed a cluster network left behind");
    }
    remove_files(paths)
}

/// The cluster's files but its logs: state, socket, control plane,
/// nodes; any namespace still mounted beneath them is unmounted first.
pub fn remove_files(paths: &Paths) -> anyhow::Result<()> {
    if paths.root().exists() {
        for mount in lab03::network::find_leftovers(paths.root())? {
            lab03::network::remove_netns(&mount)?;
        }
    }
    for file in [paths.state(), paths.socket()] {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing {}", file.display()))
            }
        }
    }
    for dir in [
        paths.control_plane(),
        paths.root().join("nodes"),
        paths.network(),
    ] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing {}", dir.display()))
            }
        }
    }
    Ok(())
}

/// The admin's client, for `status` and `up`'s wait.
pub fn admin_client(paths: &Paths) -> anyhow::Result<Client> {
    let cp = paths.control_plane();
    let token = TokenFile::open(&cp)?.issue(&Role::Admin)?;
    let ca = std::fs::read(cp.join(CA_CERT)).ok();
    Ok(Client::new(ClientConfig {
        server: data::url(&cp),
        ca_pem: ca,
        token: Some(token),
    })?)
}

pub fn status() -> anyhow::Result<()> {
    let paths = Paths::from_env();
    let Some(state) = ClusterState::load(&paths.state())? else {
        println!("ch05: no cluster is up");
        return Ok(());
    };
    let up = if state.ready {
        "up"
    } else if state.error.is_some() {
        "failed"
    } else {
        "starting"
    };
    println!(
        "cluster: {up}, {} node(s), store {}",
        state.nodes, state.store
    );
    if let Some(e) = &state.error {
        println!("error: {e}");
    }
    println!("{:<20} {:>8}  {:<8} NETNS", "COMPONENT", "PID", "STATUS");
    let alive = |a: bool| if a { "running" } else { "gone" };
    if let Some(sup) = state.supervisor {
        println!(
            "{:<20} {:>8}  {:<8} -",
            "supervisor",
            sup.pid,
            alive(sup.is_alive())
        );
    }
    for c in &state.components {
        let netns = c
            .netns
            .as_ref()
            .map_or("-".to_string(), |p| p.display().to_string());
        println!(
            "{:<20} {:>8}  {:<8} {netns}",
            c.name,
            c.process.pid,
            alive(c.process.is_alive())
        );
    }
    match admin_client(&paths)
        .and_then(|c| crate::cluster_supervisor::node_rows(&c))
    {
        Ok(rows) => {
            println!("\n{:<12} STATUS", "NODE");
            for (name, status) in rows {
                println!("{name:<12} {status}");
            }
        }
        Err(e) => println!("\nnodes: the API server does not answer: {e:#}"),
    }
    println!("\nexport KUBECONFIG={}", state.kubeconfig.display());
    Ok(())
}

/// A shell, or `command`, in the node's network namespace: from there
/// the node's addresses, its pods and (through its proxy) the services
/// are what `curl` reaches, as `minikube ssh` gives the node's view.
pub fn ssh(args: SshArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env();
    let n = node_index(&args.node).with_context(|| {
        format!("{:?} is not a node name (node-N)", args.node)
    })?;
    let network = ClusterNetwork::open(&paths.network())
        .context("no cluster is up: `ch05 up` first")?;
    let node = network.node(n).with_context(|| {
        format!(
            "{} is not on the cluster network (stopped? `ch05 start-node {}`)",
            args.node, args.node
        )
    })?;
    let netns = std::fs::File::open(&node.path)
        .with_context(|| format!("opening {}", node.path.display()))?;
    let (program, rest) = match args.command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (
            std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
            Vec::new(),
        ),
    };
    // ANCHOR: ssh
    let fd = netns.as_raw_fd();
    let mut command = Command::new(&program);
    command
        .args(&rest)
        .env("KUBELINGS_NODE", &node.name)
        .env("KUBECONFIG", paths.admin_kubeconfig());
    // SAFETY: setns is async-signal-safe; the descriptor stays open
    // until the child has exec'd.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command
        .status()
        .with_context(|| format!("running {program} in {}", node.name))?;
    // ANCHOR_END: ssh
    drop(netns);
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => bail!("{program} was killed ({status})"),
    }
}

/// `stop-node` and `start-node`: asks the supervisor.
pub fn node_command(verb: &str, args: NodeArgs) -> anyhow::Result<()> {
    node_index(&args.node).with_context(|| {
        format!("{:?} is not a node name (node-N)", args.node)
    })?;
    let paths = Paths::from_env();
    say_answer(&ask(&paths, &format!("{verb} {}", args.node))?)
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// The component: scheduler-1, controller-manager-2, … (`ch05
    /// status` lists them).
    component: String,
}

/// `ch05 kill COMPONENT`: SIGKILL to one of the control plane's
/// processes, as a crash would do it (not restarted).
pub fn kill(args: KillArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env();
    say_answer(&ask(&paths, &format!("kill {}", args.component))?)
}

/// `ch05 restart COMPONENT`: SIGKILL if it runs, then started again with
/// the same command, as a supervisor restarts a crashed process.
pub fn restart(args: KillArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env();
    say_answer(&ask(&paths, &format!("restart {}", args.component))?)
}

/// The supervisor's answer: "ok …" said, "error: …" an error.
fn say_answer(answer: &str) -> anyhow::Result<()> {
    match answer.strip_prefix("ok ") {
        Some(text) => {
            println!("ch05: {text}");
            Ok(())
        }
        None => bail!("{}", answer.strip_prefix("error: ").unwrap_or(answer)),
    }
}

/// One command to the supervisor, and its answer.
fn ask(paths: &Paths, line: &str) -> anyhow::Result<String> {
    let socket = paths.socket();
    let mut conn = UnixStream::connect(&socket).with_context(|| {
        format!(
            "no supervisor answers on {} (is a cluster up?)",
            socket.display()
        )
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    writeln!(conn, "{line}")?;
    let mut answer = String::new();
    BufReader::new(conn).read_line(&mut answer)?;
    if answer.is_empty() {
        bail!("the supervisor gave no answer");
    }
    Ok(answer.trim().to_string())
}

pub fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env();
    let recorded = ClusterState::load(&paths.state())?
        .and_then(|s| s.component(&args.component).map(|c| c.log.clone()));
    let path = recorded.unwrap_or_else(|| paths.log(&args.component));
    let mut file = std::fs::File::open(&path).with_context(|| {
        format!(
            "no log for {:?} ({}): components are supervisor, etcd, apiserver, scheduler, \
             controller-manager, node-N",
            args.component,
            path.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut file, &mut out)?;
    if !args.follow {
        return Ok(());
    }
    // Until Ctrl-C: what is appended, as `tail -f`.
    loop {
        let mut more = Vec::new();
        file.read_to_end(&mut more)?;
        if more.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        } else {
            out.write_all(&more)?;
            out.flush()?;
        }
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
