//! `ch05`: chapter 5's program, first half: the control plane's API
//! server. `apiserver` serves the Kubernetes API over a store (our own
//! embedded one, or real etcd) with HTTPS and bearer tokens, so the real
//! `kubectl` and the Python client talk to it; `kubeconfig` writes the file
//! that tells them where it is and who they are.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apiserver;
mod bench;
mod cluster_child;
mod cluster_cmds;
mod cluster_supervisor;
// Only its `cli` part is used here.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod controller_manager;
mod data;
mod kubeconfig;
mod node_agent;
mod registry;
mod scheduler;
mod tour;

#[derive(Parser)]
#[command(
    name = "ch05",
    about = "Chapter 5: the control plane's API server (a store, HTTPS, tokens)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Kubernetes API until Ctrl-C (or SIGTERM).
    Apiserver(apiserver::Args),
    /// Run the controllers (ReplicaSet, Deployment, EndpointSlice, node
    /// lifecycle, garbage collector) with leader election, until Ctrl-C.
    ControllerManager(controller_manager::Args),
    /// Measure: `api` is the store's writes (embedded against etcd) and
    /// the API server under load.
    Bench(bench::Args),
    /// Write a kubeconfig for one identity (admin, a node, the scheduler,
    /// the controller manager).
    Kubeconfig(kubeconfig::Args),
    /// Schedule pods onto nodes through the API server until Ctrl-C (or
    /// SIGTERM).
    Scheduler(scheduler::Args),
    /// Run one node's agent (the kubelet) against the API server, in
    /// this network namespace, until Ctrl-C (or SIGTERM).
    NodeAgent(node_agent::Args),
    /// Serve the cluster's image registry (lab02's) until Ctrl-C (or
    /// SIGTERM).
    Registry(registry::Args),
    /// Start a cluster on this machine (root): the control plane and N
    /// nodes, each node a network namespace; returns once they are Ready.
    Up(cluster_cmds::UpArgs),
    /// Stop the cluster and remove everything it made (namespaces,
    /// processes, files; the logs stay).
    Down,
    /// The cluster's processes and nodes.
    Status,
    /// A shell (or `-- CMD`) in a node's network namespace.
    Ssh(cluster_cmds::SshArgs),
    /// Stop a node's agent (its pods with it) and take it off the network.
    StopNode(cluster_cmds::NodeArgs),
    /// Start a stopped node again.
    StartNode(cluster_cmds::NodeArgs),
    /// Kill one of the control plane's processes (SIGKILL, as a crash).
    Kill(cluster_cmds::KillArgs),
    /// Kill one of the control plane's processes and start it again.
    Restart(cluster_cmds::KillArgs),
    /// Chapter 5 in one run: a cluster, kubia deployed, exposed, scaled,
    /// healed, failed over and updated, with the real kubectl (root).
    Tour(tour::Args),
    /// Print a component's log.
    Logs(cluster_cmds::LogsArgs),
    /// The process `up` starts to own the cluster (not for you to run).
    #[command(hide = true)]
    ClusterSupervisor(cluster_supervisor::Args),
}

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse("ch05");
    let result = match cli.command {
        Command::Apiserver(args) => apiserver::run(args),
        Command::Kubeconfig(args) => kubeconfig::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Scheduler(args) => scheduler::run(args),
        Command::ControllerManager(args) => controller_manager::run(args),
        Command::NodeAgent(args) => node_agent::run(args),
        Command::Registry(args) => registry::run(args),
        Command::Up(args) => cluster_cmds::up(args),
        Command::Down => cluster_cmds::down(),
        Command::Status => cluster_cmds::status(),
        Command::Ssh(args) => cluster_cmds::ssh(args),
        Command::StopNode(args) => {
            cluster_cmds::node_command("stop-node", args)
        }
        Command::StartNode(args) => {
            cluster_cmds::node_command("start-node", args)
        }
        Command::Logs(args) => cluster_cmds::logs(args),
        Command::Kill(args) => cluster_cmds::kill(args),
        Command::Restart(args) => cluster_cmds::restart(args),
        Command::Tour(args) => tour::run_tour(args),
        Command::ClusterSupervisor(args) => cluster_supervisor::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                common::cli::wrap(&format!("ch05: {e:#}"), common::cli::WIDTH)
            );
            ExitCode::from(1)
        }
    }
}
