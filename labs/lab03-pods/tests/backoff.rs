//! Restarts: the policy's decision and the kubelet's back-off, on a clock
//! the tests move by hand.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lab03::backoff::{
    crash_loop_message, crash_loop_waiting, go_duration, key, pod_label, should_restart, Backoff,
    BackoffPolicy, Clock, FakeClock, Verdict, CRASH_LOOP_BACK_OFF,
};
use lab03::phase::RestartPolicy;

const SECOND: Duration = Duration::from_secs(1);

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn table() -> (Arc<FakeClock>, Backoff<Arc<FakeClock>>) {
    let clock = Arc::new(FakeClock::at(start()));
    (clock.clone(), Backoff::new(BackoffPolicy::KUBELET, clock))
}

#[test]
fn restart_follows_the_policy() {
    use RestartPolicy::*;
    for (policy, code, want) in [
        (Always, 0, true),
        (Always, 1, true),
        (Always, 137, true),
        (OnFailure, 0, false),
        (OnFailure, 1, true),
        (OnFailure, -1, true),
        (Never, 0, false),
        (Never, 2, false),
    ] {
        assert_eq!(should_restart(policy, code), want, "{policy:?} exit {code}");
    }
}

#[test]
fn delays_double_up_to_the_cap() {
    let (_, mut b) = table();
    let k = key("uid-1", "web");
    let delays: Vec<u64> = (0..9).map(|_| b.next(&k).as_secs()).collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300, 300]);
    // Another container has its own.
    assert_eq!(b.next(&key("uid-1", "sidecar")), 10 * SECOND);
}

#[test]
fn first_exit_restarts_at_once_then_waits() {
    let (clock, mut b) = table();
    let k = key("uid-1", "web");
    let mut waits = Vec::new();
    for _ in 0..8 {
        // The container runs one second and exits.
        clock.advance(SECOND);
        let exited = clock.now();
        let mut waited = Duration::ZERO;
        loop {
            match b.check(&k, exited) {
                Verdict::Restart => break,
                Verdict::Wait { delay, remaining } => {
                    assert_eq!(delay - remaining, waited, "remaining counts down");
                    clock.advance(SECOND);
                    waited += SECOND;
                }
            }
            assert!(waited < 400 * SECOND, "never restarted");
        }
        waits.push(waited.as_secs());
    }
    assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
}

#[test]
fn ten_minutes_of_running_resets_it() {
    let (clock, mut b) = table();
    let k = key("uid-1", "web");
    for _ in 0..5 {
        b.next(&k);
    }
    assert_eq!(b.delay(&k), 160 * SECOND);
    // Up for exactly ten minutes since the last restart: not yet reset.
    clock.advance(600 * SECOND);
    assert_eq!(b.next(&k), 300 * SECOND);
    // Up for longer: the back-off starts again, at once after this exit.
    clock.advance(601 * SECOND);
    assert_eq!(b.check(&k, clock.now()), Verdict::Restart);
    assert_eq!(b.delay(&k), 10 * SECOND);
}

#[test]
fn the_policy_is_configurable() {
    let clock = Arc::new(FakeClock::at(start()));
    let fast = BackoffPolicy {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(30),
    };
    let mut b = Backoff::new(fast, clock.clone());
    let delays: Vec<u128> = (0..5).map(|_| b.next("k").as_millis()).collect();
    assert_eq!(delays, [5, 10, 20, 30, 30]);
    assert_eq!(fast.reset_after(), Duration::from_millis(60));
    clock.advance(Duration::from_millis(61));
    assert_eq!(b.next("k"), Duration::from_millis(5));
}

#[test]
fn forgotten_and_collected_entries() {
    let (clock, mut b) = table();
    b.next("a");
    b.next("b");
    b.forget("a");
    assert_eq!(b.entry("a"), None);
    clock.advance(601 * SECOND);
    b.next("c");
    b.collect_garbage();
    assert_eq!(b.entry("b"), None);
    assert!(b.entry("c").is_some());
}

#[test]
fn go_prints_durations_so() {
    for (d, want) in [
        (Duration::ZERO, "0s"),
        (10 * SECOND, "10s"),
        (80 * SECOND, "1m20s"),
        (160 * SECOND, "2m40s"),
        (300 * SECOND, "5m0s"),
        (3700 * SECOND, "1h1m40s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_micros(1500), "1.5ms"),
        (Duration::from_nanos(42), "42ns"),
    ] {
        assert_eq!(go_duration(d), want);
    }
}

#[test]
fn crash_loop_messages() {
    let (clock, mut b) = table();
    let pod = pod_label("kubia", "default", "1a2b");
    let k = key("1a2b", "kubia");
    let mut out = String::new();
    for exit in 1..=7 {
        // The container runs one second, then exits.
        clock.advance(SECOND);
        let exited = clock.now();
        let mut message = None;
        // The kubelet's sync loop looks again every second or so.
        while let Verdict::Wait { delay, .. } = b.check(&k, exited) {
            message = Some(crash_loop_message(delay, "kubia", &pod));
            clock.advance(SECOND);
            let waited = clock.now().duration_since(exited).unwrap_or_default();
            assert!(waited <= 300 * SECOND, "waits past the cap: {delay:?}");
        }
        let waited = clock.now().duration_since(exited).unwrap_or_default();
        match message {
            None => out.push_str(&format!("exit {exit}: restarted at once\n")),
            Some(m) => out.push_str(&format!(
                "exit {exit}: {CRASH_LOOP_BACK_OFF}, restarted after {}\n  {m}\n",
                go_duration(waited)
            )),
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn the_waiting_state_names_the_reason() {
    let w = crash_loop_waiting(40 * SECOND, "envoy", &pod_label("web", "default", "u1"));
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        w.message.as_deref(),
        Some("back-off 40s restarting failed container=envoy pod=web_default(u1)")
    );
}
