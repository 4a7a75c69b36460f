//! `ch03 demo`: the chapter in one go, on a throwaway node. A pod of two
//! containers (kubia and a sidecar that fetches `localhost:8080` into a
//! shared emptyDir) is one machine: one hostname, one IP, localhost
//! between them, but a filesystem each except the volume. A second pod is
//! another machine on the same node and reaches the first by its IP. A
//! crashing container comes back after ever longer waits, and a liveness
//! probe restarts the book's unhealthy kubia.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lab02::home::Home;

use crate::layout::{NodeConfig, NodeDir};
use crate::node::Node;
use crate::protocol::PodView;
pub use chapters::running::Running;

#[derive(clap::Args)]
pub struct Args {}

/// The demo's back-off starts at this instead of the kubelet's 10 s, so the
/// crash loop shows three restarts in seconds.
pub const DEMO_BACKOFF_MS: u64 = 250;

const SIDECAR_POD: &str =
    include_str!("../../book/src/ch03/manifests/kubia-with-sidecar.yaml");

const CLIENT_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
  - name: main
    image: busybox:1
    command: [sleep, '3600']
";

const CRASHER_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: main
    image: busybox:1
    command: [sh, -c, 'echo crashing; exit 1']
";

/// The book's liveness pod, probed every second and restarted at the first
/// failure so the demo need not wait the defaults' half a minute.
const LIVENESS_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: kubia-liveness
spec:
  containers:
  - image: kubia-unhealthy:v1
    name: kubia
    livenessProbe:
      httpGet:
        path: /
        port: 8080
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
";

fn step(n: u32, what: &str) {
    println!("{n}. {what}");
}

fn say(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// The delays of a container's first three CrashLoopBackOff waits, as its
/// waiting message names them (`back-off 500ms restarting failed …`).
fn watch_waits(
    node: Arc<Node>,
    pod: &str,
) -> std::thread::JoinHandle<Result<Vec<String>>> {
    let pod = pod.to_string();
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        node.wait_for(&pod, Duration::from_secs(40), |v| {
            let waiting = v
                .pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|l| l.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.message.clone());
            if let Some(m) = waiting {
                let delay =
                    m.split_whitespace().nth(1).unwrap_or("").to_string();
                if seen.insert(delay.clone()) {
                    order.push(delay);
                }
            }
            order.len() >= 3
        })?;
        Ok(order)
    })
}

