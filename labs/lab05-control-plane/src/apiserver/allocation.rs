//! ClusterIPs and NodePorts for Services, with chapter 4's allocators,
//! their state kept in the store as kube-apiserver keeps it
//! (`/registry/ranges/serviceips`, `/registry/ranges/servicenodeports`).
//!
//! The allocators are in-memory bitmaps; the store holds the taken
//! values, and every allocation is a read-modify-write of that key with
//! a compare on its revision, so two API servers over one etcd never
//! hand out one address twice.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use lab03::validate::{BadValue, FieldError};
use lab04::allocator::{
    system_random, AllocError, ClusterIpAllocator, NodePortAllocator,
};
use serde_json::{json, Value};

use super::meta;
use super::resources::Resource;
use super::server::ApiServer;
use super::status::ApiError;
use crate::store::{Store, StoreError};

pub const SERVICE_IPS: &str = "/registry/ranges/serviceips";
pub const NODE_PORTS: &str = "/registry/ranges/servicenodeports";

/// How often a range's compare-and-swap is retried under contention.
const TRIES: usize = 16;

/// What one request took, to give back if its write fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocated {
    pub cluster_ip: Option<Ipv4Addr>,
    pub node_ports: Vec<u16>,
}

/// Changes `key`'s set of taken values with `change`, compare-and-swap.
async fn update_range<T>(
    store: &dyn Store,
    key: &str,
    range: &str,
    mut change: impl FnMut(&mut BTreeSet<String>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..TRIES {
        let current = store.get(key).await?;
        let mut taken: BTreeSet<String> = match &current {
            Some(kv) => serde_json::from_slice::<Value>(&kv.value)
                .ok()
                .and_then(|v| {
                    serde_json::from_value(v["allocated"].clone()).ok()
                })
                .unwrap_or_default(),
            None => BTreeSet::new(),
        };
        let result = change(&mut taken)?;
        let value = json!({
            "kind": "RangeAllocation",
            "apiVersion": "v1",
            "metadata": {},
            "range": range,
            "allocated": taken,
        })
        .to_string()
        .into_bytes();
        let written = match &current {
            Some(kv) => store
                .update(key, Some(kv.mod_revision), value)
                .await
                .map(|_| ()),
            None => store.create(key, value).await.map(|_| ()),
        };
        match written {
            Ok(()) => return Ok(result),
            Err(
                StoreError::Conflict { .. } | StoreError::AlreadyExists { .. },
            ) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(format!("{key}: too much contention")))
}

fn ip_allocator(
    cidr: lab03::ipam::Cidr,
    taken: &BTreeSet<String>,
) -> ClusterIpAllocator {
    let mut a = ClusterIpAllocator::new(cidr);
    for ip in taken.iter().filter_map(|t| t.parse().ok()) {
        let _ = a.allocate(ip);
    }
    a
}

fn port_allocator(
    range: (u16, u16),
    taken: &BTreeSet<String>,
) -> NodePortAllocator {
    let mut a = NodePortAllocator::new(range);
    for port in taken.iter().filter_map(|t| t.parse().ok()) {
        let _ = a.allocate(port);
    }
    a
}

/// A ClusterIP: `wanted`, or any free one.
pub async fn allocate_ip(
    server: &ApiServer,
    wanted: Option<Ipv4Addr>,
) -> Result<Result<Ipv4Addr, AllocError>, ApiError> {
    let cidr = server.options().service_cidr;
    update_range(
        server.store().as_ref(),
        SERVICE_IPS,
        &cidr.to_string(),
        |taken| {
            let mut a = ip_allocator(cidr, taken);
            let got = match wanted {
                Some(ip) => a.allocate(ip).map(|()| ip),
                None => a.allocate_next(&mut system_random),
            };
            if let Ok(ip) = got {
                taken.insert(ip.to_string());
            }
            Ok(got)
        },
    )
    .await
}

/// A NodePort: `wanted`, or any free one.
pub async fn allocate_port(
    server: &ApiServer,
    wanted: Option<u16>,
) -> Result<Result<u16, AllocError>, ApiError> {
    let range = server.options().node_port_range;
    let text = format!("{}-{}", range.0, range.1);
    update_range(server.store().as_ref(), NODE_PORTS, &text, |taken| {
        let mut a = port_allocator(range, taken);
        let got = match wanted {
            Some(p) => a.allocate(p).map(|()| p),
            None => a.allocate_next(&mut system_random),
        };
        if let Ok(p) = got {
            taken.insert(p.to_string());
        }
        Ok(got)
    })
    .await
}

/// Gives back what `allocated` holds.
pub async fn release(
    server: &ApiServer,
    allocated: &Allocated,
) -> Result<(), ApiError> {
    let store = server.store().as_ref();
    if let Some(ip) = allocated.cluster_ip {
        let cidr = server.options().service_cidr.to_string();
        update_range(store, SERVICE_IPS, &cidr, |t| {
            Ok(t.remove(&ip.to_string()))
        })
        .await?;
    }
    if !allocated.node_ports.is_empty() {
        let range = server.options().node_port_range;
        let text = format!("{}-{}", range.0, range.1);
        update_range(store, NODE_PORTS, &text, |t| {
            for p in &allocated.node_ports {
                t.remove(&p.to_string());
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// A Service's allocated values, as written in its object.
pub fn of_object(object: &Value) -> Allocated {
    let spec = &object["spec"];
    Allocated {
        cluster_ip: spec["clusterIP"].as_str().and_then(|ip| ip.parse().ok()),
        node_ports: node_ports(spec),
    }
}

fn node_ports(spec: &Value) -> Vec<u16> {
    spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

fn wants_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

fn refused(
    object: &Value,
    path: String,
    value: BadValue,
    e: &AllocError,
) -> ApiError {
    let name = meta::meta_str(object, "name").unwrap_or_default();
    let error = match e {
        AllocError::Full => FieldError::invalid(path, value, "range is full"),
        other => FieldError::invalid(path, value, &other.to_string()),
    };
    ApiError::invalid("", "Service", name, &[error])
}

// ANCHOR: on_create
/// A new Service's ClusterIP (unless headless) and NodePorts (for
/// NodePort and LoadBalancer types), written into `object`.
pub async fn on_create(
    server: &ApiServer,
    resource: &Resource,
    object: &mut Value,
) -> Result<Allocated, ApiError> {
    let mut got = Allocated::default();
    if resource.kind != "Service" {
        return Ok(got);
    }
    let result = allocate_service(server, object, &mut got).await;
    if result.is_err() {
        release(server, &got).await?;
    }
    result.map(|()| got)
}
// ANCHOR_END: on_create

async fn allocate_service(
    server: &ApiServer,
    object: &mut Value,
    got: &mut Allocated,
) -> Result<(), ApiError> {
    let ip_text = object["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if ip_text != "None" {
        let wanted = match ip_text.as_str() {
            "" => None,
            // Validation already refused an address that does not parse.
            text => text.parse().ok(),
        };
        let ip = allocate_ip(server, wanted).await?.map_err(|e| {
            let value = BadValue::Text(ip_text.clone());
            refused(object, "spec.clusterIPs".into(), value, &e)
        })?;
        got.cluster_ip = Some(ip);
        object["spec"]["clusterIP"] = json!(ip.to_string());
        object["spec"]["clusterIPs"] = json!([ip.to_string()]);
    } else {
        object["spec"]["clusterIPs"] = json!(["None"]);
    }
    allocate_node_ports(server, object, got, &[]).await
}

/// NodePorts for the ports of `object` that lack one, `keep` being the
/// ones a previous version had (reused by port number).
async fn allocate_node_ports(
    server: &ApiServer,
    object: &mut Value,
    got: &mut Allocated,
    keep: &[(i64, u16)],
) -> Result<(), ApiError> {
    if !wants_node_ports(&object["spec"]) {
        return Ok(());
    }
    let count = object["spec"]["ports"].as_array().map_or(0, Vec::len);
    for i in 0..count {
        let port = &object["spec"]["ports"][i];
        let number = port["port"].as_i64().unwrap_or_default();
        let given = port["nodePort"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok());
        let kept = keep.iter().find(|(n, _)| *n == number).map(|(_, p)| *p);
        if given.is_some() && given == kept {
            continue;
        }
        let wanted = given.or(kept);
        if kept.is_some() && given.is_none() {
            object["spec"]["ports"][i]["nodePort"] = json!(kept);
            continue;
        }
        let p = allocate_port(server, wanted).await?.map_err(|e| {
            let value = BadValue::Number(wanted.map_or(0, i64::from));
            refused(object, format!("spec.ports[{i}].nodePort"), value, &e)
        })?;
        got.node_ports.push(p);
        object["spec"]["ports"][i]["nodePort"] = json!(p);
    }
    Ok(())
}

/// An update of a Service: the values it had stay (a client that omits
/// its ClusterIP or NodePorts keeps them); new NodePorts are allocated.
/// Returns what was newly taken and what the old version held that the
/// new does not (to release once the update is stored).
pub async fn on_update(
    server: &ApiServer,
    resource: &Resource,
    old: &Value,
    new: &mut Value,
) -> Result<(Allocated, Allocated), ApiError> {
    if resource.kind != "Service" {
        return Ok(Default::default());
    }
    for field in ["clusterIP", "clusterIPs"] {
        let missing =
            new["spec"][field].is_null() || new["spec"][field] == json!("");
        if missing && !old["spec"][field].is_null() {
            new["spec"][field] = old["spec"][field].clone();
        }
    }
    let keep: Vec<(i64, u16)> = old["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let n = p["port"].as_i64()?;
            Some((n, u16::try_from(p["nodePort"].as_u64()?).ok()?))
        })
        .collect();
    if !wants_node_ports(&new["spec"]) {
        if let Some(ports) = new["spec"]["ports"].as_array_mut() {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    let mut added = Allocated::default();
    if let Err(e) = allocate_node_ports(server, new, &mut added, &keep).await {
        release(server, &added).await?;
        return Err(e);
    }
    let now = node_ports(&new["spec"]);
    let dropped = Allocated {
        cluster_ip: None,
        node_ports: node_ports(&old["spec"])
            .into_iter()
            .filter(|p| !now.contains(p))
            .collect(),
    };
    Ok((added, dropped))
}
