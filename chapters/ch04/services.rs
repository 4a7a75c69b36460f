//! A node's Services, kept as files in its `services/` directory beside
//! the static pods' `manifests/`. There is no API server before chapter 5,
//! so `ch04 apply` does here what kube-apiserver does when a Service is
//! created: it validates it, fills in the defaults, and allocates its
//! ClusterIP (and NodePorts) from bitmaps rebuilt from the Services kept,
//! as kube-apiserver's repair loop rebuilds them from etcd.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use lab04::allocator::{
    service_cidr, ClusterIpAllocator, NodePortAllocator, NODE_PORTS,
};

use crate::layout::write_atomically;

pub use lab04::dns::dns_ip;

/// One node's Services.
#[derive(Debug, Clone)]
pub struct ServiceStore {
    dir: PathBuf,
}

/// What `apply` did to one Service, in kubectl's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        })
    }
}

impl ServiceStore {
    /// The Services of the node whose directory is `node_dir`.
    pub fn of(node_dir: &Path) -> ServiceStore {
        ServiceStore {
            dir: node_dir.join("services"),
        }
    }

    fn file(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir.join(format!("{namespace}_{name}.json"))
    }

    /// Every Service kept, by namespace and name.
    pub fn list(&self) -> Result<Vec<Service>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("read {}", self.dir.display()))
            }
        };
        let mut services = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            let svc: Service =
                serde_json::from_str(&text).with_context(|| {
                    format!("{}: not a Service", path.display())
                })?;
            services.push(svc);
        }
        services.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        Ok(services)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<Service>> {
        Ok(self.list()?.into_iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(name)
        }))
    }

    /// Creates or updates Services: all of them or, when one is refused,
    /// none. Holds the directory's lock, so two `apply`s never hand out
    /// one address twice.
    pub fn apply(
        &self,
        services: &[Service],
        source: &str,
    ) -> Result<Vec<(String, Applied)>> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        let lock = std::fs::File::create(self.dir.join(".lock"))?;
        let _held =
            nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .context("lock the node's Services")?;
        let existing = self.list()?;
        let mut ips = ClusterIpAllocator::new(service_cidr());
        let mut ports = NodePortAllocator::new(NODE_PORTS);
        // The `kubernetes` Service's address and the DNS server's.
        let _ = ips.allocate(ips.first());
        let _ = ips.allocate(dns_ip());
        // Updated Services keep what they hold, so every kept one counts.
        for svc in &existing {
            reserve(svc, &mut ips, &mut ports);
        }
        let mut out = Vec::new();
        let mut writes = Vec::new();
        for svc in services {
            let mut svc = svc.clone();
            let namespace = svc
                .metadata
                .namespace
                .get_or_insert_with(|| "default".into())
                .clone();
            let name = svc.metadata.name.clone().unwrap_or_default();
            let old = existing.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(&namespace)
                    && s.metadata.name.as_deref() == Some(&name)
            });
            default(&mut svc);
            let errors = lab04::validate::validate_service(&svc);
            if !errors.is_empty() {
                let list: Vec<String> =
                    errors.iter().map(|e| e.to_string()).collect();
                if list.len() == 1 {
                    bail!(
                        "{source}: the Service {name:?} is invalid: {}",
                        list[0]
                    );
                }
                bail!(
                    "{source}: the Service {name:?} is invalid:\n* {}",
                    list.join("\n* ")
                );
            }
            let outcome = match old {
                Some(old) => {
                    update(&mut svc, old).map_err(|e| {
                        anyhow::anyhow!(
                            "{source}: the Service {name:?} is invalid: {e}"
                        )
                    })?;
                    if strip_time(old) == strip_time(&svc) {
                        Applied::Unchanged
                    } else {
                        Applied::Configured
                    }
                }
                None => {
                    allocate(&mut svc, &mut ips, &mut ports).map_err(|e| {
                        anyhow::anyhow!(
                            "{source}: the Service {name:?} is invalid: {e}"
                        )
                    })?;
                    svc.metadata.creation_timestamp =
                        Some(Time(std::time::SystemTime::now().into()));
                    svc.metadata.uid = Some(uuid_like(&namespace, &name));
                    Applied::Created
                }
            };
            if outcome != Applied::Unchanged {
                writes.push((
                    self.file(&namespace, &name),
                    serde_json::to_vec_pretty(&svc)?,
                ));
            }
            out.push((name, outcome));
        }
        for (path, body) in writes {
            write_atomically(&path, &body)?;
        }
        Ok(out)
    }

    /// Removes a Service; false if there was none.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<bool> {
        match std::fs::remove_file(self.file(namespace, name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).context("remove the Service"),
        }
    }
}

