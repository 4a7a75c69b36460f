//! Restarting crashed containers: whether to restart at all (the pod's
//! restartPolicy), and when (the kubelet's back-off, the delay behind
//! `CrashLoopBackOff`).
//!
//! The kubelet keeps one back-off entry per container: the first exit is
//! answered at once, each later one waits twice as long as the one before,
//! up to a cap; an entry not touched for twice the cap is forgotten, so a
//! container that ran ten minutes starts afresh. Time comes from a
//! [`Clock`], so tests move it by hand instead of sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::phase::RestartPolicy;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct FakeClock(Mutex<SystemTime>);

impl FakeClock {
    /// A clock standing at `at`.
    pub fn at(at: SystemTime) -> FakeClock {
        FakeClock(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}

// ANCHOR: should_restart
/// Whether the kubelet restarts a container that exited with `exit_code`.
pub fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
    // EXERCISE: lab03-restart-policy
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
    // EXERCISE_END: lab03-restart-policy
}
// ANCHOR_END: should_restart

/// The reason a container waits in while its back-off runs.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// The delays: the first, and the cap. The kubelet's are 10 s and 300 s;
/// chapter 3's runtime tests use milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The delay after the second exit (the first is answered at once).
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl BackoffPolicy {
    /// The kubelet's: `backOffPeriod` 10 s, `MaxContainerBackOff` 300 s.
    pub const KUBELET: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(300),
    };

    /// How long an entry may go untouched before it is forgotten: twice
    /// the cap, ten minutes for the kubelet's.
    pub fn reset_after(&self) -> Duration {
        self.max * 2
    }
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy::KUBELET
    }
}

/// One container's back-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The delay the next exit must wait.
    pub delay: Duration,
    /// When the entry was last moved on (the last restart).
    pub last_update: SystemTime,
}

/// The answer to "may this exited container start again now?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Start it now.
    Restart,
    /// Not yet: the back-off runs `delay` from the exit, `remaining` of it
    /// is still to go.
    Wait {
        /// The whole delay, as the message shows it.
        delay: Duration,
        /// What is left of it.
        remaining: Duration,
    },
}

/// The back-off entries of a node's containers, by a stable key per
/// container (see [`key`]).
pub struct Backoff<C: Clock> {
    policy: BackoffPolicy,
    clock: C,
    entries: HashMap<String, Entry>,
}

/// A container's key: the same container of the same pod across restarts.
pub fn key(pod_uid: &str, container: &str) -> String {
    format!("{pod_uid}/{container}")
}

impl<C: Clock> Backoff<C> {
    /// An empty table.
    pub fn new(policy: BackoffPolicy, clock: C) -> Self {
        Backoff {
            policy,
            clock,
            entries: HashMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> BackoffPolicy {
        self.policy
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The entry of a container, if it has one.
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).copied()
    }

    /// The delay the container's next exit will wait (zero without one).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    fn expired(&self, entry: &Entry, now: SystemTime) -> bool {
        now.duration_since(entry.last_update).unwrap_or_default() > self.policy.reset_after()
    }

    // ANCHOR: next
    /// Moves a container's back-off on, at a restart: a new entry (or one
    /// forgotten because untouched for [`BackoffPolicy::reset_after`])
    /// starts at the initial delay; otherwise the delay doubles, up to the
    /// cap. Returns the new delay.
    pub fn next(&mut self, key: &str) -> Duration {
        // EXERCISE: lab03-restart-backoff
        let now = self.clock.now();
        let (initial, max) = (self.policy.initial, self.policy.max);
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => e.delay.saturating_mul(2).min(max),
            _ => initial.min(max),
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
        delay
        // EXERCISE_END: lab03-restart-backoff
    }
    // ANCHOR_END: next

    /// Whether a container that exited at `exited_at` must still wait: it
    /// has a live entry and less than its delay has passed since the exit.
    pub fn in_backoff_since(&self, key: &str, exited_at: SystemTime) -> bool {
        let now = self.clock.now();
        match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => {
                now.duration_since(exited_at).unwrap_or_default() < e.delay
            }
            _ => false,
        }
    }

    // ANCHOR: check
    /// The kubelet's decision for a container that exited at `exited_at`
    /// and whose policy says restart: wait out the back-off, or restart
    /// now and move the back-off on.
    pub fn check(&mut self, key: &str, exited_at: SystemTime) -> Verdict {
        if self.in_backoff_since(key, exited_at) {
            let delay = self.delay(key);
            let passed = self
                .clock
                .now()
                .duration_since(exited_at)
                .unwrap_or_default();
            return Verdict::Wait {
                delay,
                remaining: delay.saturating_sub(passed),
            };
        }
        self.next(key);
        Verdict::Restart
    }
    // ANCHOR_END: check

    /// Forgets a container (its pod was deleted).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every entry untouched for longer than the reset time, as
    /// the kubelet's periodic garbage collection does.
    pub fn collect_garbage(&mut self) {
        let now = self.clock.now();
        let keep = self.policy.reset_after();
        self.entries
            .retain(|_, e| now.duration_since(e.last_update).unwrap_or_default() <= keep);
    }
}

/// A duration the way Go prints it (`time.Duration.String`): `10s`,
/// `1m20s`, `5m0s`, `1.5s`, `250ms`. The kubelet's message uses it.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        // Below a second Go picks the largest unit that keeps the integer
        // part non-zero.
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, div));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `n / div` with the fraction's trailing zeros dropped.
fn fraction(n: u128, div: u128) -> String {
    let (whole, rest) = (n / div, n % div);
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

// ANCHOR: message
/// The waiting message of a container in CrashLoopBackOff, as the kubelet
/// writes it; `pod` is shown as the kubelet's `name_namespace(uid)`.
pub fn crash_loop_message(delay: Duration, container: &str, pod: &str) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}",
        go_duration(delay)
    )
}
// ANCHOR_END: message

/// The waiting state of a container in CrashLoopBackOff, for its status.
pub fn crash_loop_waiting(
    delay: Duration,
    container: &str,
    pod: &str,
) -> k8s_openapi::api::core::v1::ContainerStateWaiting {
    k8s_openapi::api::core::v1::ContainerStateWaiting {
        reason: Some(CRASH_LOOP_BACK_OFF.to_string()),
        message: Some(crash_loop_message(delay, container, pod)),
    }
}

/// How the kubelet names a pod in messages: `name_namespace(uid)`.
pub fn pod_label(name: &str, namespace: &str, uid: &str) -> String {
    format!("{name}_{namespace}({uid})")
}
