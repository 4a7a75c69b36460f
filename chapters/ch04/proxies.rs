//! The proxy a node runs, by `--proxy` mode.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use lab04::proxy::nftables::NftablesProxy;
use lab04::proxy::userspace::UserspaceProxy;
use lab04::proxy::Proxier;

use crate::service_node::ProxyMode;

/// Starts the proxy of `mode` in the node's network namespace `netns`;
/// NodePorts open on `node_ip`.
pub fn start(
    mode: ProxyMode,
    netns: &Path,
    node_ip: Ipv4Addr,
) -> Result<Box<dyn Proxier>> {
    Ok(match mode {
        ProxyMode::Userspace => Box::new(
            UserspaceProxy::new(netns, node_ip)
                .context("start the userspace proxy")?,
        ),
        ProxyMode::Nftables => Box::new(
            NftablesProxy::new(netns, node_ip)
                .context("start the nftables proxy")?,
        ),
    })
}
