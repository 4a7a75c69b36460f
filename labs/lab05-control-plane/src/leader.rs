//! Leader election through a Lease, as client-go's `leaderelection`
//! package does it for kube-scheduler and kube-controller-manager.
//!
//! Two replicas of a component run; both try to write themselves into one
//! `coordination.k8s.io/v1` Lease (`kube-system/kube-scheduler`). The
//! API server's compare on resourceVersion lets only one write win. The
//! winner renews the Lease every retry period; the others read it every
//! retry period and take it over once its holder has not renewed it for
//! the lease's duration. A leader that could not renew within the renew
//! deadline stops leading before anyone else may start (renew deadline <
//! lease duration), so two never act at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

use crate::client::{Client, ClientError};

/// How long a lease lasts and how often it is renewed: kube-scheduler's
/// and kube-controller-manager's `--leader-elect-*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// `--leader-elect-lease-duration`: how long the others wait after
    /// the last renewal before they take over.
    pub lease_duration: Duration,
    /// `--leader-elect-renew-deadline`: how long the leader keeps trying
    /// to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// `--leader-elect-retry-period`: between two attempts, to acquire
    /// or to renew.
    pub retry_period: Duration,
}

impl Default for Timings {
    /// 15 s, 10 s, 2 s: the components' defaults.
    fn default() -> Timings {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Timings that cannot guarantee one leader at a time.
#[derive(Debug, thiserror::Error)]
pub enum TimingsError {
    #[error("leaseDuration ({lease:?}) must be greater than renewDeadline ({renew:?})")]
    LeaseNotAboveRenew { lease: Duration, renew: Duration },
    #[error("renewDeadline ({renew:?}) must be greater than retryPeriod*1.2 ({retry:?}*1.2)")]
    RenewNotAboveRetry { renew: Duration, retry: Duration },
    #[error("the lease duration must be at least one second, got {0:?}")]
    TooShort(Duration),
}

impl Timings {
    /// client-go's checks (`NewLeaderElector`): the leader must give up
    /// before the lease expires, and must get more than one try.
    pub fn validate(&self) -> Result<(), TimingsError> {
        if self.lease_duration <= self.renew_deadline {
            return Err(TimingsError::LeaseNotAboveRenew {
                lease: self.lease_duration,
                renew: self.renew_deadline,
            });
        }
        if self.renew_deadline.as_secs_f64()
            <= self.retry_period.as_secs_f64() * 1.2
        {
            return Err(TimingsError::RenewNotAboveRetry {
                renew: self.renew_deadline,
                retry: self.retry_period,
            });
        }
        // leaseDurationSeconds is a whole number of seconds.
        if self.lease_duration < Duration::from_secs(1) {
            return Err(TimingsError::TooShort(self.lease_duration));
        }
        Ok(())
    }
}

/// What a candidate does with the Lease it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write itself in as the new holder.
    Acquire,
    /// It holds the Lease: write a fresh renewTime.
    Renew,
    /// Someone else holds it until then; try again later.
    Wait(DateTime<Utc>),
}

// ANCHOR: decide
/// The decision of `me` about `lease` (`None`: there is no Lease yet) at
/// `now`. A Lease whose holder last renewed it more than its
/// `leaseDurationSeconds` ago (or `timings.lease_duration` when it says
/// none) has expired and is free, as is one without a holder.
pub fn decide(
    lease: Option<&LeaseSpec>,
    now: DateTime<Utc>,
    me: &str,
    timings: &Timings,
) -> Decision {
    // EXERCISE: lab05-leader-acquire
    let Some(spec) = lease else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == me {
        return Decision::Renew;
    }
    let Some(MicroTime(renewed)) = spec.renew_time else {
        return Decision::Acquire;
    };
    let duration = match spec.lease_duration_seconds {
        Some(seconds) => chrono::Duration::seconds(i64::from(seconds)),
        None => chrono::Duration::from_std(timings.lease_duration)
            .unwrap_or(chrono::Duration::MAX),
    };
    let expires = renewed + duration;
    if expires < now {
        Decision::Acquire
    } else {
        Decision::Wait(expires)
    }
    // EXERCISE_END: lab05-leader-acquire
}
// ANCHOR_END: decide

/// Which Lease the candidates compete for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRef {
    pub namespace: String,
    pub name: String,
}

