//! Self-checks for §1.3: pivot_root into a root filesystem of our own.

mod common;

#[test]
fn container_sees_only_its_rootfs() {
    if !common::root() {
        return;
    }
    let out = common::sh("cat /etc/marker; ls /home /usr/share 2>&1 | head -2");
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
    if !common::root() {
        return;
    }
    // Mount points as the container sees them; the host's are all absent.
    let out = common::sh(
        "while read src dst type rest; do echo \"$dst $type\"; done < /proc/self/mounts",
    );
    assert!(out.status.success(), "{out:?}");
    // The root's and the bound devices' filesystem types are the host's
    // (ext4 or tmpfs, devtmpfs or tmpfs): shown by what they are instead.
    let mounts: Vec<String> = out
        .stdout
        .lines()
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
    if !common::root() {
        return;
    }
    let out = common::sh("ls /dev; echo hello > /dev/null && echo written");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["full", "null", "random", "tty", "urandom", "zero", "written"]
    );
}
