//! The QoS class of a pod, as Kubernetes computes it
//! (pkg/apis/core/v1/helper/qos, `ComputePodQOS`).
//!
//! Only cpu and memory count. Guaranteed: every container, init containers
//! included, has cpu and memory limits, and the pod's summed requests equal
//! its summed limits. BestEffort: no container requests or limits anything.
//! Burstable: everything between.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::resources::{quantity_of, Amount, ResourceError};

/// The three classes, named as `status.qosClass` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        };
        f.write_str(name)
    }
}

/// The resources the QoS class looks at.
pub const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// A container's request for `name`, defaulted as the API server does: a
/// limit with no request counts as a request of the limit.
pub fn request_of(container: &Container, name: &str) -> Result<Option<Amount>, ResourceError> {
    Ok(match quantity_of(container, "requests", name)? {
        Some(request) => Some(request),
        None => quantity_of(container, "limits", name)?,
    })
}

/// A container's limit for `name`.
pub fn limit_of(container: &Container, name: &str) -> Result<Option<Amount>, ResourceError> {
    quantity_of(container, "limits", name)
}

// ANCHOR: qos_class
/// The pod's QoS class. Zero quantities count as absent.
pub fn qos_class(pod: &Pod) -> Result<QosClass, ResourceError> {
    // EXERCISE: lab03-qos-class
    let spec = pod.spec.as_ref();
    let containers = spec
        .map(|s| s.containers.iter())
        .into_iter()
        .flatten()
        .chain(
            spec.and_then(|s| s.init_containers.as_ref())
                .into_iter()
                .flatten(),
        );
    let mut requests: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut guaranteed = true;
    for container in containers {
        let mut limited = 0;
        for name in QOS_RESOURCES {
            let request = request_of(container, name)?;
            if let Some(request) = request.filter(|a| a.nanos > 0) {
                requests.entry(name).or_default().nanos += request.nanos;
            }
            let limit = limit_of(container, name)?;
            if let Some(limit) = limit.filter(|a| a.nanos > 0) {
                limits.entry(name).or_default().nanos += limit.nanos;
                limited += 1;
            }
        }
        // Guaranteed needs both limits in every single container.
        if limited < QOS_RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return Ok(QosClass::BestEffort);
    }
    if guaranteed && requests == limits {
        return Ok(QosClass::Guaranteed);
    }
    Ok(QosClass::Burstable)
    // EXERCISE_END: lab03-qos-class
}
// ANCHOR_END: qos_class
