//! What a network namespace holds, read back by netlink: its interfaces
//! with their addresses, and its IPv4 routes, printed the way `ip -brief
//! address` and `ip route` would.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::netns::{open_netns, with_netlink, Target};
use super::NetworkError;

/// One interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its index in its namespace.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its kind (`bridge`, `veth`), `loopback` for lo.
    pub kind: String,
    /// Whether it is up (administratively).
    pub up: bool,
    /// The bridge it is plugged into.
    pub master: Option<String>,
    /// Its alias: for a pod's host end, the pod's UID.
    pub alias: Option<String>,
    /// Its IPv4 addresses with their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u8)>,
}

/// One IPv4 route of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The destination network; None for the default route.
    pub destination: Option<(Ipv4Addr, u8)>,
    /// The next hop, if it is not on the link.
    pub gateway: Option<Ipv4Addr>,
    /// The interface it leaves by.
    pub dev: Option<String>,
    /// The preferred source address.
    pub src: Option<Ipv4Addr>,
}

/// A namespace's interfaces and routes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Listing {
    /// By index.
    pub links: Vec<Link>,
    /// In the kernel's order.
    pub routes: Vec<Route>,
}

impl Listing {
    /// The interface called `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// Reads the interfaces and routes of the network namespace at `netns`.
pub fn show(netns: &Path) -> Result<Listing, NetworkError> {
    let file = open_netns(netns)?;
    with_netlink(Target::Join(file.as_fd()), netns, |handle| async move {
        dump(&handle).await.map_err(|e| NetworkError::Netlink {
            what: "listing interfaces and routes".into(),
            netns: netns.to_path_buf(),
            source: super::node::io_of(e),
        })
    })
}

pub(crate) async fn dump(handle: &Handle) -> Result<Listing, rtnetlink::Error> {
    let mut links = Vec::new();
    let mut names = BTreeMap::new();
    let mut masters = BTreeMap::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: if msg.header.flags.contains(LinkFlags::Loopback) {
                "loopback".into()
            } else {
                "-".into()
            },
            up: msg.header.flags.contains(LinkFlags::Up),
            master: None,
            alias: None,
            addresses: Vec::new(),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::Controller(m) => {
                    masters.insert(link.index, m);
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = kind.to_string();
                        }
                    }
                }
                _ => {}
            }
        }
        names.insert(link.index, link.name.clone());
        links.push(link);
    }
    for link in &mut links {
        link.master = masters.get(&link.index).and_then(|m| names.get(m)).cloned();
    }
    let mut addresses = handle.address().get().execute();
    while let Some(msg) = addresses.try_next().await? {
        let Some(link) = links.iter_mut().find(|l| l.index == msg.header.index) else {
            continue;
        };
        for attr in msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(a)) = attr {
                link.addresses.push((a, msg.header.prefix_len));
            }
        }
    }
    let mut routes = Vec::new();
    let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut stream = handle.route().get(query).execute();
    while let Some(msg) = stream.try_next().await? {
        let mut table = u32::from(msg.header.table);
        let mut route = Route {
            destination: None,
            gateway: None,
            dev: None,
            src: None,
        };
        for attr in msg.attributes {
            match attr {
                RouteAttribute::Table(t) => table = t,
                RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                    route.destination = Some((a, msg.header.destination_prefix_length));
                }
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => route.gateway = Some(a),
                RouteAttribute::PrefSource(RouteAddress::Inet(a)) => route.src = Some(a),
                RouteAttribute::Oif(i) => route.dev = names.get(&i).cloned(),
                _ => {}
            }
        }
        // The local and broadcast routes of the `local` table are the
        // kernel's own; the main table is what routes a packet.
        if table == u32::from(RouteHeader::RT_TABLE_MAIN) {
            routes.push(route);
        }
    }
    Ok(Listing { links, routes })
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.links {
            let state = if l.up { "UP" } else { "DOWN" };
            let mut line = format!("{:<15} {:<8} {:<5}", l.name, l.kind, state);
            for (a, p) in &l.addresses {
                line.push_str(&format!(" {a}/{p}"));
            }
            if let Some(m) = &l.master {
                line.push_str(&format!(" master {m}"));
            }
            if let Some(a) = &l.alias {
                line.push_str(&format!(" alias {a}"));
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        for r in &self.routes {
            match r.destination {
                Some((a, p)) => write!(f, "route {a}/{p}")?,
                None => write!(f, "route default")?,
            }
            if let Some(g) = r.gateway {
                write!(f, " via {g}")?;
            }
            if let Some(d) = &r.dev {
                write!(f, " dev {d}")?;
            }
            if let Some(s) = r.src {
                write!(f, " src {s}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
