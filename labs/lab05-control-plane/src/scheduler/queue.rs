//! The scheduling queue (upstream's PriorityQueue), in three parts:
//!
//! - *active*: pods to try now, highest priority first, then oldest
//!   (PrioritySort's order);
//! - *backoff*: pods that failed and wait out their back-off, 1 s
//!   doubling per attempt up to 10 s;
//! - *unschedulable*: pods no node fits, waiting for the cluster to
//!   change: a node added or updated, a pod deleted moves them back
//!   (through backoff if their back-off has not passed yet). A pod that
//!   waits five minutes there is retried anyway.
//!
//! A cluster event that arrives while a pod is being tried sends that
//! pod, if it fails, to backoff rather than unschedulable: the event may
//! be what it needed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::informer::key_of;

/// How a pod waits in the queue.
#[derive(Debug, Clone)]
struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    /// When its back-off ends (after a failure).
    backoff_until: Option<Instant>,
    /// When it went to unschedulable.
    since: Instant,
}

/// The active queue's order: priority (high first), creation time (old
/// first), then the key, so that no two entries compare equal.
type Order = (std::cmp::Reverse<i32>, i64, String);

fn order_of(pod: &Pod) -> Order {
    let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.timestamp_nanos_opt().unwrap_or(0));
    (std::cmp::Reverse(priority), created, key_of(&pod.metadata))
}

#[derive(Default)]
struct State {
    active: BTreeSet<Order>,
    entries: HashMap<String, Entry>,
    /// Where each key waits (absent while it is being tried).
    place: HashMap<String, Place>,
    /// Keys being tried, with the move counter when they were popped.
    in_flight: HashMap<String, u64>,
    /// The keys in backoff or unschedulable (what a flush looks at).
    waiting: std::collections::HashSet<String>,
    /// Cluster events seen so far.
    moves: u64,
    closed: bool,
}

impl State {
    fn set_place(&mut self, key: &str, place: Place) {
        if place == Place::Active {
            self.waiting.remove(key);
        } else {
            self.waiting.insert(key.to_string());
        }
        self.place.insert(key.to_string(), place);
    }

