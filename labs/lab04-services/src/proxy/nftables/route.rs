//! What the node's namespace needs besides rules, and taking it back.
//!
//! - Forwarding: a pod's packet to a Service is rewritten to another
//!   pod's address and must be routed on, from the bridge back to the
//!   bridge. A new network namespace starts with `ip_forward` 0.
//! - A route for the service range: a real node sends such packets to
//!   its default route, and the rules rewrite them before they leave. Our
//!   node has no way out, and without a route a client on the node gets
//!   "network unreachable" from `connect` before nft sees its packet. So
//!   the range is routed to the bridge, on-link: packets no rule
//!   rewrote are refused by `cluster-ips-check` before they go there.
//! - No bridge netfilter: where the host has `br_netfilter` loaded, frames
//!   crossing a bridge go through the IP hooks too, and a pod's packet to
//!   a Service that is DNATed to the pod itself is switched straight back
//!   out of the port it came in by, which a bridge does not do (no
//!   hairpin). Our node does not rely on it (the rules masquerade
//!   instead), so its namespace turns it off; the setting is the
//!   namespace's own, the root namespace keeps its own.

use std::net::Ipv4Addr;
use std::path::Path;

use lab03::ipam::Cidr;
use lab03::network::{run_in, show, BRIDGE};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::RouteMessageBuilder;

use crate::proxy::ProxyError;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// There only while the host has `br_netfilter` loaded.
const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// What [`prepare`] changed.
#[derive(Debug)]
pub(crate) struct Setup {
    forward_was: String,
    bridge_nf_was: Option<String>,
    route: RouteMessage,
}

/// Turns forwarding on and routes `cidr` to the bridge, in `netns`.
pub(crate) fn prepare(netns: &Path, cidr: Cidr) -> Result<Setup, ProxyError> {
    let listing = show(netns).map_err(|e| {
        ProxyError::Other(format!("listing the node's interfaces: {e}"))
    })?;
    let bridge = listing.link(BRIDGE).ok_or_else(|| {
        ProxyError::Other(format!(
            "{} has no bridge {BRIDGE}: not a node's network namespace",
            netns.display()
        ))
    })?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(cidr.network(), cidr.prefix())
        .output_interface(bridge.index)
        .scope(RouteScope::Link)
        .build();
    let forward_was = sysctl(netns, IP_FORWARD, Some("1"))?;
    let setup = Setup {
        forward_was,
        bridge_nf_was: None,
        route: route.clone(),
    };
    let done = bridge_nf_off(netns).and_then(|was| {
        netlink(netns, route, true)?;
        Ok(was)
    });
    match done {
        Ok(bridge_nf_was) => Ok(Setup {
            bridge_nf_was,
            ..setup
        }),
        Err(e) => {
            let _ = restore(netns, setup);
            Err(e)
        }
    }
}

/// Turns bridge netfilter off in `netns`, if the host has it; answers
/// what it was.
fn bridge_nf_off(netns: &Path) -> Result<Option<String>, ProxyError> {
    let present = run_in(netns, || Path::new(BRIDGE_NF).exists())
        .map_err(|e| ProxyError::Other(format!("{BRIDGE_NF}: {e}")))?;
    if !present {
        return Ok(None);
    }
    sysctl(netns, BRIDGE_NF, Some("0")).map(Some)
}

/// Puts back what [`prepare`] changed.
pub(crate) fn restore(netns: &Path, setup: Setup) -> Result<(), ProxyError> {
    let route = netlink(netns, setup.route, false);
    let forward = sysctl(netns, IP_FORWARD, Some(&setup.forward_was));
    let bridge_nf = match &setup.bridge_nf_was {
        Some(was) => sysctl(netns, BRIDGE_NF, Some(was)).map(drop),
        None => Ok(()),
    };
    route.and(forward.map(drop)).and(bridge_nf)
}

/// Reads a sysctl of `netns` and, with `set`, writes it; answers what it
/// was. `/proc/sys/net` shows the namespace of the thread that opens it,
/// so the file is opened on a thread in `netns`.
fn sysctl(
    netns: &Path,
    path: &str,
    set: Option<&str>,
) -> Result<String, ProxyError> {
    run_in(netns, || -> std::io::Result<String> {
        let was = std::fs::read_to_string(path)?.trim().to_string();
        if let Some(value) = set {
            std::fs::write(path, value)?;
        }
        Ok(was)
    })
    .map_err(|e| ProxyError::Other(format!("{path}: {e}")))?
    .map_err(|source| ProxyError::Io {
        what: format!("{path} in {}", netns.display()),
        source,
    })
}

/// Adds (`add`) or deletes the route `route` in `netns`. A route that is
/// there already (add) or gone already (delete) is no error.
fn netlink(
    netns: &Path,
    route: RouteMessage,
    add: bool,
) -> Result<(), ProxyError> {
    let what = if add { "adding" } else { "deleting" };
    let what = format!("{what} the service route");
    lab03::network::netlink_in(netns, &what, |handle| async move {
        let done = if add {
            handle.route().add(route).replace().execute().await
        } else {
            handle.route().del(route).execute().await
        };
        match done {
            // ESRCH: no such route (deleted already).
            Err(e) if !add && lab03::network::errno(&e) == Some(3) => Ok(()),
            other => other,
        }
    })
    .map_err(|e| ProxyError::Other(e.to_string()))
}
