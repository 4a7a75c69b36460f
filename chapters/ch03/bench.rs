//! `ch03 bench`: pod start (a sandbox, its network, one container from a
//! local image, until its process runs), ours against containerd's
//! `ctr run` with the CNI bridge plugin, in the same run on the same image
//! (kubia, saved as `ch02 save` does and imported with `ctr image import`).
//! Ours is timed at the CRI seam, the calls a kubelet makes:
//! RunPodSandbox, CreateContainer, StartContainer, then ContainerStatus
//! until the container runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab02::home::Home;
use lab03::cri::{
    ContainerConfig, ContainerMetadata, ContainerState, PodSandboxConfig,
    PodSandboxMetadata, RuntimeService,
};

use crate::containerd::{bench_containerd, median};
use crate::layout::{NodeConfig, NodeDir};

#[derive(clap::Args)]
pub struct Args {
    /// Rounds per runtime; the median is shown.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
    /// Leave containerd out (when it is not installed).
    #[arg(long)]
    no_containerd: bool,
    /// Also write the table into FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

/// A pod's sandbox and container configs.
type Configs = (PodSandboxConfig, ContainerConfig);
/// How long a start took, and the sandbox's id.
type Started = (Duration, String);

/// The configs of one bench pod, as a kubelet would make them.
fn configs(dir: &NodeDir, round: u64) -> (PodSandboxConfig, ContainerConfig) {
    let name = format!("bench-{round}");
    let uid = format!("00000000-0000-0000-0000-{round:012}");
    let sandbox = PodSandboxConfig {
        metadata: PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        },
        hostname: name.clone(),
        log_directory: lab03::logs::pod_log_dir(
            &dir.pod_logs(),
            "default",
            &name,
            &uid,
        ),
        cgroup_parent: format!("kubepods/besteffort/pod{uid}"),
        ..Default::default()
    };
    let container = ContainerConfig {
        metadata: ContainerMetadata {
            name: "kubia".into(),
            attempt: 0,
        },
        image: crate::images::KUBIA.into(),
        log_path: "kubia/0.log".into(),
        ..Default::default()
    };
    (sandbox, container)
}

// ANCHOR: pod_start
/// One pod start through the CRI, until the container's process runs.
pub fn pod_start(rt: &dyn RuntimeService, cfg: Configs) -> Result<Started> {
    let (sandbox, container) = cfg;
    let start = Instant::now();
    let pod = rt.run_pod_sandbox(&sandbox)?;
    let id = rt.create_container(&pod, &container, &sandbox)?;
    rt.start_container(&id)?;
    loop {
        let status = rt.container_status(&id)?;
        if status.state == ContainerState::Running && status.pid.is_some() {
            break;
        }
        if status.state == ContainerState::Exited {
            bail!(
                "the bench container exited: {} {}",
                status.reason,
                status.message
            );
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("the bench container did not run within 10s");
        }
        std::thread::yield_now();
    }
    Ok((start.elapsed(), pod))
}
// ANCHOR_END: pod_start

fn remove(rt: &dyn RuntimeService, pod: &str) -> Result<()> {
    rt.stop_pod_sandbox(pod)?;
    rt.remove_pod_sandbox(pod)?;
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(args: Args) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the benchmark makes nodes and runs containerd: run it with sudo"
        );
    }
    let work = tempfile::Builder::new()
        .prefix("kubelings-bench-")
        .tempdir()?;
    let home = Home::at(work.path().join("home"));
    crate::images::build_all(&home, work.path())?;
    let dir = NodeDir::at(&work.path().join("node"), "bench");
    let config = NodeConfig {
        name: "bench".into(),
        cidr: lab03::ipam::node_cidr(1),
        backoff_base_ms: 10_000,
        proxy: Default::default(),
    };
    dir.write_config(&config)?;
    let node = crate::node::Node::start(dir.clone(), config, &home)?;
    let rt = node.backend().runtime()?;
    // One warm-up round, as for containerd: the image's layers unpacked.
    let mut ours = Vec::new();
    let result = (|| -> Result<()> {
        for round in 0..=args.rounds {
            let (took, pod) = pod_start(&*rt, configs(&dir, round))?;
            if round > 0 {
                ours.push(took);
            }
            remove(&*rt, &pod)?;
        }
        Ok(())
    })();
    drop(rt);
    node.stop()?;
    result?;
    let ours_median = median(&ours);
    let theirs = if args.no_containerd {
        None
    } else {
        let archive = work.path().join("kubia.tar");
        let store = lab02::layout::ImageStore::open(&home.images())?;
        let name = crate::images::KUBIA
            .parse::<lab02::reference::Reference>()?
            .local_name();
        let mut file = std::fs::File::create(&archive)?;
        lab02::archive::save(&store, &[name.as_str()], &mut file)?;
        drop(file);
        Some(
            bench_containerd(&archive, args.rounds as usize, true)
                .context("containerd")?,
        )
    };
    let mut table = String::new();
    table += &format!("pod start, median of {} rounds\n", args.rounds);
    table += &format!("{:<34} {:>10}\n", "runtime", "median");
    table += &format!(
        "{:<34} {:>10}\n",
        "kubelings (CRI calls, pod network)",
        ms(ours_median)
    );
    if let Some(t) = &theirs {
        let label = if t.cni_used {
            "ctr run --cni (runc, CNI bridge)"
        } else {
            "ctr run (runc, no CNI)"
        };
        table += &format!("{label:<34} {:>10}\n", ms(t.median));
        let ratio =
            t.median.as_secs_f64() / ours_median.as_secs_f64().max(1e-9);
        table += &format!("{:<34} {:>9.1}x\n", "kubelings faster by", ratio);
        let note = crate::common::cli::wrap(&format!("note: {}", t.note), 80);
        table += &format!("{note}\n");
    }
    print!("{table}");
    if let Some(file) = &args.save {
        crate::layout::write_atomically(file, table.as_bytes())?;
    }
    Ok(0)
}
