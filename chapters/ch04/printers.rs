//! What `kubectl get services`, `get endpointslices` and `describe
//! service` print (kubectl's `printService`, `printEndpointSlice` and
//! `describeService`), from the same API objects.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Event, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::printers::{events_lines, map_lines, since};
use crate::tabwriter::align;

/// kubectl's "a,b,c + 2 more..." for long lists; `<unset>` for none.
fn list_with_more(items: &[String], max: usize) -> String {
    if items.is_empty() {
        return "<unset>".into();
    }
    let shown = items[..items.len().min(max)].join(",");
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else {
        shown
    }
}

fn selector_text(map: Option<&BTreeMap<String, String>>) -> String {
    match map.filter(|m| !m.is_empty()) {
        None => "<none>".into(),
        Some(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

// ANCHOR: ports_column
/// The PORT(S) column: `80/TCP`, with a NodePort `80:30123/TCP`.
pub fn ports_column(svc: &Service) -> String {
    let ports = svc.spec.iter().flat_map(|s| s.ports.iter().flatten());
    let list: Vec<String> = ports
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(n) => format!("{}:{n}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    if list.is_empty() {
        "<none>".into()
    } else {
        list.join(",")
    }
}
// ANCHOR_END: ports_column

/// `get svc` (`-o wide` adds SELECTOR).
pub fn get_services(
    services: &[Service],
    wide: bool,
    now: SystemTime,
) -> String {
    let mut text =
        String::from("NAME\tTYPE\tCLUSTER-IP\tEXTERNAL-IP\tPORT(S)\tAGE");
    if wide {
        text += "\tSELECTOR";
    }
    text.push('\n');
    for svc in services {
        let spec = svc.spec.clone().unwrap_or_default();
        let _ = write!(
            text,
            "{}\t{}\t{}\t<none>\t{}\t{}",
            svc.metadata.name.as_deref().unwrap_or(""),
            spec.type_.as_deref().unwrap_or("ClusterIP"),
            spec.cluster_ip.as_deref().unwrap_or("<none>"),
            ports_column(svc),
            since(svc.metadata.creation_timestamp.as_ref(), now),
        );
        if wide {
            let _ = write!(text, "\t{}", selector_text(spec.selector.as_ref()));
        }
        text.push('\n');
    }
    align(&text, 6, 3)
}

/// `get endpointslices`.
pub fn get_endpoint_slices(
    slices: &[EndpointSlice],
    now: SystemTime,
) -> String {
    let mut text = String::from("NAME\tADDRESSTYPE\tPORTS\tENDPOINTS\tAGE\n");
    for s in slices {
        let ports = lab04::endpoints::slice_ports(s);
        let addresses = lab04::endpoints::slice_addresses(s);
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}",
            s.metadata.name.as_deref().unwrap_or(""),
            s.address_type,
            list_with_more(&ports, 3),
            list_with_more(&addresses, 3),
            since(s.metadata.creation_timestamp.as_ref(), now),
        );
    }
    align(&text, 6, 3)
}

/// The ready endpoints of one Service port, `ip:port`.
fn endpoints_of(slices: &[EndpointSlice], port_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in slices {
        let Some(port) = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
        else {
            continue;
        };
        for e in &s.endpoints {
            let ready =
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if ready {
                out.extend(e.addresses.iter().map(|a| format!("{a}:{port}")));
            }
        }
    }
    out
}

/// `describe svc`.
pub fn describe_service(
    svc: &Service,
    slices: &[EndpointSlice],
    events: &[Event],
    now: SystemTime,
) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out = String::new();
    let _ =
        writeln!(out, "Name:\t{}", svc.metadata.name.as_deref().unwrap_or(""));
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        svc.metadata.namespace.as_deref().unwrap_or("default")
    );
    map_lines(&mut out, "Labels", svc.metadata.labels.as_ref());
    map_lines(&mut out, "Annotations", svc.metadata.annotations.as_ref());
    let _ =
        writeln!(out, "Selector:\t{}", selector_text(spec.selector.as_ref()));
    let _ = writeln!(
        out,
        "Type:\t{}",
        spec.type_.as_deref().unwrap_or("ClusterIP")
    );
    let _ = writeln!(out, "IP Family Policy:\tSingleStack");
    let _ = writeln!(out, "IP Families:\tIPv4");
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let _ = writeln!(out, "IP:\t{ip}");
    let _ = writeln!(out, "IPs:\t{ip}");
    for p in spec.ports.iter().flatten() {
        let name = p.name.clone().filter(|n| !n.is_empty());
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let _ = writeln!(
            out,
            "Port:\t{}  {}/{proto}",
            name.as_deref().unwrap_or("<unset>"),
            p.port
        );
        let target = match &p.target_port {
            Some(IntOrString::Int(n)) => format!("{n}/{proto}"),
            Some(IntOrString::String(s)) => format!("{s}/{proto}"),
            None => format!("{}/{proto}", p.port),
        };
        let _ = writeln!(out, "TargetPort:\t{target}");
        if let Some(n) = p.node_port {
            let _ = writeln!(
                out,
                "NodePort:\t{}  {n}/{proto}",
                name.as_deref().unwrap_or("<unset>")
            );
        }
        let eps = endpoints_of(slices, name.as_deref().unwrap_or(""));
        let eps = if eps.is_empty() {
            "<none>".to_string()
        } else {
            list_with_more(&eps, 3)
        };
        let _ = writeln!(out, "Endpoints:\t{eps}");
    }
    let _ = writeln!(
        out,
        "Session Affinity:\t{}",
        spec.session_affinity.as_deref().unwrap_or("None")
    );
    if spec.type_.as_deref() == Some("NodePort") {
        let _ = writeln!(out, "External Traffic Policy:\tCluster");
    }
    let _ = writeln!(out, "Internal Traffic Policy:\tCluster");
    events_lines(&mut out, events, now);
    align(&out, 0, 2)
}
