//! The part of a node that chapter 4 adds: from its Services and the pods
//! it runs, the EndpointSlices (what the endpoint-slice controller would
//! write), the proxy's table (what kube-proxy programs), the DNS records
//! (what CoreDNS serves), and what a new container learns of Services
//! (the kubelet's environment variables and resolv.conf).
//!
//! The node's main loop calls [`ServiceNode::sync`] with its pods every
//! time it looks at its manifests; only what changed reaches the proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{
    Event, EventSource, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use lab03::cri::DnsConfig;
use lab03::kubelet::PodEnvironment;
use lab03::network::NodeNetwork;
use lab04::dns::records::CLUSTER_DOMAIN;
use lab04::dns::DnsServer;
use lab04::proxy::{Proxier, ServiceTable};

use crate::services::{dns_ip, ServiceStore};

/// Objects by their Service's namespace and name.
type Keyed<T> = BTreeMap<(String, String), Vec<T>>;

/// Which proxy a node runs (`--proxy`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// A process that accepts on each ClusterIP and copies to an endpoint.
    Userspace,
    /// DNAT rules in the kernel, as kube-proxy's nftables mode.
    #[default]
    Nftables,
}

/// A Service as `get svc` and `describe svc` show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServiceView {
    pub service: Service,
    pub slices: Vec<EndpointSlice>,
    pub events: Vec<Event>,
}

#[derive(Default)]
struct State {
    services: Vec<Service>,
    slices: BTreeMap<(String, String), Vec<EndpointSlice>>,
    table: ServiceTable,
    /// Per Service (namespace, name): its events, oldest first.
    events: BTreeMap<(String, String), Vec<Event>>,
}

pub struct ServiceNode {
    store: ServiceStore,
    node: String,
    state: RwLock<State>,
    proxier: Mutex<Option<Box<dyn Proxier>>>,
    dns: Mutex<Option<DnsServer>>,
}

impl ServiceNode {
    /// The Services of the node in `node_dir`; no proxy yet.
    pub fn new(node_dir: &Path, node: &str) -> ServiceNode {
        ServiceNode {
            store: ServiceStore::of(node_dir),
            node: node.to_string(),
            state: RwLock::new(State::default()),
            proxier: Mutex::new(None),
            dns: Mutex::new(None),
        }
    }

    /// Starts the proxy and the DNS server in the node's network
    /// namespace; the DNS server answers on [`dns_ip`], an address of the
    /// node's own.
    pub fn start(&self, mode: ProxyMode, network: &NodeNetwork) -> Result<()> {
        let netns = network.netns_path();
        if let Err(e) = network.add_local_address(dns_ip()) {
            // A node found again after a kill -9 has it already.
            if !format!("{e}").contains("exists") {
                return Err(e).context("the DNS server's address");
            }
        }
        let dns = DnsServer::start_in(
            netns,
            SocketAddr::from((dns_ip(), 53)),
            CLUSTER_DOMAIN,
        )
        .context("start the cluster DNS server")?;
        *self.dns.lock().unwrap_or_else(|e| e.into_inner()) = Some(dns);
        let proxier = crate::proxies::start(mode, netns, network.gateway())?;
        *self.proxier.lock().unwrap_or_else(|e| e.into_inner()) = Some(proxier);
        Ok(())
    }

    /// Each Service's EndpointSlices, named, and the warnings about pods
    /// it selects but cannot use.
    fn slices_of(
        &self,
        services: &[Service],
        pods: &[Pod],
    ) -> (Keyed<EndpointSlice>, Keyed<Event>) {
        let mut slices = BTreeMap::new();
        let mut events: Keyed<Event> = BTreeMap::new();
        for svc in services {
            let key = key_of(&svc.metadata);
            let made = lab04::endpoints::endpoint_slices(
                svc,
                pods,
                lab04::endpoints::MAX_ENDPOINTS_PER_SLICE,
            );
            let warnings = unresolved_ports(svc, pods, &self.node);
            events.entry(key.clone()).or_default().extend(warnings);
            slices.insert(key, name_slices(svc, made));
        }
        (slices, events)
    }

