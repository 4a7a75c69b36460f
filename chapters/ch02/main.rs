//! `ch02`: chapter 2's program. Builds images from Dockerfiles, keeps them
//! in an OCI image layout, serves, pushes and pulls them through a registry,
//! and runs them as containers. All local state lives in one directory,
//! `$KUBELINGS_HOME` (or `--home`): two homes are two computers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use lab02::home::Home;

mod bench;
#[path = "../common/mod.rs"]
mod common;
mod demo;
mod images;
mod registry;
mod run;

#[derive(Parser)]
#[command(
    name = "ch02",
    about = "Chapter 2: images, registries, containers from images (OCI)"
)]
struct Cli {
    /// This computer's state (images, layers, credentials). Default: $KUBELINGS_HOME,
    /// else ~/.local/share/kubelings.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a base image from this machine's own programs (no download).
    Base(images::BaseArgs),
    /// Build an image from a Dockerfile.
    Build(images::BuildArgs),
    /// List the images in the store.
    Images,
    /// Show an image's manifest and config.
    Inspect { reference: String },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Write images to an OCI archive file.
    Save(images::SaveArgs),
    /// Read images from an OCI archive file.
    Load(images::LoadArgs),
    /// Run a registry (the OCI distribution API).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Save credentials for a registry.
    Login(registry::LoginArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),
    /// Download an image from a registry (a short name is on Docker Hub).
    Pull(registry::PullArgs),
    /// Run an image as a container.
    Run(run::Args),
    /// The chapter's demo: build kubia, push it, pull it on "another computer", run it, ask it.
    Demo(demo::Args),
    /// Build, push, pull and unpack ~100 MB with kubelings and with umoci + skopeo + docker-registry.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse("ch02");
    let home = cli.home.map(Home::at).unwrap_or_else(Home::from_env);
    let result = match cli.command {
        Command::Base(args) => images::base(&home, args),
        Command::Build(args) => images::build(&home, args),
        Command::Images => images::list(&home),
        Command::Inspect { reference } => images::inspect(&home, &reference),
        Command::Tag { source, target } => images::tag(&home, &source, &target),
        Command::Save(args) => images::save(&home, args),
        Command::Load(args) => images::load(&home, args),
        Command::Registry(cmd) => registry::registry(&home, cmd),
        Command::Login(args) => registry::login(&home, args),
        Command::Push(args) => registry::push(&home, args),
        Command::Pull(args) => registry::pull(&home, args),
        Command::Run(args) => run::run(&home, args).map(|code| code as u8),
        Command::Demo(args) => demo::run(&home, args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "{}",
                common::cli::wrap(&format!("ch02: {e:#}"), common::cli::WIDTH)
            );
            ExitCode::from(1)
        }
    }
}

/// The image store of `home`, created on first use.
fn store(home: &Home) -> Result<lab02::layout::ImageStore> {
    use anyhow::Context;
    lab02::layout::ImageStore::open(&home.images()).with_context(|| {
        format!("open the image store in {}", home.images().display())
    })
}
