//! The pod worker: one per pod, the kubelet's `podWorkers` + `SyncPod`.
//!
//! [`PodWorker::sync`] is a step function. It looks at what the runtime
//! says, decides the next actions the way the kubelet's
//! `computePodActions` does, takes the quick ones (create, start) at once
//! and hands the slow ones (pulls, graceful stops, probes) to a
//! [`Spawner`]; it never waits. The node calls it when the runtime reports
//! an event for the pod's sandbox, when a job's waker fires, and at the
//! time the last sync asked to be woken.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::cluster::{self, PodEnvironment};
use super::config::{self, ConfigError, NodeLayout, PodIdentity};
use super::events::{field_path, EventType, Events};
use super::jobs::{self, Inline, Job, Poll, Spawner, Waker};
use super::probe::{self, Connector, Decision, Direct, Outcome, ProbeKind, ProbeSpec, Prober};
use crate::backoff::{self, pod_label, Backoff, BackoffPolicy, Clock, SystemClock, Verdict};
use crate::cri::{ContainerState, CriResult, ImageService, PodSandboxConfig, RuntimeService};
use crate::phase::{self, Phase, RestartPolicy};

/// The default grace period (`terminationGracePeriodSeconds`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// What a worker needs from its node.
#[derive(Clone)]
pub struct WorkerOptions {
    pub layout: NodeLayout,
    pub backoff: BackoffPolicy,
    pub clock: Arc<dyn Clock>,
    /// Where pulls, stops and probes run.
    pub spawner: Arc<dyn Spawner>,
    /// Told the pod's uid when one of its jobs is done.
    pub waker: Waker,
    /// How httpGet and tcpSocket probes connect.
    pub connector: Arc<dyn Connector>,
    pub host_ip: Option<Ipv4Addr>,
    /// Services and DNS for the pods' sandboxes and containers.
    pub environment: Option<Arc<dyn PodEnvironment>>,
}

impl WorkerOptions {
    /// The kubelet's back-off, the system clock, a thread per job, probes
    /// from this process's network namespace, no waker.
    pub fn new(layout: NodeLayout) -> WorkerOptions {
        WorkerOptions {
            layout,
            backoff: BackoffPolicy::KUBELET,
            clock: Arc::new(SystemClock),
            spawner: Arc::new(jobs::Threads),
            waker: Arc::new(|_: &str| {}),
            connector: Arc::new(Direct),
            host_ip: None,
            environment: None,
        }
    }

    /// For tests: a given clock, jobs run inline.
    pub fn inline(layout: NodeLayout, clock: Arc<dyn Clock>) -> WorkerOptions {
        WorkerOptions {
            clock,
            spawner: Arc::new(Inline),
            ..WorkerOptions::new(layout)
        }
    }
}

/// Why a worker cannot be made for a pod.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A waiting state the worker sets itself (the runtime knows nothing of
/// these): pulls, creation errors, back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: Option<String>,
}

/// What happens with a container now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// No instance yet.
    NotStarted,
    /// Its current instance runs.
    Running,
    /// Its current instance exited with this code.
    Exited(i32),
}

/// One container of the pod, across its instances.
pub(crate) struct Ctr {
    pub spec: Container,
    pub init: bool,
    /// The current instance.
    pub id: Option<String>,
    /// The one before, kept for `logs --previous`.
    pub previous_id: Option<String>,
    /// Instances created so far; the next one's CRI attempt.
    pub created: u32,
    pub running_since: Option<SystemTime>,
    /// How the current instance ended.
    pub term: Option<ContainerStateTerminated>,
    /// How the one before ended (`lastState`).
    pub last_state: Option<ContainerStateTerminated>,
    pub waiting: Option<Waiting>,
    pub image_ref: Option<String>,
    pub image_ok: bool,
    pub pull: Option<(Job<CriResult<String>>, SystemTime)>,
    pub pull_failed_at: Option<SystemTime>,
    pub create_failed_at: Option<SystemTime>,
    pub started: bool,
    pub ready: bool,
    pub probes: Vec<Prober>,
    pub stopping: Option<Job<CriResult<()>>>,
}

