//! A pod's phase and its conditions, computed from its containers' statuses
//! the way the kubelet computes them (`getPhase` and the condition
//! generators in `pkg/kubelet/status`).
//!
//! The phase is a summary: the kubelet counts how many containers run, wait
//! or have stopped, then applies a short list of rules in a fixed order.
//! The counting is [`tally`]; the rules are [`phase_of`].

use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodCondition, PodSpec};

/// A pod's phase, `status.phase` in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Accepted, but not every container has started yet.
    Pending,
    /// Every container was started and at least one runs (or restarts).
    Running,
    /// Every container exited 0 and none will be restarted.
    Succeeded,
    /// Every container stopped, at least one failed, none will restart.
    Failed,
    /// The node cannot say (it lost contact with the pod).
    Unknown,
}

impl Phase {
    /// The phase as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }

    /// Succeeded and Failed are terminal: a pod never leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.restartPolicy`: which exits the kubelet answers with a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RestartPolicy {
    /// Restart after every exit (the default).
    #[default]
    Always,
    /// Restart after a non-zero exit only.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy of a spec's `restartPolicy` field; absent means Always,
    /// as the API server's defaulting fills it in. An unknown value is
    /// refused by validation before the kubelet ever sees it, so it reads
    /// as the default here.
    pub fn of(field: Option<&str>) -> RestartPolicy {
        match field {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// The policy of a pod spec.
    pub fn of_spec(spec: &PodSpec) -> RestartPolicy {
        RestartPolicy::of(spec.restart_policy.as_deref())
    }
}

// ANCHOR: tally
/// What the kubelet counts before it decides on a phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Init containers that have not completed yet (no status, running,
    /// or waiting for their first start).
    pub pending_init: usize,
    /// Init containers whose last run exited non-zero.
    pub failed_init: usize,
    /// Containers running now.
    pub running: usize,
    /// Containers waiting to start for the first time.
    pub waiting: usize,
    /// Containers that have exited (now, or before a restart they await).
    pub stopped: usize,
    /// Of the stopped ones, those whose current state is an exit 0.
    pub succeeded: usize,
    /// Containers the runtime reported nothing for.
    pub unknown: usize,
    /// Whether any regular (non-init) container has started at least once.
    pub regular_started: bool,
}
// ANCHOR_END: tally

/// Whether an init container is a sidecar (`restartPolicy: Always` on the
/// init container): it starts in order but keeps running beside the app.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

fn status_of<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

/// Which of its three states a container status is in; a status with
/// none set is counted like a missing one.
enum Now {
    Running,
    /// Exited with this code.
    Exited(i32),
    /// Waiting; `Some(code)` if it exited before (it waits to restart).
    Waiting(Option<i32>),
    Nothing,
}

fn now_of(status: &ContainerStatus) -> Now {
    let Some(state) = &status.state else {
        return Now::Nothing;
    };
    if state.running.is_some() {
        Now::Running
    } else if let Some(t) = &state.terminated {
        Now::Exited(t.exit_code)
    } else if state.waiting.is_some() {
        let before = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        Now::Waiting(before.map(|t| t.exit_code))
    } else {
        Now::Nothing
    }
}

/// Counts a pod's containers the way `getPhase` does. `statuses` holds
/// both the init and the regular containers' statuses (names are unique
/// across both in a valid pod).
pub fn tally(spec: &PodSpec, statuses: &[ContainerStatus]) -> Tally {
    let mut t = Tally::default();
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    for c in inits.iter().filter(|c| !is_sidecar(c)) {
        match status_of(statuses, &c.name).map(now_of) {
            Some(Now::Exited(0)) | Some(Now::Waiting(Some(0))) => {}
            Some(Now::Exited(_)) | Some(Now::Waiting(Some(_))) => t.failed_init += 1,
            _ => t.pending_init += 1,
        }
    }
    // Sidecars count like regular containers while they run; one that has
    // exited does not count at all (it is restarted whatever the policy).
    for c in inits.iter().filter(|c| is_sidecar(c)) {
        match status_of(statuses, &c.name) {
            None => t.unknown += 1,
            Some(s) => match now_of(s) {
                Now::Running => {
                    if s.started != Some(true) {
                        t.pending_init += 1;
                    }
                    t.running += 1;
                }
                Now::Exited(_) | Now::Waiting(Some(_)) => {}
                Now::Waiting(None) => {
                    t.pending_init += 1;
                    t.waiting += 1;
                }
                Now::Nothing => {
                    t.pending_init += 1;
                    t.unknown += 1;
                }
            },
        }
    }
    for c in &spec.containers {
        let Some(s) = status_of(statuses, &c.name) else {
            t.unknown += 1;
            continue;
        };
        if s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
        {
            t.regular_started = true;
        }
        match now_of(s) {
            Now::Running => t.running += 1,
            Now::Exited(code) => {
                t.stopped += 1;
                if code == 0 {
                    t.succeeded += 1;
                }
            }
            Now::Waiting(Some(_)) => t.stopped += 1,
            Now::Waiting(None) => t.waiting += 1,
            Now::Nothing => t.unknown += 1,
        }
    }
    t
}

// ANCHOR: phase_of
/// The phase for a tally: the kubelet's rules, in the kubelet's order.
/// `terminal` says the pod is being finished for good (deleted or
/// evicted), so nothing will be restarted whatever the policy.
pub fn phase_of(t: &Tally, policy: RestartPolicy, terminal: bool) -> Phase {
    // EXERCISE: lab03-pod-phase
    if t.failed_init > 0 && policy == RestartPolicy::Never {
        return Phase::Failed;
    }
    // Init containers still to run hold the pod in Pending, unless app
    // containers already ran (then a restarting sidecar is no setback).
    if (t.pending_init > 0 && !t.regular_started) || t.waiting > 0 {
        return Phase::Pending;
    }
    if t.running > 0 && t.unknown == 0 {
        return Phase::Running;
    }
    if t.running == 0 && t.stopped > 0 && t.unknown == 0 {
        let all_succeeded = t.stopped == t.succeeded;
        if terminal {
            return if all_succeeded {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
        }
        return match policy {
            // Everything is on its way back up.
            RestartPolicy::Always => Phase::Running,
            _ if all_succeeded => Phase::Succeeded,
            RestartPolicy::Never => Phase::Failed,
            // A failed container is being restarted.
            RestartPolicy::OnFailure => Phase::Running,
        };
    }
    Phase::Pending
    // EXERCISE_END: lab03-pod-phase
}
// ANCHOR_END: phase_of

/// A pod's phase from its spec and its containers' statuses (init and
/// regular ones together), as the kubelet reports it.
pub fn pod_phase(spec: &PodSpec, statuses: &[ContainerStatus], terminal: bool) -> Phase {
    phase_of(
        &tally(spec, statuses),
        RestartPolicy::of_spec(spec),
        terminal,
    )
}

/// The reason of a terminated container's state, as the runtime reports
/// it: `OOMKilled` when the kernel's OOM killer ended it, else `Completed`
/// for exit 0 and `Error` for anything else.
pub fn terminated_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    match (oom_killed, exit_code) {
        (true, _) => "OOMKilled",
        (false, 0) => "Completed",
        (false, _) => "Error",
    }
}

/// The condition types the kubelet owns and this module computes.
pub const INITIALIZED: &str = "Initialized";
/// All containers are ready.
pub const CONTAINERS_READY: &str = "ContainersReady";
/// The pod can serve: its containers are ready (and its readiness gates).
pub const READY: &str = "Ready";

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..PodCondition::default()
    }
}

