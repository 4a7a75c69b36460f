//! Rows of Services, Endpoints and EndpointSlices (printers.go
//! `printService`, `printEndpoints`, `printEndpointSlice`).

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::{
    age_of, column, format_labels, name_of, typed, wide, Printer, AGE, NAME,
};

pub(super) static SERVICES: Printer = Printer {
    columns: &[
        NAME,
        column("Type", "ClusterIP, NodePort, LoadBalancer or ExternalName."),
        column("Cluster-IP", "The service's virtual IP."),
        column("External-IP", "Addresses outside the cluster."),
        column("Port(s)", "Ports, with node ports, and protocols."),
        AGE,
        wide(column("Selector", "The labels of the pods it serves.")),
    ],
    cells: |o, now| {
        let svc: Service = typed(o);
        let spec = svc.spec.clone().unwrap_or_default();
        let cluster_ip = spec
            .cluster_ips
            .iter()
            .flatten()
            .next()
            .or(spec.cluster_ip.as_ref())
            .cloned()
            .unwrap_or_else(|| "<none>".into());
        let ports: Vec<String> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let protocol = p.protocol.as_deref().unwrap_or("TCP");
                match p.node_port {
                    Some(n) if n > 0 => format!("{}:{n}/{protocol}", p.port),
                    _ => format!("{}/{protocol}", p.port),
                }
            })
            .collect();
        let ports = if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        };
        vec![
            name_of(&svc.metadata),
            json!(spec.type_.clone().unwrap_or_default()),
            json!(cluster_ip),
            json!(external_ip(&svc)),
            json!(ports),
            age_of(&svc.metadata, now),
            json!(format_labels(spec.selector.as_ref())),
        ]
    },
};

/// EXTERNAL-IP: external IPs, the load balancer's (`<pending>` until it
/// has one), or the external name. The server prints wide, so load
/// balancer addresses are not clipped.
fn external_ip(svc: &Service) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let external: Vec<String> = spec.external_ips.clone().unwrap_or_default();
    let or_none = |v: &[String]| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.join(",")
        }
    };
    match spec.type_.as_deref() {
        Some("ClusterIP") | Some("NodePort") => or_none(&external),
        Some("LoadBalancer") => {
            let mut lb: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                .collect();
            lb.sort();
            lb.dedup();
            lb.extend(external);
            if lb.is_empty() {
                "<pending>".into()
            } else {
                lb.join(",")
            }
        }
        Some("ExternalName") => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

pub(super) static ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        column("Endpoints", "The first addresses and ports."),
        AGE,
    ],
    cells: |o, now| {
        let ep: Endpoints = typed(o);
        vec![
            name_of(&ep.metadata),
            json!(format_endpoints(&ep)),
            age_of(&ep.metadata, now),
        ]
    },
};

/// At most three `ip:port`, then `+ N more...`; `<none>` when empty.
fn format_endpoints(ep: &Endpoints) -> String {
    const MAX: usize = 3;
    let subsets = ep.subsets.clone().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in &subsets {
        let addresses = ss.addresses.clone().unwrap_or_default();
        let ports = ss.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            list.extend(addresses.iter().map(|a| a.ip.clone()));
            continue;
        }
        for port in &ports {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| host_port(&a.ip, port.port)));
        }
    }
    with_more(list, count, MAX, "")
}

fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The first `max` items joined, then ` + N more...`; `empty` when none.
fn with_more(
    mut list: Vec<String>,
    count: usize,
    max: usize,
    empty: &str,
) -> String {
    let more = list.len() > max;
    list.truncate(max);
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        empty.into()
    } else {
        joined
    }
}

pub(super) static ENDPOINT_SLICES: Printer = Printer {
    columns: &[
        NAME,
        column("AddressType", "IPv4, IPv6 or FQDN."),
        column("Ports", "The slice's ports."),
        column("Endpoints", "The first endpoint addresses."),
        AGE,
    ],
    cells: |o, now| {
        let slice: EndpointSlice = typed(o);
        let ports = lab04::endpoints::slice_ports(&slice);
        let n_ports = ports.len();
        let addresses = lab04::endpoints::slice_addresses(&slice);
        let n_addresses = addresses.len();
        vec![
            name_of(&slice.metadata),
            json!(slice.address_type),
            json!(with_more(ports, n_ports, 3, "<unset>")),
            json!(with_more(addresses, n_addresses, 3, "<unset>")),
            age_of(&slice.metadata, now),
        ]
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_say_how_many_more() {
        let l = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(with_more(l(0), 0, 3, "<unset>"), "<unset>");
        assert_eq!(with_more(l(3), 3, 3, ""), "0,1,2");
        assert_eq!(with_more(l(5), 5, 3, ""), "0,1,2 + 2 more...");
    }
}
