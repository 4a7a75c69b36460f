//! `ch03 node up` and `node down`, and the node's supervising process
//! itself (`node serve`, which `up` starts detached): it runs the node's
//! static pods, looks at the manifest directory, and answers the control
//! socket until `down` (or SIGTERM) stops every pod and removes the node.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab02::home::Home;
use lab03::ipam::Cidr;

use crate::layout::{NodeConfig, NodeDir};
use crate::node::{Node, POLL};
use crate::protocol::{self, Client, ExecRequest, Request, Response};
use crate::service_node::{ProxyMode, ServiceNode};

#[derive(clap::Subcommand)]
pub enum NodeCommand {
    /// Start the node: its network, runtime and pod workers, in a process
    /// of its own that outlives this command.
    Up(UpArgs),
    /// Stop every pod gracefully, remove the node's network and state.
    Down,
    /// Be the node's supervising process (what `up` starts).
    #[command(hide = true)]
    Serve,
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// The node's name (also `--node`).
    #[arg(long)]
    name: Option<String>,
    /// Its pod CIDR (default: 198.18.1.0/24, node 1's).
    #[arg(long)]
    cidr: Option<Cidr>,
    /// The crash-loop back-off's first delay in milliseconds (the
    /// kubelet's: 10000).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    backoff_base_ms: u64,
    /// How Services reach their pods (chapter 4): rules in the kernel, or
    /// a process that copies bytes.
    #[arg(long, value_enum, default_value_t = ProxyMode::Nftables)]
    proxy: ProxyMode,
}

pub fn node(home: &Home, name: &str, cmd: NodeCommand) -> Result<u8> {
    match cmd {
        NodeCommand::Up(args) => {
            let name = args.name.clone().unwrap_or_else(|| name.to_string());
            up(home, &name, args)
        }
        NodeCommand::Down => down(home, name),
        NodeCommand::Serve => serve(home, name),
    }
}

fn need_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("{what} makes network namespaces, mounts and cgroups: run it with sudo");
    }
    Ok(())
}

