//! How long programming the kernel takes: a full sync of N Services with
//! ten endpoints each, and then a sync after one endpoint changed, in a
//! throwaway node namespace. Needs root and nft. The figures are measured
//! and printed (by `ch04 bench`), never asserted.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lab03::ipam::node_cidr;
use lab03::network::NodeNetwork;

use super::NftablesProxy;
use crate::proxy::{
    Endpoint, Protocol, Proxier, ProxyError, ServicePortInfo, ServicePortName,
    ServiceTable,
};

/// Endpoints per Service in the benchmark.
pub const ENDPOINTS: usize = 10;

/// One measured size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchRow {
    pub services: usize,
    pub endpoints_per_service: usize,
    /// The first sync: the whole table in one transaction.
    pub full_sync: Duration,
    /// The median of a few syncs that each replace one endpoint.
    pub endpoint_change: Duration,
    /// How large the full transaction's text was.
    pub full_bytes: usize,
}

/// Measures each of `sizes` (numbers of Services) in a new node
/// namespace, which is removed afterwards.
pub fn bench(sizes: &[usize]) -> Result<Vec<BenchRow>, ProxyError> {
    let dir = tempfile::tempdir().map_err(|source| ProxyError::Io {
        what: "making a directory for the benchmark's node".into(),
        source,
    })?;
    let node = NodeNetwork::create(dir.path(), "bench", node_cidr(250))
        .map_err(|e| ProxyError::Other(format!("the bench node: {e}")))?;
    let rows = sizes
        .iter()
        .map(|&n| measure(&node, n))
        .collect::<Result<Vec<_>, _>>();
    let removed = node
        .destroy()
        .map_err(|e| ProxyError::Other(format!("removing the node: {e}")));
    let rows = rows?;
    removed?;
    Ok(rows)
}

fn measure(node: &NodeNetwork, n: usize) -> Result<BenchRow, ProxyError> {
    let mut proxy = NftablesProxy::new(node.netns_path(), node.gateway())?;
    let mut table = synthetic(n);
    let full_bytes = super::ruleset::full(
        &table,
        node.gateway(),
        &crate::allocator::service_cidr().to_string(),
    )
    .len();
    let start = Instant::now();
    proxy.sync(&table)?;
    let full_sync = start.elapsed();
    let mut changes = Vec::new();
    for round in 0..5 {
        // The round-th Service's first endpoint moves to a new address.
        let id = table
            .endpoints
            .keys()
            .nth(round % n.max(1))
            .cloned()
            .ok_or_else(|| ProxyError::Other("an empty table".into()))?;
        if let Some(list) = table.endpoints.get_mut(&id) {
            list[0].ip = Ipv4Addr::new(198, 18, 251, 2 + round as u8);
            list.sort();
        }
        let start = Instant::now();
        let report = proxy.sync(&table)?;
        changes.push(start.elapsed());
        if report.full || report.changed != 1 {
            return Err(ProxyError::Other(format!(
                "one endpoint changed, but the sync did {report:?}"
            )));
        }
    }
    changes.sort();
    proxy.shutdown()?;
    Ok(BenchRow {
        services: n,
        endpoints_per_service: ENDPOINTS,
        full_sync,
        endpoint_change: changes[changes.len() / 2],
        full_bytes,
    })
}

/// `n` TCP Services on port 80, `svc-0` … with ClusterIPs from
/// 198.19.1.0 on, each with [`ENDPOINTS`] ready endpoints of its own.
pub fn synthetic(n: usize) -> ServiceTable {
    let mut table = ServiceTable::default();
    for i in 0..n {
        let id = ServicePortName {
            namespace: "bench".into(),
            name: format!("svc-{i}"),
            port: "http".into(),
            protocol: Protocol::Tcp,
        };
        let vip = u32::from(Ipv4Addr::new(198, 19, 1, 0)) + i as u32;
        table.services.insert(
            id.clone(),
            ServicePortInfo {
                cluster_ip: Ipv4Addr::from(vip),
                port: 80,
                node_port: None,
                affinity: None,
            },
        );
        let mut list: Vec<Endpoint> = (0..ENDPOINTS)
            .map(|j| {
                let k = (i * ENDPOINTS + j) as u32;
                Endpoint {
                    ip: Ipv4Addr::new(
                        198,
                        18,
                        (k / 250) as u8,
                        (2 + k % 250) as u8,
                    ),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                }
            })
            .collect();
        list.sort();
        table.endpoints.insert(id, list);
    }
    table
}
