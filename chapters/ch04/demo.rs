//! `ch04 demo`: the chapter's tour.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("the demo is not written yet")
}