    // ANCHOR: sync
    /// One round: read the Services, compute their slices from `pods`,
    /// and hand the proxy the table if it changed.
    pub fn sync(&self, pods: &[Pod]) -> Result<Vec<String>> {
        let services = self.store.list()?;
        let mut problems = Vec::new();
        let (slices, mut events) = self.slices_of(&services, pods);
        let all: Vec<EndpointSlice> =
            slices.values().flatten().cloned().collect();
        let table = ServiceTable::build(&services, &all);
        let changed = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.table != table
        };
        if changed {
            let mut proxier =
                self.proxier.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = proxier.as_mut() {
                if let Err(e) = p.sync(&table) {
                    problems.push(format!("{} proxy: {e}", p.mode()));
                }
            }
        }
        if let Some(dns) =
            self.dns.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        {
            dns.update(&services, &all, pods);
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        keep_first_seen(&mut events, &state.events);
        *state = State {
            services,
            slices,
            table,
            events,
        };
        Ok(problems)
    }
    // ANCHOR_END: sync

    /// Every Service with its slices and events.
    pub fn views(&self) -> Vec<ServiceView> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state
            .services
            .iter()
            .map(|svc| {
                let key = key_of(&svc.metadata);
                ServiceView {
                    service: svc.clone(),
                    slices: state.slices.get(&key).cloned().unwrap_or_default(),
                    events: state.events.get(&key).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// The table the proxy was last given.
    pub fn table(&self) -> ServiceTable {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .table
            .clone()
    }

    /// Removes every rule, address and listener of the proxy, and stops
    /// the DNS server.
    pub fn shutdown(&self) -> Result<()> {
        let dns = self.dns.lock().unwrap_or_else(|e| e.into_inner()).take();
        let dns =
            dns.map_or(Ok(()), |d| d.shutdown().context("stop the DNS server"));
        if let Some(mut p) = self
            .proxier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            p.shutdown()
                .with_context(|| format!("stop the {} proxy", p.mode()))?;
        }
        dns
    }
}

impl PodEnvironment for ServiceNode {
    fn dns_config(&self, pod: &Pod) -> Option<DnsConfig> {
        lab04::env::pod_dns_config(pod)
    }

    fn service_env(&self, pod: &Pod) -> Vec<(String, String)> {
        // The Services kept now: one made later is not in them.
        let services = self.store.list().unwrap_or_default();
        lab04::env::pod_service_env(&services, pod)
    }
}

/// Keeps each warning's first sighting, as an Event counts from it.
fn keep_first_seen(events: &mut Keyed<Event>, old: &Keyed<Event>) {
    for (key, list) in events.iter_mut() {
        let Some(old) = old.get(key) else {
            continue;
        };
        for e in list.iter_mut() {
            if let Some(o) = old.iter().find(|o| o.message == e.message) {
                *e = o.clone();
            }
        }
    }
}

fn key_of(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Gives the controller's slices names that stay the same from one round
/// to the next (the API server would name them from `generateName`).
fn name_slices(
    svc: &Service,
    slices: Vec<EndpointSlice>,
) -> Vec<EndpointSlice> {
    use sha2::{Digest, Sha256};
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    slices
        .into_iter()
        .enumerate()
        .map(|(i, mut slice)| {
            let prefix =
                slice.metadata.generate_name.clone().unwrap_or_default();
            let digest = Sha256::digest(format!("{uid}/{i}").as_bytes());
            // The API server's suffix alphabet: no vowels, no look-alikes.
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = digest
                .iter()
                .take(5)
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
                .collect();
            slice.metadata.name = Some(format!("{prefix}{suffix}"));
            slice.metadata.creation_timestamp =
                svc.metadata.creation_timestamp.clone();
            slice
        })
        .collect()
}

/// A warning for each selected pod that lacks a named target port: it is
/// no endpoint of that port, and `describe svc` says why.
fn unresolved_ports(svc: &Service, pods: &[Pod], node: &str) -> Vec<Event> {
    let Some(selector) = lab04::endpoints::service_selector(svc) else {
        return Vec::new();
    };
    let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for pod in pods {
        if pod.metadata.namespace.as_deref().unwrap_or("default") != namespace
            || !selector.matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
        {
            continue;
        }
        for port in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
            if lab04::endpoints::find_port(pod, port).is_none() {
                let target = match &port.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                        s.clone()
                    }
                    other => format!("{other:?}"),
                };
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let message = format!(
                    "{pod_name} has no port {target:?}: \
                     no endpoint of port {}",
                    port.port
                );
                out.push(warning(svc, node, "FailedToResolvePort", message));
            }
        }
    }
    out
}

fn warning(svc: &Service, node: &str, reason: &str, message: String) -> Event {
    let now = Time(SystemTime::now().into());
    Event {
        metadata: ObjectMeta {
            namespace: svc.metadata.namespace.clone(),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Service".into()),
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            uid: svc.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some("Warning".into()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource {
            component: Some("endpointslice-controller".into()),
            host: Some(node.to_string()),
        }),
        ..Default::default()
    }
}
