//! From a Service and the pods it selects, the EndpointSlices that
//! Kubernetes' endpoint-slice controller would write.
//!
//! A slice lists endpoints (a pod's IP, whether it is ready, serving,
//! terminating, and which pod it is) that share one list of ports. Named
//! target ports are looked up in each pod, so pods that number a port
//! differently land in different slices; a slice holds at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::selector::Selector;

/// The controller's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label that says which controller owns a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Set on the slices of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Whether a pod can be an endpoint at all: it has an IP and has not ended.
/// Terminating pods stay (as terminating endpoints).
pub fn can_be_endpoint(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let ended = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    !ended && status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
}

// ANCHOR: conditions
/// An endpoint's conditions, as the controller sets them: *serving* says
/// the pod is Ready, *terminating* that it is being deleted, and *ready*
/// that traffic should go to it: serving and not terminating, or always
/// when the Service publishes not-ready addresses.
pub fn conditions(pod: &Pod, publish_not_ready: bool) -> EndpointConditions {
    // EXERCISE: lab04-endpoint-conditions
    let serving = pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    EndpointConditions {
        ready: Some(publish_not_ready || (serving && !terminating)),
        serving: Some(serving),
        terminating: Some(terminating),
    }
    // EXERCISE_END: lab04-endpoint-conditions
}
// ANCHOR_END: conditions

// ANCHOR: find_port
/// The port number a Service port's `targetPort` means in `pod`: a number
/// is itself (no targetPort: the Service's port), a name is the
/// containerPort of that name and protocol in one of the pod's containers.
/// `None` when the pod has no such port: it is then not an endpoint for it.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
            containers
                .unwrap_or_default()
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name)
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}
// ANCHOR_END: find_port

/// The Service's selector as a [`Selector`]: `None` for a Service without
/// one (its endpoints are someone else's to write).
pub fn service_selector(service: &Service) -> Option<Selector> {
    let map = service.spec.as_ref()?.selector.as_ref()?;
    (!map.is_empty()).then(|| Selector::from_map(map))
}

/// The EndpointSlices for `service`, from every pod of its namespace in
/// `pods`. Slices have no name yet, only `generateName` (`kubia-`), as
/// the controller creates them; the store names them.
pub fn endpoint_slices(
    service: &Service,
    pods: &[Pod],
    max_per_slice: usize,
) -> Vec<EndpointSlice> {
    let Some(selector) = service_selector(service) else {
        return Vec::new();
    };
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let spec = service.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.clone().unwrap_or_default();

    // ANCHOR: endpoint_slices
    // Endpoints grouped by the ports they resolve to.
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<Endpoint>> =
        BTreeMap::new();
    let mut selected: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
        .filter(|p| {
            selector
                .matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
        })
        .filter(|p| can_be_endpoint(p))
        .collect();
    selected.sort_by_key(|p| p.metadata.name.clone());
    for pod in selected {
        let ports: Vec<(String, i32, String)> = service_ports
            .iter()
            .filter_map(|sp| {
                let number = find_port(pod, sp)?;
                let name = sp.name.clone().unwrap_or_default();
                Some((
                    name,
                    number,
                    sp.protocol.clone().unwrap_or("TCP".into()),
                ))
            })
            .collect();
        groups
            .entry(ports)
            .or_default()
            .push(endpoint(pod, publish));
    }

    let mut slices = Vec::new();
    for (ports, endpoints) in groups {
        for chunk in endpoints.chunks(max_per_slice.max(1)) {
            slices.push(slice(service, namespace, &ports, chunk.to_vec()));
        }
    }
    slices
    // ANCHOR_END: endpoint_slices
}

fn endpoint(pod: &Pod, publish_not_ready: bool) -> Endpoint {
    let status = pod.status.clone().unwrap_or_default();
    Endpoint {
        addresses: status.pod_ip.into_iter().collect(),
        conditions: Some(conditions(pod, publish_not_ready)),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .or(Some("default".into())),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(
    service: &Service,
    namespace: &str,
    ports: &[(String, i32, String)],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> =
        service.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let headless = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None");
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name,
                uid: service.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(
            ports
                .iter()
                .map(|(name, port, protocol)| EndpointPort {
                    name: Some(name.clone()),
                    port: Some(*port),
                    protocol: Some(protocol.clone()),
                    app_protocol: None,
                })
                .collect(),
        ),
    }
}

/// An EndpointSlice's ports as kubectl lists them: the number, else the
/// name, else `*` (a slice for every port).
pub fn slice_ports(slice: &EndpointSlice) -> Vec<String> {
    slice
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".into(),
        })
        .collect()
}

/// Every endpoint address of an EndpointSlice, in order.
pub fn slice_addresses(slice: &EndpointSlice) -> Vec<String> {
    slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().cloned())
        .collect()
}
