//! Self-checks for §1.3: pivot_root into a root filesystem of our own.

mod common;

use lab01::namespaces::Namespace;
use lab01::Output;

/// A shell on the test rootfs, in a new mount namespace: all pivot_root
/// needs. Without root, the user namespace that stands in for root lets the
/// rootfs's /proc and /sys be mounted only for a PID and a network
/// namespace of the container's own.
fn sh(script: &str) -> Output {
    let namespaces: &[Namespace] = if nix::unistd::geteuid().is_root() {
        &[Namespace::Mount]
    } else {
        &[Namespace::Mount, Namespace::Pid, Namespace::Net]
    };
    common::run(common::bare(&["sh", "-c", script], namespaces).rootfs(common::rootfs()))
}

#[test]
fn container_sees_only_its_rootfs() {
    if !common::userns() {
        return;
    }
    let out = sh("cat /etc/marker; ls /home /usr/share 2>&1 | head -2");
    assert!(out.status.success(), "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("inside the container"));
    assert!(
        out.stdout.contains("No such file"),
        "host directories are visible: {}",
        out.stdout
    );
}

#[test]
fn the_old_root_is_gone() {
    if !common::userns() {
        return;
    }
    // Mount points as the container sees them; the host's are all absent.
    let out = sh("while read src dst type rest; do echo \"$dst $type\"; done < /proc/self/mounts");
    assert!(out.status.success(), "{out:?}");
    // The root's and the bound devices' filesystem types are the host's
    // (ext4 or tmpfs, devtmpfs or tmpfs): shown by what they are instead.
    // What is mounted beneath /proc masks /proc (the exercise before this
    // one, checked in pid.rs) and depends on the kernel: left out here.
    let mounts: Vec<String> = out
        .stdout
        .lines()
        .filter(|line| !line.starts_with("/proc/"))
        .map(|line| match line.split_once(' ') {
            Some(("/", _)) => "/ <the rootfs directory>".to_string(),
            Some((dev, _)) if dev.starts_with("/dev/") => format!("{dev} <bind of the host's>"),
            _ => line.to_string(),
        })
        .collect();
    insta::assert_snapshot!(mounts.join("\n"));
}

#[test]
fn devices_are_the_harmless_few() {
    if !common::userns() {
        return;
    }
    let out = sh("ls /dev; echo hello > /dev/null && echo written");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["full", "null", "random", "tty", "urandom", "zero", "written"]
    );
}