fn up(home: &Home, name: &str, args: UpArgs) -> Result<u8> {
    need_root("node up")?;
    let dir = NodeDir::of(home, name)?;
    if let Some(pid) = dir.live_pid() {
        bail!("node {name} is already up (pid {pid})");
    }
    let config = NodeConfig {
        name: name.to_string(),
        cidr: args.cidr.unwrap_or_else(|| lab03::ipam::node_cidr(1)),
        backoff_base_ms: args.backoff_base_ms,
        proxy: args.proxy,
    };
    dir.write_config(&config)?;
    let _ = std::fs::remove_file(dir.socket());
    let log = std::fs::File::create(dir.log_file())?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--home")
        .arg(home.root())
        .args(["--node", name, "node", "serve"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; between fork and exec it only
    // makes the child a session leader of its own, away from this
    // terminal's Ctrl-C.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().context("start the node's process")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect(&dir.socket()) {
            if let Ok(Response::Pong { pid }) = c.call(&Request::Ping) {
                println!(
                    "node {name} is up (pid {pid}, pods {}, manifests in {})",
                    config.cidr,
                    dir.manifests().display()
                );
                return Ok(0);
            }
        }
        if let Some(status) = child.try_wait()? {
            let log =
                std::fs::read_to_string(dir.log_file()).unwrap_or_default();
            bail!("the node's process ended ({status}):\n{}", log.trim_end());
        }
        if Instant::now() > deadline {
            bail!(
                "node {name} did not answer within 30s: see {}",
                dir.log_file().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn down(home: &Home, name: &str) -> Result<u8> {
    need_root("node down")?;
    let dir = NodeDir::of(home, name)?;
    let Some(pid) = dir.live_pid() else {
        if dir.root.exists() {
            // A node whose process was killed: a new one cleans up.
            bail!(
                "node {name} is not running (its process is gone): \
                 `ch03 node up --name {name}` cleans up what it left, then `node down`"
            );
        }
        bail!("node {name} is not up");
    };
    let mut client =
        Client::connect(&dir.socket())?.timeout(Duration::from_secs(120))?;
    client.call(&Request::Shutdown)?;
    // The answer comes once every pod is gone; the process then exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    {
        if Instant::now() > deadline {
            bail!("node {name}'s process {pid} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("node {name} is down");
    Ok(0)
}

/// The supervising process.
fn serve(home: &Home, name: &str) -> Result<u8> {
    let dir = NodeDir::of(home, name)?;
    let config = dir.read_config()?;
    // Termination signals go to one thread that turns them into a stop.
    let signals = lab01::signals::block_termination_signals();
    std::fs::write(dir.pid_file(), format!("{}\n", std::process::id()))?;
    let services = Arc::new(ServiceNode::new(&dir.root, name));
    let proxy = config.proxy;
    let environment: Arc<dyn lab03::kubelet::PodEnvironment> = services.clone();
    let node =
        match Node::start_with(dir.clone(), config, home, Some(environment)) {
            Ok(node) => Arc::new(node),
            Err(e) => {
                let _ = std::fs::remove_file(dir.pid_file());
                return Err(e);
            }
        };
    if let Some(network) = node.backend().network() {
        if let Err(e) = services.start(proxy, &network) {
            let _ = node.stop();
            let _ = std::fs::remove_file(dir.pid_file());
            return Err(e);
        }
    }
    let stop = Arc::new(Stop::default());
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if signals.wait().is_ok() {
                stop.asked.store(true, Ordering::SeqCst);
            }
        });
    }
    let _ = std::fs::remove_file(dir.socket());
    let listener = UnixListener::bind(dir.socket())?;
    listener.set_nonblocking(true)?;
    eprintln!("node {name}: up, pid {}", std::process::id());
    let mut last_sync = Instant::now() - POLL;
    while !stop.asked.load(Ordering::SeqCst) {
        if last_sync.elapsed() >= POLL {
            match node.sync() {
                Ok(problems) => {
                    for p in problems {
                        eprintln!("node {name}: {p}");
                    }
                }
                Err(e) => eprintln!("node {name}: read the manifests: {e:#}"),
            }
            let pods: Vec<_> = node.pods().into_iter().map(|v| v.pod).collect();
            match services.sync(&pods) {
                Ok(problems) => {
                    for p in problems {
                        eprintln!("node {name}: {p}");
                    }
                }
                Err(e) => eprintln!("node {name}: Services: {e:#}"),
            }
            last_sync = Instant::now();
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let node = node.clone();
                let stop = stop.clone();
                let services = services.clone();
                std::thread::spawn(move || {
                    if let Err(e) = answer(&node, &services, &stream, &stop) {
                        let _ = protocol::send(
                            &stream,
                            &Response::Error(format!("{e:#}")),
                            &[],
                        );
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("accept on the control socket"),
        }
    }
    eprintln!("node {name}: stopping every pod");
    let stopped_proxy = services.shutdown();
    let result = node.stop().and(stopped_proxy);
    let _ = std::fs::remove_dir_all(&dir.root);
    let outcome = match &result {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(format!("{e:#}")),
    };
    *stop.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    // Time for the `down` that asked to hear how it went.
    std::thread::sleep(Duration::from_millis(200));
    result?;
    eprintln!("node {name}: down");
    Ok(0)
}

/// How the main loop and the connections agree on stopping.
#[derive(Default)]
struct Stop {
    asked: AtomicBool,
    /// Set once every pod is gone.
    outcome: std::sync::Mutex<Option<Response>>,
}

/// One connection: requests until it closes.
fn answer(
    node: &Node,
    services: &ServiceNode,
    stream: &UnixStream,
    stop: &Stop,
) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        let request: Request =
            serde_json::from_str(&line).context("a bad request")?;
        line.clear();
        match request {
            Request::Ping => {
                let pid = std::process::id();
                protocol::send(stream, &Response::Pong { pid }, &[])?;
            }
            Request::Pods => {
                protocol::send(stream, &Response::Pods(node.pods()), &[])?
            }
            Request::Services => protocol::send(
                stream,
                &Response::Services(services.views()),
                &[],
            )?,
            Request::Exec(req) => return exec(node, stream, &req),
            Request::Shutdown => {
                // The main loop stops the pods; the answer goes when the
                // process is about to exit, so wait here for it.
                stop.asked.store(true, Ordering::SeqCst);
                let outcome = loop {
                    if let Some(o) = stop
                        .outcome
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                    {
                        break o;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                };
                protocol::send(stream, &outcome, &[])?;
            }
        }
    }
    Ok(())
}

// ANCHOR: exec
/// Starts the command through the runtime, sends its descriptors to the
/// client, and tells it the exit code when it ends.
fn exec(node: &Node, stream: &UnixStream, req: &ExecRequest) -> Result<()> {
    let backend = node.backend();
    let container = req.container.as_deref();
    let id = backend.container_id(&req.namespace, &req.pod, container)?;
    let request = lab03::cri::ExecRequest {
        cmd: req.cmd.clone(),
        tty: req.tty,
        stdin: req.stdin,
        stdout: true,
        stderr: !req.tty,
    };
    let session = backend.runtime()?.exec(&id, &request)?;
    let fds: Vec<i32> = [&session.stdin, &session.stdout, &session.stderr]
        .iter()
        .filter_map(|fd| fd.as_ref().map(|f| f.as_raw_fd()))
        .collect();
    let started = Response::ExecStarted {
        stdin: session.stdin.is_some(),
        stdout: session.stdout.is_some(),
        stderr: session.stderr.is_some(),
    };
    protocol::send(stream, &started, &fds)?;
    // Ours closed, so the client's copies are the only ends left.
    drop((session.stdin, session.stdout, session.stderr));
    let code = (session.wait)()?;
    protocol::send(stream, &Response::Exited(code), &[])
}
// ANCHOR_END: exec
