//! The container's filesystem view, built inside its new mount namespace.
//!
//! Everything here runs in the child between `clone` and `exec`, so it only
//! makes system calls: every path arrives as a ready `CStr`.

use std::ffi::CStr;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{stat, Mode};
use nix::unistd::{chdir, fchdir, pivot_root};

const NONE: Option<&CStr> = None;

/// Stops mounts made inside the container from propagating back to the host
/// (systemd makes `/` shared, so without this they would).
pub fn make_private() -> nix::Result<()> {
    mount(
        NONE,
        c"/",
        NONE,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        NONE,
    )
}

// ANCHOR: pivot_into
/// Makes `rootfs` the root directory of this mount namespace and detaches
/// the old root, so no path leads back to the host's files.
pub fn pivot_into(rootfs: &CStr) -> nix::Result<()> {
    // EXERCISE: lab01-pivot-root
    // pivot_root needs the new root to be a mount point: bind it onto itself.
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )?;
    chdir(rootfs)?;
    // With "." twice, the old root is stacked on top of the new one, at ".".
    pivot_root(c".", c".")?;
    // Detach it: from here on the host's tree is unreachable.
    umount2(c".", MntFlags::MNT_DETACH)?;
    chdir(c"/")
    // EXERCISE_END: lab01-pivot-root
}
// ANCHOR_END: pivot_into

// ANCHOR: proc_paths
/// What a container must not see in /proc: the kernel's memory (`kcore`),
/// every key of the machine (`keys`), timers and scheduler state of every
/// process (`timer_list`, `sched_debug`, …), hardware it has no business
/// with. Files get `/dev/null` bound over them, directories an empty
/// read-only tmpfs. The same list as runc's and Docker's `maskedPaths`,
/// relative to /proc.
pub const PROC_MASKED: [&CStr; 9] = [
    c"acpi",
    c"asound",
    c"kcore",
    c"keys",
    c"latency_stats",
    c"sched_debug",
    c"scsi",
    c"timer_list",
    c"timer_stats",
];

/// What a container may read but not change: the kernel's tunables
/// (`sys`), the magic SysRq key, interrupt routing, buses and file systems.
/// Each is bound onto itself and made read-only (Docker's `readonlyPaths`).
pub const PROC_READ_ONLY: [&CStr; 5] = [
    c"bus",
    c"fs",
    c"irq",
    // sysctl's files: readable, never written.
    c"sys",
    c"sysrq-trigger",
];

/// The usual precautions for a kernel file system: no set-user-ID programs,
/// no device files, nothing to execute.
pub const PROC_FLAGS: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);
// ANCHOR_END: proc_paths

/// Runs `step` with `dir` as the working directory, then goes back, so
/// that `step` can name paths relative to `dir` without building strings.
pub fn in_directory<T, F>(dir: &CStr, step: F) -> nix::Result<T>
where
    F: FnOnce() -> nix::Result<T>,
{
    let here = open(
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    chdir(dir)?;
    let result = step();
    fchdir(&here)?;
    result
}

// ANCHOR: mount_proc
/// Mounts a procfs at `target` and masks what the container must not see or
/// change in it ([`PROC_MASKED`], [`PROC_READ_ONLY`]); paths this kernel
/// lacks are skipped. A procfs shows the PID namespace of the process that
/// mounts it, so inside the container it lists only the container's
/// processes.
pub fn mount_proc(target: &CStr) -> nix::Result<()> {
    // EXERCISE: lab01-proc
    mount(Some(c"proc"), target, Some(c"proc"), PROC_FLAGS, NONE)?;
    in_directory(target, || {
        for path in PROC_MASKED {
            let is_dir = match stat(path) {
                Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                // Not in this kernel: nothing to hide.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            // The host's /dev/null (this runs before any pivot_root):
            // the same device, 1:3, as the container's.
            let null = Some(c"/dev/null");
            if is_dir {
                let flags = MsFlags::MS_RDONLY | PROC_FLAGS;
                mount(Some(c"tmpfs"), path, Some(c"tmpfs"), flags, NONE)?;
            } else {
                mount(null, path, NONE, MsFlags::MS_BIND, NONE)?;
            }
        }
        for path in PROC_READ_ONLY {
            match mount(Some(path), path, NONE, MsFlags::MS_BIND, NONE) {
                Err(Errno::ENOENT) => continue,
                other => other?,
            }
            // A bind gets its own flags only from a remount, which must
            // repeat procfs's (in a user namespace they are locked).
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
            let flags = flags | MsFlags::MS_RDONLY | PROC_FLAGS;
            mount(NONE, path, NONE, flags, NONE)?;
        }
        Ok(())
    })
    // EXERCISE_END: lab01-proc
}
// ANCHOR_END: mount_proc

// ANCHOR: mount_dev
/// A minimal `/dev`: a small tmpfs holding bind mounts of a few harmless host
/// devices (binds, not mknod, so it also works inside a user namespace).
pub fn mount_dev(dev: &CStr, devices: &[(&CStr, &CStr)]) -> nix::Result<()> {
    mount(
        Some(c"tmpfs"),
        dev,
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )?;
    for (host, target) in devices {
        // A bind mount needs an existing file to cover.
        drop(open(
            *target,
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )?);
        mount(Some(*host), *target, NONE, MsFlags::MS_BIND, NONE)?;
    }
    Ok(())
}
// ANCHOR_END: mount_dev

/// `/sys`, read-only: the container may look but not touch.
pub fn mount_sys(target: &CStr) -> nix::Result<()> {
    mount(
        Some(c"sysfs"),
        target,
        Some(c"sysfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        NONE,
    )
}

/// A fresh, private `/tmp`.
pub fn mount_tmp(target: &CStr) -> nix::Result<()> {
    mount(
        Some(c"tmpfs"),
        target,
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(c"mode=1777"),
    )
}
