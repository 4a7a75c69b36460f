//! `ch04 bench`: requests through each proxy, and rule programming time.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("the benchmark is not written yet")
}
