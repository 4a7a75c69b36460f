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
/// Adds the bridge `name`, gives it the gateway address (which also makes
/// the route to the pod CIDR through it) and brings it up; answers its
/// interface index, which the pods' veths are plugged into.
pub async fn create_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<u32, rtnetlink::Error> {
    let link = handle.link();
    link.add(LinkBridge::new(name).build()).execute().await?;
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
