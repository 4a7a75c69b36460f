//! `ch03 run -f pod.yaml`: one pod in the foreground on a throwaway node,
//! as `docker run` is for one container. Its status is printed as it
//! changes (like `kubectl get pods -w`); Ctrl-C stops it gracefully and
//! removes the node; a pod that ends (Succeeded or Failed) ends the run.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use lab02::home::Home;

use crate::demo::Running;
use crate::layout::{NodeConfig, NodeDir};

#[derive(clap::Args)]
pub struct Args {
    /// The pod's manifest.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// The throwaway node's pod CIDR.
    #[arg(long, default_value = "198.18.1.0/24")]
    cidr: lab03::ipam::Cidr,
}

pub fn run(home: &Home, args: Args) -> Result<u8> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("read {}", args.file.display()))?;
    let source = args.file.display().to_string();
    let pods = crate::commands::check(&text, &source)?;
    if pods.len() != 1 {
        bail!(
            "{source}: run takes one pod, the manifest has {}",
            pods.len()
        );
    }
    let name = pods[0].metadata.name.clone().unwrap_or_default();
    if !nix::unistd::geteuid().is_root() {
        bail!("run makes a node (network namespace, mounts, cgroups): run it with sudo");
    }
    // Blocked in every thread from here, so that Ctrl-C is only ours.
    let signals = lab01::signals::block_termination_signals();
    let work = tempfile::Builder::new()
        .prefix("kubelings-run-")
        .tempdir()?;
    let dir = NodeDir::at(&work.path().join("node"), "node-1");
    let config = NodeConfig {
        name: "node-1".into(),
        cidr: args.cidr,
        backoff_base_ms: 10_000,
        proxy: Default::default(),
    };
    let running = Running::start(dir, config, home)?;
    running.apply(&name, &text)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = signals.wait();
        let _ = tx.send(());
    });
    let mut last = String::new();
    let mut header = true;
    loop {
        if let Some(view) = running.node.pod(&name) {
            let table = crate::printers::get_pods(
                std::slice::from_ref(&view.pod),
                true,
                SystemTime::now(),
            );
            let row = crate::printers::pod_row(&view.pod, SystemTime::now());
            let key = format!(
                "{} {} {} {}",
                row.ready, row.status, row.restarts, row.ip
            );
            if key != last {
                let mut lines = table.lines();
                let head = lines.next().unwrap_or_default();
                if header {
                    println!("{head}");
                    header = false;
                }
                for l in lines {
                    println!("{l}");
                }
                last = key;
            }
            let phase = view.pod.status.as_ref().and_then(|s| s.phase.clone());
            if matches!(phase.as_deref(), Some("Succeeded") | Some("Failed")) {
                break;
            }
        }
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            eprintln!("stopping {name} gracefully");
            break;
        }
    }
    running.shutdown()?;
    Ok(0)
}
