//! What runs inside the new namespaces, between `clone` and `exec`.
//!
//! The parent may have many threads (a test harness, a server), and a child
//! cloned from it gets a copy of their locks in whatever state they were.
//! So the child allocates nothing and takes no lock: the parent prepares
//! every string in a [`Plan`], and the child only makes system calls.

use std::ffi::{c_char, CString};
use std::fmt;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::init::{supervise, Ended};
use crate::{capabilities, mounts, namespaces, network};

/// The steps of container setup, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    Sync = 1,
    JoinNamespace,
    Hostname,
    MakePrivate,
    MountDev,
    PivotRoot,
    MountProc,
    MountSys,
    MountTmp,
    Loopback,
    Chdir,
    Capabilities,
    Fork,
    User,
    Exec,
    Started,
}

impl Stage {
    pub(crate) fn from_u32(n: u32) -> Option<Stage> {
        use Stage::*;
        [
            Sync,
            JoinNamespace,
            Hostname,
            MakePrivate,
            MountDev,
            PivotRoot,
            MountProc,
            MountSys,
            MountTmp,
            Loopback,
            Chdir,
            Capabilities,
            Fork,
            User,
            Exec,
            Started,
        ]
        .into_iter()
        .find(|s| *s as u32 == n)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Sync => "wait for the runtime",
            Stage::JoinNamespace => "join an existing namespace",
            Stage::Hostname => "set the hostname",
            Stage::MakePrivate => "make mounts private",
            Stage::MountDev => "mount /dev",
            Stage::PivotRoot => "pivot_root into the root filesystem",
            Stage::MountProc => "mount /proc",
            Stage::MountSys => "mount /sys",
            Stage::MountTmp => "mount /tmp",
            Stage::Loopback => "bring up the loopback device",
            Stage::Chdir => "change to the working directory",
            Stage::Capabilities => "drop capabilities",
            Stage::Fork => "fork the command",
            Stage::User => "switch to the image's user",
            Stage::Exec => "execute the command",
            Stage::Started => "start",
        })
    }
}

/// The root filesystem part of a plan.
pub(crate) struct RootfsPlan {
    pub root: CString,
    pub dev: CString,
    pub proc: CString,
    pub sys: CString,
    pub tmp: CString,
    /// (host device, its place under the new /dev)
    pub devices: Vec<(CString, CString)>,
}

/// Everything the child needs, prepared by the parent.
pub(crate) struct Plan {
    pub hostname: Option<CString>,
    pub rootfs: Option<RootfsPlan>,
    /// Mount a fresh /proc (a new PID and mount namespace).
    pub proc: bool,
    pub loopback: bool,
    pub cwd: CString,
    /// Paths to try for the command, in PATH order.
    pub exec_candidates: Vec<CString>,
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    /// Owners of the strings the pointers above point into.
    pub _strings: Vec<CString>,
    /// Namespaces to enter (open fds of /proc/PID/ns/*), before anything else.
    pub joins: Vec<(RawFd, nix::sched::CloneFlags)>,
    /// Descriptors for the command's stdin, stdout, stderr (None: inherit).
    pub stdio: [Option<RawFd>; 3],
    pub sync_read: RawFd,
    pub report_write: RawFd,
    pub status_write: RawFd,
    /// Every descriptor the child keeps; all others are closed. Sorted.
    pub keep_fds: Vec<RawFd>,
    /// Run the command as this (uid, gid) inside the container.
    pub user: Option<(u32, u32)>,
    pub caps_keep: u64,
    pub last_cap: u32,
    pub protect_init_from_oom: bool,
}

/// Sends one (stage, errno) record to the parent.
fn report(plan: &Plan, stage: Stage, errno: i32) {
    let mut record = [0u8; 8];
    record[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    record[4..].copy_from_slice(&errno.to_ne_bytes());
    unsafe { libc::write(plan.report_write, record.as_ptr().cast(), record.len()) };
}

fn fail(plan: &Plan, stage: Stage, errno: Errno) -> ! {
    report(plan, stage, errno as i32);
    unsafe { libc::_exit(1) }
}

/// Runs one setup step. A panic (a `todo!()` not done yet, say) is caught
/// and reported with its stage, so the runtime can say which step it was.
fn check(plan: &Plan, stage: Stage, step: impl FnOnce() -> nix::Result<()>) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(Ok(())) => {}
        Ok(Err(errno)) => fail(plan, stage, errno),
        Err(_) => {
            report(plan, stage, PANICKED);
            unsafe { libc::_exit(1) }
        }
    }
}

/// The errno slot's value for "the step panicked".
pub(crate) const PANICKED: i32 = -1;

/// Closes every descriptor not in `keep` (sorted), so neither init nor the
/// command holds the pipes of other containers started at the same moment.
fn close_other_fds(keep: &[RawFd]) {
    let mut low: u32 = 3;
    for &fd in keep {
        let fd = fd as u32;
        if fd > low {
            unsafe { libc::syscall(libc::SYS_close_range, low, fd - 1, 0) };
        }
        low = low.max(fd + 1);
    }
    unsafe { libc::syscall(libc::SYS_close_range, low, u32::MAX, 0) };
}

