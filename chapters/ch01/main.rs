//! `ch01`: chapter 1's program. Runs a command in a container built from
//! lab01, compares what a process sees on the host and in a container, and
//! measures how fast each kind of isolation starts.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "../common/mod.rs"]
mod common;
mod compare;
mod run;
mod startup;

#[derive(Parser)]
#[command(
    name = "ch01",
    about = "Chapter 1: VMs vs containers (namespaces, cgroups)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a container; its exit status becomes ch01's.
    Run(run::Args),
    /// Show side by side what a process sees on the host and in a container.
    Compare,
    /// Measure start-to-exit latency of `true`: process, namespaces, container, runc, VM.
    Startup(startup::Args),
}

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse("ch01");
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Compare => compare::print(),
        Command::Startup(args) => startup::run(args).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!(
                "{}",
                common::cli::wrap(&format!("ch01: {e:#}"), common::cli::WIDTH)
            );
            ExitCode::from(run::error_code(&e))
        }
    }
}
