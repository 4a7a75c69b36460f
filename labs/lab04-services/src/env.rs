//! What the kubelet tells a container about Services before DNS:
//! environment variables (`KUBIA_SERVICE_HOST`, …, as the kubelet's
//! `envvars` package makes them) and the `resolv.conf` of a pod whose
//! `dnsPolicy` is `ClusterFirst`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{EnvVar, Service, ServicePort};

/// The Service every pod hears of, whatever its namespace and
/// `enableServiceLinks`: the API server's own, `default/kubernetes`.
pub const MASTER_SERVICE: &str = "kubernetes";
/// What the kubelet puts in `options` for `ClusterFirst`.
pub const NDOTS: u32 = 5;

/// A Service's name as a variable prefix: upper case, `-` → `_`.
pub fn env_name(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

fn var(name: String, value: String) -> EnvVar {
    EnvVar {
        name,
        value: Some(value),
        value_from: None,
    }
}

/// The Service's ClusterIP, when it has one (not headless, not yet
/// unassigned): only those get variables.
fn cluster_ip(service: &Service) -> Option<&str> {
    let ip = service.spec.as_ref()?.cluster_ip.as_deref()?;
    (!ip.is_empty() && ip != "None").then_some(ip)
}

// ANCHOR: from_service
/// One Service's variables, in the kubelet's order: the host, the first
/// port, each named port; then the Docker-link ones.
pub fn from_service(service: &Service) -> Vec<EnvVar> {
    let Some(ip) = cluster_ip(service) else {
        return Vec::new();
    };
    let prefix = env_name(service.metadata.name.as_deref().unwrap_or(""));
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let mut out = vec![var(format!("{prefix}_SERVICE_HOST"), ip.to_string())];
    let Some(first) = ports.first() else {
        return out;
    };
    out.push(var(
        format!("{prefix}_SERVICE_PORT"),
        first.port.to_string(),
    ));
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push(var(
                format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                p.port.to_string(),
            ));
        }
    }
    out.extend(link_vars(&prefix, ip, ports));
    out
}
// ANCHOR_END: from_service

// ANCHOR: link_vars
/// The Docker-link variables: `<NAME>_PORT`, the first port as a URL, and
/// per port `<NAME>_PORT_<port>_<PROTO>` (the URL again) with `_PROTO`,
/// `_PORT` and `_ADDR`.
fn link_vars(prefix: &str, ip: &str, ports: &[ServicePort]) -> Vec<EnvVar> {
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let lower = protocol.to_ascii_lowercase();
        let url = format!("{lower}://{ip}:{}", p.port);
        if i == 0 {
            out.push(var(format!("{prefix}_PORT"), url.clone()));
        }
        let at = format!(
            "{prefix}_PORT_{}_{}",
            p.port,
            protocol.to_ascii_uppercase()
        );
        out.extend([
            var(at.clone(), url),
            var(format!("{at}_PROTO"), lower),
            var(format!("{at}_PORT"), p.port.to_string()),
            var(format!("{at}_ADDR"), ip.to_string()),
        ]);
    }
    out
}
// ANCHOR_END: link_vars

// ANCHOR: service_env
/// The service variables of a container in a pod of `namespace`, from
/// every Service the kubelet knows: those of the pod's namespace when
/// `enable_service_links` (the pod's `enableServiceLinks`, true unless
/// set false), and always `default/kubernetes`.
///
/// The kubelet collects them in a map, so its order between Services is
/// Go's map order (none); ours is by Service name. A pod's own `env`
/// entries win over these, which is the caller's to apply, and only
/// Services that exist when the container starts are in them.
pub fn service_env(
    services: &[Service],
    namespace: &str,
    enable_service_links: bool,
) -> Vec<EnvVar> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services.iter().filter(|s| cluster_ip(s).is_some()) {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        if ns == "default" && name == MASTER_SERVICE {
            // A Service of the pod's namespace with the same name wins.
            chosen.entry(name).or_insert(svc);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    chosen.values().flat_map(|s| from_service(s)).collect()
}
// ANCHOR_END: service_env

/// A pod's DNS search path for `namespace`: its own namespace's
/// Services, every namespace's, then the cluster domain.
pub fn search_path(namespace: &str, cluster_domain: &str) -> Vec<String> {
    let domain = cluster_domain.trim_end_matches('.');
    vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_string(),
    ]
}

// ANCHOR: resolv_conf
/// The `/etc/resolv.conf` of a pod in `namespace` with `dnsPolicy:
/// ClusterFirst`, as the kubelet asks the runtime to write it: the
/// cluster's DNS servers, a search path from the pod's namespace out to
/// the cluster domain, and `ndots:5`, so that `kubia` and `kubia.other`
/// are tried under the search path before as they are. The node's own
/// search domains would follow; ours has none (nothing resolves outside).
pub fn resolv_conf(
    namespace: &str,
    nameservers: &[Ipv4Addr],
    cluster_domain: &str,
) -> String {
    let mut out = format!(
        "search {}\n",
        search_path(namespace, cluster_domain).join(" ")
    );
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out.push_str(&format!("options ndots:{NDOTS}\n"));
    out
}
// ANCHOR_END: resolv_conf

// ANCHOR: dns_config
/// A pod's DNS settings as the kubelet gives them: `dnsPolicy:
/// ClusterFirst` (the default) is the cluster's DNS server, the pod's
/// namespace's search path and ndots:5; `Default` (or any other policy)
/// is the node's own resolv.conf (`None`).
pub fn pod_dns_config(
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Option<lab03::cri::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "ClusterFirst" => Some(lab03::cri::DnsConfig {
            servers: vec![crate::dns::dns_ip().to_string()],
            searches: search_path(
                namespace,
                crate::dns::records::CLUSTER_DOMAIN,
            ),
            options: vec![format!("ndots:{NDOTS}")],
        }),
        _ => None,
    }
}
// ANCHOR_END: dns_config

/// The Service variables a pod gets from `services` (those of its
/// namespace, and the master Service's), unless `enableServiceLinks` is
/// false, as name and value pairs for the runtime.
pub fn pod_service_env(
    services: &[Service],
    pod: &k8s_openapi::api::core::v1::Pod,
) -> Vec<(String, String)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    service_env(services, namespace, links)
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}
