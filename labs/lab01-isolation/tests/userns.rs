//! The user namespace (§1.2): root inside, the caller outside.

mod common;

use lab01::probe::{require, Privilege};

#[test]
fn root_inside_is_the_caller_outside() {
    if !require(Privilege::Userns) {
        return;
    }
    let spec = common::spec(&["sh", "-c", "id -u; cat /proc/self/uid_map"]).user_namespace(true);
    let out = common::run(spec);
    assert!(out.status.success(), "{out:?}");
    let uid = nix::unistd::getuid();
    let fields: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
    assert_eq!(fields, ["0", "0", &uid.to_string(), "1"]);
}

/// §1.2 without root: init sets the hostname and mounts /proc in a user
/// namespace the runtime adds by itself. (`kubelings check` runs it as
/// root; run the test binary as an ordinary user to see the other path.)
#[test]
fn an_ordinary_user_gets_a_container_too() {
    if !require(Privilege::Userns) {
        return;
    }
    use lab01::namespaces::Namespace;
    let mut spec = common::bare(
        &[
            "sh",
            "-c",
            "hostname; cat /proc/1/comm; id -u; cat /proc/self/uid_map",
        ],
        &[Namespace::Uts, Namespace::Pid, Namespace::Mount],
    );
    spec.hostname = Some("ordinary".into());
    let out = common::run(spec);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..3], ["ordinary", "init", "0"], "{out:?}");
    let uid = nix::unistd::getuid();
    if !uid.is_root() {
        let map: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(map, ["0", &uid.to_string(), "1"], "{out:?}");
    }
}
