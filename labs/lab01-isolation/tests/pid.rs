//! Self-checks for §1.2: the PID namespace and its own /proc.

mod common;

#[test]
fn command_sees_only_its_own_processes() {
    if !common::root() {
        return;
    }
    let out = common::sh("ps -e -o pid,ppid,comm; echo self: $$");
    assert!(out.status.success(), "{out:?}");
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn proc_is_the_containers() {
    if !common::root() {
        return;
    }
    let out = common::sh("cat /proc/1/comm; ls /proc");
    assert!(out.status.success(), "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("init"));
    // init, sh and ls, never the host's hundreds.
    let pids: Vec<&str> = lines.filter(|l| l.parse::<u32>().is_ok()).collect();
    assert_eq!(
        pids.len(),
        3,
        "the container sees other processes: {pids:?}"
    );
    assert_eq!(&pids[..2], ["1", "2"]);
}
