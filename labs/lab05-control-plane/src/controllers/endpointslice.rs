//! The EndpointSlice controller: for each Service with a selector, the
//! slices of its ready and not-ready pods' addresses, computed by lab04
//! (`endpoints::endpoint_slices`, section 4.3) and written only when
//! they change.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use lab04::endpoints::{
    endpoint_slices, service_selector, MANAGED_BY, MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
};

use super::{pods, split_key, SyncError};
use crate::client::Client;
use crate::informer::{key_of, Cache, Change};
use crate::workqueue::WorkQueue;

/// Endpoints per slice (`--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The service informer's handler.
pub fn on_service_change(queue: &WorkQueue<String>, change: &Change<Service>) {
    match change {
        Change::Added(s) | Change::Deleted(s) => queue.add(key_of(&s.metadata)),
        Change::Modified { new, .. } => queue.add(key_of(&new.metadata)),
        Change::Synced => {}
    }
}

/// The pod informer's handler: the services that select the pod, before
/// and after.
pub fn on_pod_change(
    queue: &WorkQueue<String>,
    services: &Cache<Service>,
    change: &Change<Pod>,
) {
    let enqueue = |pod: &Pod| {
        let labels = pods::labels(&pod.metadata);
        for s in services.list() {
            if s.metadata.namespace != pod.metadata.namespace {
                continue;
            }
            if service_selector(&s).is_some_and(|sel| sel.matches(&labels)) {
                queue.add(key_of(&s.metadata));
            }
        }
    };
    match change {
        Change::Added(p) | Change::Deleted(p) => enqueue(p),
        Change::Modified { old, new } => {
            enqueue(new);
            if old.metadata.labels != new.metadata.labels {
                enqueue(old);
            }
        }
        Change::Synced => {}
    }
}

/// The slice informer's handler: a slice changed by someone else is put
/// back.
pub fn on_slice_change(
    queue: &WorkQueue<String>,
    change: &Change<EndpointSlice>,
) {
    let enqueue = |s: &EndpointSlice| {
        if let Some(service) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            queue.add(format!("{ns}/{service}"));
        }
    };
    match change {
        Change::Added(s) | Change::Deleted(s) => enqueue(s),
        Change::Modified { new, .. } => enqueue(new),
        Change::Synced => {}
    }
}

pub struct EndpointSliceController {
    pub client: Client,
    pub services: Cache<Service>,
    pub pods: Cache<Pod>,
    pub slices: Cache<EndpointSlice>,
    pub queue: WorkQueue<String>,
}

/// What a slice says, its name and version aside.
fn content(s: &EndpointSlice) -> serde_json::Value {
    serde_json::json!([s.address_type, s.endpoints, s.ports, s.metadata.labels])
}

impl EndpointSliceController {
    pub fn sync(&self, key: &str) -> Result<(), SyncError> {
        let (ns, name) = split_key(key);
        let Some(service) = self.services.get(key) else {
            // Gone: the garbage collector deletes its slices.
            return Ok(());
        };
        if service_selector(&service).is_none() {
            return Ok(());
        }
        let pods: Vec<Pod> = self
            .pods
            .list()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == ns)
            .map(|p| (**p).clone())
            .collect();
        let desired = endpoint_slices(&service, &pods, MAX_ENDPOINTS_PER_SLICE);
        let mut existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .list()
            .into_iter()
            .filter(|s| s.metadata.namespace.as_deref() == ns)
            .filter(|s| {
                let labels = s.metadata.labels.clone().unwrap_or_default();
                labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                    && labels.get(MANAGED_BY_LABEL).map(String::as_str)
                        == Some(MANAGED_BY)
            })
            .collect();
        existing.sort_by_key(|s| s.metadata.name.clone());
        let c = &self.client;
        for i in 0..desired.len().max(existing.len()) {
            match (desired.get(i), existing.get(i)) {
                (Some(want), Some(have)) => {
                    if content(want) == content(have) {
                        continue;
                    }
                    let mut next = want.clone();
                    next.metadata.name = have.metadata.name.clone();
                    next.metadata.generate_name = None;
                    next.metadata.resource_version =
                        have.metadata.resource_version.clone();
                    let slice_name =
                        have.metadata.name.clone().unwrap_or_default();
                    c.replace(ns, &slice_name, &next).map_err(
                        SyncError::api(format!(
                            "update endpointslice {slice_name}"
                        )),
                    )?;
                }
                (Some(want), None) => {
                    c.create(ns, want).map_err(SyncError::api(format!(
                        "create endpointslice for {key}"
                    )))?;
                }
                (None, Some(have)) => {
                    let slice_name =
                        have.metadata.name.clone().unwrap_or_default();
                    match c.delete::<EndpointSlice>(ns, &slice_name, None) {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            return Err(SyncError::api(format!(
                                "delete endpointslice {slice_name}"
                            ))(e))
                        }
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}
