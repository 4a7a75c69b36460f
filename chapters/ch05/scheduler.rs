//! `ch05 scheduler`: the scheduler against an API server, as
//! kube-scheduler runs, until SIGINT or SIGTERM.
//!
//! It needs only a kubeconfig: it watches nodes and pods through the API
//! server and writes bindings and events there.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use lab05::auth::Role;
use lab05::client::{Client, ClientConfig};
use lab05::scheduler::{Scheduler, SchedulerOptions};
use tokio::signal::unix::{signal, SignalKind};

use crate::{data, kubeconfig};

#[derive(clap::Args)]
pub struct Args {
    /// Who the scheduler is and where the API server is. Default: the
    /// scheduler's kubeconfig in the data directory, written if missing.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Its name: the pods it schedules (spec.schedulerName) and the
    /// events' source; also its identity for leader election.
    #[arg(long, default_value = "default-scheduler")]
    name: String,
    /// percentageOfNodesToScore (0: adaptive, as kube-scheduler).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    percentage_of_nodes_to_score: u32,
    /// The control plane's data directory (for the default kubeconfig).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = match args.kubeconfig {
        Some(path) => path,
        None => {
            let dir = data::dir(args.data);
            let path = dir.join("scheduler.kubeconfig");
            if !path.exists() {
                kubeconfig::write(&dir, &Role::Scheduler, &path)?;
            }
            path
        }
    };
    let config = ClientConfig::from_kubeconfig(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let client = Client::new(config)?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone())?;
    println!(
        "ch05: the scheduler {} watches {}",
        args.name,
        client.server()
    );
    let options = SchedulerOptions {
        scheduler_name: args.name,
        percentage_of_nodes_to_score: args.percentage_of_nodes_to_score,
        ..SchedulerOptions::default()
    };
    // Leader election goes here: acquire the Lease
    // kube-system/kube-scheduler as `--name`'s identity, run while it is
    // held, stop when it is lost.
    Scheduler::new(client, options).run(&stop)?;
    eprintln!("ch05: stopping");
    Ok(())
}

/// Sets `stop` on SIGINT or SIGTERM.
fn stop_on_signal(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal watcher")?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            stop.store(true, Ordering::SeqCst);
        });
    });
    Ok(())
}
