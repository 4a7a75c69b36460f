//! A work queue of keys, as client-go's: a controller's informers add the
//! key of whatever changed, its workers take keys one at a time.
//!
//! Three promises make reconcile loops simple: a key waits in the queue
//! once however often it is added (ten changes, one sync); a key is never
//! handed to two workers at once (added while being processed, it comes
//! back after [`WorkQueue::done`]); and a key that failed comes back later
//! and later ([`WorkQueue::add_rate_limited`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// client-go's default per-item back-off: 5 ms doubling to 1000 s.
const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

struct State<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    waiting: BinaryHeap<Reverse<(Instant, u64, Waiting<K>)>>,
    seq: u64,
    failures: HashMap<K, u32>,
    shut_down: bool,
}

/// A key waiting for its time; ordered by (time, seq) only.
struct Waiting<K>(K);

impl<K> PartialEq for Waiting<K> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<K> Eq for Waiting<K> {}
impl<K> PartialOrd for Waiting<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Waiting<K> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// A deduplicating, rate-limited queue of keys; clones share it.
pub struct WorkQueue<K> {
    inner: Arc<(Mutex<State<K>>, Condvar)>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    pub fn new() -> Self {
        WorkQueue {
            inner: Arc::new((
                Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    waiting: BinaryHeap::new(),
                    seq: 0,
                    failures: HashMap::new(),
                    shut_down: false,
                }),
                Condvar::new(),
            )),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.inner.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is queued already.
    pub fn add(&self, key: K) {
        let mut state = self.state();
        Self::add_locked(&mut state, key);
        self.inner.1.notify_one();
    }

    fn add_locked(state: &mut State<K>, key: K) {
        if state.shut_down || state.dirty.contains(&key) {
            return;
        }
        state.dirty.insert(key.clone());
        // Being processed: it goes back in when its worker is done.
        if !state.processing.contains(&key) {
            state.queue.push_back(key);
        }
    }

    /// Queues `key` once `delay` has passed.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let mut state = self.state();
        if state.shut_down {
            return;
        }
        state.seq += 1;
        let seq = state.seq;
        state.waiting.push(Reverse((
            Instant::now() + delay,
            seq,
            Waiting(key),
        )));
        self.inner.1.notify_all();
    }

    /// Queues `key` after its back-off, which doubles with each call
    /// until [`WorkQueue::forget`].
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut state = self.state();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = BASE_DELAY
                .checked_mul(1u32.checked_shl(*failures).unwrap_or(u32::MAX))
                .unwrap_or(MAX_DELAY)
                .min(MAX_DELAY);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
    }

    /// Ends `key`'s back-off: it succeeded.
    pub fn forget(&self, key: &K) {
        self.state().failures.remove(key);
    }

    /// How often `key` has been requeued with back-off.
    pub fn requeues(&self, key: &K) -> u32 {
        self.state().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key, waiting up to `timeout`; `None` on timeout or once
    /// the queue is shut down. Call [`WorkQueue::done`] when finished.
    pub fn get(&self, timeout: Duration) -> Option<K> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            let now = Instant::now();
            while let Some(Reverse((at, _, _))) = state.waiting.peek() {
                if *at > now {
                    break;
                }
                if let Some(Reverse((_, _, Waiting(key)))) = state.waiting.pop()
                {
                    Self::add_locked(&mut state, key);
                }
            }
            if let Some(key) = state.queue.pop_front() {
                state.dirty.remove(&key);
                state.processing.insert(key.clone());
                return Some(key);
            }
            if state.shut_down || now >= deadline {
                return None;
            }
            let mut wake = deadline;
            if let Some(Reverse((at, _, _))) = state.waiting.peek() {
                wake = wake.min(*at);
            }
            state = self
                .inner
                .1
                .wait_timeout(state, wake.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// `key` is processed; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &K) {
        let mut state = self.state();
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            self.inner.1.notify_one();
        }
    }

    /// Keys queued now (not those waiting for their time).
    pub fn len(&self) -> usize {
        self.state().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No more keys; waiting and later calls to `get` return `None`.
    pub fn shut_down(&self) {
        self.state().shut_down = true;
        self.inner.1.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_millis(0);
    const SOON: Duration = Duration::from_secs(2);

    #[test]
    fn a_key_added_twice_is_handed_out_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.get(NOW), Some("a"));
        assert_eq!(q.get(NOW), Some("b"));
        assert_eq!(q.get(NOW), None);
    }

    #[test]
    fn a_key_added_while_processed_comes_back_after_done() {
        let q = WorkQueue::new();
        q.add(1);
        assert_eq!(q.get(NOW), Some(1));
        q.add(1);
        assert_eq!(q.get(NOW), None, "never to two workers at once");
        q.done(&1);
        assert_eq!(q.get(NOW), Some(1));
        q.done(&1);
        assert_eq!(q.get(NOW), None);
    }

    #[test]
    fn a_delayed_key_waits_for_its_time() {
        let q = WorkQueue::new();
        q.add_after("late", Duration::from_millis(100));
        assert_eq!(q.get(NOW), None);
        let started = Instant::now();
        assert_eq!(q.get(SOON), Some("late"));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn failures_back_off_until_forgotten() {
        let q = WorkQueue::new();
        for _ in 0..3 {
            q.add_rate_limited("k");
            assert_eq!(q.get(SOON), Some("k"));
            q.done(&"k");
        }
        assert_eq!(q.requeues(&"k"), 3);
        q.forget(&"k");
        assert_eq!(q.requeues(&"k"), 0);
    }

    #[test]
    fn shut_down_wakes_a_waiting_worker() {
        let q: WorkQueue<u8> = WorkQueue::new();
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || q.get(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(50));
        q.shut_down();
        assert_eq!(worker.join().unwrap(), None);
    }
}
