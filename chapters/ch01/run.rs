//! `ch01 run`: one container, from flags.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lab01::{ContainerSpec, RootfsBuilder};

use crate::common::container::{run_in_foreground, LimitArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Hostname inside the container.
    #[arg(long, default_value = "container")]
    hostname: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// Root filesystem. Default: a temporary one built from this machine's programs.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Add a user namespace (lets a non-root user run it; no limits then).
    #[arg(long)]
    userns: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs the container; returns the exit code to leave with.
pub fn run(args: Args) -> Result<i32> {
    let is_root = nix::unistd::geteuid().is_root();
    if !is_root && !args.userns {
        bail!(NeedsPrivilege);
    }
    let resources = args.limits.resources("ch01")?;

    // A temporary rootfs lives exactly as long as this function.
    let _temp;
    let rootfs = match args.rootfs {
        Some(dir) => {
            if !dir.is_dir() {
                bail!("--rootfs {}: no such directory", dir.display());
            }
            dir
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("kubelings-ch01-")
                .tempdir()
                .context("create a temporary directory for the rootfs")?;
            let dir = temp.path().join("rootfs");
            let command = &args.command[0];
            let mut builder = RootfsBuilder::new();
            if !command.contains('/')
                && lab01::probe::find_program(command).is_some()
            {
                builder = builder.programs([command.as_str()]);
            }
            builder.build(&dir).context("build the rootfs")?;
            _temp = temp;
            dir
        }
    };

    let spec = ContainerSpec::new(args.command.clone())
        .hostname(args.hostname)
        .rootfs(rootfs)
        .resources(resources)
        .user_namespace(args.userns);

    run_in_foreground(&spec, "ch01")
}

/// No root and no `--userns`.
#[derive(Debug)]
struct NeedsPrivilege;

impl std::fmt::Display for NeedsPrivilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "creating namespaces needs root: run ch01 with sudo, \
             or add --userns to use a user namespace (then without --memory/--pids/--cpus)",
        )
    }
}

impl std::error::Error for NeedsPrivilege {}

/// Exit codes as `docker run` uses them: 125 the runtime failed, 127 the
/// command was not found; 2 for bad usage.
pub fn error_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<lab01::Error>() {
        Some(lab01::Error::CommandNotFound(_)) => 127,
        _ => 125,
    }
}
