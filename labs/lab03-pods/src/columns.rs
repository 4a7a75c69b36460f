//! What kubectl shows of a pod: the READY, STATUS, RESTARTS and AGE cells
//! of `kubectl get pods`, computed as kube-apiserver's printers compute
//! them (pkg/printers/internalversion/printers.go `printPod`), and ages
//! as apimachinery's `duration.HumanDuration` prints them.
//!
//! Chapter 3's `ch03 get pods` prints these cells from the node's pods;
//! chapter 5's API server (lab05) puts the same cells in the Tables it
//! serves kubectl. STATUS is the interesting cell: not the phase, but the
//! most telling reason among the init containers and containers
//! (`Init:0/1`, `CrashLoopBackOff`, `Completed`, `Terminating`).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodStatus};
use k8s_openapi::chrono::{DateTime, Utc};

// ANCHOR: human_duration
/// `d` in HumanDuration's bands (k8s.io/apimachinery/pkg/util/duration),
/// exact to the second at first and coarser as time goes by: `45s`,
/// `2m30s`, `12m`, `3h4m`, `10h`, `3d4h`, `30d`, `2y10d`, `9y`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        return match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        return match h % 24 {
            0 => format!("{}d", h / 24),
            r => format!("{}d{r}h", h / 24),
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        return match (h / 24) % 365 {
            0 => format!("{}y", h / 24 / 365),
            r => format!("{}y{r}d", h / 24 / 365),
        };
    }
    format!("{}y", h / 24 / 365)
}
// ANCHOR_END: human_duration

/// The span between two instants; a `later` before `earlier` (clocks
/// that disagree) is 0s, as HumanDuration rounds small negatives.
pub fn between(earlier: SystemTime, later: SystemTime) -> String {
    human_duration(later.duration_since(earlier).unwrap_or_default())
}

/// How long ago `t` was at `now`; `<unknown>` when there is no `t`
/// (printers' `translateTimestampSince`).
pub fn since(t: Option<&DateTime<Utc>>, now: SystemTime) -> String {
    match t {
        Some(t) => between(SystemTime::from(*t), now),
        None => "<unknown>".into(),
    }
}

/// One row of `kubectl get pods`: NAME READY STATUS RESTARTS AGE, and for
/// `-o wide` IP NODE NOMINATED NODE READINESS GATES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    pub name: String,
    pub ready: String,
    pub status: String,
    pub restarts: String,
    pub age: String,
    pub ip: String,
    pub node: String,
    pub nominated_node: String,
    pub readiness_gates: String,
}

/// The nine cells of one pod, at `now`.
pub fn pod_row(pod: &Pod, now: SystemTime) -> PodRow {
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
    PodRow {
        name: pod.metadata.name.clone().unwrap_or_default(),
        ready: ready(pod),
        status: self::status(pod),
        restarts: restarts(pod, now),
        age: since(pod.metadata.creation_timestamp.as_ref().map(|t| &t.0), now),
        ip: none(ip),
        node: none(spec.node_name.as_ref()),
        nominated_node: none(status.nominated_node_name.as_ref()),
        readiness_gates: readiness_gates(pod),
    }
}

/// READINESS GATES: how many of the pod's gates are true, `<none>`
/// without any.
pub fn readiness_gates(pod: &Pod) -> String {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.clone())
        .unwrap_or_default();
    if gates.is_empty() {
        return "<none>".into();
    }
    let status = pod.status.clone().unwrap_or_default();
    let true_ = gates
        .iter()
        .filter(|g| condition_true(&status, &g.condition_type))
        .count();
    format!("{true_}/{}", gates.len())
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
pub fn container_reason(c: &ContainerStatus) -> Option<String> {
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

// ANCHOR: status
/// The STATUS cell: the pod's phase (or its reason), overridden by what
/// its init containers or containers report, then by deletion.
pub fn status(pod: &Pod) -> String {
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
}
// ANCHOR_END: status

/// Held back from the scheduler by `spec.schedulingGates`.
pub fn scheduling_gated(status: &PodStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
}

fn running(c: &ContainerStatus) -> bool {
    c.state.as_ref().is_some_and(|s| s.running.is_some())
}

/// Still held up by an init container (and not yet `Initialized`).
fn initializing(pod: &Pod) -> bool {
    let status = pod.status.clone().unwrap_or_default();
    init_reason(pod).is_some() && !condition_true(&status, "Initialized")
}

/// READY as a pair: ready containers out of all of them (sidecars count).
pub fn ready_containers(pod: &Pod) -> (usize, usize) {
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
        .filter(|c| restartable(init_container(pod, &c.name)) && c.started == Some(true) && c.ready)
        .count();
    let initializing = initializing(pod);
    let ready = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| !initializing && c.ready && running(c))
        .filter(|c| container_reason(c).is_none())
        .count();
    (ready + ready_sidecars, spec.containers.len() + sidecars)
}

/// The READY cell: `1/2`.
pub fn ready(pod: &Pod) -> String {
    let (ready, total) = ready_containers(pod);
    format!("{ready}/{total}")
}

/// The RESTARTS cell: the restart count, with how long ago the last one
/// was (`3 (42s ago)`). While the pod initializes, only init containers
/// count; after, only sidecars and containers.
pub fn restarts(pod: &Pod, now: SystemTime) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let initializing = initializing(pod);
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
        Some(t) if count != 0 => format!("{count} ({} ago)", since(Some(&t), now)),
        _ => count.to_string(),
    }
}
