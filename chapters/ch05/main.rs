//! `ch05`: chapter 5's program, first half: the control plane's API
//! server. `apiserver` serves the Kubernetes API over a store (our own
//! embedded one, or real etcd) with HTTPS and bearer tokens, so the real
//! `kubectl` and the Python client talk to it; `kubeconfig` writes the file
//! that tells them where it is and who they are.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apiserver;
mod bench;
// Only its `cli` part is used here.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod controller_manager;
mod data;
mod kubeconfig;
mod scheduler;
mod node_agent;

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
