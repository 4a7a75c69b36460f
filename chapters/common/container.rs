//! What `ch01 run` and `ch02 run` share: the limit flags, and running a
//! container in the foreground the way `docker run` does.

use anyhow::{bail, Result};
use lab01::limits::{parse_cpus, parse_pids, parse_size, CpuQuota};
use lab01::{Container, ContainerSpec, ExitStatus, Resources};

/// `--memory`, `--pids` and `--cpus`, as `docker run` spells them.
#[derive(clap::Args, Debug, Default)]
pub struct LimitArgs {
    /// Memory limit, e.g. 64M or 1G (no swap beyond it).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Most processes and threads at once, e.g. 32.
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pub pids: Option<u64>,
    /// CPU share, e.g. 0.5 for half a CPU.
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    pub cpus: Option<CpuQuota>,
}

impl LimitArgs {
    /// The limits, refused without root: cgroups belong to the host's root.
    pub fn resources(&self, program: &str) -> Result<Resources> {
        let resources = Resources {
            memory: self.memory,
            pids: self.pids,
            cpu: self.cpus,
        };
        if !nix::unistd::geteuid().is_root() && !resources.is_empty() {
            bail!(
                "--memory, --pids and --cpus need cgroups, which need root: \
                 run {program} with sudo"
            );
        }
        Ok(resources)
    }
}

/// Starts the container and waits for it, passing Ctrl-C and the other
/// termination signals on to it. Returns the exit code to leave with: the
/// command's own, or 128 + the signal that killed it, as a shell reports it.
pub fn run_in_foreground(spec: &ContainerSpec, program: &str) -> Result<i32> {
    // Blocked before the container exists, so that none is lost in between.
    let signals = lab01::signals::block_termination_signals();
    let mut container = Container::spawn(spec)?;
    lab01::signals::forward_signals(signals, container.pid());
    let status = container.wait()?;
    match status {
        ExitStatus::Exited(_) => {}
        ExitStatus::OomKilled => {
            eprintln!("{program}: the container was {status}")
        }
        ExitStatus::Signaled(_) => {
            eprintln!("{program}: the command was {status}")
        }
    }
    Ok(status.code())
}