// ANCHOR: child_sequence
/// The container's first process. Never returns.
pub(crate) fn run(plan: &Plan) -> ! {
    // Signals queue for init's loop from now on; the command unblocks them.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        // Its own session: the terminal's Ctrl-C goes to the runtime, which forwards it.
        libc::setsid();
        // Shown by `ps` inside as PID 1, instead of the runtime's own name.
        libc::prctl(libc::PR_SET_NAME, c"init".as_ptr(), 0, 0, 0);
    }
    for (i, fd) in plan.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            unsafe { libc::dup2(*fd, i as RawFd) };
        }
    }
    close_other_fds(&plan.keep_fds);

    // Wait until the parent has written the user ID maps and put us in the cgroup.
    let mut byte = 0u8;
    if unsafe { libc::read(plan.sync_read, (&mut byte as *mut u8).cast(), 1) } != 1 {
        fail(plan, Stage::Sync, Errno::EPIPE);
    }
    unsafe { libc::close(plan.sync_read) };

    for (fd, kind) in &plan.joins {
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
        check(plan, Stage::JoinNamespace, || nix::sched::setns(fd, *kind));
    }
    if let Some(name) = &plan.hostname {
        check(plan, Stage::Hostname, || namespaces::set_hostname(name));
    }
    check(plan, Stage::MakePrivate, mounts::make_private);
    if let Some(rootfs) = &plan.rootfs {
        let mut devices: [(&std::ffi::CStr, &std::ffi::CStr); 8] = [(c"", c""); 8];
        let n = rootfs.devices.len().min(devices.len());
        for (slot, (host, target)) in devices.iter_mut().zip(&rootfs.devices) {
            *slot = (host.as_c_str(), target.as_c_str());
        }
        check(plan, Stage::MountDev, || {
            mounts::mount_dev(&rootfs.dev, &devices[..n])
        });
        // Before pivot_root: in a user namespace the kernel lets us mount
        // proc and sysfs only while the host's are still visible here.
        if plan.proc {
            check(plan, Stage::MountProc, || mounts::mount_proc(&rootfs.proc));
        }
        check(plan, Stage::MountSys, || mounts::mount_sys(&rootfs.sys));
        check(plan, Stage::MountTmp, || mounts::mount_tmp(&rootfs.tmp));
        check(plan, Stage::PivotRoot, || mounts::pivot_into(&rootfs.root));
    } else if plan.proc {
        check(plan, Stage::MountProc, || mounts::mount_proc(c"/proc"));
    }
    if plan.loopback {
        check(plan, Stage::Loopback, network::loopback_up);
    }
    check(plan, Stage::Chdir, || {
        nix::unistd::chdir(plan.cwd.as_c_str())
    });
    if plan.protect_init_from_oom {
        write_oom_score_adj(c"-1000");
    }
    check(plan, Stage::Capabilities, || {
        capabilities::drop_capabilities(plan.caps_keep, plan.last_cap)
    });

    // A raw clone instead of fork(): glibc's fork takes malloc's locks, which
    // another thread of the parent may have held when we were cloned.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
    if pid < 0 {
        fail(plan, Stage::Fork, Errno::last());
    }
    if pid == 0 {
        exec_command(plan);
    }
    report(plan, Stage::Started, 0);
    unsafe { libc::close(plan.report_write) };

    let workload = Pid::from_raw(pid as i32);
    let bytes = match std::panic::catch_unwind(|| supervise(workload)) {
        Ok(ended) => ended.encode(),
        Err(_) => Ended::PANICKED,
    };
    unsafe {
        libc::write(plan.status_write, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}
// ANCHOR_END: child_sequence

/// The command's side of the fork: undo init's settings, then exec.
fn exec_command(plan: &Plan) -> ! {
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        // Rust programs ignore SIGPIPE, and an ignored signal stays ignored across exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::close(plan.status_write);
    }
    if plan.protect_init_from_oom {
        write_oom_score_adj(c"0");
    }
    if let Some((uid, gid)) = plan.user {
        // Groups first: after setuid we may no longer change them.
        let ok = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(gid, gid, gid) == 0
                && libc::setresuid(uid, uid, uid) == 0
        };
        if !ok {
            report(plan, Stage::User, Errno::last() as i32);
            unsafe { libc::_exit(126) }
        }
    }
    let mut errno = Errno::ENOENT;
    for path in &plan.exec_candidates {
        unsafe { libc::execve(path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
        let e = Errno::last();
        // Keep the most telling reason: "permission denied" beats "not found".
        if e != Errno::ENOENT && e != Errno::ENOTDIR {
            errno = e;
        }
    }
    report(plan, Stage::Exec, errno as i32);
    unsafe { libc::_exit(127) }
}

fn write_oom_score_adj(value: &std::ffi::CStr) {
    unsafe {
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            libc::write(fd, value.as_ptr().cast(), value.to_bytes().len());
            libc::close(fd);
        }
    }
}

/// How init's status pipe and report pipe are read back by the parent.
pub(crate) fn decode_report(record: [u8; 8]) -> (Option<Stage>, i32) {
    let stage = u32::from_ne_bytes([record[0], record[1], record[2], record[3]]);
    let errno = i32::from_ne_bytes([record[4], record[5], record[6], record[7]]);
    (Stage::from_u32(stage), errno)
}

pub(crate) fn decode_status(bytes: [u8; 8]) -> Option<Ended> {
    Ended::decode(bytes)
}
