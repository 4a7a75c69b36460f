//! Self-checks for §1.2: the PID namespace, its own /proc, and what of
//! /proc stays hidden or read-only.

mod common;

use lab01::namespaces::Namespace;
use lab01::Output;

/// A shell in new PID and mount namespaces on the host's files: all a
/// procfs of its own needs.
fn sh(script: &str) -> Output {
    common::run(common::bare(
        &["sh", "-c", script],
        &[Namespace::Pid, Namespace::Mount],
    ))
}

#[test]
fn command_sees_only_its_own_processes() {
    if !common::userns() {
        return;
    }
    let out = sh("ps -e -o pid,ppid,comm; echo self: $$");
    assert!(out.status.success(), "{out:?}");
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn proc_is_the_containers() {
    if !common::userns() {
        return;
    }
    let out = sh("cat /proc/1/comm; ls /proc");
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

#[test]
fn the_kernels_secrets_read_as_nothing() {
    if !common::userns() {
        return;
    }
    // Only what this kernel has can be checked.
    let files: Vec<&str> = ["kcore", "keys", "timer_list", "sched_debug"]
        .into_iter()
        .filter(|f| std::path::Path::new("/proc").join(f).exists())
        .collect();
    assert!(!files.is_empty(), "this kernel has none of {files:?}");
    let script: String = files
        .iter()
        .map(|f| format!("echo {f} $(wc -c < /proc/{f});"))
        .collect();
    let out = sh(&script);
    assert!(out.status.success(), "{out:?}");
    let expected: String = files.iter().map(|f| format!("{f} 0\n")).collect();
    assert_eq!(out.stdout, expected, "{out:?}");
    // /dev/null, not a file made to look empty.
    let out = sh(&format!("stat -c %t:%T /proc/{}", files[0]));
    assert_eq!(out.stdout.trim(), "1:3", "{out:?}");
}

#[test]
fn hidden_directories_are_empty() {
    if !common::userns() {
        return;
    }
    let dirs: Vec<&str> = ["acpi", "scsi", "asound"]
        .into_iter()
        .filter(|d| std::path::Path::new("/proc").join(d).is_dir())
        .collect();
    if dirs.is_empty() {
        println!("this kernel has none of /proc/acpi, /proc/scsi, /proc/asound");
    }
    // With none of them, the container must still start.
    let script: String = dirs
        .iter()
        .map(|d| format!("echo {d} $(ls -A /proc/{d} | wc -l); touch /proc/{d}/x 2>&1;"))
        .collect();
    let out = sh(&format!("{script} true"));
    assert!(out.status.success(), "{out:?}");
    for d in &dirs {
        assert!(
            out.stdout.contains(&format!("{d} 0\n")),
            "/proc/{d} is not empty: {out:?}"
        );
    }
    assert_eq!(
        out.stdout.matches("Read-only file system").count(),
        dirs.len(),
        "{out:?}"
    );
}

#[test]
fn kernel_settings_are_read_only() {
    if !common::userns() {
        return;
    }
    // Readable still; writing, even the value it has, is refused. The UTS
    // namespace makes sure a wrong solution changes only a copy.
    let spec = common::bare(
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/domainname > /dev/null && echo readable; \
             (cat /proc/sys/kernel/domainname > /proc/sys/kernel/domainname) 2>&1; \
             grep -E ' /proc/(sys|sysrq-trigger|irq|bus|fs) ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1",
        ],
        &[Namespace::Pid, Namespace::Mount, Namespace::Uts],
    );
    let out = common::run(spec);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("readable"), "{out:?}");
    assert!(
        lines
            .next()
            .unwrap_or("")
            .ends_with("Read-only file system"),
        "writing /proc/sys was not refused with EROFS: {out:?}"
    );
    let read_only: Vec<&str> = lines.collect();
    assert!(read_only.contains(&"/proc/sys ro"), "{out:?}");
    assert!(read_only.iter().all(|l| l.ends_with(" ro")), "{out:?}");
}
