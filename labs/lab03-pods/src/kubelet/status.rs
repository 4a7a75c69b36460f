//! The pod's `status`, as the kubelet writes it (`generateAPIPodStatus`):
//! the phase and conditions of [`crate::phase`] over container statuses
//! built from what the worker knows.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, HostIP,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::worker::{Ctr, PodWorker, Progress};
use crate::phase::{self, Phase};

/// How container ids are shown: `<runtime>://<id>`, as `containerd://…`.
pub const ID_PREFIX: &str = "kubelings://";

/// The condition the kubelet sets once the sandbox is up with its
/// network (beta since 1.29, on by default).
pub const POD_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
/// Set by the scheduler; the kubelet sets it itself for static pods.
pub const POD_SCHEDULED: &str = "PodScheduled";

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn terminated(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> ContainerState {
    ContainerState {
        terminated: Some(t.clone()),
        ..ContainerState::default()
    }
}

// ANCHOR: container_status
/// One container's status. `initializing`: the pod's init containers have
/// not all completed (app containers then wait in `PodInitializing`).
fn container_status(c: &Ctr, initializing: bool) -> ContainerStatus {
    let default_reason = if initializing && !c.init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let (state, last) = match c.progress() {
        Progress::NotStarted => {
            let (reason, message) = c.waiting.as_ref().map_or((default_reason, None), |w| {
                (w.reason.as_str(), w.message.clone())
            });
            (waiting(reason, message), None)
        }
        Progress::Running => {
            let running = ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: c.running_since.map(|t| Time(t.into())),
                }),
                ..ContainerState::default()
            };
            (running, c.last_state.as_ref().map(terminated))
        }
        // Waiting to be restarted: the exit becomes the last state.
        Progress::Exited(_) => match (&c.waiting, &c.term) {
            (Some(w), Some(t)) => (waiting(&w.reason, w.message.clone()), Some(terminated(t))),
            (_, t) => (
                t.as_ref().map(terminated).unwrap_or_default(),
                c.last_state.as_ref().map(terminated),
            ),
        },
    };
    let running = c.progress() == Progress::Running;
    let ready = if c.init {
        c.progress() == Progress::Exited(0)
    } else {
        running && c.ready
    };
    ContainerStatus {
        name: c.spec.name.clone(),
        image: c.spec.image.clone().unwrap_or_default(),
        image_id: c.image_ref.clone().unwrap_or_default(),
        container_id: c.id.as_ref().map(|id| format!("{ID_PREFIX}{id}")),
        ready,
        restart_count: c.restart_count() as i32,
        started: Some(running && c.started),
        state: Some(state),
        last_state: Some(last.unwrap_or_default()),
        ..ContainerStatus::default()
    }
}
// ANCHOR_END: container_status

impl PodWorker {
    /// Every container's status, init containers first.
    fn all_statuses(&self) -> (Vec<ContainerStatus>, Vec<ContainerStatus>) {
        let initializing = self
            .ctrs
            .iter()
            .filter(|c| c.init)
            .any(|c| c.progress() != Progress::Exited(0));
        let mut init = Vec::new();
        let mut app = Vec::new();
        for c in &self.ctrs {
            let s = container_status(c, initializing);
            if c.init {
                init.push(s);
            } else {
                app.push(s);
            }
        }
        (init, app)
    }

    pub(crate) fn compute_phase(&self) -> Phase {
        if let Some(p) = self.terminal_phase {
            return p;
        }
        let Some(spec) = self.pod.spec.as_ref() else {
            return Phase::Unknown;
        };
        let (mut all, app) = self.all_statuses();
        all.extend(app);
        phase::pod_phase(spec, &all, self.is_terminating())
    }

    /// The conditions now, without transition times.
    fn current_conditions(&self, phase: Phase) -> Vec<PodCondition> {
        let (mut all, app) = self.all_statuses();
        all.extend(app);
        let sandbox_ok = self.sandbox.is_some() && !self.is_terminated();
        let mut out = vec![PodCondition {
            type_: POD_READY_TO_START_CONTAINERS.to_string(),
            status: if sandbox_ok { "True" } else { "False" }.to_string(),
            ..PodCondition::default()
        }];
        if let Some(spec) = self.pod.spec.as_ref() {
            out.extend(phase::conditions(spec, &all, phase));
        }
        out.push(PodCondition {
            type_: POD_SCHEDULED.to_string(),
            status: "True".to_string(),
            ..PodCondition::default()
        });
        out
    }

    /// Keeps each condition's `lastTransitionTime`: when its status last
    /// changed.
    pub(crate) fn remember_conditions(&mut self) {
        let now = Time(self.opts.clock.now().into());
        let fresh = self.current_conditions(self.compute_phase());
        let old = std::mem::take(&mut self.conditions);
        self.conditions = fresh
            .into_iter()
            .map(|mut c| {
                let same = old
                    .iter()
                    .find(|o| o.type_ == c.type_ && o.status == c.status);
                c.last_transition_time = Some(
                    same.and_then(|o| o.last_transition_time.clone())
                        .unwrap_or_else(|| now.clone()),
                );
                c
            })
            .collect();
    }

    // ANCHOR: status
    /// The pod's status as of the last sync.
    pub fn status(&self) -> PodStatus {
        let phase = self.compute_phase();
        let (init, app) = self.all_statuses();
        let ip = self
            .sandbox
            .as_ref()
            .and_then(|s| s.ip)
            .map(|ip| ip.to_string());
        let host = self.opts.host_ip.map(|ip| ip.to_string());
        let conditions = if self.conditions.is_empty() {
            self.current_conditions(phase)
        } else {
            self.conditions.clone()
        };
        PodStatus {
            phase: Some(phase.as_str().to_string()),
            conditions: Some(conditions),
            host_ip: host.clone(),
            host_ips: host.map(|ip| vec![HostIP { ip }]),
            pod_ip: ip.clone(),
            pod_ips: ip.map(|ip| vec![PodIP { ip }]),
            start_time: self.start_time.map(|t| Time(t.into())),
            qos_class: Some(super::config::qos_of(&self.pod).to_string()),
            init_container_statuses: (!init.is_empty()).then_some(init),
            container_statuses: Some(app),
            message: self.sandbox_error.clone(),
            ..PodStatus::default()
        }
    }
    // ANCHOR_END: status

    /// The pod with its status filled in, as `get pod -o yaml` shows it.
    pub fn pod_with_status(&self) -> k8s_openapi::api::core::v1::Pod {
        let mut pod = self.pod.clone();
        pod.status = Some(self.status());
        pod
    }
}
