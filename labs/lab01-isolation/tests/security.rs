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
    let out = common::sh("mount -t tmpfs none /tmp");
    assert!(!out.status.success(), "mount succeeded: {out:?}");
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
    let me = std::process::id();
    let out = common::sh(&format!(
        "ls /proc/{me} 2>&1 >/dev/null | head -1; ls /root /home 2>&1 | head -2"
    ));
    assert!(out.stdout.contains("No such file"), "{out:?}");
    assert!(!out.stdout.contains("cmdline"), "{out:?}");
}
