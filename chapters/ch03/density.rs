//! `ch03 density --pods N`: N pods on one node.

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// How many pods.
    #[arg(long, default_value_t = 200)]
    pods: usize,
}

pub fn run(_args: Args) -> Result<u8> {
    anyhow::bail!("density: not yet")
}
