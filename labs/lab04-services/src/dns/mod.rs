//! Cluster DNS: the names CoreDNS's `kubernetes` plugin gives Services,
//! their endpoints and pods under `cluster.local`, and a server that
//! answers for them.
//!
//! - [`records`]: the zone, built from Services, EndpointSlices and pods,
//!   and the answer to one question (pure);
//! - [`server`]: hickory-server on UDP and TCP, in a node's network
//!   namespace, with the zone swapped live.
//!
//! Nothing outside the cluster domain is answered (REFUSED): CoreDNS
//! would forward such names upstream, and nothing here routes out.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub mod records;
pub mod server;

pub use records::{Answer, ClusterDns, QueryType, Rcode, Record, RecordData};
pub use server::DnsServer;

/// The cluster DNS server's address: the tenth of the Service range, by
/// the convention kube-dns's ClusterIP follows (10.96.0.10 on kubeadm's
/// range). Here each node serves it itself, as a node-local address, as
/// NodeLocal DNSCache does.
pub fn dns_ip() -> std::net::Ipv4Addr {
    let base = u32::from(crate::allocator::service_cidr().network());
    std::net::Ipv4Addr::from(base + 10)
}

/// Why the DNS server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the DNS server's {protocol} socket at {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("making the DNS server's sockets in {}: {source}", path.display())]
    Netns {
        path: PathBuf,
        source: lab03::network::NetworkError,
    },
    #[error("running the DNS server: {0}")]
    Runtime(io::Error),
    #[error("the DNS server stopped with an error: {0}")]
    Stopped(String),
}
