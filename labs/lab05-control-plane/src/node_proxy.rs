//! A node's kube-proxy and cluster DNS, fed by the API server.
//!
//! Chapter 4's node computed its Services' endpoints itself, from the
//! pods it ran. In a cluster the endpoint-slice controller does that once
//! for everybody, and each node only watches: Services, EndpointSlices
//! (and pods, for the DNS names of headless Services' pods). Whenever
//! one changes, the node rebuilds lab04's [`ServiceTable`] and hands it to
//! lab04's proxy if it differs, and serves the new zone from lab04's DNS
//! server. Nothing here is new logic: it is lab04 driven by informers.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use lab04::dns::records::CLUSTER_DOMAIN;
use lab04::dns::DnsServer;
use lab04::proxy::nftables::NftablesProxy;
use lab04::proxy::userspace::UserspaceProxy;
use lab04::proxy::{Proxier, ServiceTable};

use crate::client::Client;
use crate::informer::{Cache, Informable, Informer};

/// Which of lab04's proxies a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Userspace,
    Nftables,
}

impl std::str::FromStr for ProxyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "userspace" => Ok(ProxyMode::Userspace),
            "nftables" => Ok(ProxyMode::Nftables),
            other => {
                Err(format!("proxy mode {other:?}: userspace or nftables"))
            }
        }
    }
}

/// Why the node's proxy did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeProxyError {
    #[error("the {mode:?} proxy: {source}")]
    Proxy {
        mode: ProxyMode,
        #[source]
        source: lab04::proxy::ProxyError,
    },
    #[error("the cluster DNS server on {addr}: {source}")]
    Dns {
        addr: SocketAddr,
        #[source]
        source: Box<lab04::dns::DnsError>,
    },
}

/// Where and how a node's proxy runs.
#[derive(Debug, Clone)]
pub struct NodeProxyOptions {
    pub mode: ProxyMode,
    /// The node's network namespace (`/proc/self/ns/net` for the
    /// caller's own).
    pub netns: PathBuf,
    /// NodePorts open on this address.
    pub node_ip: Ipv4Addr,
    /// The DNS server's address, one of the node's own; `None`: no DNS.
    pub dns: Option<SocketAddr>,
}

/// A running proxy and DNS server; stopped (and its rules removed) by
/// [`NodeProxy::stop`] or on drop.
pub struct NodeProxy {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    services: Cache<Service>,
}

/// Changes that arrive within this of each other are one sync.
const SETTLE: Duration = Duration::from_millis(20);
/// A sync now and then even with no change (a proxy's rules removed by
/// hand come back).
const RESYNC: Duration = Duration::from_secs(30);
/// How often the loop looks at its stop flag.
const TICK: Duration = Duration::from_millis(200);

impl NodeProxy {
    pub fn start(
        client: Client,
        options: NodeProxyOptions,
    ) -> Result<NodeProxy, NodeProxyError> {
        let mode = options.mode;
        let proxier: Box<dyn Proxier> = match mode {
            ProxyMode::Userspace => Box::new(
                UserspaceProxy::new(&options.netns, options.node_ip)
                    .map_err(|source| NodeProxyError::Proxy { mode, source })?,
            ),
            ProxyMode::Nftables => Box::new(
                NftablesProxy::new(&options.netns, options.node_ip)
                    .map_err(|source| NodeProxyError::Proxy { mode, source })?,
            ),
        };
        let dns = match options.dns {
            Some(addr) => {
                Some(start_dns(&options.netns, addr).map_err(|source| {
                    NodeProxyError::Dns {
                        addr,
                        source: Box::new(source),
                    }
                })?)
            }
            None => None,
        };
        let (wake, woken) = channel();
        let services = watch::<Service>(&client, &wake);
        let slices = watch::<EndpointSlice>(&client, &wake);
        let pods = watch::<Pod>(&client, &wake);
        let stop = Arc::new(AtomicBool::new(false));
        let services_seen = services.1.clone();
        let syncer = Syncer {
            stop: stop.clone(),
            services,
            slices,
            pods,
            proxier,
            dns,
            current: None,
        };
        let thread = std::thread::Builder::new()
            .name("node-proxy".into())
            .spawn(move || syncer.run(woken))
            .ok();
        Ok(NodeProxy {
            stop,
            thread: Mutex::new(thread),
            services: services_seen,
        })
    }

