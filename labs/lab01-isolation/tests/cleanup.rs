//! Nothing outlives a container (§1.5): not its cgroup, not its processes,
//! whether it exits, is OOM-killed, is killed by a signal or is dropped.

mod common;

use lab01::limits::Resources;
use lab01::Container;
use nix::sys::signal::Signal;

fn leftovers() -> Vec<std::path::PathBuf> {
    lab01::cgroup::find_leftovers(&format!("kubelings-{}-", std::process::id()))
}

#[test]
fn nothing_is_left_behind() {
    if !common::root() {
        return;
    }
    let mut pids = Vec::new();
    // Exits normally.
    let mut c = Container::spawn(&common::spec(&["true"])).expect("spawn");
    pids.push(c.pid());
    c.wait().expect("wait");
    // OOM-killed.
    let hog = common::spec(&["sh", "-c", "x=a; while :; do x=$x$x; done"]).resources(Resources {
        memory: Some(16 << 20),
        pids: Some(8),
        ..Resources::default()
    });
    let mut c = Container::spawn(&hog).expect("spawn");
    pids.push(c.pid());
    c.wait().expect("wait");
    // Killed by a signal.
    let mut c = Container::spawn(&common::spec(&["sleep", "30"])).expect("spawn");
    pids.push(c.pid());
    c.signal(Signal::SIGKILL).expect("kill");
    c.wait().expect("wait");
    // Dropped while running (an early return, a panic).
    let c = Container::spawn(&common::spec(&["sleep", "30"])).expect("spawn");
    pids.push(c.pid());
    drop(c);
    // A setup failure.
    let _ = Container::spawn(&common::spec(&["no-such-program"]));

    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there"
        );
    }
    assert_eq!(leftovers(), Vec::<std::path::PathBuf>::new());
}
