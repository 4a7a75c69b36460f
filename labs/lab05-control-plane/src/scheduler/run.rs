//! The running scheduler: informers on nodes and pods feed the cache and
//! the queue; one loop takes a pod at a time through the scheduling
//! cycle; binders write the bindings, as kube-scheduler's binding cycle
//! runs beside the next scheduling cycle.
//!
//! It reads the cluster only through watches of the API server and
//! writes only bindings, pod conditions and events: it never talks to a
//! node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::cache::SchedulerCache;
use super::cycle::{Algorithm, ScheduleError};
use super::feasible::Rng;
use super::node_info::PodInfo;
use super::queue::{QueueTimes, SchedulingQueue};
use crate::client::{object_path, Client, ClientError};
use crate::events::{reference, Recorder};
use crate::informer::{key_of, Change, Informer};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The pods it schedules: those whose `spec.schedulerName` is this
    /// (or unset, for "default-scheduler"); also the events' source.
    pub scheduler_name: String,
    /// percentageOfNodesToScore; 0 is the adaptive default.
    pub percentage_of_nodes_to_score: u32,
    pub queue: QueueTimes,
    /// Bindings written at once. kube-scheduler binds each pod in a
    /// goroutine of its own; 32 threads keep as many bindings in flight,
    /// enough for the store to commit them in groups.
    pub binders: usize,
    /// A fixed seed for the tie-break (tests); the clock otherwise.
    pub seed: Option<u64>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            scheduler_name: "default-scheduler".into(),
            percentage_of_nodes_to_score: 0,
            queue: QueueTimes::default(),
            binders: 32,
            seed: None,
        }
    }
}

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A scheduler of one API server.
pub struct Scheduler {
    client: Client,
    options: SchedulerOptions,
    queue: Arc<SchedulingQueue>,
    cache: Arc<Mutex<SchedulerCache>>,
    recorder: Recorder,
}

fn lock(cache: &Mutex<SchedulerCache>) -> MutexGuard<'_, SchedulerCache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn terminal(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// A binding to write.
struct Bind {
    pod: Arc<Pod>,
    node: String,
}

impl Scheduler {
    pub fn new(client: Client, options: SchedulerOptions) -> Scheduler {
        let recorder =
            Recorder::new(client.clone(), &options.scheduler_name, None);
        Scheduler {
            queue: Arc::new(SchedulingQueue::new(options.queue)),
            cache: Arc::new(Mutex::new(SchedulerCache::default())),
            client,
            options,
            recorder,
        }
    }

    /// (active, backoff, unschedulable) pods waiting.
    pub fn queue_lengths(&self) -> (usize, usize, usize) {
        self.queue.lengths()
    }

    // ANCHOR: run
    /// Runs until `stop` is set: informers, then the scheduling loop.
    pub fn run(&self, stop: &AtomicBool) -> Result<(), SchedulerError> {
        let nodes = self.node_informer();
        let pods = self.pod_informer();
        for synced in [&nodes as &dyn Synced, &pods] {
            while !synced.synced(Duration::from_millis(200)) {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
            }
        }
        let (to_binders, from_loop) = channel::<Bind>();
        let from_loop = Mutex::new(from_loop);
        std::thread::scope(|scope| {
            for _ in 0..self.options.binders.max(1) {
                scope.spawn(|| self.binder(&from_loop));
            }
            let mut algorithm = Algorithm::new(
                self.options.percentage_of_nodes_to_score,
                self.options.seed.map_or_else(Rng::from_time, Rng::seeded),
            );
            while !stop.load(Ordering::SeqCst) {
                if let Some(queued) = self.queue.pop(Duration::from_millis(100))
                {
                    self.schedule_one(&mut algorithm, queued.pod, &to_binders);
                }
            }
            drop(to_binders);
        });
        nodes.stop();
        pods.stop();
        Ok(())
    }
    // ANCHOR_END: run

    fn node_informer(&self) -> Informer<Node> {
        let cache = self.cache.clone();
        let queue = self.queue.clone();
        Informer::start(
            self.client.clone(),
            None,
            "",
            move |change: &Change<Node>| match change {
                Change::Added(n) | Change::Modified { new: n, .. } => {
                    if let Err(e) = lock(&cache).set_node(n.clone()) {
                        eprintln!("scheduler: {e}");
                    }
                    queue.move_all();
                }
                Change::Deleted(n) => {
                    lock(&cache).remove_node(
                        n.metadata.name.as_deref().unwrap_or_default(),
                    );
                }
                Change::Synced => {}
            },
        )
    }

