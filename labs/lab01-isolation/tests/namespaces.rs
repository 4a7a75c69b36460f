//! Self-checks for §1.2: the UTS namespace and the hostname.

mod common;

#[test]
fn container_has_its_own_hostname() {
    if !common::root() {
        return;
    }
    let host_before = nix::unistd::gethostname().expect("hostname");
    let out = common::run(common::spec(&["hostname"]).hostname("kubia-7d5b"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "kubia-7d5b");
    assert_eq!(nix::unistd::gethostname().expect("hostname"), host_before);
}

#[test]
fn namespaces_differ_from_the_host() {
    if !common::root() {
        return;
    }
    // Each namespace is an inode; a new one has a new number.
    let script =
        "for n in cgroup ipc mnt net pid uts; do echo $n $(readlink /proc/self/ns/$n); done";
    let out = common::sh(script);
    assert!(out.status.success(), "{out:?}");
    for line in out.stdout.lines() {
        let (name, inside) = line.split_once(' ').expect("name and link");
        let host = std::fs::read_link(format!("/proc/self/ns/{name}")).expect("host ns");
        assert_ne!(
            inside,
            host.to_string_lossy(),
            "namespace {name} is the host's"
        );
    }
    assert_eq!(out.stdout.lines().count(), 6);
}
