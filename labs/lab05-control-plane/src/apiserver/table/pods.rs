//! A pod's row: NAME READY STATUS RESTARTS AGE, and wide IP NODE
//! NOMINATED NODE READINESS GATES, as printers.go's `printPod` fills them.
//!
//! The cells are chapter 3's (lab03's `columns`): `ch03 get pods` and
//! the API server's Tables print a pod the same way.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;
use lab03::columns::pod_row;
use serde_json::{json, Value};

use super::{column, typed, wide, Column, Printer, AGE, NAME};

pub(super) static PRINTER: Printer = Printer {
    columns: COLUMNS,
    cells: |o, now| cells(&typed(o), now),
};

const COLUMNS: &[Column] = &[
    NAME,
    column("Ready", "Ready containers out of all the pod's containers."),
    column("Status", "The pod's state, from its containers' states."),
    column("Restarts", "Container restarts, and how long ago the last."),
    AGE,
    wide(column("IP", "The pod's IP address.")),
    wide(column("Node", "The node the pod is bound to.")),
    wide(column(
        "Nominated Node",
        "The node preemption made room on.",
    )),
    wide(column("Readiness Gates", "Readiness gates that are true.")),
];

/// The nine cells of one pod, in the columns' order.
pub fn cells(pod: &Pod, now: SystemTime) -> Vec<Value> {
    let r = pod_row(pod, now);
    [
        r.name,
        r.ready,
        r.status,
        r.restarts,
        r.age,
        r.ip,
        r.node,
        r.nominated_node,
        r.readiness_gates,
    ]
    .into_iter()
    .map(|c| json!(c))
    .collect()
}

/// A finished pod's row says so (`conditions: [{type: Completed}]`).
pub fn row_conditions(object: &Value) -> Option<Value> {
    let (reason, message) = match object["status"]["phase"].as_str()? {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}
