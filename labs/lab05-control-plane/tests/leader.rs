//! Leader election (section 5.12): the decision on one Lease, then two
//! candidates against a real API server.

mod support_rel;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use lab05::leader::{decide, Decision, LeaderElector, LeaseRef, Timings};
use support_rel::{Backend, Cluster};

fn spec(
    holder: &str,
    renewed: DateTime<Utc>,
    seconds: Option<i32>,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.into()),
        renew_time: Some(MicroTime(renewed)),
        lease_duration_seconds: seconds,
        ..Default::default()
    }
}

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

#[test]
fn no_lease_or_no_holder_is_acquired() {
    let t = Timings::default();
    let now = Utc::now();
    assert_eq!(decide(None, now, "a", &t), Decision::Acquire);
    let released = spec("", now, Some(1));
    assert_eq!(decide(Some(&released), now, "a", &t), Decision::Acquire);
    let empty = LeaseSpec::default();
    assert_eq!(decide(Some(&empty), now, "a", &t), Decision::Acquire);
}

#[test]
fn my_own_lease_is_renewed_even_late() {
    let t = Timings::default();
    let now = Utc::now();
    let mine = spec("a", now - secs(3), Some(15));
    assert_eq!(decide(Some(&mine), now, "a", &t), Decision::Renew);
    let late = spec("a", now - secs(60), Some(15));
    assert_eq!(decide(Some(&late), now, "a", &t), Decision::Renew);
}

#[test]
fn someone_elses_lease_is_waited_for_until_it_expires() {
    let t = Timings::default();
    let now = Utc::now();
    let fresh = spec("b", now - secs(3), Some(15));
    assert_eq!(
        decide(Some(&fresh), now, "a", &t),
        Decision::Wait(now + secs(12))
    );
    let stale = spec("b", now - secs(16), Some(15));
    assert_eq!(decide(Some(&stale), now, "a", &t), Decision::Acquire);
    // The Lease's own duration counts, not the candidate's.
    let long = spec("b", now - secs(16), Some(40));
    assert_eq!(
        decide(Some(&long), now, "a", &t),
        Decision::Wait(now + secs(24))
    );
    // Without one, the candidate's.
    let unsaid = spec("b", now - secs(10), None);
    assert_eq!(
        decide(Some(&unsaid), now, "a", &t),
        Decision::Wait(now + secs(5))
    );
}

/// Test timings: a lease of 2 s, renewed every 300 ms.
fn quick() -> Timings {
    Timings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(300),
    }
}

fn holder(cluster: &Cluster) -> Option<LeaseSpec> {
    cluster
        .admin()
        .get::<Lease>(Some("kube-system"), "kube-scheduler")
        .ok()
        .and_then(|l| l.spec)
}

/// Polls `cond` every 50 ms for at most `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[test]
fn two_candidates_one_leader_then_the_standby_takes_over() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let at = LeaseRef::new("kube-system", "kube-scheduler");
    let leaders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let stops: Vec<Arc<AtomicBool>> =
        (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let threads: Vec<_> = ["a", "b"]
        .iter()
        .zip(&stops)
        .map(|(name, stop)| {
            let elector =
                LeaderElector::new(cluster.admin(), at.clone(), name, quick())
                    .unwrap();
            let (stop, leaders, most) =
                (stop.clone(), leaders.clone(), most.clone());
            std::thread::spawn(move || {
                elector.run(&stop, |leading| {
                    let now = leaders.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    while leading.sleep(Duration::from_millis(50)) {}
                    leaders.fetch_sub(1, Ordering::SeqCst);
                })
            })
        })
        .collect();
    assert!(
        wait_for(Duration::from_secs(10), || leaders.load(Ordering::SeqCst)
            == 1),
        "one candidate leads within 10 s"
    );
    // Several lease durations: still exactly one.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
    let first = holder(&cluster).unwrap();
    let first_name = first.holder_identity.clone().unwrap();
    assert_eq!(first.lease_transitions, Some(0));
    assert_eq!(first.lease_duration_seconds, Some(2));
    assert!(first.renew_time > first.acquire_time, "the leader renews");

    // The leader stops (without releasing, as if it crashed).
    let (index, other) = if first_name == "a" {
        (0, "b")
    } else {
        (1, "a")
    };
    stops[index].store(true, Ordering::SeqCst);
    let stopped_at = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || {
        holder(&cluster).and_then(|s| s.holder_identity).as_deref()
            == Some(other)
    }));
    let waited = stopped_at.elapsed();
    // Not before the lease expired (minus the last renewal's age).
    assert!(
        waited >= Duration::from_millis(1500),
        "took over after {waited:?}"
    );
    let second = holder(&cluster).unwrap();
    assert_eq!(second.lease_transitions, Some(1));
    assert!(second.acquire_time > first.acquire_time);
    assert!(wait_for(Duration::from_secs(5), || leaders
        .load(Ordering::SeqCst)
        == 1));
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two leaders at once");

    for stop in &stops {
        stop.store(true, Ordering::SeqCst);
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(leaders.load(Ordering::SeqCst), 0);
}

#[test]
fn a_released_lease_is_taken_at_once() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let at = LeaseRef::new("kube-system", "kube-scheduler");
    let slow = Timings {
        lease_duration: Duration::from_secs(30),
        renew_deadline: Duration::from_secs(20),
        retry_period: Duration::from_millis(300),
    };
    let a = LeaderElector::new(cluster.admin(), at.clone(), "a", slow)
        .unwrap()
        .release_on_cancel(true);
    let stop = AtomicBool::new(false);
    // Leads, then returns on its own: a clean stop.
    assert_eq!(a.run(&stop, |leading| leading.is_leading()), Some(true));
    let b = LeaderElector::new(cluster.admin(), at, "b", slow).unwrap();
    let started = Instant::now();
    let timeout = Arc::new(AtomicBool::new(false));
    let guard = {
        let timeout = timeout.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            timeout.store(true, Ordering::SeqCst);
        })
    };
    assert_eq!(b.run(&timeout, |_| "b leads"), Some("b leads"));
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(guard);
}

#[test]
fn a_leader_that_cannot_renew_stops_leading() {
    let cluster = Cluster::start(Backend::Embedded).unwrap();
    let at = LeaseRef::new("kube-system", "kube-scheduler");
    let a = LeaderElector::new(cluster.admin(), at, "a", quick()).unwrap();
    let stop = AtomicBool::new(false);
    let outcome = a.run(&stop, |leading| {
        // Someone takes the Lease away by force: a's renewals conflict.
        let admin = cluster.admin();
        let mut lease: Lease =
            admin.get(Some("kube-system"), "kube-scheduler").unwrap();
        let spec = lease.spec.as_mut().unwrap();
        spec.holder_identity = Some("intruder".into());
        spec.lease_duration_seconds = Some(60);
        spec.renew_time = Some(MicroTime(Utc::now()));
        admin
            .replace(Some("kube-system"), "kube-scheduler", &lease)
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while leading.sleep(Duration::from_millis(50)) && Instant::now() < end {
        }
        leading.is_leading()
    });
    assert_eq!(
        outcome,
        Some(false),
        "leading is lost within the renew deadline"
    );
}