impl Ctr {
    fn new(spec: Container, init: bool) -> Ctr {
        Ctr {
            spec,
            init,
            id: None,
            previous_id: None,
            created: 0,
            running_since: None,
            term: None,
            last_state: None,
            waiting: None,
            image_ref: None,
            image_ok: false,
            pull: None,
            pull_failed_at: None,
            create_failed_at: None,
            started: false,
            ready: false,
            probes: Vec::new(),
            stopping: None,
        }
    }

    pub fn restart_count(&self) -> u32 {
        self.created.saturating_sub(1)
    }

    pub(crate) fn progress(&self) -> Progress {
        match (&self.id, &self.term) {
            (None, _) => Progress::NotStarted,
            (Some(_), Some(t)) => Progress::Exited(t.exit_code),
            (Some(_), None) => Progress::Running,
        }
    }

    fn path(&self) -> Option<String> {
        Some(field_path(self.init, &self.spec.name))
    }

    fn image(&self) -> String {
        self.spec.image.clone().unwrap_or_default()
    }
}

/// The sandbox the worker made.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    pub ip: Option<Ipv4Addr>,
    pub config: PodSandboxConfig,
}

/// Where a deletion is.
struct Termination {
    grace: Duration,
    done: bool,
}

/// One pod's worker.
pub struct PodWorker {
    pub(crate) pod: Pod,
    pub(crate) id: PodIdentity,
    pub(crate) opts: WorkerOptions,
    runtime: Arc<dyn RuntimeService>,
    images: Arc<dyn ImageService>,
    pub(crate) sandbox: Option<Sandbox>,
    pub(crate) sandbox_error: Option<String>,
    pub(crate) ctrs: Vec<Ctr>,
    backoff: Backoff<Arc<dyn Clock>>,
    pub(crate) events: Events,
    pub(crate) start_time: Option<SystemTime>,
    /// Once terminal, the phase stays.
    pub(crate) terminal_phase: Option<Phase>,
    pub(crate) conditions: Vec<PodCondition>,
    termination: Option<Termination>,
}

/// When an exited container's back-off ends, for the wake time.
fn plus(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or(t)
}

