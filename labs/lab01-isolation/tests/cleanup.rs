//! Nothing outlives a container (§1.5): not its cgroup, not its processes,
//! whether it exits, is OOM-killed, is killed by a signal or is dropped.

mod common;

use std::time::{Duration, Instant};

use lab01::limits::Resources;
use lab01::{Container, Error};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The cgroups of these containers that still exist. (Other tests of this
/// binary run containers at the same time: only ours count.)
fn leftovers(names: &[String]) -> Vec<std::path::PathBuf> {
    lab01::cgroup::find_leftovers(&format!("kubelings-{}-", std::process::id()))
        .into_iter()
        .filter(|dir| {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            names.iter().any(|n| n == name)
        })
        .collect()
}

#[test]
fn nothing_is_left_behind() {
    if !common::root() {
        return;
    }
    let mut pids = Vec::new();
    let mut names = Vec::new();
    // Exits normally.
    let mut c = Container::spawn(&common::spec(&["true"])).expect("spawn");
    pids.push(c.pid());
    names.push(c.name().to_string());
    c.wait().expect("wait");
    // OOM-killed.
    let hog = common::spec(&["sh", "-c", "x=a; while :; do x=$x$x; done"]).resources(Resources {
        memory: Some(16 << 20),
        pids: Some(8),
        ..Resources::default()
    });
    let mut c = Container::spawn(&hog).expect("spawn");
    pids.push(c.pid());
    names.push(c.name().to_string());
    c.wait().expect("wait");
    // Killed by a signal.
    let mut c = Container::spawn(&common::spec(&["sleep", "30"])).expect("spawn");
    pids.push(c.pid());
    names.push(c.name().to_string());
    c.signal(Signal::SIGKILL).expect("kill");
    c.wait().expect("wait");
    // Dropped while running (an early return, a panic).
    let c = Container::spawn(&common::spec(&["sleep", "30"])).expect("spawn");
    pids.push(c.pid());
    names.push(c.name().to_string());
    drop(c);
    // A setup failure (its cgroup goes the same way as a dropped container's).
    let _ = Container::spawn(&common::spec(&["no-such-program"]));

    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }
    assert_eq!(leftovers(&names), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_container_that_overstays_is_killed_and_named() {
    if !common::root() {
        return;
    }
    let spec = common::spec(&["sleep", "30"]).timeout(Duration::from_millis(300));
    let mut c = Container::spawn(&spec).expect("spawn");
    let pid = c.pid();
    let started = Instant::now();
    let err = c.wait().expect_err("a timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains(c.name()), "{err}");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(
        leftovers(&[c.name().to_string()]),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn a_container_dies_with_the_thread_that_started_it() {
    if !common::root() {
        return;
    }
    let mut spec = common::spec(&["sleep", "30"]);
    // Forgotten below, so it must not leave a cgroup behind.
    spec.cgroup = false;
    let pid = std::thread::spawn(move || {
        let c = Container::spawn(&spec).expect("spawn");
        let pid = c.pid();
        // No Drop: only the kernel's parent-death signal can end it now.
        std::mem::forget(c);
        pid
    })
    .join()
    .expect("the thread");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => break,
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => panic!("init {pid} outlived the thread that started it: {other:?}"),
        }
    }
}
