//! A pod's veth pair: made in the node's namespace, one end into the
//! pod's, then addressed and routed there.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::bridge::{link_index, loopback_up};
use super::{VethNames, POD_IFNAME};

// ANCHOR: veth_pair
/// In the node's namespace (the one `handle` talks to): creates the veth
/// pair `names.host`–`names.peer`, plugs the host end into the bridge with
/// index `bridge` and brings it up, and moves the peer end into the pod's
/// network namespace `pod_netns`, where [`configure_pod_end`] takes over.
pub async fn create_veth_pair(
    handle: &Handle,
    names: &VethNames,
    bridge: u32,
    pod_netns: BorrowedFd<'_>,
) -> Result<(), rtnetlink::Error> {
    // EXERCISE: lab03-veth-pair
    let link = handle.link();
    link.add(LinkVeth::new(&names.host, &names.peer).build())
        .execute()
        .await?;
    let host = LinkUnspec::new_with_name(&names.host).controller(bridge);
    link.set(host.up().build()).execute().await?;
    let peer = LinkUnspec::new_with_name(&names.peer);
    link.set(peer.setns_by_fd(pod_netns.as_raw_fd()).build())
        .execute()
        .await?;
    Ok(())
    // EXERCISE_END: lab03-veth-pair
}
// ANCHOR_END: veth_pair

// ANCHOR: pod_end
/// In the pod's namespace (the one `handle` talks to): renames the peer
/// end `eth0`, gives it `ip`, brings it and loopback up, and routes
/// everything via the gateway, the node's bridge.
pub async fn configure_pod_end(
    handle: &Handle,
    peer: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), rtnetlink::Error> {
    let index = link_index(handle, peer)
        .await?
        .ok_or(rtnetlink::Error::RequestFailed)?;
    let link = handle.link();
    // A link is renamed by its index, while it is still down.
    let eth0 = LinkUnspec::new_with_index(index).name(POD_IFNAME);
    link.set(eth0.build()).execute().await?;
    handle
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await?;
    link.set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    loopback_up(handle).await?;
    // The address made the route to the pod CIDR; this is the default.
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    handle.route().add(default).execute().await?;
    Ok(())
}
// ANCHOR_END: pod_end
