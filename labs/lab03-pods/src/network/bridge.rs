//! The node's side: loopback and the bridge, by netlink.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

/// Brings `lo` up; a new network namespace has it down, and without it
/// not even 127.0.0.1 answers.
pub async fn loopback_up(handle: &Handle) -> Result<(), rtnetlink::Error> {
    handle
        .link()
        .set(LinkUnspec::new_with_name("lo").up().build())
        .execute()
        .await
}

// ANCHOR: bridge
/// Adds the bridge `name` with a fixed MAC address, gives it the gateway
/// address (which also makes the route to the pod CIDR through it) and
/// brings it up; answers its interface index, which the pods' veths are
/// plugged into.
pub async fn create_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<u32, rtnetlink::Error> {
    let link = handle.link();
    let mac = bridge_mac(gateway).to_vec();
    link.add(LinkBridge::new(name).address(mac).build())
        .execute()
        .await?;
    let index = link_index(handle, name)
        .await?
        .ok_or(rtnetlink::Error::RequestFailed)?;
    handle
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .execute()
        .await?;
    link.set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    Ok(index)
}
// ANCHOR_END: bridge

/// The bridge's MAC address: locally administered (`02:`), then `6b` ("k"),
/// then the gateway's four octets, so each node's differs. Set once, it
/// stays: a bridge left to choose takes the lowest MAC among its ports,
/// which changes when a pod with a lower one is plugged in, and pods
/// whose ARP cache still names the old address have their packets to
/// the gateway dropped as "for another host" until the entry expires.
pub fn bridge_mac(gateway: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = gateway.octets();
    [0x02, 0x6b, a, b, c, d]
}

/// The index of the interface `name`, or None if there is none.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    Ok(find_link(handle, name).await?.map(|m| m.header.index))
}

/// The interface `name`, or None if there is none.
pub(crate) async fn find_link(
    handle: &Handle,
    name: &str,
) -> Result<Option<rtnetlink::packet_route::link::LinkMessage>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc_enodev()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes the interface `name`; answers false if there was none.
pub async fn delete_link(handle: &Handle, name: &str) -> Result<bool, rtnetlink::Error> {
    match link_index(handle, name).await? {
        Some(index) => match handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            // Gone meanwhile (its peer's namespace died): as good.
            Err(e) if errno(&e) == Some(libc_enodev()) => Ok(false),
            Err(e) => Err(e),
        },
        None => Ok(false),
    }
}

/// The errno of a netlink error answer, positive (`ENODEV` is 19).
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// `ENODEV`: no such device.
pub(crate) fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_mac_is_unicast_local_and_per_node() {
        let one = bridge_mac(Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(one, [0x02, 0x6b, 198, 18, 1, 1]);
        // Bit 0 of the first octet clear: unicast; bit 1 set: local.
        assert_eq!(one[0] & 0b11, 0b10);
        assert_ne!(one, bridge_mac(Ipv4Addr::new(198, 18, 2, 1)));
    }
}
