//! `ch05 tour`: the book's first two chapters end to end, on a cluster of
//! your own. Each step prints the command a reader would type (the real
//! `kubectl`, or `ch05`) and what it printed; lines starting with `#`
//! are the tour's own remarks, on what it waited for and what it saw.
//!
//! The cluster runs with node-lifecycle timings of seconds, not minutes
//! (a node is unreachable after 8 s without a heartbeat, its pods are
//! evicted 4 s later, a leader's Lease lasts 4 s), so a node's failure
//! and a scheduler's are over while you watch; the tour says so when it
//! starts them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use lab05::client::{Client, ClientConfig};

use crate::cluster_cmds::{Paths, StoreKind};

#[derive(clap::Args)]
pub struct Args {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=9))]
    nodes: u8,
    /// Where the objects are kept.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// Leave the cluster up at the end (`ch05 down` removes it).
    #[arg(long)]
    keep: bool,
}

/// The tour's Deployment: the book's kubia-deployment-v1.yaml.
const DEPLOYMENT: &str = "book/src/ch05/manifests/kubia-deployment.yaml";
const DEPLOYMENT_YAML: &str =
    include_str!("../../book/src/ch05/manifests/kubia-deployment.yaml");

/// How long the slowest step may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn step(n: u32, what: &str) {
    println!();
    println!("== {n}. {what}");
}

/// A remark of the tour's own.
fn say(text: &str) {
    for line in text.lines() {
        println!("# {line}");
    }
}

/// Runs `program args`, printing the command line and its output;
/// fails if it fails.
fn show(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    println!("$ {program} {}", args.join(" "));
    let out = run(program, args, env)?;
    print!("{out}");
    Ok(out)
}

fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    let exe = match program {
        "ch05" => std::env::current_exe()?,
        other => PathBuf::from(other),
    };
    let mut command = Command::new(&exe);
    command.args(args).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command
        .output()
        .with_context(|| format!("running {program}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// Waits until `done` says yes (polled), up to `limit`; says how long.
fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = done()? {
            say(&format!(
                "waited {:.1} s until {what}",
                t0.elapsed().as_secs_f64()
            ));
            return Ok(v);
        }
        if t0.elapsed() > limit {
            bail!("{what}: still not so after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

/// kubia's ready pods, by name, with their nodes.
fn ready_pods(client: &Client) -> Result<BTreeMap<String, String>> {
    let pods =
        client.list::<Pod>(Some("default"), "labelSelector=app%3Dkubia")?;
    Ok(pods
        .items
        .iter()
        .filter(|p| is_ready(p))
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            )
        })
        .collect())
}

/// All kubia pods that still exist (any phase).
fn all_pods(client: &Client) -> Result<usize> {
    Ok(client
        .list::<Pod>(Some("default"), "labelSelector=app%3Dkubia")?
        .items
        .len())
}

/// "node-1 2, node-2 1, node-3 2".
fn per_node(pods: &BTreeMap<String, String>) -> String {
    let mut count: BTreeMap<&str, u32> = BTreeMap::new();
    for node in pods.values() {
        *count.entry(node).or_default() += 1;
    }
    count
        .iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn node_ready(client: &Client, name: &str) -> Result<Option<String>> {
    let node = match client.get::<Node>(None, name) {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(node
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status))
}

fn lease_holder(client: &Client, name: &str) -> Result<Option<String>> {
    match client.get::<Lease>(Some("kube-system"), name) {
        Ok(l) => Ok(l.spec.and_then(|s| s.holder_identity)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What one request from `node` to `url` got: the pod's words, or why
/// there were none.
fn request(node: &str, url: &str) -> Result<String, String> {
    let out = run(
        "ch05",
        &["ssh", node, "--", "curl", "-sS", "-m", "3", url],
        &[],
    )
    .map_err(|e| format!("{e:#}"))?;
    let line = out.lines().next().unwrap_or_default().trim().to_string();
    if line.is_empty() {
        return Err("an empty answer".into());
    }
    Ok(line)
}

/// Requests every 100 ms from `node` until told to stop: what answered,
/// in order (None: a failed request).
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(node: &str, url: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (node, url) = (node.to_string(), url.to_string());
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let got = request(&node, &url);
                    if let Err(why) = &got {
                        // Beside the tour's output, for whoever looks.
                        eprintln!(
                            "tour: a request failed after {:?}: {}",
                            started.elapsed(),
                            why.trim()
                        );
                    }
                    let got = got.ok();
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(got);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Load {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Option<String>> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(
            &mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()),
        )
    }
}

pub fn run_tour(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the tour makes network namespaces, cgroups and containers: run it as root \
             (cargo build --release --bins; sudo ./target/release/ch05 tour)"
        );
    }
    for program in ["kubectl", "curl"] {
        if which(program).is_none() {
            bail!("the tour needs {program}, and there is none on PATH");
        }
    }
    let paths = Paths::from_env();
    let started = Instant::now();
    let nodes = args.nodes.to_string();
    let outcome = tour(&args, &paths, &nodes);
    if args.keep && outcome.is_ok() {
        say("the cluster stays up (--keep); to use it:");
        println!("export KUBECONFIG={}", paths.admin_kubeconfig().display());
    } else {
        step(10, "Down: nothing of the cluster is left");
        let down = show("ch05", &["down"], &[]);
        if outcome.is_ok() {
            down?;
        }
    }
    if outcome.is_ok() {
        say(&format!(
            "the tour took {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }
    outcome
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn tour(args: &Args, paths: &Paths, nodes: &str) -> Result<()> {
    step(1, "A cluster of your own: the control plane and its nodes");
    say(
        "the tour's cluster declares a node unreachable after 8 s without a\n\
         heartbeat (kube-controller-manager: 50 s), evicts its pods 4 s later\n\
         (300 s), and gives a leader's Lease 4 s (15 s)",
    );
    show(
        "ch05",
        &[
            "up",
            "--nodes",
            nodes,
            "--store",
            args.store.name(),
            "--fast",
        ],
        &[],
    )?;
    let kubeconfig = paths.admin_kubeconfig();
    let env = [("KUBECONFIG", kubeconfig.as_path())];
    let kubectl = |a: &[&str]| show("kubectl", a, &env);
    let client = Client::new(ClientConfig::from_kubeconfig(&kubeconfig)?)?;
    kubectl(&["cluster-info"])?;
    kubectl(&["get", "nodes"])?;

    step(2, "kubia as a Deployment of three replicas");
    kubectl(&["apply", "-f", DEPLOYMENT])?;
    let _ = DEPLOYMENT_YAML;
    let pods = wait_for("3 kubia pods were Ready", PATIENCE, || {
        let ready = ready_pods(&client)?;
        Ok((ready.len() == 3).then_some(ready))
    })?;
    kubectl(&["get", "pods", "-o", "wide"])?;
    say(&format!("pods per node: {}", per_node(&pods)));

    step(3, "A Service in front of them, and requests from a node");
    kubectl(&[
        "expose",
        "deployment",
        "kubia",
        "--port=80",
        "--target-port=8080",
    ])?;
    kubectl(&["get", "svc", "kubia"])?;
    let svc = client.get::<Service>(Some("default"), "kubia")?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service has no ClusterIP")?;
    let url = format!("http://{ip}");
    wait_for("the Service answered from node-1", PATIENCE, || {
        Ok(request("node-1", &url).ok())
    })?;
    println!("$ ch05 ssh node-1 -- curl -s {url}    # six times");
    let mut hosts = BTreeMap::new();
    let mut failed = 0;
    for _ in 0..6 {
        match request("node-1", &url) {
            Ok(line) => {
                println!("{line}");
                *hosts.entry(line).or_insert(0) += 1;
            }
            Err(why) => {
                eprintln!("tour: a request failed: {}", why.trim());
                failed += 1;
            }
        }
    }
    say(&format!(
        "6 requests: {} pods answered, {failed} failed",
        hosts.len()
    ));

    step(4, "Scaling up");
    kubectl(&["scale", "deployment", "kubia", "--replicas=5"])?;
    let pods = wait_for("5 kubia pods were Ready", PATIENCE, || {
        let ready = ready_pods(&client)?;
        Ok((ready.len() == 5).then_some(ready))
    })?;
    kubectl(&["get", "pods"])?;
    say(&format!("pods per node: {}", per_node(&pods)));

    step(5, "Self-healing: a pod deleted by hand is replaced");
    let victim = pods.keys().next().context("no pod")?.clone();
    kubectl(&["delete", "pod", &victim])?;
    let pods =
        wait_for("5 pods were Ready again, without it", PATIENCE, || {
            let ready = ready_pods(&client)?;
            Ok((ready.len() == 5 && !ready.contains_key(&victim))
                .then_some(ready))
        })?;
    say(&format!("pods per node: {}", per_node(&pods)));

    step(6, "A node fails: node-2's agent stops, its pods move");
    show("ch05", &["stop-node", "node-2"], &[])?;
    wait_for("node-2 was not Ready", PATIENCE, || {
        Ok(node_ready(&client, "node-2")?.filter(|s| s != "True"))
    })?;
    kubectl(&["get", "nodes"])?;
    let pods = wait_for("5 pods were Ready, none on node-2", PATIENCE, || {
        let ready = ready_pods(&client)?;
        let moved = ready.len() == 5 && ready.values().all(|n| n != "node-2");
        Ok(moved.then_some(ready))
    })?;
    say(&format!("pods per node: {}", per_node(&pods)));
    show("ch05", &["start-node", "node-2"], &[])?;
    wait_for("node-2 was Ready again", PATIENCE, || {
        Ok(node_ready(&client, "node-2")?.filter(|s| s == "True"))
    })?;
    wait_for("no pod of node-2 was left over", PATIENCE, || {
        Ok((all_pods(&client)? == 5).then_some(()))
    })?;

    step(7, "The active scheduler dies: the standby takes over");
    let holder = lease_holder(&client, "kube-scheduler")?
        .context("no scheduler holds the Lease")?;
    kubectl(&["get", "lease", "-n", "kube-system", "kube-scheduler"])?;
    show("ch05", &["kill", &holder], &[])?;
    let next = wait_for("another scheduler held the Lease", PATIENCE, || {
        Ok(lease_holder(&client, "kube-scheduler")?.filter(|h| *h != holder))
    })?;
    say(&format!("the leader is now {next}"));
    kubectl(&["scale", "deployment", "kubia", "--replicas=6"])?;
    let pods = wait_for("6 kubia pods were Ready", PATIENCE, || {
        let ready = ready_pods(&client)?;
        Ok((ready.len() == 6).then_some(ready))
    })?;
    say(&format!("pods per node: {}", per_node(&pods)));

    step(8, "A rolling update to kubia:v2, under load");
    let load = Load::start("node-1", &url);
    std::thread::sleep(Duration::from_secs(1));
    kubectl(&["set", "image", "deployment/kubia", "nodejs=kubia:v2"])?;
    let out = run(
        "kubectl",
        &["rollout", "status", "deployment/kubia", "--timeout=180s"],
        &env,
    )?;
    println!("$ kubectl rollout status deployment/kubia");
    if let Some(last) = out.lines().last() {
        println!("{last}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let seen = load.finish();
    let failed = seen.iter().filter(|s| s.is_none()).count();
    let v1_first = seen
        .iter()
        .flatten()
        .next()
        .is_some_and(|s| s.starts_with("You've hit"));
    let v2_last = seen
        .iter()
        .flatten()
        .last()
        .is_some_and(|s| s.starts_with("This is v2"));
    say(&format!(
        "{} requests during the rollout, {failed} failed",
        seen.len()
    ));
    say(&format!(
        "the first answered from v1: {v1_first}; the last from v2: {v2_last}"
    ));
    kubectl(&["rollout", "history", "deployment/kubia"])?;

    step(9, "A pod's log and a command in it, through the API server");
    // The pod that answered last: its log ends with that request.
    let last = seen
        .iter()
        .flatten()
        .last()
        .and_then(|s| s.rsplit(' ').next())
        .context("no request was answered")?
        .to_string();
    kubectl(&["logs", &last, "--tail=1"])?;
    // The same way in, upgraded to a WebSocket: a command in the pod's
    // container, here a request through the Service by its DNS name.
    kubectl(&["exec", &last, "--", "hostname"])?;
    kubectl(&["exec", &last, "--", "wget", "-qO-", "http://kubia"])?;
    Ok(())
}
