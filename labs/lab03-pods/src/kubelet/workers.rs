//! A node's pod workers, and the loop that drives them: the kubelet's
//! `podWorkers` without its goroutines. One thread owns a [`Workers`],
//! feeds it runtime events and wakers' uids, and calls [`Workers::tick`]
//! when [`Workers::next_wake`] comes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::worker::PodWorker;
use crate::cri::ContainerEvent;

/// The workers of a node, by pod uid, with when each wants its next sync.
#[derive(Default)]
pub struct Workers {
    pods: BTreeMap<String, (PodWorker, Option<SystemTime>)>,
}

impl Workers {
    pub fn new() -> Workers {
        Workers::default()
    }

    /// Adds a pod's worker and syncs it a first time. A worker for the
    /// same uid replaces the old one, which is returned.
    pub fn add(&mut self, mut worker: PodWorker) -> Option<PodWorker> {
        let wake = worker.sync();
        let uid = worker.uid().to_string();
        self.pods.insert(uid, (worker, wake)).map(|(w, _)| w)
    }

    pub fn get(&self, uid: &str) -> Option<&PodWorker> {
        self.pods.get(uid).map(|(w, _)| w)
    }

    pub fn get_mut(&mut self, uid: &str) -> Option<&mut PodWorker> {
        self.pods.get_mut(uid).map(|(w, _)| w)
    }

    /// The workers, by uid.
    pub fn iter(&self) -> impl Iterator<Item = &PodWorker> {
        self.pods.values().map(|(w, _)| w)
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Syncs one pod now (a waker named it, or it was just changed).
    pub fn sync(&mut self, uid: &str) {
        if let Some((w, wake)) = self.pods.get_mut(uid) {
            *wake = w.sync();
        }
    }

    /// Syncs the pod whose sandbox the event is about.
    pub fn handle(&mut self, event: &ContainerEvent) {
        let uid = self
            .pods
            .iter()
            .find(|(_, (w, _))| w.sandbox_id() == Some(event.sandbox_id.as_str()))
            .map(|(uid, _)| uid.clone());
        if let Some(uid) = uid {
            self.sync(&uid);
        }
    }

    /// Starts a pod's graceful deletion.
    pub fn terminate(&mut self, uid: &str, grace: Option<std::time::Duration>) {
        if let Some(w) = self.get_mut(uid) {
            w.terminate(grace);
        }
        self.sync(uid);
    }

    /// Syncs every pod whose wake time has come (all of them with
    /// `all`, as a periodic resync does), drops the ones that are
    /// terminated, and returns them.
    pub fn tick(&mut self, now: SystemTime, all: bool) -> Vec<PodWorker> {
        for uid in self.due(now, all) {
            self.sync(&uid);
        }
        self.take_terminated()
    }

    /// The pods whose wake time has come (every pod with `all`): what
    /// [`tick`](Self::tick) syncs, for a caller that reports each pod as
    /// soon as it is synced.
    pub fn due(&self, now: SystemTime, all: bool) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, (_, wake))| all || wake.is_some_and(|t| t <= now))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// Drops the workers whose pods are terminated, and returns them.
    pub fn take_terminated(&mut self) -> Vec<PodWorker> {
        let done: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, (w, _))| w.is_terminated())
            .map(|(uid, _)| uid.clone())
            .collect();
        done.iter()
            .filter_map(|uid| self.pods.remove(uid).map(|(w, _)| w))
            .collect()
    }

    /// The earliest time a worker asked to be synced at.
    pub fn next_wake(&self) -> Option<SystemTime> {
        self.pods.values().filter_map(|(_, wake)| *wake).min()
    }
}