fn ip_of(view: &PodView) -> String {
    view.pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

fn all_running(view: &PodView) -> bool {
    let statuses = view
        .pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let n = view.pod.spec.as_ref().map_or(0, |s| s.containers.len());
    statuses.is_some_and(|l| {
        l.len() == n
            && l.iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    })
}

fn restarts(view: &PodView, container: &str) -> i32 {
    let statuses = view
        .pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    statuses
        .and_then(|l| l.iter().find(|c| c.name == container))
        .map_or(0, |c| c.restart_count)
}

/// The root filesystem of a running container, as the node sees it.
fn root_of(
    node: &Node,
    pod: &str,
    container: &str,
) -> Result<std::path::PathBuf> {
    let backend = node.backend();
    let id = backend.container_id("default", pod, Some(container))?;
    let status = backend.runtime()?.container_status(&id)?;
    let pid = status.pid.context("a running container without a pid")?;
    Ok(format!("/proc/{pid}/root").into())
}

fn net_ns_of(
    node: &Node,
    pod: &str,
    container: &str,
) -> Result<std::path::PathBuf> {
    let backend = node.backend();
    let id = backend.container_id("default", pod, Some(container))?;
    let status = backend.runtime()?.container_status(&id)?;
    let pid = status.pid.context("a running container without a pid")?;
    Ok(std::fs::read_link(format!("/proc/{pid}/ns/net"))?)
}

pub fn run(_args: Args) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo makes a node (network namespace, mounts, cgroups): run it with sudo");
    }
    let work = tempfile::Builder::new()
        .prefix("kubelings-demo-")
        .tempdir()?;
    let home = Home::at(work.path().join("home"));
    crate::images::build_all(&home, work.path())?;
    let dir = NodeDir::at(&work.path().join("node"), "node-1");
    let config = NodeConfig {
        name: "node-1".into(),
        cidr: lab03::ipam::node_cidr(1),
        backoff_base_ms: DEMO_BACKOFF_MS,
        proxy: Default::default(),
    };
    step(
        1,
        "start a node: its network namespace, a bridge, 198.18.1.0/24",
    );
    let running = Running::start(dir, config, &home)?;
    let node = running.node.clone();
    // The crash loop's waits, watched from the start: each lasts a
    // moment only.
    let waits = watch_waits(node.clone(), "crasher");
    running.apply("kubia-with-sidecar", SIDECAR_POD)?;
    running.apply("client", CLIENT_POD)?;
    running.apply("crasher", CRASHER_POD)?;
    say("manifests: kubia-with-sidecar, client, crasher");

    step(2, "kubia-with-sidecar: two containers, one machine");
    let first = node.wait_for(
        "kubia-with-sidecar",
        Duration::from_secs(20),
        all_running,
    )?;
    let ip = ip_of(&first);
    let (hostname, _) =
        node.exec_sync("kubia-with-sidecar", "fetcher", &["hostname"])?;
    say(&format!("hostname (in fetcher): {}", hostname.trim()));
    let url = "http://localhost:8080/";
    let (answer, _) = node.exec_sync(
        "kubia-with-sidecar",
        "fetcher",
        &["wget", "-q", "-O-", url],
    )?;
    say(&format!("fetcher -> {url}: {}", answer.trim()));
    let same_net = net_ns_of(&node, "kubia-with-sidecar", "kubia")?
        == net_ns_of(&node, "kubia-with-sidecar", "fetcher")?;
    say(&format!(
        "pod IP {ip}; one network namespace for both: {same_net}"
    ));
    let (addr, _) = node.exec_sync(
        "kubia-with-sidecar",
        "fetcher",
        &["ip", "-4", "-o", "addr", "show", "eth0"],
    )?;
    // `2: eth0    inet 198.18.1.3/24 …`: the fourth field.
    let addr = addr
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string();
    say(&format!("eth0 (in fetcher): {addr}"));

    step(3, "a filesystem each, except the emptyDir");
    // Wait for the sidecar's first fetch into the volume.
    let kubia_root = root_of(&node, "kubia-with-sidecar", "kubia")?;
    let shared = kubia_root.join("var/shared/index.html");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !shared.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let in_kubia = std::fs::read_to_string(&shared).unwrap_or_default();
    say(&format!(
        "kubia's /var/shared/index.html: {}",
        in_kubia.trim()
    ));
    node.exec_sync(
        "kubia-with-sidecar",
        "fetcher",
        &["touch", "/only-in-fetcher"],
    )?;
    let (ls, _) = node.exec_sync(
        "kubia-with-sidecar",
        "fetcher",
        &["ls", "/only-in-fetcher"],
    )?;
    say(&format!("fetcher sees {}", ls.trim()));
    let seen = kubia_root.join("only-in-fetcher").exists();
    say(&format!("kubia sees /only-in-fetcher: {seen}"));
    let mut top: Vec<String> = std::fs::read_dir(&kubia_root)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    say(&format!("kubia's / holds: {}", top.join(" ")));

    step(4, "client: another pod, another machine, on the same node");
    let client =
        node.wait_for("client", Duration::from_secs(20), all_running)?;
    let (hostname, _) = node.exec_sync("client", "main", &["hostname"])?;
    say(&format!(
        "hostname: {}, pod IP {}",
        hostname.trim(),
        ip_of(&client)
    ));
    say(&format!("an IP of its own: {}", ip_of(&client) != ip));
    let url = format!("http://{ip}:8080/");
    let (answer, _) =
        node.exec_sync("client", "main", &["wget", "-q", "-O-", &url])?;
    say(&format!("client -> {url}: {}", answer.trim()));

    step(5, "crasher: restarted, with a back-off that doubles");
    say(&format!(
        "(the kubelet starts at 10s; this node at {DEMO_BACKOFF_MS}ms, to be quick)"
    ));
    let order = waits
        .join()
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    say(&format!(
        "CrashLoopBackOff, waiting {}",
        order.join(", then ")
    ));

    step(
        6,
        "kubia-liveness: 500 from its sixth request on; the probe restarts it",
    );
    // Started only now, so what it does is watched from its first second.
    running.apply("kubia-liveness", LIVENESS_POD)?;
    // Before kubia listens the probe may fail otherwise: the 500 is the
    // failure this is about.
    let event = |v: &PodView, reason: &str, text: &str| {
        v.events
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.contains(text))
            })
            .cloned()
    };
    let live =
        node.wait_for("kubia-liveness", Duration::from_secs(30), |v| {
            restarts(v, "kubia") >= 1
                && event(v, "Unhealthy", "statuscode").is_some()
        })?;
    let shown = [
        event(&live, "Unhealthy", "statuscode"),
        event(&live, "Killing", ""),
    ];
    for e in shown.iter().flatten() {
        let reason = e.reason.clone().unwrap_or_default();
        let message = e.message.clone().unwrap_or_default();
        let width = crate::common::cli::WIDTH - 4;
        say(&crate::common::cli::wrap(
            &format!("{reason}: {message}"),
            width,
        ));
    }
    say(&format!("restart count: {}", restarts(&live, "kubia")));

    step(7, "stop the node: every pod gracefully, then its network");
    running.shutdown()?;
    say("nothing left: no network namespace, veth, mount, cgroup or process");
    Ok(0)
}
