//! The container's filesystem view, built inside its new mount namespace.
//!
//! Everything here runs in the child between `clone` and `exec`, so it only
//! makes system calls: every path arrives as a ready `CStr`.

use std::ffi::CStr;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

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
    // With "." twice, the old root ends up stacked on top of the new one, at "/".
    pivot_root(c".", c".")?;
    // Detach it: from here on the host's tree is unreachable.
    umount2(c".", MntFlags::MNT_DETACH)?;
    chdir(c"/")
    // EXERCISE_END: lab01-pivot-root
}
// ANCHOR_END: pivot_into

// ANCHOR: mount_proc
/// Mounts a procfs at `target`. A procfs shows the PID namespace of the
/// process that mounts it, so inside the container it lists only the
/// container's processes.
pub fn mount_proc(target: &CStr) -> nix::Result<()> {
    // EXERCISE: lab01-proc
    mount(
        Some(c"proc"),
        target,
        Some(c"proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        NONE,
    )
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
        let fd = unsafe {
            libc::open(
                target.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o666,
            )
        };
        if fd < 0 {
            return Err(nix::errno::Errno::last());
        }
        unsafe { libc::close(fd) };
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
