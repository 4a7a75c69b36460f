//! Self-checks for §1.4: memory, process and CPU limits through cgroups.
//! The settings are plain data (checked anywhere); the limits are then
//! proven on a real container (root).

mod common;

use std::time::{Duration, Instant};

use lab01::cgroup::{settings, Setting, Version};
use lab01::limits::{parse_cpus, Resources};
use lab01::namespaces::Namespace;
use lab01::{Container, ContainerSpec, ExitStatus};
use nix::sys::signal::Signal;

fn show(settings: Vec<Setting>) -> String {
    settings
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn both(resources: Resources) -> String {
    let v1 = show(settings(Version::V1, &resources));
    let v2 = show(settings(Version::V2, &resources));
    format!("v1:\n{v1}\nv2:\n{v2}")
}

#[test]
fn memory_settings_for_both_versions() {
    insta::assert_snapshot!(both(Resources {
        memory: Some(64 << 20),
        ..Resources::default()
    }));
}

#[test]
fn pids_settings_for_both_versions() {
    insta::assert_snapshot!(both(Resources {
        pids: Some(32),
        ..Resources::default()
    }));
}

#[test]
fn cpu_settings_for_both_versions() {
    insta::assert_snapshot!(both(Resources {
        cpu: Some(parse_cpus("0.25").expect("parse")),
        ..Resources::default()
    }));
}

#[test]
fn all_limits_together_in_order() {
    let all = Resources {
        memory: Some(1 << 30),
        pids: Some(100),
        cpu: Some(parse_cpus("1.5").expect("parse")),
    };
    let files = |v| -> Vec<&str> { settings(v, &all).iter().map(|s| s.file).collect() };
    assert_eq!(
        files(Version::V1),
        [
            "memory.limit_in_bytes",
            "pids.max",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us"
        ]
    );
    assert_eq!(
        files(Version::V2),
        ["memory.max", "memory.swap.max", "pids.max", "cpu.max"]
    );
    assert_eq!(
        settings(Version::V2, &all).last().map(|s| s.value.as_str()),
        Some("150000 100000")
    );
    // No limit, nothing to write.
    assert_eq!(settings(Version::V1, &Resources::default()), []);
    assert_eq!(settings(Version::V2, &Resources::default()), []);
}

/// A container in a cgroup with `limits`. Its own PID namespace, so that
/// killing its init ends everything in it (a fork bomb included); the
/// mount namespace goes with it, for the PID namespace's own /proc.
fn limited(script: &str, limits: Resources) -> ContainerSpec {
    let mut spec = common::bare(&["sh", "-c", script], &[Namespace::Pid, Namespace::Mount]);
    spec.cgroup = true;
    spec.resources(limits)
}

#[test]
fn memory_hog_is_oom_killed() {
    if !common::root() {
        return;
    }
    let limits = Resources {
        memory: Some(32 << 20),
        ..Resources::default()
    };
    // The string doubles until it no longer fits in 32 MiB. Not forever: up
    // to 64 MiB, so that without a limit it ends (in success: a failure here).
    let script = "x=a; i=0; while [ $i -lt 26 ]; do x=$x$x; i=$((i+1)); done";
    let out = common::run(limited(script, limits));
    assert_eq!(out.status, ExitStatus::OomKilled, "{out:?}");
}

#[test]
fn within_the_limit_nothing_happens() {
    if !common::root() {
        return;
    }
    let limits = Resources {
        memory: Some(64 << 20),
        ..Resources::default()
    };
    // A 4 MiB string (a few times that while it is built): well within
    // 64 MiB, and too much for a limit written in the wrong unit.
    let spec = limited(
        "sleep 0.2; x=a; i=0; while [ $i -lt 22 ]; do x=$x$x; i=$((i+1)); done; \
         [ ${#x} -eq 4194304 ]",
        limits,
    );
    let mut container = Container::spawn(&spec).expect("spawn");
    let cgroup = container
        .cgroup()
        .expect("a container of root has a cgroup");
    let limit = cgroup.memory_limit();
    let status = container.wait().expect("wait");
    assert_eq!(limit, Some(64 << 20), "the cgroup's memory limit");
    assert_eq!(status, ExitStatus::Exited(0));
}

#[test]
fn fork_bomb_is_contained() {
    if !common::root() {
        return;
    }
    let limits = Resources {
        pids: Some(24),
        ..Resources::default()
    };
    // The pause lets the test check the limit before the bomb goes off.
    let spec = limited("sleep 0.5; b() { b | b & }; b; sleep 30", limits);
    let mut bomb = Container::spawn(&spec).expect("spawn");
    let cgroup = bomb.cgroup().expect("a container of root has a cgroup");
    let max = std::fs::read_to_string(cgroup.file("pids", "pids.max")).unwrap_or_default();
    if max.trim() != "24" {
        bomb.signal(Signal::SIGKILL).expect("kill");
        let _ = bomb.wait();
        panic!("pids.max is {max:?}, not 24: no fork bomb without a limit");
    }
    let mut peak = 0;
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        let now = std::fs::read_to_string(cgroup.file("pids", "pids.current")).unwrap_or_default();
        peak = peak.max(now.trim().parse::<u64>().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = std::fs::read_to_string(cgroup.file("pids", "pids.events")).unwrap_or_default();
    bomb.signal(Signal::SIGKILL).expect("kill");
    let status = bomb.wait().expect("wait");
    assert!(peak <= 24, "the bomb reached {peak} processes");
    // The kernel counts every fork it refused.
    let refused: u64 = events
        .trim()
        .strip_prefix("max ")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused > 0, "no fork was refused: {events}");
    assert!(!status.success());
}

#[test]
fn cpu_quota_is_enforced() {
    if !common::root() {
        return;
    }
    let limits = Resources {
        cpu: Some(parse_cpus("0.2").expect("parse")),
        ..Resources::default()
    };
    let mut spinner = Container::spawn(&limited("while :; do :; done", limits)).expect("spawn");
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let used = spinner
        .cgroup()
        .and_then(|c| c.cpu_usage())
        .expect("cpu usage");
    let wall = start.elapsed();
    spinner.signal(Signal::SIGKILL).expect("kill");
    spinner.wait().expect("wait");
    let share = used.as_secs_f64() / wall.as_secs_f64();
    println!("used {used:?} of CPU in {wall:?} of wall time: {share:.2} CPUs");
    // A spinning shell takes a whole CPU unless the quota holds it to ~0.2.
    assert!(share < 0.35, "the container used {share:.2} CPUs");
    assert!(share > 0.05, "the container barely ran ({share:.2} CPUs)");
}
