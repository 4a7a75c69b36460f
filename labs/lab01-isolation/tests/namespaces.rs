//! Self-checks for §1.2: the UTS namespace and the hostname.

mod common;

use lab01::namespaces::{check_hostname, HostnameError, Namespace};

#[test]
fn hostnames_are_dns_labels() {
    let long = "a".repeat(64);
    let cases = [
        "kubia-7d5b",
        "web",
        "0abc",
        "a",
        &long[..63],
        "",
        &long,
        "Kubia",
        "kubia.default",
        "kubia_1",
        "-kubia",
        "kubia-",
        "naïve",
    ];
    let checked: Vec<String> = cases
        .iter()
        .map(|name| {
            let shown = if name.len() > 20 {
                format!("<{} characters>", name.len())
            } else {
                format!("{name:?}")
            };
            match check_hostname(name) {
                Ok(()) => format!("{shown:>17}: ok"),
                Err(e) => format!("{shown:>17}: {e}"),
            }
        })
        .collect();
    insta::assert_snapshot!(checked.join("\n"));
}

#[test]
fn the_first_broken_rule_is_named() {
    // A name breaking several rules is refused for the first one that the
    // order of the variants lists: length before characters before the ends.
    let long_bad = "-".repeat(70);
    assert_eq!(check_hostname(&long_bad), Err(HostnameError::TooLong(70)));
    assert_eq!(
        check_hostname("-A"),
        Err(HostnameError::BadCharacter { ch: 'A', at: 1 })
    );
    assert_eq!(check_hostname("-a-"), Err(HostnameError::BadStart('-')));
    // Characters, not bytes: "é" is one character, at position 2.
    assert_eq!(
        check_hostname("caé"),
        Err(HostnameError::BadCharacter { ch: 'é', at: 2 })
    );
    assert_eq!(
        check_hostname(&"é".repeat(40)),
        Err(HostnameError::BadCharacter { ch: 'é', at: 0 })
    );
}

#[test]
fn container_has_its_own_hostname() {
    if !common::userns() {
        return;
    }
    let host_before = nix::unistd::gethostname().expect("hostname");
    let out = common::run(common::bare(&["hostname"], &[Namespace::Uts]).hostname("kubia-7d5b"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "kubia-7d5b");
    assert_eq!(nix::unistd::gethostname().expect("hostname"), host_before);
}

#[test]
fn a_bad_hostname_stops_the_container() {
    if !common::userns() {
        return;
    }
    let spec = common::bare(&["hostname"], &[Namespace::Uts]).hostname("Not_A_Label");
    match lab01::run_captured(&spec) {
        Err(lab01::Error::Setup { stage, .. }) => assert_eq!(stage, lab01::Stage::Hostname),
        other => panic!("the container started with a bad hostname: {other:?}"),
    }
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
