//! The `ch01` program end to end: what a reader types, what they see.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;
use std::time::Duration;

use assert_cmd::Command;
use lab01::probe::{require, Privilege};

fn ch01() -> Command {
    Command::cargo_bin("ch01").expect("the ch01 binary")
}

fn root() -> bool {
    require(Privilege::Root)
}

fn rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ch01-test-rootfs");
        lab01::RootfsBuilder::new()
            .build_once(&dir)
            .expect("build rootfs");
        dir
    })
}

/// Cgroups that a ch01 process with this pid left behind.
fn leftovers_of(pid: u32) -> Vec<PathBuf> {
    lab01::cgroup::find_leftovers(&format!("kubelings-{pid}-"))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_memory_value_is_named() {
    let out = ch01()
        .args(["run", "--memory", "64X", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr_of(&out));
}

#[test]
fn unknown_flag_is_rejected() {
    let out = ch01()
        .args(["run", "--bogus", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("unexpected argument '--bogus'"));
}

#[test]
fn exit_code_propagates() {
    if !root() {
        return;
    }
    ch01()
        .args([
            "run",
            "--hostname",
            "kubia",
            "--",
            "sh",
            "-c",
            "hostname; exit 3",
        ])
        .assert()
        .code(3)
        .stdout("kubia\n");
}

#[test]
fn missing_command_is_named() {
    if !root() {
        return;
    }
    let out = ch01()
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs())
        .args(["--", "kubectl-not-here"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(127));
    insta::assert_snapshot!(stderr_of(&out));
}

#[test]
fn oom_kill_is_reported() {
    if !root() {
        return;
    }
    let out = ch01()
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs())
        .args([
            "--memory",
            "16M",
            "--",
            "sh",
            "-c",
            "x=a; while :; do x=$x$x; done",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(137));
    insta::assert_snapshot!(stderr_of(&out));
}

#[test]
fn compare_shows_both_views() {
    if !root() {
        return;
    }
    let out = ch01().arg("compare").output().expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let kernel = regex_escape(kernel.trim());
    insta::with_settings!({filters => vec![
        // The host's column is this machine's own business.
        (r"(?m)^((?:[A-Za-z/][A-Za-z /]{19}| {20}).{42})\S.*$", "$1[host]"),
        // Where the loader and libraries live differs by machine (or busybox needs none).
        (r"(?m)^(/ holds {13}bin dev etc )(?:lib\S* )*", "$1[libraries] "),
        (r"(?m)^(kernel release {6})\S+ *", "$1[kernel]                                  "),
        (kernel.as_str(), "[kernel]"),
    ]}, {
        insta::assert_snapshot!(table);
    });
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn signals_and_kills_leave_nothing() {
    if !root() {
        return;
    }
    // Ctrl-C on ch01: forwarded to the command, which dies of it.
    let bin = assert_cmd::cargo::cargo_bin("ch01");
    let mut child = StdCommand::new(&bin)
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs())
        .args(["--", "sleep", "30"])
        .spawn()
        .expect("spawn ch01");
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGINT,
    )
    .expect("send SIGINT");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "ch01 exits as the command did");
    assert_eq!(leftovers_of(pid), Vec::<PathBuf>::new());

    // A command that kills itself.
    let out = ch01()
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs())
        .args(["--", "sh", "-c", "kill -9 $$"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(137));
    assert!(
        stderr_of(&out).contains("killed by SIGKILL"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn two_hundred_runs_leave_nothing() {
    if !root() {
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("ch01");
    let mut pids = Vec::new();
    for _ in 0..200 {
        let child = StdCommand::new(&bin)
            .arg("run")
            .arg("--rootfs")
            .arg(rootfs())
            .args(["--pids", "8", "--", "true"])
            .spawn()
            .expect("spawn ch01");
        pids.push(child.id());
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success());
    }
    for pid in pids {
        assert_eq!(leftovers_of(pid), Vec::<PathBuf>::new());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains("kubelings"), "{mounts}");
}

#[test]
fn startup_prints_its_table() {
    if !root() {
        return;
    }
    let out = ch01()
        .args(["startup", "--runs", "3", "--skip-vm"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "plain process",
        "namespaces only",
        "ch01 container",
        "runc",
        "VM boot",
    ] {
        assert!(text.contains(row), "no {row} row in:\n{text}");
    }
}
