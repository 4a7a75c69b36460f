//! `ch02 run`: an image as a container (chapter 1's runtime underneath).

use anyhow::{Context, Result};
use lab02::home::Home;
use lab02::run::{container_spec, prepare_rootfs, Assembly};

use crate::common::container::{run_in_foreground, LimitArgs};
use crate::images::local;
use crate::store;

#[derive(clap::Args)]
pub struct Args {
    /// The image, e.g. kubia:v1.
    image: String,
    /// Hostname inside (default: the container's name).
    #[arg(long)]
    hostname: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Extract the layers into a directory instead of stacking them with overlayfs.
    #[arg(long)]
    flat: bool,
    /// The command, instead of the image's CMD.
    #[arg(last = true)]
    command: Vec<String>,
}

pub fn run(home: &Home, args: Args) -> Result<i32> {
    let is_root = nix::unistd::geteuid().is_root();
    let resources = args.limits.resources("ch02")?;
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
    let code = run_in_foreground(&spec, "ch02");
    // The container's directory goes whether it ran or not.
    drop(rootfs);
    code
}