impl LeaseRef {
    pub fn new(namespace: &str, name: &str) -> LeaseRef {
        LeaseRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// The Lease `me` writes on `decision` (Acquire or Renew) over `current`
/// (the Lease read, kept with its resourceVersion so that the write is a
/// compare-and-swap). A new holder bumps `leaseTransitions` and sets
/// `acquireTime`; a renewal keeps both.
pub fn next_lease(
    at: &LeaseRef,
    current: Option<&Lease>,
    decision: &Decision,
    me: &str,
    now: DateTime<Utc>,
    timings: &Timings,
) -> Lease {
    let mut lease = current.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(at.name.clone()),
            namespace: Some(at.namespace.clone()),
            ..Default::default()
        },
        spec: None,
    });
    let old = lease.spec.take().unwrap_or_default();
    let renewing = *decision == Decision::Renew;
    let transitions = old.lease_transitions.unwrap_or(0);
    let had_holder = current.is_some()
        && !old
            .holder_identity
            .as_deref()
            .unwrap_or_default()
            .is_empty();
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(
            i32::try_from(timings.lease_duration.as_secs()).unwrap_or(i32::MAX),
        ),
        acquire_time: if renewing {
            old.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        // client-go counts a change of holder, not the first holder of a
        // Lease it creates, nor a Lease released (holder "") and taken.
        lease_transitions: Some(if renewing || !had_holder {
            transitions
        } else {
            transitions + 1
        }),
        ..old
    });
    lease
}

/// Tells the leader's work whether it still leads.
#[derive(Debug)]
pub struct Leading {
    leading: AtomicBool,
    lock: Mutex<()>,
    lost: Condvar,
}

impl Leading {
    fn new() -> Leading {
        Leading {
            leading: AtomicBool::new(true),
            lock: Mutex::new(()),
            lost: Condvar::new(),
        }
    }

    /// False once leadership is lost or the elector was told to stop:
    /// the work must stop acting (kube-scheduler exits).
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Sleeps `duration` or until leadership is lost; whether it still
    /// leads.
    pub fn sleep(&self, duration: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _unused = self
            .lost
            .wait_timeout_while(guard, duration, |_| self.is_leading())
            .unwrap_or_else(|e| e.into_inner());
        self.is_leading()
    }

    fn lose(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.leading.store(false, Ordering::SeqCst);
        self.lost.notify_all();
    }
}

/// Why one attempt failed (the elector retries; these are for its log).
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: ClientError,
    },
    #[error("lease {0} is held by {1} until {2}")]
    Held(String, String, DateTime<Utc>),
}

/// One candidate for one Lease.
#[derive(Debug)]
pub struct LeaderElector {
    client: Client,
    lease: LeaseRef,
    identity: String,
    timings: Timings,
    release_on_cancel: bool,
}

impl LeaderElector {
    /// A candidate named `identity` (kube-scheduler uses
    /// `<hostname>_<uuid>`) for `lease`.
    pub fn new(
        client: Client,
        lease: LeaseRef,
        identity: &str,
        timings: Timings,
    ) -> Result<LeaderElector, TimingsError> {
        timings.validate()?;
        Ok(LeaderElector {
            client,
            lease,
            identity: identity.to_string(),
            timings,
            release_on_cancel: false,
        })
    }