fn earliest(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl PodWorker {
    /// A worker for `pod`, which must have a name and a uid.
    pub fn new(
        pod: Pod,
        runtime: Arc<dyn RuntimeService>,
        images: Arc<dyn ImageService>,
        opts: WorkerOptions,
    ) -> Result<PodWorker, WorkerError> {
        let id = PodIdentity::of(&pod)?;
        let spec = pod.spec.clone().ok_or(ConfigError::Missing("spec"))?;
        let mut ctrs: Vec<Ctr> = spec
            .init_containers
            .into_iter()
            .flatten()
            .map(|c| Ctr::new(c, true))
            .collect();
        ctrs.extend(spec.containers.into_iter().map(|c| Ctr::new(c, false)));
        let backoff = Backoff::new(opts.backoff, opts.clock.clone());
        Ok(PodWorker {
            pod,
            id,
            opts,
            runtime,
            images,
            sandbox: None,
            sandbox_error: None,
            ctrs,
            backoff,
            events: Events::default(),
            start_time: None,
            terminal_phase: None,
            conditions: Vec::new(),
            termination: None,
        })
    }

    /// The pod as it was given.
    pub fn pod(&self) -> &Pod {
        &self.pod
    }

    pub fn uid(&self) -> &str {
        &self.id.uid
    }

    /// The sandbox, once made.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// The sandbox's id: a runtime event for it is for this worker.
    pub fn sandbox_id(&self) -> Option<&str> {
        self.sandbox.as_ref().map(|s| s.id.as_str())
    }

    /// The runtime id of a container's current and previous instance.
    pub fn container_ids(&self, name: &str) -> Option<(Option<&str>, Option<&str>)> {
        self.ctrs
            .iter()
            .find(|c| c.spec.name == name)
            .map(|c| (c.id.as_deref(), c.previous_id.as_deref()))
    }

    /// The pod's events so far.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Whether a deletion was asked for.
    pub fn is_terminating(&self) -> bool {
        self.termination.is_some()
    }

    /// Whether the pod is gone from the runtime after [`Self::terminate`].
    pub fn is_terminated(&self) -> bool {
        self.termination.as_ref().is_some_and(|t| t.done)
    }

    fn now(&self) -> SystemTime {
        self.opts.clock.now()
    }

    fn label(&self) -> String {
        pod_label(&self.id.name, &self.id.namespace, &self.id.uid)
    }

    fn policy(&self) -> RestartPolicy {
        self.pod
            .spec
            .as_ref()
            .map_or(RestartPolicy::Always, RestartPolicy::of_spec)
    }

    fn grace(&self) -> Duration {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64))
    }

    fn event(&mut self, type_: EventType, reason: &str, path: Option<String>, message: String) {
        let now = self.now();
        self.events.record(now, type_, reason, path, message);
    }

    /// Asks for the pod to go: each running container gets SIGTERM and
    /// `grace` (the pod's `terminationGracePeriodSeconds` when `None`)
    /// before SIGKILL, then the sandbox is stopped and removed. The work
    /// happens in the following syncs.
    pub fn terminate(&mut self, grace: Option<Duration>) {
        if self.termination.is_none() {
            let grace = grace.unwrap_or_else(|| self.grace());
            self.termination = Some(Termination { grace, done: false });
        }
    }

    // ANCHOR: sync
    /// One step: look, decide, act. Returns when it wants to be called
    /// again at the latest (a probe or a back-off due), `None` if only an
    /// event can change anything.
    pub fn sync(&mut self) -> Option<SystemTime> {
        let wake = self.sync_pod();
        self.remember_conditions();
        wake
    }
    // ANCHOR_END: sync

    fn sync_pod(&mut self) -> Option<SystemTime> {
        let now = self.now();
        self.start_time.get_or_insert(now);
        self.refresh();
        if self.termination.is_some() {
            return self.sync_termination();
        }
        if self.terminal_phase.is_some() {
            return None;
        }
        if self.sandbox.is_none() && !self.make_sandbox() {
            // Try again in a second, as the pod worker's resync would.
            return Some(plus(now, Duration::from_secs(1)));
        }
        // ANCHOR: containers
        let (policy, mut wake) = (self.policy(), None);
        // Init containers, one at a time, each to completion.
        let (inits, apps): (Vec<usize>, Vec<usize>) =
            (0..self.ctrs.len()).partition(|&i| self.ctrs[i].init);
        for i in inits {
            match self.ctrs[i].progress() {
                Progress::Exited(0) => continue,
                Progress::Running => return earliest(self.probe(i), wake),
                Progress::NotStarted => return earliest(self.start(i), wake),
                Progress::Exited(_) if policy == RestartPolicy::Never => {
                    // Rule 1 of the phase: the pod has failed.
                    self.update_phase();
                    return None;
                }
                Progress::Exited(_) => return earliest(self.restart(i), wake),
            }
        }
        let restarts = |code| backoff::should_restart(policy, code);
        // Then every app container, started together. A container its
        // liveness probe has just killed is started again in the same
        // pass, as computePodActions puts it in both lists.
        for i in apps {
            if self.ctrs[i].progress() == Progress::Running {
                wake = earliest(wake, self.probe(i));
            }
            let w = match self.ctrs[i].progress() {
                Progress::NotStarted => self.start(i),
                Progress::Exited(code) if restarts(code) => self.restart(i),
                Progress::Running | Progress::Exited(_) => None,
            };
            wake = earliest(wake, w);
        }
        // ANCHOR_END: containers
        self.update_phase();
        wake
    }

    fn make_sandbox(&mut self) -> bool {
        let made = (|| -> Result<Sandbox, String> {
            for dir in
                config::empty_dirs(&self.pod, &self.opts.layout).map_err(|e| e.to_string())?
            {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("making emptyDir {}: {e}", dir.display()))?;
            }
            let mut config = config::sandbox_config(&self.pod, &self.opts.layout, 0)
                .map_err(|e| e.to_string())?;
            if let Some(env) = &self.opts.environment {
                config.dns_config = env.dns_config(&self.pod);
            }
            let id = self
                .runtime
                .run_pod_sandbox(&config)
                .map_err(|e| e.to_string())?;
            let ip = self.runtime.pod_sandbox_status(&id).ok().and_then(|s| s.ip);
            Ok(Sandbox { id, ip, config })
        })();
        match made {
            Ok(s) => {
                self.sandbox = Some(s);
                self.sandbox_error = None;
                true
            }
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {e}");
                self.event(
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    None,
                    message.clone(),
                );
                self.sandbox_error = Some(message);
                false
            }
        }
    }

    /// Reads the runtime's view of every current instance: exits, mostly.
    fn refresh(&mut self) {
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            let (Some(id), None) = (c.id.clone(), &c.term) else {
                continue;
            };
            let Ok(status) = self.runtime.container_status(&id) else {
                continue;
            };
            if status.state != ContainerState::Exited {
                continue;
            }
            let code = status.exit_code.unwrap_or(-1);
            let oom = status.reason == "OOMKilled";
            let reason = phase::terminated_reason(code, oom).to_string();
            let c = &mut self.ctrs[i];
            c.term = Some(ContainerStateTerminated {
                container_id: Some(format!("{}{id}", super::status::ID_PREFIX)),
                exit_code: code,
                reason: Some(reason),
                message: Some(status.message.clone()).filter(|m| !m.is_empty()),
                started_at: status.started_at.map(|t| Time(t.into())),
                finished_at: status.finished_at.map(|t| Time(t.into())),
                signal: None,
            });
            c.running_since = None;
            c.ready = false;
            c.started = false;
            c.probes.clear();
            // A stop that is still on its way answers for nothing now.
            c.stopping = None;
        }
    }

    fn backoff_key(&self, i: usize, what: &str) -> String {
        backoff::key(&self.id.uid, &format!("{}{what}", self.ctrs[i].spec.name))
    }

    /// An exited container whose policy says restart: wait out the
    /// back-off (CrashLoopBackOff) or start the next instance.
    fn restart(&mut self, i: usize) -> Option<SystemTime> {
        if self.ctrs[i].stopping.is_some() {
            return None;
        }
        let key = self.backoff_key(i, "");
        let exited = self.ctrs[i]
            .term
            .as_ref()
            .and_then(|t| t.finished_at.as_ref())
            .map_or_else(|| self.now(), |t| t.0.into());
        match self.backoff.check(&key, exited) {
            Verdict::Wait { delay, remaining } => {
                let name = self.ctrs[i].spec.name.clone();
                let message = backoff::crash_loop_message(delay, &name, &self.label());
                self.ctrs[i].waiting = Some(Waiting {
                    reason: backoff::CRASH_LOOP_BACK_OFF.to_string(),
                    message: Some(message),
                });
                let event = format!(
                    "Back-off restarting failed container {name} in pod {}",
                    self.label()
                );
                self.event(EventType::Warning, "BackOff", self.ctrs[i].path(), event);
                Some(plus(self.now(), remaining))
            }
            Verdict::Restart => self.start(i),
        }
    }

    /// Makes the image present (or says why not), then creates and starts
    /// the container's next instance.
    fn start(&mut self, i: usize) -> Option<SystemTime> {
        if !self.ctrs[i].image_ok {
            if let Some(wake) = self.ensure_image(i) {
                return wake;
            }
        }
        let now = self.now();
        let key = self.backoff_key(i, "/create");
        if let Some(failed) = self.ctrs[i].create_failed_at {
            if self.backoff.in_backoff_since(&key, failed) {
                let left = self
                    .backoff
                    .delay(&key)
                    .saturating_sub(now.duration_since(failed).unwrap_or_default());
                return Some(plus(now, left));
            }
        }
        let attempt = self.ctrs[i].created;
        let name = self.ctrs[i].spec.name.clone();
        let path = self.ctrs[i].path();
        let config = match config::container_config(
            &self.pod,
            &self.ctrs[i].spec,
            attempt,
            &self.opts.layout,
        ) {
            Ok(mut c) => {
                // Services that exist now; later ones reach it by DNS only.
                if let Some(env) = &self.opts.environment {
                    cluster::merge_env(&mut c.envs, env.service_env(&self.pod));
                }
                c
            }
            Err(e) => return self.create_failed(i, "CreateContainerConfigError", e.to_string()),
        };
        let sandbox = self.sandbox.clone()?;
        let id = match self
            .runtime
            .create_container(&sandbox.id, &config, &sandbox.config)
        {
            Ok(id) => id,
            Err(e) => return self.create_failed(i, "CreateContainerError", e.to_string()),
        };
        self.event(
            EventType::Normal,
            "Created",
            path.clone(),
            format!("Created container {name}"),
        );
        if let Err(e) = self.runtime.start_container(&id) {
            let _ = self.runtime.remove_container(&id);
            return self.create_failed(i, "RunContainerError", e.to_string());
        }
        self.event(
            EventType::Normal,
            "Started",
            path,
            format!("Started container {name}"),
        );
        self.ctrs[i].create_failed_at = None;
        self.backoff.forget(&key);
        let started_at = self
            .runtime
            .container_status(&id)
            .ok()
            .and_then(|s| s.started_at)
            .unwrap_or(now);
        let c = &mut self.ctrs[i];
        // Only the current and the previous instance are kept.
        if let Some(old) = c.previous_id.take() {
            let _ = self.runtime.remove_container(&old);
        }
        c.previous_id = c.id.replace(id);
        if let Some(t) = c.term.take() {
            c.last_state = Some(t);
        }
        // And the logs of those two, for `logs` and `logs --previous`.
        let _ = crate::logs::prune(&sandbox.config.log_directory, &name, attempt);
        c.created += 1;
        c.waiting = None;
        // The image is looked at again before each start, as the kubelet
        // does (it may have been removed meanwhile).
        c.image_ok = false;
        c.running_since = Some(started_at);
        c.probes = [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ]
        .into_iter()
        .filter_map(|k| ProbeSpec::of(k, &c.spec))
        .map(|s| Prober::new(s, started_at))
        .collect();
        c.started = ProbeSpec::of(ProbeKind::Startup, &c.spec).is_none();
        c.ready = c.started && ProbeSpec::of(ProbeKind::Readiness, &c.spec).is_none();
        // An init container has nothing to probe; the first sync of a
        // running app container probes at once when no delay is set.
        if c.init {
            c.probes.clear();
            return None;
        }
        self.probe(i)
    }

    fn create_failed(&mut self, i: usize, reason: &str, message: String) -> Option<SystemTime> {
        let now = self.now();
        let key = self.backoff_key(i, "/create");
        let delay = self.backoff.next(&key);
        self.ctrs[i].create_failed_at = Some(now);
        self.ctrs[i].waiting = Some(Waiting {
            reason: reason.to_string(),
            message: Some(message.clone()),
        });
        self.event(
            EventType::Warning,
            "Failed",
            self.ctrs[i].path(),
            format!("Error: {message}"),
        );
        Some(plus(now, delay))
    }

    /// `None` when the image is there; else when to look again (`None`
    /// inside: only the pull's waker).
    fn ensure_image(&mut self, i: usize) -> Option<Option<SystemTime>> {
        let image = self.ctrs[i].image();
        let path = self.ctrs[i].path();
        let now = self.now();
        if let Some((job, began)) = &self.ctrs[i].pull {
            let began = *began;
            match job.poll() {
                Poll::Pending => return Some(None),
                Poll::Ready(Ok(image_ref)) => {
                    self.ctrs[i].pull = None;
                    let took = now.duration_since(began).unwrap_or_default();
                    self.event(
                        EventType::Normal,
                        "Pulled",
                        path,
                        format!(
                            "Successfully pulled image \"{image}\" in {}",
                            backoff::go_duration(took)
                        ),
                    );
                    self.image_present(i, image_ref);
                    return None;
                }
                Poll::Ready(Err(e)) => {
                    self.ctrs[i].pull = None;
                    return Some(self.pull_failed(i, e.to_string()));
                }
                Poll::Lost => {
                    self.ctrs[i].pull = None;
                    return Some(self.pull_failed(i, "the pull ended without an answer".into()));
                }
            }
        }
        // `Always` pulls before every start, even with the image present
        // (the registry may have a newer one under the same tag).
        let policy = self.ctrs[i].spec.image_pull_policy.as_deref();
        let always = policy == Some("Always");
        match self.images.image_status(&image) {
            Ok(Some(found)) if !always => {
                self.event(
                    EventType::Normal,
                    "Pulled",
                    path,
                    format!("Container image \"{image}\" already present on machine"),
                );
                self.image_present(i, found.id);
                None
            }
            Ok(None) if policy == Some("Never") => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.ctrs[i].waiting = Some(Waiting {
                    reason: "ErrImageNeverPull".into(),
                    message: Some(message.clone()),
                });
                self.event(EventType::Warning, "ErrImageNeverPull", path, message);
                // Only a new image in the store can change this.
                Some(Some(plus(now, Duration::from_secs(10))))
            }
            Ok(_) => {
                let key = self.backoff_key(i, "/pull");
                if let Some(failed) = self.ctrs[i].pull_failed_at {
                    if self.backoff.in_backoff_since(&key, failed) {
                        let message = format!("Back-off pulling image \"{image}\"");
                        self.ctrs[i].waiting = Some(Waiting {
                            reason: "ImagePullBackOff".into(),
                            message: Some(message.clone()),
                        });
                        self.event(EventType::Normal, "BackOff", path.clone(), message);
                        self.event(
                            EventType::Warning,
                            "Failed",
                            path,
                            "Error: ImagePullBackOff".into(),
                        );
                        let left = self
                            .backoff
                            .delay(&key)
                            .saturating_sub(now.duration_since(failed).unwrap_or_default());
                        return Some(Some(plus(now, left)));
                    }
                }
                self.event(
                    EventType::Normal,
                    "Pulling",
                    path,
                    format!("Pulling image \"{image}\""),
                );
                let images = self.images.clone();
                let target = image.clone();
                let job = jobs::start(
                    self.opts.spawner.as_ref(),
                    &self.opts.waker,
                    &self.id.uid,
                    move || images.pull_image(&target),
                );
                self.ctrs[i].pull = Some((job, now));
                // An inline spawner has answered already.
                self.ensure_image(i)
            }
            Err(e) => Some(self.pull_failed(i, e.to_string())),
        }
    }

    fn image_present(&mut self, i: usize, image_ref: String) {
        let c = &mut self.ctrs[i];
        c.image_ok = true;
        c.image_ref = Some(image_ref);
        c.pull_failed_at = None;
        let key = self.backoff_key(i, "/pull");
        self.backoff.forget(&key);
    }

    fn pull_failed(&mut self, i: usize, error: String) -> Option<SystemTime> {
        let image = self.ctrs[i].image();
        let path = self.ctrs[i].path();
        let key = self.backoff_key(i, "/pull");
        let delay = self.backoff.next(&key);
        let now = self.now();
        self.ctrs[i].pull_failed_at = Some(now);
        self.ctrs[i].waiting = Some(Waiting {
            reason: "ErrImagePull".into(),
            message: Some(error.clone()),
        });
        self.event(
            EventType::Warning,
            "Failed",
            path.clone(),
            format!("Failed to pull image \"{image}\": {error}"),
        );
        self.event(
            EventType::Warning,
            "Failed",
            path,
            "Error: ErrImagePull".into(),
        );
        Some(plus(now, delay))
    }

    /// Runs a running container's due probes and acts on their decisions.
    fn probe(&mut self, i: usize) -> Option<SystemTime> {
        let now = self.now();
        let id = self.ctrs[i].id.clone()?;
        if self.ctrs[i].stopping.is_some() {
            return None;
        }
        let target = probe::Target {
            container_id: id,
            pod_ip: self.sandbox.as_ref().and_then(|s| s.ip),
            runtime: self.runtime.clone(),
            connector: self.opts.connector.clone(),
        };
        let mut wake = None;
        for p in 0..self.ctrs[i].probes.len() {
            let kind = self.ctrs[i].probes[p].spec.kind;
            // Startup gates the others.
            if kind != ProbeKind::Startup && !self.ctrs[i].started {
                continue;
            }
            if kind == ProbeKind::Startup && self.ctrs[i].started {
                continue;
            }
            let prober = &mut self.ctrs[i].probes[p];
            if prober.in_flight.is_none() && now >= prober.next_at {
                let spec = prober.spec.clone();
                let t = target.clone();
                prober.next_at = plus(now, spec.period);
                prober.in_flight = Some(jobs::start(
                    self.opts.spawner.as_ref(),
                    &self.opts.waker,
                    &self.id.uid,
                    move || probe::run_once(&spec, &t),
                ));
            }
            let outcome = match self.ctrs[i].probes[p].in_flight.as_ref().map(Job::poll) {
                Some(Poll::Ready(o)) => Some(o),
                Some(Poll::Lost) => {
                    Some(Outcome::Failure("the probe ended without an answer".into()))
                }
                Some(Poll::Pending) | None => None,
            };
            if let Some(outcome) = outcome {
                self.ctrs[i].probes[p].in_flight = None;
                if self.on_outcome(i, p, outcome) {
                    // The container is being restarted: no more probing.
                    return None;
                }
            }
            wake = earliest(wake, Some(self.ctrs[i].probes[p].next_at));
        }
        wake
    }

    // ANCHOR: on_outcome
    /// Counts a try's outcome in and acts on the decision; true when it
    /// restarts the container.
    fn on_outcome(&mut self, i: usize, p: usize, outcome: Outcome) -> bool {
        let name = self.ctrs[i].spec.name.clone();
        let path = self.ctrs[i].path();
        let prober = &mut self.ctrs[i].probes[p];
        let (kind, t) = (prober.spec.kind, prober.spec.thresholds);
        let grace = prober.spec.grace;
        let passed = outcome == Outcome::Success;
        let decision = probe::decide(&mut prober.run, passed, t);
        if decision != Decision::Unchanged {
            prober.result = Some(decision == Decision::Pass);
        }
        if let Outcome::Failure(why) = outcome {
            let message = format!("{} probe failed: {why}", kind.as_str());
            self.event(EventType::Warning, "Unhealthy", path.clone(), message);
        }
        let c = &mut self.ctrs[i];
        match (kind, decision) {
            (_, Decision::Unchanged) => false,
            (ProbeKind::Liveness, Decision::Pass) => false,
            // Readiness only ever sets `ready`.
            (ProbeKind::Readiness, d) => {
                c.ready = d == Decision::Pass;
                false
            }
            // Started: liveness and readiness may begin.
            (ProbeKind::Startup, Decision::Pass) => {
                c.started = true;
                let gated = |p: &Prober| p.spec.kind == ProbeKind::Readiness;
                c.ready = !c.probes.iter().any(gated);
                false
            }
            // Liveness or startup failed: kill it, the policy restarts it.
            (kind, Decision::Fail) => {
                let what = kind.as_str().to_lowercase();
                let message = format!("Container {name} failed {what} probe");
                let message = message + ", will be restarted";
                self.event(EventType::Normal, "Killing", path, message);
                self.stop(i, grace.unwrap_or_else(|| self.grace()));
                true
            }
        }
    }
    // ANCHOR_END: on_outcome

    /// Stops a container's current instance gracefully, off this thread.
    fn stop(&mut self, i: usize, grace: Duration) {
        let Some(id) = self.ctrs[i].id.clone() else {
            return;
        };
        let runtime = self.runtime.clone();
        let job = jobs::start(
            self.opts.spawner.as_ref(),
            &self.opts.waker,
            &self.id.uid,
            move || runtime.stop_container(&id, grace),
        );
        let c = &mut self.ctrs[i];
        c.ready = false;
        c.stopping = Some(job);
        // An inline stop has ended it already.
        self.refresh();
        self.poll_stop(i);
    }

    /// True when the container has no stop under way (any more).
    fn poll_stop(&mut self, i: usize) -> bool {
        let Some(job) = &self.ctrs[i].stopping else {
            return true;
        };
        match job.poll() {
            Poll::Pending => false,
            Poll::Ready(Ok(())) | Poll::Lost => {
                self.ctrs[i].stopping = None;
                self.refresh();
                true
            }
            Poll::Ready(Err(e)) => {
                self.ctrs[i].stopping = None;
                let path = self.ctrs[i].path();
                let name = self.ctrs[i].spec.name.clone();
                self.event(
                    EventType::Warning,
                    "FailedKillPod",
                    path,
                    format!("error killing container {name}: {e}"),
                );
                self.refresh();
                true
            }
        }
    }

    /// Deletion: stop every running container (in parallel, each with the
    /// grace period), then the sandbox, then remove it.
    fn sync_termination(&mut self) -> Option<SystemTime> {
        let grace = self.termination.as_ref().map_or(DEFAULT_GRACE, |t| t.grace);
        if self.termination.as_ref().is_some_and(|t| t.done) {
            return None;
        }
        let mut waiting = false;
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].progress() == Progress::Running && self.ctrs[i].stopping.is_none() {
                let name = self.ctrs[i].spec.name.clone();
                let path = self.ctrs[i].path();
                self.event(
                    EventType::Normal,
                    "Killing",
                    path,
                    format!("Stopping container {name}"),
                );
                self.stop(i, grace);
            }
            if !self.poll_stop(i) {
                waiting = true;
            }
        }
        if waiting {
            // The stops' wakers call again; at the latest after the grace.
            return Some(plus(self.now(), grace));
        }
        if let Some(s) = &self.sandbox {
            // Stopping kills what is left; removing twice is no error.
            let stopped = self
                .runtime
                .stop_pod_sandbox(&s.id)
                .and_then(|()| self.runtime.remove_pod_sandbox(&s.id));
            if let Err(e) = stopped {
                self.event(
                    EventType::Warning,
                    "FailedKillPod",
                    None,
                    format!("error killing pod: {e}"),
                );
                return Some(plus(self.now(), Duration::from_secs(1)));
            }
        }
        let dir = config::pod_dir(&self.opts.layout, &self.id.uid);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                self.event(
                    EventType::Warning,
                    "FailedCleanup",
                    None,
                    format!("removing {}: {e}", dir.display()),
                );
            }
            _ => {}
        }
        for i in 0..self.ctrs.len() {
            let key = self.backoff_key(i, "");
            self.backoff.forget(&key);
        }
        self.update_phase();
        if let Some(t) = &mut self.termination {
            t.done = true;
        }
        None
    }

    pub(crate) fn update_phase(&mut self) {
        if self.terminal_phase.is_some() {
            return;
        }
        let phase = self.compute_phase();
        if phase.is_terminal() {
            self.terminal_phase = Some(phase);
        }
    }
}
