//! `ch05 scheduler`: the scheduler against an API server, as
//! kube-scheduler runs, until SIGINT or SIGTERM.
//!
//! It needs only a kubeconfig: it watches nodes and pods through the API
//! server and writes bindings and events there.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lab05::auth::Role;
use lab05::client::{Client, ClientConfig};
use lab05::leader::{LeaderElector, LeaseRef};
use lab05::scheduler::{Scheduler, SchedulerOptions};

use crate::controller_manager::{default_identity, stop_on_signal, LeaderArgs};
use crate::{data, kubeconfig};

#[derive(clap::Args)]
pub struct Args {
    /// Who the scheduler is and where the API server is. Default: the
    /// scheduler's kubeconfig in the data directory, written if missing.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The profile's name: the pods it schedules (spec.schedulerName)
    /// and the events' source.
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
    /// This replica's identity in the Lease. Default: <hostname>_<uuid>.
    #[arg(long)]
    name: Option<String>,
    /// Schedule only while holding the kube-system/kube-scheduler Lease.
    #[command(flatten)]
    leader: LeaderArgs,
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
    let identity = args.name.clone().unwrap_or_else(default_identity);
    println!("ch05: the scheduler {identity} watches {}", client.server());
    let options = SchedulerOptions {
        scheduler_name: args.scheduler_name,
        percentage_of_nodes_to_score: args.percentage_of_nodes_to_score,
        ..SchedulerOptions::default()
    };
    let scheduler = Scheduler::new(client.clone(), options);
    if !args.leader.leader_elect {
        scheduler.run(&stop)?;
        eprintln!("ch05: stopping");
        return Ok(());
    }
    let timings = args.leader.timings();
    let lease = LeaseRef::new("kube-system", "kube-scheduler");
    let elector = LeaderElector::new(client, lease, &identity, timings)
        .context("leader election")?
        .release_on_cancel(true);
    // ANCHOR: lead
    let outcome = elector.run(&stop, |leading| {
        // The scheduler stops when leadership is lost or we are told to.
        let halt = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Each turn sleeps (up to 200 ms): not a busy wait.
                loop {
                    let go_on = !halt.load(Ordering::SeqCst)
                        && leading.sleep(Duration::from_millis(200))
                        && !stop.load(Ordering::SeqCst);
                    if !go_on {
                        break;
                    }
                }
                halt.store(true, Ordering::SeqCst);
            });
            let result = scheduler.run(&halt);
            halt.store(true, Ordering::SeqCst);
            result
        })
    });
    // ANCHOR_END: lead
    match outcome {
        None => {}
        Some(result) => result?,
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!("ch05: stopping");
        Ok(())
    } else {
        // As kube-scheduler: a replica that lost the Lease exits.
        anyhow::bail!("leaderelection lost")
    }
}
