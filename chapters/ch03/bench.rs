//! `ch03 bench`: pod start (a sandbox, its network, one container from a
//! local image, until its process runs), ours against containerd's
//! `ctr run`, in the same run on the same image.

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Rounds per runtime; the median is shown.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Also write the table into FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<std::path::PathBuf>,
}

pub fn run(_args: Args) -> Result<u8> {
    anyhow::bail!("bench: not yet")
}