    fn clear_place(&mut self, key: &str) -> Option<Place> {
        self.waiting.remove(key);
        self.place.remove(key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
}

/// A pod taken from the queue to be tried.
#[derive(Debug, Clone)]
pub struct Queued {
    pub pod: Arc<Pod>,
    /// How many times it was tried before (0 the first time).
    pub attempts: u32,
}

/// The back-off and how long an unschedulable pod may wait for an event.
#[derive(Debug, Clone, Copy)]
pub struct QueueTimes {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_unschedulable: Duration,
}

impl Default for QueueTimes {
    fn default() -> Self {
        QueueTimes {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable: Duration::from_secs(300),
        }
    }
}

/// The queue; shared between the informers' handlers and the loop.
pub struct SchedulingQueue {
    state: Mutex<State>,
    changed: Condvar,
    times: QueueTimes,
}

impl SchedulingQueue {
    pub fn new(times: QueueTimes) -> SchedulingQueue {
        SchedulingQueue {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            times,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The back-off after `attempts` failures: 1 s, 2 s, 4 s … 10 s.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let d = self.times.initial_backoff.saturating_mul(1 << doublings);
        d.min(self.times.max_backoff)
    }

    /// A pending pod seen (new, or a new version): queued to be tried. A
    /// pod waiting as unschedulable is tried again when it changes.
    pub fn add(&self, pod: Arc<Pod>) {
        let key = key_of(&pod.metadata);
        let mut s = self.lock();
        let now = Instant::now();
        match s.place.get(&key).copied() {
            None if s.in_flight.contains_key(&key) => {
                // Being tried: keep the newer version for a retry.
                if let Some(e) = s.entries.get_mut(&key) {
                    e.pod = pod;
                }
            }
            None => {
                s.entries.insert(
                    key.clone(),
                    Entry {
                        pod: pod.clone(),
                        attempts: 0,
                        backoff_until: None,
                        since: now,
                    },
                );
                s.active.insert(order_of(&pod));
                s.set_place(&key, Place::Active);
            }
            Some(Place::Active) => {
                let old = s.entries.get(&key).map(|e| order_of(&e.pod));
                if let Some(old) = old {
                    s.active.remove(&old);
                }
                s.active.insert(order_of(&pod));
                if let Some(e) = s.entries.get_mut(&key) {
                    e.pod = pod;
                }
            }
            Some(place) => {
                // Only a change of the pod itself may make it fit: its
                // status (our own PodScheduled condition) does not.
                let changed = s.entries.get(&key).is_none_or(|e| {
                    e.pod.spec != pod.spec
                        || e.pod.metadata.labels != pod.metadata.labels
                });
                if let Some(e) = s.entries.get_mut(&key) {
                    e.pod = pod;
                }
                if changed && place == Place::Unschedulable {
                    Self::wake(&mut s, &key, now);
                }
            }
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Moves a waiting pod to active, or to backoff while its back-off
    /// runs.
    fn wake(s: &mut State, key: &str, now: Instant) {
        let Some(e) = s.entries.get(key) else { return };
        let backing_off = e.backoff_until.is_some_and(|t| t > now);
        if backing_off {
            s.set_place(key, Place::Backoff);
        } else {
            let order = order_of(&e.pod);
            s.active.insert(order);
            s.set_place(key, Place::Active);
        }
    }

    /// The pod is gone, bound, or no longer ours.
    pub fn delete(&self, key: &str) {
        let mut s = self.lock();
        if let Some(Place::Active) = s.clear_place(key) {
            if let Some(e) = s.entries.get(key) {
                let order = order_of(&e.pod);
                s.active.remove(&order);
            }
        }
        s.entries.remove(key);
        s.in_flight.remove(key);
    }

    /// A cluster event that may let unschedulable pods fit (a node added
    /// or updated, a pod deleted): they all move back.
    pub fn move_all(&self) {
        let mut s = self.lock();
        s.moves += 1;
        let now = Instant::now();
        let waiting: Vec<String> = s
            .waiting
            .iter()
            .filter(|k| s.place.get(*k) == Some(&Place::Unschedulable))
            .cloned()
            .collect();
        for key in waiting {
            Self::wake(&mut s, &key, now);
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Backoff pods whose time has come, and unschedulable pods that
    /// waited too long, go to active; the earliest time still to come.
    fn flush(&self, s: &mut State, now: Instant) -> Option<Instant> {
        let mut next = None;
        let keys: Vec<(String, Place)> = s
            .waiting
            .iter()
            .filter_map(|k| s.place.get(k).map(|p| (k.clone(), *p)))
            .collect();
        for (key, place) in keys {
            let Some(e) = s.entries.get(&key) else {
                continue;
            };
            let due = match place {
                Place::Backoff => e.backoff_until.unwrap_or(now),
                _ => e.since + self.times.max_unschedulable,
            };
            if due <= now {
                let order = order_of(&e.pod);
                s.active.insert(order);
                s.set_place(&key, Place::Active);
            } else {
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
            }
        }
        next
    }

    /// The next pod to try, waiting up to `timeout`; `None` on timeout or
    /// once closed.
    pub fn pop(&self, timeout: Duration) -> Option<Queued> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            let now = Instant::now();
            let next = self.flush(&mut s, now);
            if let Some(first) = s.active.pop_first() {
                let key = first.2;
                s.clear_place(&key);
                let moves = s.moves;
                s.in_flight.insert(key.clone(), moves);
                let e = s.entries.get(&key)?;
                return Some(Queued {
                    pod: e.pod.clone(),
                    attempts: e.attempts,
                });
            }
            if now >= deadline {
                return None;
            }
            let until = next.map_or(deadline, |n| n.min(deadline));
            s = self
                .changed
                .wait_timeout(s, until.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The pod fit no node: it waits for a cluster event (or, if one came
    /// while it was tried, its back-off), with one more attempt counted.
    pub fn unschedulable(&self, key: &str) {
        self.requeue(key, false);
    }

    /// The pod failed for another reason (its binding): back-off.
    pub fn retry(&self, key: &str) {
        self.requeue(key, true);
    }

    fn requeue(&self, key: &str, backoff: bool) {
        let mut s = self.lock();
        let Some(popped_at) = s.in_flight.remove(key) else {
            return; // deleted or bound meanwhile
        };
        let moved = s.moves != popped_at;
        let now = Instant::now();
        let attempts = match s.entries.get_mut(key) {
            Some(e) => {
                e.attempts += 1;
                e.attempts
            }
            None => return,
        };
        let until = now + self.backoff(attempts);
        if let Some(e) = s.entries.get_mut(key) {
            e.backoff_until = Some(until);
            e.since = now;
        }
        let place = if backoff || moved {
            Place::Backoff
        } else {
            Place::Unschedulable
        };
        s.set_place(key, place);
        drop(s);
        self.changed.notify_all();
    }

    /// The pod was tried and bound: forget it.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.in_flight.remove(key);
        if !s.place.contains_key(key) {
            s.entries.remove(key);
        }
    }

    /// (active, backoff, unschedulable) counts.
    pub fn lengths(&self) -> (usize, usize, usize) {
        let s = self.lock();
        let count = |p| s.place.values().filter(|x| **x == p).count();
        (
            count(Place::Active),
            count(Place::Backoff),
            count(Place::Unschedulable),
        )
    }

    /// Ends every wait.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}
