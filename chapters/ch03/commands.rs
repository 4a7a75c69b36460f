//! The kubectl-like commands against a running node: `apply` writes a
//! manifest into the node's manifest directory (after the API server's
//! checks); `get`, `describe` and `logs` read what the node reports;
//! `exec` runs through it; `delete` removes the manifest and waits for
//! the pod to be gone.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use lab02::home::Home;

use crate::layout::{write_atomically, NodeDir};
use crate::printers;
use crate::protocol::{Client, ExecRequest, PodView, Request, Response};

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The manifest (YAML or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// `pods` (or `pod`, `po`).
    pub resource: String,
    /// Only these pods.
    pub names: Vec<String>,
    /// `wide` adds IP, NODE, NOMINATED NODE and READINESS GATES.
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<String>,
}

#[derive(clap::Args)]
pub struct DescribeArgs {
    /// `pod` (or `pods`, `po`).
    pub resource: String,
    pub name: String,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    pub pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing what it writes until it ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The log of the previous instance (before the last restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Each line with its time.
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(clap::Args)]
pub struct ExecArgs {
    pub pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass standard input to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give it a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// `pod` (or `pods`, `po`).
    pub resource: String,
    pub name: String,
}

fn pods_resource(resource: &str) -> Result<()> {
    match resource {
        "pod" | "pods" | "po" => Ok(()),
        other => bail!("the server doesn't have a resource type {other:?} (this node knows pods)"),
    }
}

/// The node, which must be up.
pub fn running_node(home: &Home, name: &str) -> Result<NodeDir> {
    let dir = NodeDir::of(home, name)?;
    dir.read_config()?;
    if dir.live_pid().is_none() {
        bail!(
            "node {name} is not running (its process is gone): \
             start it again with `ch03 node up --name {name}`"
        );
    }
    Ok(dir)
}

fn pods_of(dir: &NodeDir) -> Result<Vec<PodView>> {
    let mut client =
        Client::connect(&dir.socket())?.timeout(Duration::from_secs(30))?;
    match client.call(&Request::Pods)? {
        Response::Pods(pods) => Ok(pods),
        other => bail!("the node answered {other:?}"),
    }
}

fn not_found(name: &str) -> anyhow::Error {
    anyhow::anyhow!("pods {name:?} not found")
}

/// The node's pod `name`, or kubectl's "not found".
pub fn find(dir: &NodeDir, name: &str) -> Result<PodView> {
    pods_of(dir)?
        .into_iter()
        .find(|p| p.pod.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| not_found(name))
}

// ANCHOR: check
/// What the API server would say about a manifest: it must parse (strict,
/// with line and column or the field's path) and pass validation.
pub fn check(text: &str, source: &str) -> Result<Vec<Pod>> {
    let pods = lab03::manifest::parse_pods(text)
        .with_context(|| source.to_string())?;
    validate_pods(&pods, source)?;
    Ok(pods)
}

/// kube-apiserver's validation of each pod, in kubectl's wording.
pub fn validate_pods(pods: &[Pod], source: &str) -> Result<()> {
    for pod in pods {
        let errors = lab03::validate::validate_pod(pod);
        if errors.is_empty() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        // kubectl's wording: one error on the line, several as a list.
        if list.len() == 1 {
            bail!("{source}: the Pod {name:?} is invalid: {}", list[0]);
        }
        bail!(
            "{source}: the Pod {name:?} is invalid:\n* {}",
            list.join("\n* ")
        );
    }
    Ok(())
}
// ANCHOR_END: check

/// The pods whose manifests are in the directory, by file.
fn manifests(dir: &NodeDir) -> Result<Vec<(PathBuf, String)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir.manifests()) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(pod) = lab03::manifest::parse_pod(&text) {
            found.push((path, pod.metadata.name.unwrap_or_default()));
        }
    }
    Ok(found)
}

pub fn apply(home: &Home, node: &str, args: ApplyArgs) -> Result<u8> {
    let (text, source) = if args.file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        (text, "<stdin>".to_string())
    } else {
        let text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("read {}", args.file.display()))?;
        (text, args.file.display().to_string())
    };
    let pods = check(&text, &source)?;
    let dir = running_node(home, node)?;
    apply_pods(&dir, &pods, &text)
}

