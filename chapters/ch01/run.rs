//! `ch01 run`: one container, from flags.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use lab01::limits::{parse_cpus, parse_pids, parse_size, CpuQuota};
use lab01::{Container, ContainerSpec, ExitStatus, Resources, RootfsBuilder};

#[derive(clap::Args)]
pub struct Args {
    /// Hostname inside the container.
    #[arg(long, default_value = "container")]
    hostname: String,
    /// Memory limit, e.g. 64M or 1G.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Most processes and threads at once.
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pids: Option<u64>,
    /// CPU share, e.g. 0.5 for half a CPU.
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    cpus: Option<CpuQuota>,
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
    let resources = Resources {
        memory: args.memory,
        pids: args.pids,
        cpu: args.cpus,
    };
    let is_root = nix::unistd::geteuid().is_root();
    if !is_root && !args.userns {
        bail!(NeedsPrivilege);
    }
    if !is_root && !resources.is_empty() {
        bail!("--memory, --pids and --cpus need cgroups, which need root: run ch01 with sudo");
    }

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
            if !command.contains('/') && lab01::probe::find_program(command).is_some() {
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

    let signals = lab01::signals::block_termination_signals();
    let mut container = Container::spawn(&spec)?;
    lab01::signals::forward_signals(signals, container.pid());
    let status = container.wait()?;
    match status {
        ExitStatus::Exited(_) => {}
        ExitStatus::OomKilled => eprintln!("ch01: the container was {status}"),
        ExitStatus::Signaled(_) => eprintln!("ch01: the command was {status}"),
    }
    Ok(status.code())
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
