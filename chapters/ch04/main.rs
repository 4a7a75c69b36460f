//! `ch04`: chapter 4's program. The node of chapter 3, with Services: a
//! ClusterIP that stays while the pods behind it come and go, a proxy
//! (`--proxy userspace|nftables`) and a DNS server on the node. `apply`,
//! `expose`, `get`, `describe` and `delete` talk to it as kubectl does;
//! `demo` and `bench` are the chapter's tour and measurements.

use std::path::PathBuf;
use std::process::ExitCode;

use chapters::{commands as pods, daemon};
use clap::{Parser, Subcommand};
use lab02::home::Home;

mod bench;
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod demo;
mod svc;

#[derive(Parser)]
#[command(
    name = "ch04",
    about = "Chapter 4: Services in front of pods (a ClusterIP, a proxy, cluster DNS)"
)]
struct Cli {
    /// This computer's state (images, nodes). Default: $KUBELINGS_HOME,
    /// else ~/.local/share/kubelings.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Which node the command is for.
    #[arg(long, global = true, default_value = "node-1", value_name = "NAME")]
    node: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start or stop a node (`node up --proxy userspace|nftables`).
    #[command(subcommand)]
    Node(daemon::NodeCommand),
    /// Create or update the Services and Pods in a manifest.
    Apply(svc::ApplyArgs),
    /// Make a Service for a pod's labels, or for a label selector.
    Expose(svc::ExposeArgs),
    /// List Services, EndpointSlices or pods, as `kubectl get`.
    Get(svc::GetArgs),
    /// Show a Service (or pod) in detail, with its events.
    Describe(svc::DescribeArgs),
    /// Remove a Service (or stop a pod).
    Delete(svc::DeleteArgs),
    /// Print a container's log.
    Logs(pods::LogsArgs),
    /// Run a command in a container of a pod.
    Exec(pods::ExecArgs),
    /// The chapter's demo: three kubia pods behind a Service, reached by
    /// IP and by name, through readiness changes and a deletion.
    Demo(demo::Args),
    /// Requests through each proxy against direct, and rule programming
    /// time for many Services.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse("ch04");
    let home = cli.home.map(Home::at).unwrap_or_else(Home::from_env);
    let node = cli.node;
    let result = match cli.command {
        Command::Node(cmd) => daemon::node(&home, &node, cmd),
        Command::Apply(args) => svc::apply(&home, &node, args),
        Command::Expose(args) => svc::expose(&home, &node, args),
        Command::Get(args) => svc::get(&home, &node, args),
        Command::Describe(args) => svc::describe(&home, &node, args),
        Command::Delete(args) => svc::delete(&home, &node, args),
        Command::Logs(args) => pods::logs(&home, &node, args),
        Command::Exec(args) => pods::exec(&home, &node, args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "{}",
                common::cli::wrap(&format!("ch04: {e:#}"), common::cli::WIDTH)
            );
            ExitCode::from(1)
        }
    }
}