    fn pod_informer(&self) -> Informer<Pod> {
        let cache = self.cache.clone();
        let queue = self.queue.clone();
        let me = SchedulerRef {
            name: self.options.scheduler_name.clone(),
        };
        Informer::start(
            self.client.clone(),
            None,
            "",
            move |change: &Change<Pod>| {
                let pending = |p: &Pod| {
                    !assigned(p)
                        && !terminal(p)
                        && p.metadata.deletion_timestamp.is_none()
                        && me.ours(p)
                };
                match change {
                    Change::Added(p) | Change::Modified { new: p, .. } => {
                        let key = key_of(&p.metadata);
                        if assigned(p) {
                            queue.delete(&key);
                            if terminal(p) {
                                lock(&cache).remove_pod(p);
                                queue.move_all();
                            } else if let Err(e) =
                                lock(&cache).set_pod(p.clone())
                            {
                                eprintln!("scheduler: {e}");
                            }
                        } else if pending(p) {
                            queue.add(p.clone());
                        } else {
                            queue.delete(&key);
                        }
                    }
                    Change::Deleted(p) => {
                        queue.delete(&key_of(&p.metadata));
                        if assigned(p) {
                            lock(&cache).remove_pod(p);
                            queue.move_all();
                        }
                    }
                    Change::Synced => {}
                }
            },
        )
    }

    // ANCHOR: schedule_one
    /// One pod through the scheduling cycle: on a fit, assume it and hand
    /// its binding over; on none, say why and let it wait.
    fn schedule_one(
        &self,
        algorithm: &mut Algorithm,
        pod: Arc<Pod>,
        binders: &Sender<Bind>,
    ) {
        let key = key_of(&pod.metadata);
        let info = match PodInfo::new(pod.clone()) {
            Ok(info) => info,
            Err(e) => {
                self.failed(&pod, "SchedulerError", &e.to_string());
                self.queue.retry(&key);
                return;
            }
        };
        let mut cache = lock(&self.cache);
        let result = algorithm.schedule(&info, &cache.snapshot);
        match result {
            Ok(placement) => {
                cache.assume(&info, &placement.node);
                drop(cache);
                let _ = binders.send(Bind {
                    pod,
                    node: placement.node,
                });
            }
            Err(e) => {
                drop(cache);
                self.failed(&pod, e.condition_reason(), &e.to_string());
                match e {
                    ScheduleError::Unfit(_) => self.queue.unschedulable(&key),
                    ScheduleError::NoNodes => self.queue.retry(&key),
                }
            }
        }
    }
    // ANCHOR_END: schedule_one

    /// The FailedScheduling event and the PodScheduled condition.
    fn failed(&self, pod: &Pod, reason: &str, message: &str) {
        self.recorder.event(
            &reference(pod),
            "Warning",
            "FailedScheduling",
            message,
        );
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        });
        if same {
            return;
        }
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}});
        let ns = pod.metadata.namespace.as_deref();
        let path = format!(
            "{}/status",
            object_path::<Pod>(
                ns,
                pod.metadata.name.as_deref().unwrap_or_default()
            )
        );
        let body = serde_json::to_vec(&patch).unwrap_or_default();
        if let Err(e) = self.client.request(
            "PATCH",
            &path,
            Some(("application/strategic-merge-patch+json", body)),
        ) {
            if !e.is_not_found() {
                eprintln!(
                    "scheduler: PodScheduled of {}: {e}",
                    key_of(&pod.metadata)
                );
            }
        }
    }

    /// A binder: writes bindings until the loop ends.
    fn binder(&self, from_loop: &Mutex<Receiver<Bind>>) {
        loop {
            let next =
                from_loop.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(bind) = next else { return };
            self.bind(bind);
        }
    }

    // ANCHOR: bind
    /// POST …/pods/<name>/binding; then the Scheduled event. On an error
    /// the assumed pod is forgotten and tried again after its back-off.
    fn bind(&self, bind: Bind) {
        let pod = &bind.pod;
        let key = key_of(&pod.metadata);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": bind.node},
        });
        let path = format!("{}/binding", object_path::<Pod>(Some(&ns), &name));
        let body = serde_json::to_vec(&binding).unwrap_or_default();
        match self.client.request(
            "POST",
            &path,
            Some(("application/json", body)),
        ) {
            Ok(_) => {
                self.queue.done(&key);
                let message = format!(
                    "Successfully assigned {ns}/{name} to {}",
                    bind.node
                );
                self.recorder.event(
                    &reference(pod.as_ref()),
                    "Normal",
                    "Scheduled",
                    &message,
                );
            }
            Err(e) => {
                lock(&self.cache).forget(&key);
                if e.is_not_found() {
                    self.queue.delete(&key);
                    return;
                }
                self.recorder.event(
                    &reference(pod.as_ref()),
                    "Warning",
                    "FailedScheduling",
                    &format!("Binding rejected: {e}"),
                );
                self.queue.retry(&key);
            }
        }
    }
    // ANCHOR_END: bind
}

/// What the pod informer's handler needs of the scheduler.
struct SchedulerRef {
    name: String,
}

impl SchedulerRef {
    fn ours(&self, pod: &Pod) -> bool {
        let name = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
        match name {
            None | Some("") => self.name == "default-scheduler",
            Some(n) => n == self.name,
        }
    }
}

/// An informer, whatever its kind, as far as waiting for it goes.
trait Synced {
    fn synced(&self, timeout: Duration) -> bool;
}

impl<T: crate::informer::Informable> Synced for Informer<T> {
    fn synced(&self, timeout: Duration) -> bool {
        self.wait_synced(timeout)
    }
}
