//! lab01's cgroup v2 path on a pure cgroup v2 machine, whatever this host
//! runs: the limit tests of `tests/cgroups.rs` and `tests/cleanup.rs` boot
//! inside a small VM (qemu under TCG, a kernel from /boot, an initramfs
//! made here) where /sys/fs/cgroup is cgroup2 alone, as on Debian 12,
//! Ubuntu 22.04+ and Fedora. The VM's /init (tests/vm/init.sh) also checks
//! what lab01 does to the tree: controllers enabled, processes moved into a
//! leaf, nothing left behind. Needs no root: only qemu, a kernel, busybox
//! and cpio (skips without them, fails under `CI=true`).

mod vm;

use std::time::{Duration, Instant};

use lab01::probe::require_program;

/// The tests that run inside, `(test binary, test name)`: every test of
/// lab01 that writes a limit and watches it hold, and those that prove a
/// container's cgroup goes with it.
const TESTS: &[(&str, &str)] = &[
    ("cgroups", "memory_hog_is_oom_killed"),
    ("cgroups", "within_the_limit_nothing_happens"),
    ("cgroups", "fork_bomb_is_contained"),
    ("cgroups", "cpu_quota_is_enforced"),
    ("cleanup", "nothing_is_left_behind"),
    ("cleanup", "a_container_that_overstays_is_killed_and_named"),
    (
        "cleanup",
        "a_container_dies_with_the_thread_that_started_it",
    ),
];

/// The VM's whole life, boot to power-off. TCG is slow; the tests inside
/// take ~1 minute there. `KUBELINGS_VM_TIMEOUT` (seconds) overrides it.
fn limit() -> Duration {
    let secs = std::env::var("KUBELINGS_VM_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

const END: &str = "KUBELINGS-VM-END failed=";

#[test]
fn cgroup_v2_limits_hold_in_a_pure_v2_vm() {
    let tools = ["qemu-system-x86_64", "busybox", "cpio"];
    if !tools.iter().all(|t| require_program(t)) {
        return;
    }
    let Some(kernel) = vm::kernel() else {
        vm::skip("no readable kernel in /boot (apt-get install linux-image-amd64)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut binaries: Vec<(&str, std::path::PathBuf)> = Vec::new();
    for (binary, _) in TESTS {
        if !binaries.iter().any(|(b, _)| b == binary) {
            binaries.push((binary, vm::lab_test_binary(binary)));
        }
    }
    let list: String = TESTS.iter().map(|(b, t)| format!("{b} {t}\n")).collect();
    let initrd = vm::initramfs(dir.path(), &binaries, &list, include_str!("vm/init.sh"));

    println!(
        "booting {} under TCG (no KVM: it hangs on some hosts), 512 MiB, no network",
        kernel.display()
    );
    let started = Instant::now();
    let mut qemu = vm::Qemu::boot(&kernel, &initrd, dir.path());
    let waited = qemu.wait(limit());
    let took = started.elapsed();
    let serial = qemu.serial();
    let guest = format!(
        "--- the VM's console ---\n{serial}\n--- qemu's stderr ---\n{}",
        qemu.stderr()
    );
    drop(qemu);
    if let Err(why) = waited {
        panic!("{why}\n{guest}");
    }
    println!("the VM ran {} tests in {took:.1?}", TESTS.len());
    let Some(failed) = serial
        .lines()
        .find_map(|l| l.trim().strip_prefix(END))
        .map(str::trim)
    else {
        panic!("the VM stopped before its end marker\n{guest}");
    };
    for (binary, name) in TESTS {
        let ok = format!("VM-TEST ok: {binary} {name}");
        assert!(
            serial.lines().any(|l| l.trim() == ok),
            "{binary} {name} did not pass in the VM\n{guest}"
        );
    }
    assert_eq!(failed, "0", "checks failed in the VM\n{guest}");
    println!("{guest}");
}
