//! Self-checks for §1.5: init reaps orphans, forwards signals, and the
//! command's exit status reaches the caller.

mod common;

use std::time::Duration;

use lab01::{Container, ExitStatus};
use nix::sys::signal::Signal;

#[test]
fn orphans_are_reaped() {
    if !common::root() {
        return;
    }
    // The subshell exits at once, so `sleep` is re-parented to init; when it
    // exits, only init can reap it.
    let out = common::sh("(sleep 0.1 &); sleep 0.6; ps -e -o stat=,comm=");
    assert!(out.status.success(), "{out:?}");
    assert!(
        !out.stdout.lines().any(|l| l.starts_with('Z')),
        "a zombie is left:\n{}",
        out.stdout
    );
    insta::assert_snapshot!(out.stdout);
}

/// Waits for `c`, and fails if init's reaper panicked: init then falls back
/// to waiting for the command alone, which would pass these tests without it.
fn wait_reaped(c: &mut Container) -> ExitStatus {
    let status = c.wait().expect("wait");
    if let Some(message) = c.reaper_panic() {
        panic!("init's reaper panicked ({message}); init only waited for the command");
    }
    status
}

#[test]
fn exit_code_reaches_the_caller() {
    if !common::root() {
        return;
    }
    let mut c = Container::spawn(&common::spec(&["sh", "-c", "exit 7"])).expect("spawn");
    assert_eq!(wait_reaped(&mut c), ExitStatus::Exited(7));
}

#[test]
fn sigterm_is_forwarded_to_the_command() {
    if !common::root() {
        return;
    }
    let mut c = Container::spawn(&common::spec(&["sleep", "30"])).expect("spawn");
    std::thread::sleep(Duration::from_millis(50));
    c.signal(Signal::SIGTERM).expect("signal");
    assert_eq!(wait_reaped(&mut c), ExitStatus::Signaled(libc::SIGTERM));
}

#[test]
fn a_missing_command_is_named() {
    if !common::root() {
        return;
    }
    let err = Container::spawn(&common::spec(&["no-such-program"])).expect_err("spawn");
    assert_eq!(
        err.to_string(),
        "the command \"no-such-program\" was not found in the container's root filesystem"
    );
}
