//! Expectations: what a controller has asked for and not yet seen.
//!
//! A ReplicaSet that created 3 pods must not sync again before its
//! informer shows them: its cache would still count 0 and it would
//! create 3 more. So each create or delete raises an expectation, each
//! pod the informer reports lowers it, and a sync only acts once they
//! are met (or after 5 minutes, in case an event was lost), as upstream's
//! `UIDTrackingControllerExpectations`: deletes are tracked by the pod's
//! key, since one pod is seen deleted twice (marked, then gone) and a
//! count would take the second sighting for another pod's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long expectations hold before a controller syncs anyway.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Expected {
    adds: i64,
    dels: HashSet<String>,
    set: Instant,
}

/// Per controller key: adds and deletes still to be observed.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    map: Arc<Mutex<HashMap<String, Expected>>>,
}

impl Expectations {
    pub fn new() -> Expectations {
        Expectations::default()
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Expected>) -> R,
    ) -> R {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut map)
    }

    /// Sets what `key` waits for before its next sync: `adds` pods
    /// created, and the pods of keys `dels` deleted.
    pub fn expect(&self, key: &str, adds: usize, dels: &[String]) {
        let e = Expected {
            adds: i64::try_from(adds).unwrap_or(i64::MAX),
            dels: dels.iter().cloned().collect(),
            set: Instant::now(),
        };
        self.with(|m| m.insert(key.to_string(), e));
    }

    /// A pod of `key` was seen created (or a create was given up).
    pub fn creation_observed(&self, key: &str) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.adds -= 1;
            }
        });
    }

    /// The pod `pod` of `key` was seen deleted, or marked for deletion
    /// (or its delete was given up).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.dels.remove(pod);
            }
        });
    }

    /// Whether `key` may sync: nothing expected, all observed, or the
    /// expectations are older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, key: &str) -> bool {
        self.with(|m| match m.get(key) {
            None => true,
            Some(e) => {
                (e.adds <= 0 && e.dels.is_empty())
                    || e.set.elapsed() > EXPECTATIONS_TIMEOUT
            }
        })
    }

    /// The controller object is gone.
    pub fn forget(&self, key: &str) {
        self.with(|m| m.remove(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_waits_until_every_create_is_seen() {
        let e = Expectations::new();
        assert!(e.satisfied("default/kubia"));
        e.expect("default/kubia", 2, &[]);
        assert!(!e.satisfied("default/kubia"));
        e.creation_observed("default/kubia");
        assert!(!e.satisfied("default/kubia"));
        e.creation_observed("default/kubia");
        assert!(e.satisfied("default/kubia"));
    }

    #[test]
    fn one_pod_seen_deleted_twice_is_one_delete() {
        let e = Expectations::new();
        e.expect(
            "default/kubia",
            0,
            &["default/a".into(), "default/b".into()],
        );
        e.deletion_observed("default/kubia", "default/a");
        e.deletion_observed("default/kubia", "default/a");
        assert!(!e.satisfied("default/kubia"));
        e.deletion_observed("default/kubia", "default/b");
        assert!(e.satisfied("default/kubia"));
    }
}
