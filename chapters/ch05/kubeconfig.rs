//! `ch05 kubeconfig`: a kubeconfig for one identity, its token issued if
//! it has none yet.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lab05::auth::kubeconfig::Kubeconfig;
use lab05::auth::tls::CA_CERT;
use lab05::auth::{Role, TokenFile};

use crate::data;

#[derive(clap::Args)]
pub struct Args {
    /// The control plane's data directory. Default:
    /// $KUBELINGS_HOME/control-plane.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Who the kubeconfig is for: admin, node:NAME, scheduler or
    /// controller-manager.
    #[arg(long, default_value = "admin", value_parser = Role::parse)]
    user: Role,
    /// Where to write it. Default: DIR/<user>.kubeconfig.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = data::dir(args.data);
    data::create(&dir)?;
    let path = args.output.unwrap_or_else(|| {
        dir.join(format!("{}.kubeconfig", args.user.short_name()))
    });
    write(&dir, &args.user, &path)?;
    println!("export KUBECONFIG={}", path.display());
    Ok(())
}

/// Writes the kubeconfig of `role` for the server of `dir`.
pub fn write(dir: &Path, role: &Role, path: &Path) -> anyhow::Result<()> {
    write_for(dir, role, path, &data::url(dir))
}

/// Writes the kubeconfig of `role` for the server of `dir` reached at
/// `url` (a node's view: the API server's cluster-network address).
pub fn write_for(
    dir: &Path,
    role: &Role,
    path: &Path,
    url: &str,
) -> anyhow::Result<()> {
    let mut tokens = TokenFile::open(dir)?;
    let token = tokens.issue(role)?;
    // A plain-HTTP server has no CA to trust.
    let ca = if url.starts_with("https://") {
        let ca = dir.join(CA_CERT);
        Some(std::fs::read_to_string(&ca).with_context(|| {
            format!("{}: start `ch05 apiserver` first", ca.display())
        })?)
    } else {
        None
    };
    Kubeconfig {
        server: url,
        ca_pem: ca.as_deref(),
        user: &role.short_name(),
        token: &token,
    }
    .write(path)
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