/// Marks what a kept Service holds as taken.
fn reserve(
    svc: &Service,
    ips: &mut ClusterIpAllocator,
    ports: &mut NodePortAllocator,
) {
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
    {
        let _ = ips.allocate(ip);
    }
    for p in spec.ports.iter().flatten() {
        if let Some(n) = p.node_port.and_then(|n| u16::try_from(n).ok()) {
            let _ = ports.allocate(n);
        }
    }
}

/// The defaults kube-apiserver fills in that proxies and printers read.
fn default(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    spec.type_.get_or_insert_with(|| "ClusterIP".into());
    spec.session_affinity.get_or_insert_with(|| "None".into());
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(Default::default);
        let client = config.client_ip.get_or_insert_with(Default::default);
        client
            .timeout_seconds
            .get_or_insert(lab04::validate::DEFAULT_AFFINITY_TIMEOUT);
    }
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        if p.target_port.is_none() {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
}

// ANCHOR: allocate
/// The ClusterIP of a new Service: the one it asked for if that is free
/// and in the range, else the allocator's pick; none for a headless one.
fn allocate(
    svc: &mut Service,
    ips: &mut ClusterIpAllocator,
    ports: &mut NodePortAllocator,
) -> Result<()> {
    let spec = svc.spec.get_or_insert_with(Default::default);
    let mut random = lab04::allocator::system_random;
    match spec.cluster_ip.as_deref() {
        Some("None") => {}
        Some(text) if !text.is_empty() => {
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                let why = "must be a valid IP address";
                anyhow::anyhow!(
                    "spec.clusterIPs: Invalid value: {text:?}: {why}"
                )
            })?;
            ips.allocate(ip).map_err(|e| {
                let why = format!("failed to allocate IP {ip}: {e}");
                anyhow::anyhow!(
                    "spec.clusterIPs: Invalid value: [\"{ip}\"]: {why}"
                )
            })?;
        }
        _ => {
            let ip = ips.allocate_next(&mut random).map_err(|e| {
                anyhow::anyhow!("failed to allocate a serviceIP: {e}")
            })?;
            spec.cluster_ip = Some(ip.to_string());
        }
    }
    if let Some(ip) = spec.cluster_ip.clone() {
        spec.cluster_ips = Some(vec![ip]);
    }
    if spec.type_.as_deref() == Some("NodePort") {
        allocate_node_ports(spec, ports, &mut random)?;
    }
    Ok(())
}
// ANCHOR_END: allocate

/// A NodePort Service's ports: each the one asked for, else a pick.
fn allocate_node_ports(
    spec: &mut ServiceSpec,
    ports: &mut NodePortAllocator,
    random: &mut dyn FnMut(usize) -> usize,
) -> Result<()> {
    for (i, p) in spec.ports.iter_mut().flatten().enumerate() {
        match p.node_port {
            Some(n) => {
                let port = u16::try_from(n).unwrap_or(0);
                ports.allocate(port).map_err(|e| {
                    anyhow::anyhow!(
                        "spec.ports[{i}].nodePort: Invalid value: {n}: {e}"
                    )
                })?;
            }
            None => {
                let n = ports.allocate_next(random).map_err(|e| {
                    anyhow::anyhow!("spec.ports[{i}].nodePort: {e}")
                })?;
                p.node_port = Some(i32::from(n));
            }
        }
    }
    Ok(())
}

/// An update keeps what was allocated: a ClusterIP cannot change (the
/// API server's "field is immutable"), and NodePorts stay.
fn update(svc: &mut Service, old: &Service) -> Result<()> {
    let old_spec = old.spec.clone().unwrap_or_default();
    let spec = svc.spec.get_or_insert_with(Default::default);
    match spec.cluster_ip.as_deref() {
        None | Some("") => spec.cluster_ip = old_spec.cluster_ip.clone(),
        Some(ip) if Some(ip) != old_spec.cluster_ip.as_deref() => {
            bail!("spec.clusterIPs[0]: Invalid value: [\"{ip}\"]: may not change once set")
        }
        _ => {}
    }
    spec.cluster_ips = old_spec.cluster_ips.clone();
    if spec.type_ != old_spec.type_ {
        bail!("spec.type: changing a Service's type is not supported here: delete it first");
    }
    for p in spec.ports.iter_mut().flatten() {
        if p.node_port.is_none() {
            p.node_port = old_spec
                .ports
                .iter()
                .flatten()
                .find(|o| o.port == p.port && o.protocol == p.protocol)
                .and_then(|o| o.node_port);
        }
    }
    svc.metadata.uid = old.metadata.uid.clone();
    svc.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
    Ok(())
}

fn strip_time(svc: &Service) -> Service {
    let mut s = svc.clone();
    s.metadata.creation_timestamp = None;
    s
}

/// A uid for a new Service of this node (no API server to hand one out).
fn uuid_like(namespace: &str, name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = crate::node::digest_hex(&format!("{namespace}/{name}/{now}"));
    crate::node::uuid_of(&digest)
}