    /// Stops syncing and removes the proxy's addresses, listeners and
    /// rules, and the DNS server.
    pub fn stop(&self) {
        // The sync loop sees it within a tick and shuts everything.
        self.stop.store(true, Ordering::SeqCst);
        let thread =
            self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The node's pods get the cluster's DNS and the Services' variables
/// (lab04's rules) from what this proxy watches.
impl lab03::kubelet::PodEnvironment for NodeProxy {
    fn dns_config(&self, pod: &Pod) -> Option<lab03::cri::DnsConfig> {
        lab04::env::pod_dns_config(pod)
    }

    fn service_env(&self, pod: &Pod) -> Vec<(String, String)> {
        lab04::env::pod_service_env(&owned(&self.services), pod)
    }
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start_dns(
    netns: &Path,
    addr: SocketAddr,
) -> Result<DnsServer, lab04::dns::DnsError> {
    DnsServer::start_in(netns, addr, CLUSTER_DOMAIN)
}

/// An informer of all namespaces that wakes the sync loop on a change.
fn watch<T: Informable>(
    client: &Client,
    wake: &Sender<()>,
) -> (Informer<T>, Cache<T>) {
    let wake = wake.clone();
    let informer = Informer::<T>::start(client.clone(), None, "", move |_| {
        let _ = wake.send(());
    });
    let cache = informer.cache();
    (informer, cache)
}

struct Syncer {
    stop: Arc<AtomicBool>,
    services: (Informer<Service>, Cache<Service>),
    slices: (Informer<EndpointSlice>, Cache<EndpointSlice>),
    pods: (Informer<Pod>, Cache<Pod>),
    proxier: Box<dyn Proxier>,
    dns: Option<DnsServer>,
    current: Option<ServiceTable>,
}

fn owned<T: Clone>(cache: &Cache<T>) -> Vec<T> {
    cache
        .list()
        .iter()
        .map(|o| o.as_ref().clone())
        .collect::<Vec<_>>()
}

impl Syncer {
    fn run(mut self, woken: Receiver<()>) {
        let mut idle = Duration::ZERO;
        while !self.stop.load(Ordering::SeqCst) {
            match woken.recv_timeout(TICK) {
                Ok(()) => {
                    // Let a burst of changes arrive: one sync for all.
                    std::thread::sleep(SETTLE);
                    while woken.try_recv().is_ok() {}
                }
                Err(RecvTimeoutError::Timeout) => {
                    idle += TICK;
                    if idle < RESYNC {
                        continue;
                    }
                    self.current = None;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            idle = Duration::ZERO;
            self.sync();
        }
        self.services.0.stop();
        self.slices.0.stop();
        self.pods.0.stop();
        let _ = self.proxier.shutdown();
        if let Some(dns) = self.dns.take() {
            let _ = dns.shutdown();
        }
    }

    // ANCHOR: sync
    fn sync(&mut self) {
        // Until every list is in, a table would drop live Services.
        if !(self.services.1.is_synced() && self.slices.1.is_synced()) {
            return;
        }
        let services = owned(&self.services.1);
        let slices = owned(&self.slices.1);
        let table = ServiceTable::build(&services, &slices);
        if self.current.as_ref() != Some(&table) {
            match self.proxier.sync(&table) {
                Ok(_) => self.current = Some(table),
                // Tried again at the next change or resync.
                Err(e) => {
                    eprintln!("node proxy: {} sync: {e}", self.proxier.mode())
                }
            }
        }
        if let Some(dns) = &self.dns {
            dns.update(&services, &slices, &owned(&self.pods.1));
        }
    }
    // ANCHOR_END: sync
}
