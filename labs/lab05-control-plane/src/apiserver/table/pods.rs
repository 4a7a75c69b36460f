//! A pod's row: NAME READY STATUS RESTARTS AGE, and wide IP NODE
//! NOMINATED NODE READINESS GATES, as printers.go's `printPod` fills them.
//!
//! STATUS is the interesting cell: not the phase, but the most telling
//! reason among the init containers and containers (`Init:0/1`,
//! `CrashLoopBackOff`, `Completed`, `Terminating`).

use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodStatus};
use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, column, typed, wide, Column, Printer, AGE, NAME};

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

/// The nine cells of one pod.
pub fn cells(pod: &Pod, now: SystemTime) -> Vec<Value> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let none = |s: Option<&String>| {
        s.filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "<none>".into())
    };
    let ip = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| &p.ip)
        .next()
        .or(status.pod_ip.as_ref());
    let gates = spec.readiness_gates.clone().unwrap_or_default();
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_ = gates
            .iter()
            .filter(|g| condition_true(&status, &g.condition_type))
            .count();
        format!("{true_}/{}", gates.len())
    };
    let (ready, total) = ready_containers(pod);
    vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(format!("{ready}/{total}")),
        json!(status_cell(pod)),
        json!(restarts_cell(pod, now)),
        json!(age::since(
            pod.metadata.creation_timestamp.as_ref().map(|t| &t.0),
            now
        )),
        json!(none(ip)),
        json!(none(spec.node_name.as_ref())),
        json!(none(status.nominated_node_name.as_ref())),
        json!(gates),
    ]
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

fn condition_true(status: &PodStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// A sidecar: an init container that keeps running (`restartPolicy:
/// Always`).
fn restartable(container: Option<&Container>) -> bool {
    container.and_then(|c| c.restart_policy.as_deref()) == Some("Always")
}

fn init_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    pod.spec
        .as_ref()?
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
}

/// Why a terminated or waiting container is what it is, if it says
/// (`CrashLoopBackOff`, `Error`, `Signal:9`, `ExitCode:1`).
fn container_reason(c: &ContainerStatus) -> Option<String> {
    let state = c.state.as_ref()?;
    if let Some(r) = state.waiting.as_ref().and_then(|w| w.reason.as_ref()) {
        if !r.is_empty() {
            return Some(r.clone());
        }
    }
    let t = state.terminated.as_ref()?;
    Some(match (t.reason.as_deref(), t.signal) {
        (Some(r), _) if !r.is_empty() => r.to_string(),
        (_, Some(s)) if s != 0 => format!("Signal:{s}"),
        _ => format!("ExitCode:{}", t.exit_code),
    })
}

/// While the pod initializes, the init container that holds it up says
/// why: `Init:2/3` (the third is running), `Init:CrashLoopBackOff`,
/// `Init:Error`, `Init:ExitCode:1`. `None` once all are done.
pub fn init_reason(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
    let total = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    for (i, c) in statuses.iter().enumerate() {
        let state = c.state.clone().unwrap_or_default();
        let sidecar = restartable(init_container(pod, &c.name));
        if let Some(t) = &state.terminated {
            if t.exit_code == 0 {
                continue;
            }
        } else if sidecar && c.started == Some(true) {
            continue;
        }
        let waiting = state.waiting.as_ref().and_then(|w| w.reason.clone());
        return Some(match (&state.terminated, waiting) {
            (Some(_), _) => format!("Init:{}", container_reason(c)?),
            (None, Some(w)) if !w.is_empty() && w != "PodInitializing" => {
                format!("Init:{w}")
            }
            _ => format!("Init:{i}/{total}"),
        });
    }
    None
}

// ANCHOR: status_cell
/// The STATUS cell: the pod's phase (or its reason), overridden by what
/// its init containers or containers report, then by deletion.
pub fn status_cell(pod: &Pod) -> String {
    // EXERCISE: lab05-table-row
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = match status.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.clone(),
    };
    if scheduling_gated(&status) {
        reason = "SchedulingGated".into();
    }
    let init = init_reason(pod);
    if let Some(r) = &init {
        reason = r.clone();
    }
    if init.is_none() || condition_true(&status, "Initialized") {
        let mut has_running = false;
        // The first container's reason wins: walk them last to first.
        for c in status.container_statuses.iter().flatten().rev() {
            match container_reason(c) {
                Some(r) => reason = r,
                None if c.ready && running(c) => has_running = true,
                None => {}
            }
        }
        // One container finished while another still serves.
        if reason == "Completed" && has_running {
            let ready = condition_true(&status, "Ready");
            reason = if ready { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    reason
    // EXERCISE_END: lab05-table-row
}
// ANCHOR_END: status_cell

/// Held back from the scheduler by `spec.schedulingGates`.
pub fn scheduling_gated(status: &PodStatus) -> bool {
    status.conditions.iter().flatten().any(|c| {
        c.type_ == "PodScheduled"
            && c.reason.as_deref() == Some("SchedulingGated")
    })
}

fn running(c: &ContainerStatus) -> bool {
    c.state.as_ref().is_some_and(|s| s.running.is_some())
}

/// READY: ready containers out of all of them (sidecars count).
fn ready_containers(pod: &Pod) -> (usize, usize) {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| restartable(Some(c)))
        .count();
    let ready_sidecars = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| {
            restartable(init_container(pod, &c.name))
                && c.started == Some(true)
                && c.ready
        })
        .count();
    let initializing =
        init_reason(pod).is_some() && !condition_true(&status, "Initialized");
    let ready = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| !initializing && c.ready && running(c))
        .filter(|c| container_reason(c).is_none())
        .count();
    (ready + ready_sidecars, spec.containers.len() + sidecars)
}

/// RESTARTS: the restart count, with how long ago the last one was
/// (`3 (42s ago)`). While the pod initializes, only init containers count.
fn restarts_cell(pod: &Pod, now: SystemTime) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let initializing =
        init_reason(pod).is_some() && !condition_true(&status, "Initialized");
    let mut count = 0;
    let mut last: Option<DateTime<Utc>> = None;
    let mut add = |c: &ContainerStatus| {
        count += c.restart_count;
        let finished = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref());
        if let Some(t) = finished {
            if last.is_none_or(|l| t.0 > l) {
                last = Some(t.0);
            }
        }
    };
    for c in status.init_container_statuses.iter().flatten() {
        if initializing || restartable(init_container(pod, &c.name)) {
            add(c);
        }
    }
    if !initializing {
        status.container_statuses.iter().flatten().for_each(add);
    }
    match last {
        Some(t) if count != 0 => {
            format!("{count} ({} ago)", age::since(Some(&t), now))
        }
        _ => count.to_string(),
    }
}