/// Writes checked pods into the node's manifest directory, one file each
/// (a single pod as the reader wrote it, comments and all).
pub fn apply_pods(dir: &NodeDir, pods: &[Pod], text: &str) -> Result<u8> {
    let node = &dir.name;
    let existing = manifests(dir)?;
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if existing.iter().any(|(_, n)| *n == name) {
            bail!(
                "pods {name:?} already exists on node {node} \
                 (delete it first: ch03 delete pod {name})"
            );
        }
    }
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let body = if pods.len() == 1 {
            text.to_string()
        } else {
            serde_json::to_string_pretty(pod)?
        };
        write_atomically(&dir.manifest(&name), body.as_bytes())?;
        println!("pod/{name} created");
    }
    Ok(0)
}

pub fn get(home: &Home, node: &str, args: GetArgs) -> Result<u8> {
    pods_resource(&args.resource)?;
    let wide = match args.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some(other) => {
            bail!("-o {other}: this node prints only the table and `-o wide`")
        }
    };
    let dir = running_node(home, node)?;
    let mut pods: Vec<Pod> =
        pods_of(&dir)?.into_iter().map(|v| v.pod).collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for name in &args.names {
        if !pods.iter().any(|p| p.metadata.name.as_ref() == Some(name)) {
            return Err(not_found(name));
        }
    }
    if !args.names.is_empty() {
        pods.retain(|p| {
            args.names
                .iter()
                .any(|n| p.metadata.name.as_ref() == Some(n))
        });
    }
    if pods.is_empty() {
        eprintln!("No resources found in default namespace.");
        return Ok(0);
    }
    print!("{}", printers::get_pods(&pods, wide, SystemTime::now()));
    Ok(0)
}

pub fn describe(home: &Home, node: &str, args: DescribeArgs) -> Result<u8> {
    pods_resource(&args.resource)?;
    let dir = running_node(home, node)?;
    let view = find(&dir, &args.name)?;
    print!(
        "{}",
        printers::describe_pod(&view.pod, &view.events, SystemTime::now())
    );
    Ok(0)
}

/// The container a command means: the one named, or the first (saying
/// so, as kubectl does, when there are several).
fn container_of(pod: &Pod, name: Option<&str>) -> Result<String> {
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    match name {
        Some(n) if names.iter().any(|c| c == n) => Ok(n.to_string()),
        Some(n) => bail!(
            "container {n} is not valid for pod {pod_name}: choose one of: [{}]",
            names.join(" ")
        ),
        None => {
            let first = names.first().context("a pod without containers")?.clone();
            if names.len() > 1 {
                eprintln!("Defaulted container {first:?} out of: {}", names.join(", "));
            }
            Ok(first)
        }
    }
}

fn restarts_of(view: &PodView, container: &str) -> i32 {
    let status = view.pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == container))
        .map_or(0, |c| c.restart_count)
}