    /// On a clean stop, give the Lease up (holder "", 1 s) so that a
    /// standby takes over at once, as client-go's `ReleaseOnCancel`.
    pub fn release_on_cancel(mut self, release: bool) -> LeaderElector {
        self.release_on_cancel = release;
        self
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One read-decide-write (client-go's `tryAcquireOrRenew`): Ok when
    /// `me` holds the Lease afterwards.
    pub fn try_acquire_or_renew(&self) -> Result<(), AttemptError> {
        let api = |source| AttemptError::Api {
            namespace: self.lease.namespace.clone(),
            name: self.lease.name.clone(),
            source,
        };
        let ns = Some(self.lease.namespace.as_str());
        let current = match self.client.get::<Lease>(ns, &self.lease.name) {
            Ok(lease) => Some(lease),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(api(e)),
        };
        let now = Utc::now();
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            now,
            &self.identity,
            &self.timings,
        );
        if let Decision::Wait(until) = decision {
            let holder = current
                .as_ref()
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default();
            let name = format!("{}/{}", self.lease.namespace, self.lease.name);
            return Err(AttemptError::Held(name, holder, until));
        }
        let next = next_lease(
            &self.lease,
            current.as_ref(),
            &decision,
            &self.identity,
            now,
            &self.timings,
        );
        let written = match current {
            None => self.client.create(ns, &next),
            Some(_) => self.client.replace(ns, &self.lease.name, &next),
        };
        written.map(|_| ()).map_err(api)
    }

    /// Gives the Lease up if it still holds it.
    fn release(&self) {
        let ns = Some(self.lease.namespace.as_str());
        let Ok(mut lease) = self.client.get::<Lease>(ns, &self.lease.name)
        else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let now = MicroTime(Utc::now());
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        let _ = self.client.replace(ns, &self.lease.name, &lease);
    }

    /// Sleeps about `period` (client-go jitters the retry period by up
    /// to 1.2× so that candidates do not march in step), or less when
    /// `stop` is raised.
    fn pause(stop: &AtomicBool, period: Duration) {
        let jitter = 1.0 + 0.2 * random_fraction();
        let end = std::time::Instant::now() + period.mul_f64(jitter);
        while !stop.load(Ordering::SeqCst) {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Waits for the Lease (until `stop`), then runs `lead` while a
    /// thread of its own renews the Lease. `lead` must return once
    /// [`Leading::is_leading`] turns false: leadership lost (no renewal
    /// within the renew deadline) or `stop` raised. `None` when stopped
    /// before it ever led.
    pub fn run<R>(
        &self,
        stop: &AtomicBool,
        lead: impl FnOnce(&Leading) -> R,
    ) -> Option<R> {
        let mut last_error = String::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            match self.try_acquire_or_renew() {
                Ok(()) => break,
                Err(e) => {
                    // Say each new reason once, not every 2 s.
                    let text = match &e {
                        AttemptError::Held(name, holder, _) => {
                            format!("lease {name} is held by {holder}")
                        }
                        other => other.to_string(),
                    };
                    if text != last_error {
                        eprintln!(
                            "leader election ({}): {text}",
                            self.identity
                        );
                        last_error = text;
                    }
                }
            }
            Self::pause(stop, self.timings.retry_period);
        }
        eprintln!(
            "leader election ({}): acquired lease {}/{}",
            self.identity, self.lease.namespace, self.lease.name
        );
        let leading = Leading::new();
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| self.renew_loop(stop, &done, &leading));
            let result = lead(&leading);
            done.store(true, Ordering::SeqCst);
            result
        });
        leading.lose();
        if self.release_on_cancel {
            self.release();
        }
        Some(result)
    }

    /// Renews every retry period; a renewal that has not succeeded
    /// within the renew deadline since the last good one ends the
    /// leadership.
    // ANCHOR: renew
    fn renew_loop(
        &self,
        stop: &AtomicBool,
        done: &AtomicBool,
        leading: &Leading,
    ) {
        let mut renewed = std::time::Instant::now();
        let halt =
            || stop.load(Ordering::SeqCst) || done.load(Ordering::SeqCst);
        loop {
            // Wake for `done` as well as `stop`.
            let end = std::time::Instant::now() + self.timings.retry_period;
            while !halt() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            if halt() {
                leading.lose();
                return;
            }
            match self.try_acquire_or_renew() {
                Ok(()) => renewed = std::time::Instant::now(),
                Err(e) => {
                    eprintln!(
                        "leader election ({}): renew failed: {e}",
                        self.identity
                    );
                    if renewed.elapsed() >= self.timings.renew_deadline {
                        let lease = format!(
                            "{}/{}",
                            self.lease.namespace, self.lease.name
                        );
                        eprintln!(
                            "leader election ({}): failed to renew lease \
                             {lease} within {:?}: leading lost",
                            self.identity, self.timings.renew_deadline
                        );
                        leading.lose();
                        return;
                    }
                }
            }
        }
    }
    // ANCHOR_END: renew
}

/// A number in [0, 1) for the jitter.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_checked_as_client_go_does() {
        assert!(Timings::default().validate().is_ok());
        let t = Timings {
            lease_duration: Duration::from_secs(10),
            ..Timings::default()
        };
        assert!(t.validate().is_err());
        let t = Timings {
            retry_period: Duration::from_secs(9),
            ..Timings::default()
        };
        assert!(t.validate().is_err());
    }

    #[test]
    fn a_new_holder_counts_a_transition_and_a_renewal_does_not() {
        let at = LeaseRef::new("kube-system", "x");
        let t0 = Utc::now();
        let t = Timings::default();
        let first = next_lease(&at, None, &Decision::Acquire, "a", t0, &t);
        let s = first.spec.as_ref().unwrap();
        assert_eq!(s.lease_transitions, Some(0));
        assert_eq!(s.lease_duration_seconds, Some(15));
        let later = t0 + chrono::Duration::seconds(2);
        let renewed =
            next_lease(&at, Some(&first), &Decision::Renew, "a", later, &t);
        let s = renewed.spec.as_ref().unwrap();
        assert_eq!(s.acquire_time, Some(MicroTime(t0)));
        assert_eq!(s.renew_time, Some(MicroTime(later)));
        assert_eq!(s.lease_transitions, Some(0));
        let taken =
            next_lease(&at, Some(&renewed), &Decision::Acquire, "b", later, &t);
        let s = taken.spec.as_ref().unwrap();
        assert_eq!(s.holder_identity.as_deref(), Some("b"));
        assert_eq!(s.lease_transitions, Some(1));
        assert_eq!(s.acquire_time, Some(MicroTime(later)));
    }
}
