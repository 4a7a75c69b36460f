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