fn is_running(view: &PodView, container: &str) -> bool {
    let status = view.pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|l| l.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

pub fn logs(home: &Home, node: &str, args: LogsArgs) -> Result<u8> {
    let dir = running_node(home, node)?;
    let view = find(&dir, &args.pod)?;
    let container = container_of(&view.pod, args.container.as_deref())?;
    let restarts = restarts_of(&view, &container).max(0) as u32;
    let path = if args.previous {
        lab03::logs::previous_log_path(&view.log_dir, &container, restarts).with_context(|| {
            format!(
                "previous terminated container {container:?} in pod {:?} not found",
                args.pod
            )
        })?
    } else {
        lab03::logs::log_path(&view.log_dir, &container, restarts)
    };
    let options = lab03::logs::LogOptions {
        tail: args.tail,
        timestamps: args.timestamps,
        ..Default::default()
    };
    if !path.exists() {
        bail!(
            "container {container:?} in pod {:?} is waiting to start: no log yet",
            args.pod
        );
    }
    let text = lab03::logs::read(&path, &options)?;
    print!("{text}");
    std::io::stdout().flush()?;
    if args.follow && !args.previous {
        follow(&dir, &args.pod, &container, &path, args.timestamps)?;
    }
    Ok(0)
}

/// `logs -f`: what the file gains, line by line, until the container
/// stops running.
fn follow(
    dir: &NodeDir,
    pod: &str,
    container: &str,
    path: &Path,
    timestamps: bool,
) -> Result<()> {
    let mut offset = std::fs::metadata(path)?.len();
    let mut last_check = Instant::now();
    loop {
        let bytes = std::fs::read(path)?;
        if (bytes.len() as u64) > offset {
            let new = &bytes[offset as usize..];
            // Only whole lines: the rest waits for the next look.
            if let Some(end) = new.iter().rposition(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&new[..=end]);
                let records = lab03::logs::parse_log(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let lines = lab03::logs::join(&records);
                print!("{}", lab03::logs::render(&lines, timestamps));
                std::io::stdout().flush()?;
                offset += end as u64 + 1;
            }
        }
        if last_check.elapsed() > Duration::from_millis(500) {
            last_check = Instant::now();
            match find(dir, pod) {
                Ok(view) if is_running(&view, container) => {}
                _ => return Ok(()),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn exec(home: &Home, node: &str, args: ExecArgs) -> Result<u8> {
    let dir = running_node(home, node)?;
    let view = find(&dir, &args.pod)?;
    let container = container_of(&view.pod, args.container.as_deref())?;
    let mut client = Client::connect(&dir.socket())?;
    client.request(&Request::Exec(ExecRequest {
        namespace: view.pod.metadata.namespace.clone().unwrap_or_default(),
        pod: args.pod.clone(),
        container: Some(container),
        cmd: args.command.clone(),
        tty: args.tty,
        stdin: args.stdin,
    }))?;
    let (started, fds) = client.exec_response()?;
    let Response::ExecStarted {
        stdin,
        stdout,
        stderr,
    } = started
    else {
        bail!("the node answered {started:?}");
    };
    let mut fds = fds.into_iter();
    let stdin_fd = if stdin { fds.next() } else { None };
    let stdout_fd = if stdout { fds.next() } else { None };
    let stderr_fd = if stderr { fds.next() } else { None };
    // A terminal of ours in raw mode, so keys go to the command as typed.
    let _raw = if args.tty { RawMode::enter() } else { None };
    if let Some(fd) = stdin_fd {
        std::thread::spawn(move || {
            let mut to = std::fs::File::from(fd);
            let _ = std::io::copy(&mut std::io::stdin(), &mut to);
        });
    }
    let out = stdout_fd.map(|fd| copy_out(fd, false));
    let err = stderr_fd.map(|fd| copy_out(fd, true));
    let code = match client.response()? {
        Response::Exited(code) => code,
        other => bail!("the node answered {other:?}"),
    };
    for t in [out, err].into_iter().flatten() {
        let _ = t.join();
    }
    Ok(code.clamp(0, 255) as u8)
}

fn copy_out(fd: OwnedFd, stderr: bool) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut from = std::fs::File::from(fd);
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                // EIO: a terminal whose other side closed.
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let _ = if stderr {
                        std::io::stderr().write_all(&buf[..n])
                    } else {
                        let mut out = std::io::stdout();
                        out.write_all(&buf[..n]).and_then(|_| out.flush())
                    };
                }
            }
        }
    })
}

/// The caller's terminal in raw mode until dropped.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

pub fn delete(home: &Home, node: &str, args: DeleteArgs) -> Result<u8> {
    pods_resource(&args.resource)?;
    let dir = running_node(home, node)?;
    let files: Vec<PathBuf> = manifests(&dir)?
        .into_iter()
        .filter(|(_, n)| *n == args.name)
        .map(|(p, _)| p)
        .collect();
    if files.is_empty() {
        return Err(not_found(&args.name));
    }
    let grace = find(&dir, &args.name)
        .ok()
        .and_then(|v| {
            v.pod.spec.and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0) as u64;
    for f in &files {
        std::fs::remove_file(f)
            .with_context(|| format!("remove {}", f.display()))?;
    }
    // The node notices, stops the pod gracefully, then forgets it.
    let deadline = Instant::now() + Duration::from_secs(grace + 30);
    while find(&dir, &args.name).is_ok() {
        if Instant::now() > deadline {
            bail!("pod {:?} is still there after {}s", args.name, grace + 30);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("pod {:?} deleted", args.name);
    Ok(0)
}
