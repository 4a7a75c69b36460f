//! `ch05 controller-manager`: kube-controller-manager's part of the
//! cluster, on its own: the ReplicaSet, ReplicationController,
//! Deployment, EndpointSlice, node lifecycle and garbage-collector
//! controllers over one set of informers, with leader election, until
//! SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lab05::client::{Client, ClientConfig};
use lab05::controllers::manager::{self, ManagerOptions, Outcome};
use lab05::controllers::nodelifecycle::NodeLifecycleOptions;
use lab05::leader::Timings;

#[derive(clap::Args)]
pub struct Args {
    /// Where the API server is and who this is.
    #[arg(long, value_name = "PATH")]
    kubeconfig: PathBuf,
    /// This replica's identity in the Lease. Default: <hostname>_<uuid>.
    #[arg(long)]
    name: Option<String>,
    /// How often each node's Lease and Ready condition are looked at.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// No renewal for this long and the node is unreachable.
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// Nodes per second given their NoExecute taint in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f64,
    /// The rate in a large zone that is partly disrupted.
    #[arg(long, default_value_t = 0.01)]
    secondary_node_eviction_rate: f64,
    /// The share of not-ready nodes that makes a zone partly disrupted.
    #[arg(long, default_value_t = 0.55)]
    unhealthy_zone_threshold: f64,
    /// A partly disrupted zone of at most this many nodes evicts nothing.
    #[arg(long, default_value_t = 50)]
    large_cluster_size_threshold: usize,
    /// Run only while holding the kube-system/kube-controller-manager
    /// Lease.
    #[command(flatten)]
    leader: LeaderArgs,
}

/// Leader election's flags, as kube-scheduler and
/// kube-controller-manager both take them.
#[derive(clap::Args)]
pub struct LeaderArgs {
    /// Act only while holding the component's Lease, so that of several
    /// replicas exactly one acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    renew_deadline: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    retry_period: Duration,
}

impl LeaderArgs {
    pub fn timings(&self) -> Timings {
        Timings {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        }
    }
}

/// Go's durations as the real flags take them: `300ms`, `5s`, `1m30s`,
/// `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (e.g. 5s, 300ms, 1m30s)");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| digits + i);
        let seconds = match &rest[digits..unit_end] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(seconds);
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// `<hostname>_<uuid>`, as kube-controller-manager names itself.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    // The API server's UUID maker, as upstream's uuid.NewUUID().
    let suffix = lab05::apiserver::meta::new_uid()
        .unwrap_or_else(|_| std::process::id().to_string());
    format!("{host}_{suffix}")
}

/// Raises `stop` on SIGINT or SIGTERM (the scheduler's too).
pub fn stop_on_signal(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = ClientConfig::from_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let client = Client::new(config).context("the API client")?;
    let identity = args.name.clone().unwrap_or_else(default_identity);
    let timings = args.leader.timings();
    let options = ManagerOptions {
        node_lifecycle: NodeLifecycleOptions {
            monitor_period: args.node_monitor_period,
            grace_period: args.node_monitor_grace_period,
            eviction_rate: args.node_eviction_rate,
            secondary_eviction_rate: args.secondary_node_eviction_rate,
            unhealthy_zone_threshold: args.unhealthy_zone_threshold,
            large_cluster_size_threshold: args.large_cluster_size_threshold,
        },
        leader_election: args
            .leader
            .leader_elect
            .then(|| (identity.clone(), timings)),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone())?;
    eprintln!(
        "ch05 controller-manager: {identity} against {}",
        client.server()
    );
    match manager::run(client, &options, &stop)? {
        Outcome::Stopped => {
            eprintln!("ch05 controller-manager: stopping");
            Ok(())
        }
        // As kube-controller-manager: exit, to be restarted.
        Outcome::LostLeadership => anyhow::bail!("leaderelection lost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
    }
}
