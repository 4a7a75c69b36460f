//! What the container may not do: §1.6. No exercise here; these hold the
//! reference to its promises (capabilities, no_new_privs, isolation).

mod common;

#[test]
fn capabilities_are_the_default_set() {
    if !common::root() {
        return;
    }
    let out = common::sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    assert!(out.status.success(), "{out:?}");
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn cannot_mount() {
    if !common::root() {
        return;
    }
    // Without CAP_SYS_ADMIN the kernel answers EPERM, which mount(8)
    // words as "permission denied"; any other failure proves nothing.
    let out = common::sh("mount -t tmpfs none /tmp");
    assert!(!out.status.success(), "mount succeeded: {out:?}");
    assert!(
        out.stderr.to_lowercase().contains("permission denied"),
        "mount failed, but not for want of permission: {out:?}"
    );
}

#[test]
fn cannot_change_the_hostname() {
    if !common::root() {
        return;
    }
    let host = nix::unistd::gethostname().expect("hostname");
    let out = common::sh("hostname evil; hostname");
    assert_eq!(out.stdout.trim(), "kubelings", "{out:?}");
    assert_eq!(nix::unistd::gethostname().expect("hostname"), host);
}

#[test]
fn cannot_see_host_processes_or_files() {
    if !common::root() {
        return;
    }
    // Every process /proc lists, by PID: inside, only the container's few.
    let out = common::sh("for p in /proc/[0-9]*; do echo ${p#/proc/}; done");
    assert!(out.status.success(), "{out:?}");
    let pids: Vec<u32> = out.stdout.lines().filter_map(|l| l.parse().ok()).collect();
    let me = std::process::id();
    assert!(
        !pids.contains(&me),
        "the test's own PID {me} is visible: {pids:?}"
    );
    assert!(
        !pids.is_empty() && pids.len() <= 4 && pids.iter().all(|p| *p < 10),
        "the container sees the host's processes: {pids:?}"
    );
    // The host's home directories are not in the container's root.
    let out = common::sh("ls /root /home 2>&1");
    assert!(out.stdout.contains("No such file"), "{out:?}");
}

#[test]
fn joining_a_mount_namespace_changes_none_of_its_mounts() {
    if !common::root() {
        return;
    }
    use lab01::namespaces::Namespace;
    use lab01::{Container, ContainerSpec};
    let host = common::spec(&["sleep", "30"]);
    let first = Container::spawn(&host).expect("spawn");
    let mountinfo = format!("/proc/{}/mountinfo", first.pid());
    let before = std::fs::read_to_string(&mountinfo).expect("its mounts");
    // A second container in the first one's mount namespace (chapter 3's
    // `exec`), with a PID namespace of its own: it must not mount a /proc
    // of its own there, nor make anything private.
    let mut spec = ContainerSpec::new(["cat", "/etc/marker"])
        .namespaces(&[Namespace::Uts, Namespace::Pid])
        .join(Namespace::Mount, first.namespace_path(Namespace::Mount))
        .timeout(common::TIMEOUT);
    spec.cgroup = false;
    let out = common::run(spec);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "inside the container\n", "{out:?}");
    let after = std::fs::read_to_string(&mountinfo).expect("its mounts");
    assert_eq!(before, after, "the joined namespace's mounts changed");
}
