//! `ch02 run`: an image as a container (chapter 1's runtime underneath).

use anyhow::{bail, Context, Result};
use lab01::limits::{parse_cpus, parse_pids, parse_size, CpuQuota};
use lab01::{Container, Resources};
use lab02::home::Home;
use lab02::run::{container_spec, prepare_rootfs, Assembly};

use crate::images::local;
use crate::store;

#[derive(clap::Args)]
pub struct Args {
    /// The image, e.g. kubia:v1.
    image: String,
    /// Hostname inside (default: the container's name).
    #[arg(long)]
    hostname: Option<String>,
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pids: Option<u64>,
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    cpus: Option<CpuQuota>,
    /// Extract the layers into a directory instead of stacking them with overlayfs.
    #[arg(long)]
    flat: bool,
    /// The command, instead of the image's CMD.
    #[arg(last = true)]
    command: Vec<String>,
}

pub fn run(home: &Home, args: Args) -> Result<i32> {
    let is_root = nix::unistd::geteuid().is_root();
    let resources = Resources {
        memory: args.memory,
        pids: args.pids,
        cpu: args.cpus,
    };
    if !is_root && !resources.is_empty() {
        bail!("--memory, --pids and --cpus need cgroups, which need root: run ch02 with sudo");
    }
    let store = store(home)?;
    let name = local(&args.image)?;
    let desc = store.resolve(&name).with_context(|| {
        format!("no image {name:?} here (ch02 images lists them; ch02 pull fetches one)")
    })?;
    let manifest = store.manifest(&desc)?;
    let config = store.config(&manifest)?;
    let assembly = if args.flat {
        Assembly::Flat
    } else {
        Assembly::best()
    };
    let id = format!(
        "{}-{}",
        desc.digest()
            .to_string()
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("image"),
        std::process::id()
    );
    let rootfs = prepare_rootfs(home, &store, &manifest, &id, assembly)?;
    let mut spec = container_spec(&config, rootfs.path(), &args.command)?
        .hostname(args.hostname.unwrap_or_else(|| id.clone()))
        .resources(resources)
        .user_namespace(!is_root);
    if !is_root {
        spec.cgroup = false;
    }
    let signals = lab01::signals::block_termination_signals();
    let mut container = Container::spawn(&spec)?;
    lab01::signals::forward_signals(signals, container.pid());
    let status = container.wait()?;
    drop(rootfs);
    if !matches!(status, lab01::ExitStatus::Exited(_)) {
        eprintln!("ch02: the container was {status}");
    }
    Ok(status.code())
}
