//! `ch05 registry`: the cluster's image registry, lab02's, as `ch05 up`
//! runs it on the cluster network (the nodes pull from it; the
//! supervisor pushes the book's images into it at start).

use std::net::SocketAddr;
use std::path::PathBuf;

use lab02::registry::{RegistryConfig, RegistryHandle};

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Where blobs and manifests are kept.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Blocked first, so a SIGTERM from `ch05 down` is not lost.
    let signals = lab01::signals::block_termination_signals();
    let mut config = RegistryConfig::new(args.root);
    config.addr = args.addr;
    let registry = RegistryHandle::start(config)?;
    eprintln!("ch05: registry on http://{}", registry.addr());
    let _ = signals.wait();
    registry.shutdown()?;
    Ok(())
}
