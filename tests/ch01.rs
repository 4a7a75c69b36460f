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
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("ch01-test-rootfs");
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
fn bad_cpus_values_are_named() {
    // Our parser's reasons, named with the flag; exit 2, as any usage error.
    let mut refusals = String::new();
    for value in ["half", "0", "2000"] {
        let out = ch01()
            .args(["run", "--cpus", value, "--", "true"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        refusals +=
            &format!("$ ch01 run --cpus {value} -- true\n{}", stderr_of(&out));
    }
    insta::assert_snapshot!(refusals);
}

#[test]
fn a_missing_rootfs_is_named() {
    if !root() {
        return;
    }
    let out = ch01()
        .args(["run", "--rootfs", "/no/such/rootfs", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(125), "the runtime's own failure");
    assert_eq!(
        stderr_of(&out),
        "ch01: --rootfs /no/such/rootfs: no such directory\n"
    );
}

#[test]
fn hostname_is_the_containers_own() {
    if !root() {
        return;
    }
    let out = ch01()
        .args(["run", "--hostname", "kubia", "--", "hostname"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let inside = String::from_utf8_lossy(&out.stdout).into_owned();
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_ne!(inside.trim(), host.trim(), "the host kept its name");
    insta::assert_snapshot!(inside);
}

#[test]
fn userns_makes_the_caller_root_inside() {
    if !require(Privilege::Userns) {
        return;
    }
    let out = ch01()
        .args(["run", "--userns", "--", "id", "-u"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
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
    for line in table.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
    insta::assert_snapshot!(redact_host(&table));
}

/// Column widths of `ch01 compare`: what, in the container, on the host.
const WHAT: usize = 13;
const INSIDE: usize = 40;

/// The table with what differs between machines replaced, after checking
/// that it differs the right way. The container's column stays literal (but
/// for the kernel and its library directories); the host's keeps its shape
/// and says what it must be.
fn redact_host(table: &str) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("osrelease");
    let hostname =
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let number = |text: &str| -> u64 {
        text.parse().unwrap_or_else(|_| panic!("{text:?}"))
    };
    let mask = |text: &str| -> u64 {
        let hex = text
            .split(['(', ')'])
            .nth(1)
            .expect("a mask in parentheses");
        u64::from_str_radix(hex, 16).expect("a hexadecimal mask")
    };
    let mut out = String::new();
    let mut rows = 0;
    let mut below = false;
    for line in table.lines() {
        let chars: Vec<char> = line.chars().collect();
        // The header, and what follows the table's end (an empty line).
        below |= line.is_empty();
        if below || line.starts_with(' ') {
            out += line;
            out += "\n";
            continue;
        }
        let cell = |from: usize, to: usize| -> String {
            chars[from.min(chars.len())..to.min(chars.len())]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        let what = cell(0, WHAT);
        let mut inside = cell(WHAT, WHAT + INSIDE);
        let host = cell(WHAT + INSIDE, chars.len());
        let host = match what.as_str() {
            "kernel" => {
                assert_eq!(inside, kernel.trim(), "the container's kernel");
                assert_eq!(host, kernel.trim(), "the host's kernel");
                inside = "[kernel]".into();
                "[kernel]".into()
            }
            "hostname" => {
                assert_eq!(host, hostname.trim());
                assert_ne!(host, inside);
                "[hostname]".into()
            }
            "PID of shell" => {
                assert_ne!(number(&host), number(&inside));
                "[pid]".into()
            }
            "processes" => {
                assert!(number(&host) > number(&inside), "{line}");
                format!("[N>{inside}]")
            }
            "net devices" => {
                let devices: Vec<&str> = host.split(' ').collect();
                assert!(devices.contains(&"lo"), "{line}");
                if devices.len() > 1 {
                    "lo + host devices".into()
                } else {
                    "lo".into()
                }
            }
            "mounts" => {
                number(&host);
                "[N]".into()
            }
            "/ holds" => {
                // Where the loader and libraries live differs by machine
                // (and busybox needs none).
                let entries: Vec<&str> = inside.split(' ').collect();
                let libraries = entries.iter().any(|e| e.starts_with("lib"));
                let mut kept: Vec<&str> = entries
                    .into_iter()
                    .filter(|e| !e.starts_with("lib"))
                    .collect();
                if libraries {
                    kept.insert(kept.len().min(3), "[lib…]");
                }
                inside = kept.join(" ");
                assert!(host.starts_with("bin "), "{line}");
                "[the host's own /]".into()
            }
            "capabilities" => {
                let (outside, within) = (mask(&host), mask(&inside));
                assert_eq!(
                    outside & within,
                    within,
                    "the host has all the container's"
                );
                assert!(outside.count_ones() > within.count_ones(), "{line}");
                format!("[N>{}] ([mask])", within.count_ones())
            }
            "memory limit" => {
                if host == "none" {
                    host
                } else {
                    "[this cgroup's limit]".into()
                }
            }
            _ => host,
        };
        rows += 1;
        out += format!("{what:<WHAT$}{inside:<INSIDE$}{host}").trim_end();
        out += "\n";
    }
    assert_eq!(rows, 10, "ten rows:\n{table}");
    out
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
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
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
    let row = |name: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{text}"))
            .to_string()
    };
    // What needs nothing but root is measured: two times and a ratio.
    for name in ["plain process", "namespaces only", "ch01 container"] {
        let line = row(name);
        let figures: Vec<&str> =
            line[name.len()..].split_whitespace().collect();
        let [median, "ms", p90, "ms", ratio] = figures[..] else {
            panic!("not a measured row: {line}");
        };
        let (median, p90): (f64, f64) =
            (median.parse().expect(&line), p90.parse().expect(&line));
        assert!(0.0 < median && median <= p90, "{line}");
        assert!(ratio.ends_with('x'), "{line}");
    }
    assert!(row("ch01 container").ends_with(" 1.0x"), "{text}");
    // runc is measured where it is installed, and never fails.
    let runc = row("runc");
    assert!(runc.contains(" ms ") || runc.contains("skipped"), "{runc}");
    assert!(row("VM boot").contains("skipped"), "{text}");
}
