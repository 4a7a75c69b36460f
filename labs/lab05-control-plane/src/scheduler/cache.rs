//! The scheduler's cache: every node as a [`NodeInfo`] and every pod that
//! has a node counted on it, fed by the informers; and the *assumed*
//! pods, counted on the node chosen for them before their binding is
//! written, so that the next cycle already sees the room they take
//! (upstream's cache.AssumePod). A binding that fails forgets its pod.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::cycle::Snapshot;
use super::node_info::{InfoError, PlacedPod, PodInfo};
use crate::informer::key_of;

/// Nodes and the pods on them.
#[derive(Debug, Default)]
pub struct SchedulerCache {
    pub snapshot: Snapshot,
    /// Pod key → its node, for every pod counted.
    pods: HashMap<String, String>,
    assumed: HashSet<String>,
    /// Pods seen on nodes not seen yet: counted when the node comes.
    orphans: HashMap<String, Vec<PlacedPod>>,
}

impl SchedulerCache {
    /// A node added or changed.
    pub fn set_node(&mut self, node: Arc<Node>) -> Result<(), InfoError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let known = self.snapshot.get(&name).is_some();
        self.snapshot.update_node(node)?;
        if !known {
            let waiting = self.orphans.remove(&name).unwrap_or_default();
            if let Some(info) = self.snapshot.get_mut(&name) {
                for p in waiting {
                    info.add_pod(p);
                }
            }
        }
        Ok(())
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.snapshot.remove(name) {
            // Its pods wait, counted, in case the node comes back.
            self.orphans.insert(name.to_string(), info.pods);
        }
    }

    fn place(&mut self, node: &str, pod: PlacedPod) {
        self.pods.insert(pod.key.clone(), node.to_string());
        match self.snapshot.get_mut(node) {
            Some(info) => info.add_pod(pod),
            None => self.orphans.entry(node.to_string()).or_default().push(pod),
        }
    }

    fn unplace(&mut self, key: &str) {
        let Some(node) = self.pods.remove(key) else {
            return;
        };
        match self.snapshot.get_mut(&node) {
            Some(info) => {
                info.remove_pod(key);
            }
            None => {
                if let Some(list) = self.orphans.get_mut(&node) {
                    list.retain(|p| p.key != key);
                }
            }
        }
    }

    /// A pod with a node, as the API server has it: counted there (its
    /// assumption, if any, confirmed).
    pub fn set_pod(&mut self, pod: Arc<Pod>) -> Result<(), InfoError> {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let info = PodInfo::new(pod)?;
        self.assumed.remove(&info.key);
        self.unplace(&info.key);
        self.place(&node, PlacedPod::from(&info));
        Ok(())
    }

    /// A pod gone or finished: its room is free.
    pub fn remove_pod(&mut self, pod: &Pod) {
        let key = key_of(&pod.metadata);
        self.assumed.remove(&key);
        self.unplace(&key);
    }

    /// Counts `pod` on `node` before its binding is written.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) {
        self.unplace(&pod.key);
        self.assumed.insert(pod.key.clone());
        self.place(node, PlacedPod::from(pod));
    }

    /// The binding failed: the assumed pod is no longer counted.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key) {
            self.unplace(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// The node a pod is counted on.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(String::as_str)
    }
}