/// Go prints a list of names as `[a b]`; the kubelet's messages show that.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn not_ready_message(unknown: &[&str], incomplete: &[&str], what: &str) -> Option<String> {
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "containers with unknown status: {}",
            go_list(unknown)
        ));
    }
    if !incomplete.is_empty() {
        parts.push(format!(
            "containers with {what} status: {}",
            go_list(incomplete)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `Initialized`: every init container has completed (a sidecar: has
/// started), or an app container has run already.
pub fn initialized(spec: &PodSpec, statuses: &[ContainerStatus], phase: Phase) -> PodCondition {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in inits {
        match status_of(statuses, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(s) => {
                // A completed init container reports ready; a sidecar counts
                // once its startup (probe) has passed.
                let done = if is_sidecar(c) {
                    s.started == Some(true)
                } else {
                    s.ready
                };
                if !done {
                    incomplete.push(c.name.as_str());
                }
            }
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return condition(INITIALIZED, true, Some("PodCompleted"), None);
    }
    if tally(spec, statuses).regular_started {
        return condition(INITIALIZED, true, None, None);
    }
    match not_ready_message(&unknown, &incomplete, "incomplete") {
        Some(m) => condition(
            INITIALIZED,
            false,
            Some("ContainersNotInitialized"),
            Some(m),
        ),
        None => condition(INITIALIZED, true, None, None),
    }
}

/// `ContainersReady`: every app container (and every sidecar) is ready.
pub fn containers_ready(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: Phase,
) -> PodCondition {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    for c in inits
        .iter()
        .filter(|c| is_sidecar(c))
        .chain(&spec.containers)
    {
        match status_of(statuses, &c.name) {
            None => unknown.push(c.name.as_str()),
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            Some(_) => {}
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return condition(CONTAINERS_READY, false, Some("PodCompleted"), None);
    }
    if phase == Phase::Failed {
        return condition(CONTAINERS_READY, false, Some("PodFailed"), None);
    }
    match not_ready_message(&unknown, &unready, "unready") {
        Some(m) => condition(CONTAINERS_READY, false, Some("ContainersNotReady"), Some(m)),
        None => condition(CONTAINERS_READY, true, None, None),
    }
}

/// `Ready`: as ContainersReady (readiness gates, conditions that other
/// controllers set, come with chapter 5's API server).
pub fn ready(spec: &PodSpec, statuses: &[ContainerStatus], phase: Phase) -> PodCondition {
    let c = containers_ready(spec, statuses, phase);
    PodCondition {
        type_: READY.to_string(),
        ..c
    }
}

/// The three conditions in the order the kubelet appends them.
pub fn conditions(spec: &PodSpec, statuses: &[ContainerStatus], phase: Phase) -> Vec<PodCondition> {
    vec![
        initialized(spec, statuses, phase),
        ready(spec, statuses, phase),
        containers_ready(spec, statuses, phase),
    ]
}
