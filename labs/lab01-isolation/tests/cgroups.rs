//! Self-checks for §1.4: memory, process and CPU limits through cgroups.
//! The settings are plain data (checked anywhere); the limits are then
//! proven on a real container (root).

mod common;

use std::time::{Duration, Instant};

use lab01::cgroup::{cpu_settings, memory_settings, pids_settings, Version};
use lab01::limits::{parse_cpus, Resources};
use lab01::{Container, ExitStatus};
use nix::sys::signal::Signal;

fn show(settings: Vec<lab01::cgroup::Setting>) -> String {
    settings
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn memory_settings_for_both_versions() {
    let v1 = show(memory_settings(Version::V1, 64 << 20));
    let v2 = show(memory_settings(Version::V2, 64 << 20));
    insta::assert_snapshot!(format!("v1:\n{v1}\nv2:\n{v2}"));
}

#[test]
fn pids_settings_for_both_versions() {
    let v1 = show(pids_settings(Version::V1, 32));
    let v2 = show(pids_settings(Version::V2, 32));
    insta::assert_snapshot!(format!("v1:\n{v1}\nv2:\n{v2}"));
}

#[test]
fn cpu_settings_for_both_versions() {
    let quota = parse_cpus("0.25").expect("parse");
    let v1 = show(cpu_settings(Version::V1, quota));
    let v2 = show(cpu_settings(Version::V2, quota));
    insta::assert_snapshot!(format!("v1:\n{v1}\nv2:\n{v2}"));
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
    // The string doubles until it no longer fits in 32 MiB.
    let spec = common::spec(&["sh", "-c", "x=a; while :; do x=$x$x; done"]).resources(limits);
    let out = common::run(spec);
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
    let out = common::run(common::spec(&["sh", "-c", "echo fine"]).resources(limits));
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
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
    let spec = common::spec(&["sh", "-c", "b() { b | b & }; b; sleep 30"]).resources(limits);
    let mut bomb = Container::spawn(&spec).expect("spawn");
    let cgroup = bomb.cgroup().expect("a container of root has a cgroup");
    let max = std::fs::read_to_string(cgroup.file("pids", "pids.max")).expect("pids.max");
    assert_eq!(max.trim(), "24");
    let mut peak = 0;
    let until = Instant::now() + Duration::from_millis(700);
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
    let spec = common::spec(&["sh", "-c", "while :; do :; done"]).resources(limits);
    let mut spinner = Container::spawn(&spec).expect("spawn");
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
