//! The service proxy: what kube-proxy does on every node. It watches
//! Services and EndpointSlices and makes a connection to a Service's
//! ClusterIP and port reach one of its ready endpoints.
//!
//! Both modes are fed the same [`ServiceTable`], built from the API
//! objects by [`ServiceTable::build`] (kube-proxy's `ServicePortMap` and
//! `EndpointsMap`), and sit behind one trait, [`Proxier`]:
//!
//! - `userspace`: a process that accepts on the ClusterIP and copies
//!   bytes to a chosen endpoint;
//! - `nftables`: rules in the kernel that rewrite the destination (DNAT).

#[cfg(target_os = "linux")]
pub mod nftables;
pub mod pick;
#[cfg(target_os = "linux")]
pub mod userspace;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpoints::SERVICE_NAME_LABEL;

/// A transport protocol a Service port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// From the API's spelling; `None` for one we do not proxy (SCTP).
    pub fn from_api(text: Option<&str>) -> Option<Protocol> {
        match text.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// As nft and the API's lower-case tables write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One port of one Service: kube-proxy's `ServicePortName`
/// (`default/kubia:http`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's name; empty for a Service's only, unnamed port.
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// What a proxy needs of one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// For `type: NodePort`: the port opened on the node's own address.
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`'s timeout; `None` without affinity.
    pub affinity: Option<Duration>,
}

/// One endpoint of a Service port, from an EndpointSlice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// Every proxied Service port and its endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub services: BTreeMap<ServicePortName, ServicePortInfo>,
    /// Sorted, so two builds of the same objects compare equal.
    pub endpoints: BTreeMap<ServicePortName, Vec<Endpoint>>,
}

impl ServiceTable {
    /// From Services and EndpointSlices. Headless Services (no ClusterIP)
    /// and ports of other protocols are left out, as kube-proxy leaves them.
    pub fn build(
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> ServiceTable {
        let mut table = ServiceTable::default();
        for svc in services {
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            let Some(ip) = spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let affinity = (spec.session_affinity.as_deref()
                == Some("ClientIP"))
            .then(|| {
                let secs = spec
                    .session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .unwrap_or(crate::validate::DEFAULT_AFFINITY_TIMEOUT);
                Duration::from_secs(secs.max(0) as u64)
            });
            let node_port_type = spec.type_.as_deref() == Some("NodePort");
            for p in spec.ports.iter().flatten() {
                let Some(protocol) = Protocol::from_api(p.protocol.as_deref())
                else {
                    continue;
                };
                let Ok(port) = u16::try_from(p.port) else {
                    continue;
                };
                let id = ServicePortName {
                    namespace: svc
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    name: svc.metadata.name.clone().unwrap_or_default(),
                    port: p.name.clone().unwrap_or_default(),
                    protocol,
                };
                let node_port = p
                    .node_port
                    .filter(|_| node_port_type)
                    .and_then(|n| u16::try_from(n).ok());
                table.services.insert(
                    id.clone(),
                    ServicePortInfo {
                        cluster_ip: ip,
                        port,
                        node_port,
                        affinity,
                    },
                );
                table.endpoints.insert(id, Vec::new());
            }
        }
        for slice in slices {
            let namespace = slice
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            for p in slice.ports.iter().flatten() {
                let Some(protocol) = Protocol::from_api(p.protocol.as_deref())
                else {
                    continue;
                };
                let Some(port) = p.port.and_then(|n| u16::try_from(n).ok())
                else {
                    continue;
                };
                let id = ServicePortName {
                    namespace: namespace.clone(),
                    name: service.clone(),
                    port: p.name.clone().unwrap_or_default(),
                    protocol,
                };
                let Some(list) = table.endpoints.get_mut(&id) else {
                    continue;
                };
                for e in &slice.endpoints {
                    let c = e.conditions.clone().unwrap_or_default();
                    for ip in e
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
                    {
                        list.push(Endpoint {
                            ip,
                            port,
                            // The API's rule: unset means ready.
                            ready: c.ready.unwrap_or(true),
                            serving: c.serving.or(c.ready).unwrap_or(true),
                            terminating: c.terminating.unwrap_or(false),
                        });
                    }
                }
            }
        }
        for list in table.endpoints.values_mut() {
            list.sort();
            list.dedup();
        }
        table
    }

    /// The endpoints traffic goes to: the ready ones; when there are
    /// none, the serving ones that are terminating, so connections keep
    /// working while a Service's last pods shut down (KEP-1669).
    pub fn usable(&self, id: &ServicePortName) -> Vec<Endpoint> {
        let all = self
            .endpoints
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ready: Vec<Endpoint> =
            all.iter().copied().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        all.iter()
            .copied()
            .filter(|e| e.serving && e.terminating)
            .collect()
    }

    /// Which Service ports differ between `self` and `newer` (added,
    /// removed, or with other settings or usable endpoints): what an
    /// incremental sync must touch.
    pub fn changed(&self, newer: &ServiceTable) -> Vec<ServicePortName> {
        let mut ids: Vec<&ServicePortName> =
            self.services.keys().chain(newer.services.keys()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter(|id| {
                self.services.get(*id) != newer.services.get(*id)
                    || self.usable(id) != newer.usable(id)
            })
            .cloned()
            .collect()
    }
}

/// What one sync did, for logs and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Service ports whose rules or listeners were written or removed.
    pub changed: usize,
    /// Whether everything was rewritten (the first sync, or a repair).
    pub full: bool,
}

/// A proxy mode: given the whole table each time, it makes the node
/// match it and touches only what changed.
pub trait Proxier: Send {
    /// `userspace` or `nftables`, as `--proxy` names them.
    fn mode(&self) -> &'static str;
    /// Makes the node forward as `table` says.
    fn sync(&mut self, table: &ServiceTable) -> Result<SyncReport, ProxyError>;
    /// Removes every listener, address and rule this proxy made.
    fn shutdown(&mut self) -> Result<(), ProxyError>;
}

/// Why a proxy could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}
