//! `ch03 density --pods N`: N pods on one node (the kubelet's default
//! maximum is 110), the time until all of them run, the node memory each
//! costs, then all deleted and nothing left.
//!
//! A pod's memory is the proportional set size (PSS: each page divided
//! among the processes sharing it) of the processes the runtime adds for
//! it: the sandbox and each container's init, summed from
//! `/proc/PID/smaps_rollup`, divided by N. The pods' own programs are the
//! reader's, not the runtime's, and are left out.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab02::home::Home;
use lab03::cri::{ContainerFilter, PodSandboxFilter, RuntimeService};

use crate::demo::Running;
use crate::layout::{NodeConfig, NodeDir};

#[derive(clap::Args)]
pub struct Args {
    /// How many pods.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=250))]
    pods: u64,
    /// Also write the figures into FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<std::path::PathBuf>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub pods: u64,
    pub all_running: Duration,
    pub pss_per_pod: u64,
    pub all_deleted: Duration,
}

fn manifest(i: u64) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{i}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
         image: busybox:1\n    command: [sleep, '3600']\n"
    )
}

// ANCHOR: pss
/// The PSS of a process in bytes (`Pss:` in smaps_rollup is in kB).
pub fn pss(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path);
    let text = text.with_context(|| format!("read {path}"))?;
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("no Pss line in {path}"))?;
    Ok(kb * 1024)
}

/// The PSS of every process the runtime runs for its pods: sandboxes and
/// container inits.
pub fn runtime_pss(rt: &dyn RuntimeService) -> Result<u64> {
    let mut total = 0;
    for s in rt.list_pod_sandbox(&PodSandboxFilter::default())? {
        if let Some(pid) = rt.pod_sandbox_status(&s.id)?.pid {
            total += pss(pid)?;
        }
    }
    for c in rt.list_containers(&ContainerFilter::default())? {
        if let Some(pid) = rt.container_status(&c.id)?.pid {
            total += pss(pid)?;
        }
    }
    Ok(total)
}
// ANCHOR_END: pss

/// Runs the measurement on a throwaway node with images in `home`.
pub fn measure(home: &Home, root: &std::path::Path, n: u64) -> Result<Figures> {
    let dir = NodeDir::at(&root.join("node"), "node-1");
    let config = NodeConfig {
        name: "node-1".into(),
        cidr: lab03::ipam::node_cidr(1),
        backoff_base_ms: 10_000,
        proxy: Default::default(),
    };
    let running = Running::start(dir, config, home)?;
    let node = running.node.clone();
    let start = Instant::now();
    for i in 0..n {
        running.apply(&format!("pod-{i}"), &manifest(i))?;
    }
    let deadline = start + Duration::from_secs(120);
    loop {
        let pods = node.pods();
        let up = pods
            .iter()
            .filter(|v| {
                let phase =
                    v.pod.status.as_ref().and_then(|s| s.phase.as_deref());
                let row = crate::printers::pod_row(
                    &v.pod,
                    std::time::SystemTime::now(),
                );
                phase == Some("Running") && row.status == "Running"
            })
            .count() as u64;
        if up == n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {up} of {n} pods run after 120s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let all_running = start.elapsed();
    let rt = node.backend().runtime()?;
    let pss_per_pod = runtime_pss(&*rt)? / n;
    let start = Instant::now();
    for i in 0..n {
        std::fs::remove_file(node.dir.manifest(&format!("pod-{i}")))?;
    }
    let deadline = start + Duration::from_secs(120);
    while !node.pods().is_empty() {
        if Instant::now() > deadline {
            bail!("{} pods are still there after 120s", node.pods().len());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let all_deleted = start.elapsed();
    let left = rt.list_pod_sandbox(&PodSandboxFilter::default())?.len()
        + rt.list_containers(&ContainerFilter::default())?.len();
    if left > 0 {
        bail!(
            "{left} sandboxes and containers are left after deleting every pod"
        );
    }
    // The last holder of the runtime is the node: its shutdown drops it.
    drop(rt);
    running.shutdown()?;
    Ok(Figures {
        pods: n,
        all_running,
        pss_per_pod,
        all_deleted,
    })
}

pub fn run(args: Args) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("density makes a node (network namespace, mounts, cgroups): run it with sudo");
    }
    let work = tempfile::Builder::new()
        .prefix("kubelings-density-")
        .tempdir()?;
    let home = Home::at(work.path().join("home"));
    crate::images::build_all(&home, work.path())?;
    let f = measure(&home, work.path(), args.pods)?;
    let mut table = String::new();
    table += &format!("pods on one node          {}\n", f.pods);
    table += &format!(
        "all Running after         {:.2} s\n",
        f.all_running.as_secs_f64()
    );
    table += &format!(
        "node memory per pod (PSS) {:.0} KiB\n",
        f.pss_per_pod as f64 / 1024.0
    );
    table += &format!(
        "all deleted after         {:.2} s\n",
        f.all_deleted.as_secs_f64()
    );
    table += "left behind               nothing\n";
    print!("{table}");
    if let Some(file) = &args.save {
        crate::layout::write_atomically(file, table.as_bytes())?;
    }
    Ok(0)
}
