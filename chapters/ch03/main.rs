//! `ch03`: chapter 3's program. A node of your own with the kubelet's
//! static-pod model: `node up` starts a supervising process that runs the
//! pods whose manifests are in the node's manifest directory; `apply`,
//! `get`, `describe`, `logs`, `exec` and `delete` talk to it as kubectl
//! talks to a cluster. State lives under `$KUBELINGS_HOME` (or `--home`).

use std::path::PathBuf;
use std::process::ExitCode;

use chapters::{commands, daemon, images, layout, node, printers, protocol};
use clap::{Parser, Subcommand};
use lab02::home::Home;

mod bench;
mod containerd;
// Only its `cli` part is used here.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
mod demo;
mod density;
mod run;

#[derive(Parser)]
#[command(
    name = "ch03",
    about = "Chapter 3: pods on a node of your own (static pods, a CRI-shaped runtime)"
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
    /// Start or stop a node.
    #[command(subcommand)]
    Node(daemon::NodeCommand),
    /// Run the pod in a manifest on the node (writes it into the node's
    /// manifest directory, as a static pod).
    Apply(commands::ApplyArgs),
    /// List the node's pods, as `kubectl get pods`.
    Get(commands::GetArgs),
    /// Show one pod in detail, with its events.
    Describe(commands::DescribeArgs),
    /// Print a container's log.
    Logs(commands::LogsArgs),
    /// Run a command in a container of a pod.
    Exec(commands::ExecArgs),
    /// Stop a pod gracefully and remove it.
    Delete(commands::DeleteArgs),
    /// Build the images the book's manifests name (kubia:v1,
    /// kubia-unhealthy:v1, kubia:v2, busybox:1) into the store.
    Images,
    /// Run one pod in the foreground on a throwaway node (Ctrl-C stops it).
    Run(run::Args),
    /// The chapter's demo: two pods, a shared emptyDir, a crash loop, a liveness probe.
    Demo(demo::Args),
    /// Start N pods on one node, measure time and memory, delete them all.
    Density(density::Args),
    /// Pod start against containerd (ctr run), in the same run.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse("ch03");
    let home = cli.home.map(Home::at).unwrap_or_else(Home::from_env);
    let node = cli.node;
    let result = match cli.command {
        Command::Node(cmd) => daemon::node(&home, &node, cmd),
        Command::Apply(args) => commands::apply(&home, &node, args),
        Command::Get(args) => commands::get(&home, &node, args),
        Command::Describe(args) => commands::describe(&home, &node, args),
        Command::Logs(args) => commands::logs(&home, &node, args),
        Command::Exec(args) => commands::exec(&home, &node, args),
        Command::Delete(args) => commands::delete(&home, &node, args),
        Command::Images => images::build_here(&home),
        Command::Run(args) => run::run(&home, args),
        Command::Demo(args) => demo::run(args),
        Command::Density(args) => density::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "{}",
                common::cli::wrap(&format!("ch03: {e:#}"), common::cli::WIDTH)
            );
            ExitCode::from(1)
        }
    }
}
