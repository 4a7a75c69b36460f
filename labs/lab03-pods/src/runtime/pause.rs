//! The sandbox's infra process: our `pause`.
//!
//! Kubernetes starts every pod with a tiny container (`pause.c`, some 60
//! lines of C) that does nothing but exist: it is the first process in the
//! pod's new network, IPC and UTS namespaces (and PID namespace, when the
//! pod shares one), so they live as long as the pod does, whatever its
//! containers do. It exits 0 on SIGINT or SIGTERM, reaps zombies on
//! SIGCHLD, and otherwise sleeps.
//!
//! Ours is this same program, cloned into the new namespaces and executed
//! again with `KUBELINGS_PAUSE` set: a constructor below takes over before
//! `main`, before the Rust runtime or any allocation, brings up loopback,
//! says it is ready, and waits for signals. No separate binary to find or
//! install, and almost no memory of its own (the program's pages are
//! shared with the runtime that runs it).

use std::ffi::{c_char, c_int, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

/// The variable that turns a start of this program into a pause.
const PAUSE_VAR: &str = "KUBELINGS_PAUSE";
/// Added to the errno of a failed /proc mount in the pause's report.
const PROC_FAILED: i32 = 10_000;
/// The descriptor on which the pause reports that it is ready.
const REPORT_FD: c_int = 3;

/// Runs before `main` of every program that links lab03 (glibc calls the
/// functions in `.init_array`). Without `KUBELINGS_PAUSE` it returns at
/// once, having done nothing.
extern "C" fn pause_hook(_argc: c_int, _argv: *const *const c_char, _envp: *const *const c_char) {
    // SAFETY: getenv with a NUL-terminated name; before main no other
    // thread exists that could change the environment meanwhile.
    let value = unsafe { libc::getenv(c"KUBELINGS_PAUSE".as_ptr()) };
    if !value.is_null() {
        // SAFETY: getenv returned a NUL-terminated string; its first byte
        // says whether the pause has a network namespace of its own.
        let own_network = unsafe { *value } == b'n' as c_char;
        pause_main(own_network)
    }
}

#[used]
#[link_section = ".init_array"]
static PAUSE_HOOK: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = pause_hook;

/// Keeps the constructor linked into every program that runs sandboxes.
pub(crate) fn touch_pause_hook() {
    std::hint::black_box(&PAUSE_HOOK);
}

// ANCHOR: pause_main
/// The pause itself, in the sandbox's fresh namespaces: only system calls.
fn pause_main(own_network: bool) -> ! {
    // SAFETY: plain system calls on integers and on buffers that live on;
    // this process has one thread and nothing else runs in it.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"pause".as_ptr(), 0, 0, 0);
        // The sandbox dies with the runtime thread that started it.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        let status = set_up(own_network);
        // If the runtime has gone, this write raises SIGPIPE, whose
        // default action (Rust's main has not run to ignore it) ends us.
        let bytes = status.to_ne_bytes();
        libc::write(REPORT_FD, bytes.as_ptr().cast(), bytes.len());
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        if status != 0 {
            libc::_exit(1);
        }
        // Every signal stays blocked (the runtime blocked them before
        // exec); these three are taken one by one here.
        let mut wanted: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wanted);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
            libc::sigaddset(&mut wanted, sig);
        }
        loop {
            match libc::sigwaitinfo(&wanted, std::ptr::null_mut()) {
                libc::SIGINT | libc::SIGTERM => libc::_exit(0),
                // With a shared PID namespace we are its init: orphans
                // of every container are ours to reap.
                libc::SIGCHLD => reap_all(),
                _ => {}
            }
        }
    }
}
// ANCHOR_END: pause_main

/// Reaps every child that has ended. Only system calls.
fn reap_all() {
    // SAFETY: waitpid with a null status pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// Loopback up in a network namespace of the pod's own, and with a PID
/// namespace of the pod's, a /proc for its containers: only a process
/// inside the namespace can mount one that shows it. 0, or what failed.
fn set_up(own_network: bool) -> i32 {
    if own_network {
        if let Err(errno) = lab01::network::loopback_up() {
            return errno as i32;
        }
    }
    // SAFETY: getenv with a NUL-terminated name, in a process with one
    // thread.
    let proc = unsafe { libc::getenv(c"KUBELINGS_PAUSE_PROC".as_ptr()) };
    if !proc.is_null() {
        // SAFETY: getenv returned a NUL-terminated string.
        let target = unsafe { std::ffi::CStr::from_ptr(proc) };
        if let Err(errno) = lab01::mounts::mount_proc(target) {
            return PROC_FAILED + errno as i32;
        }
    }
    0
}

/// A running pause: its pid, and a pidfd that turns readable when it ends.
#[derive(Debug)]
pub(crate) struct Pause {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// What the cloned child needs, prepared by the parent so that the child
/// only makes system calls (the runtime has many threads).
struct Launch {
    exe: c_int,
    devnull: c_int,
    report: c_int,
    hostname: Option<CString>,
    argv: [*const c_char; 2],
    envp: [*const c_char; 3],
}

/// How long the pause may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

// ANCHOR: spawn_pause
/// Starts a pause in new namespaces (`flags`), with `hostname` in its UTS
/// namespace, inside the cgroup `cgroup_dirs`. Returns once it runs.
/// (Kubernetes' pause is a container of its own; ours needs no image and
/// no mount namespace: it never looks at a file.)
pub(crate) fn spawn(
    flags: CloneFlags,
    hostname: Option<&str>,
    proc: Option<&std::path::Path>,
    cgroup_dirs: &[std::path::PathBuf],
) -> std::io::Result<Pause> {
    touch_pause_hook();
    let exe = std::fs::File::open("/proc/self/exe")?;
    let devnull = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let arg0 = c"pause".to_owned();
    let net = if flags.contains(CloneFlags::CLONE_NEWNET) {
        "net"
    } else {
        "host"
    };
    let var = CString::new(format!("{PAUSE_VAR}={net}")).map_err(std::io::Error::other)?;
    let proc_var = match proc {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let var = format!("KUBELINGS_PAUSE_PROC={}", dir.display());
            Some(CString::new(var).map_err(std::io::Error::other)?)
        }
        None => None,
    };
    let hostname = hostname
        .map(CString::new)
        .transpose()
        .map_err(std::io::Error::other)?;
    let launch = Launch {
        exe: exe.as_raw_fd(),
        devnull: devnull.as_raw_fd(),
        report: report_write.as_raw_fd(),
        hostname,
        argv: [arg0.as_ptr(), std::ptr::null()],
        envp: [
            var.as_ptr(),
            proc_var.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            std::ptr::null(),
        ],
    };
    let mut stack = vec![0u8; 16 * 1024];
    // SAFETY: the child runs `exec_pause` only: async-signal-safe system
    // calls on the data prepared above, then exec or _exit.
    let pid = unsafe {
        nix::sched::clone(
            Box::new(|| exec_pause(&launch)),
            &mut stack,
            flags,
            Some(libc::SIGCHLD),
        )
    }?;
    drop(report_write);
    let pid = pid.as_raw();
    // From here on a failure must not leave the child behind.
    let kill = || {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    for dir in cgroup_dirs {
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
            kill();
            return Err(e);
        }
    }
    match await_ready(report_read) {
        Ok(()) => {}
        Err(e) => {
            kill();
            return Err(e);
        }
    }
    // SAFETY: pidfd_open takes integers; we own the descriptor it returns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        kill();
        return Err(e);
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as c_int) };
    Ok(Pause { pid, pidfd })
}
// ANCHOR_END: spawn_pause

/// The cloned child: set the hostname, become the pause. Never returns.
fn exec_pause(launch: &Launch) -> isize {
    // SAFETY: only async-signal-safe system calls, on descriptors and
    // buffers the parent prepared (our copy of its memory stays as it was).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if let Some(name) = &launch.hostname {
            let bytes = name.as_bytes();
            if libc::sethostname(bytes.as_ptr().cast(), bytes.len()) != 0 {
                report_errno(launch.report);
                libc::_exit(1);
            }
        }
        for fd in 0..3 {
            libc::dup2(launch.devnull, fd);
        }
        // dup2 clears close-on-exec on the copy: the pause inherits it.
        libc::dup2(launch.report, REPORT_FD);
        libc::fexecve(launch.exe, launch.argv.as_ptr(), launch.envp.as_ptr());
        report_errno(REPORT_FD);
        libc::_exit(127)
    }
}

/// Reports the last errno, negated (a failure before the pause ran).
fn report_errno(fd: c_int) {
    let code = -nix::errno::Errno::last_raw();
    let bytes = code.to_ne_bytes();
    // SAFETY: a write from a live buffer of that length.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Reads the pause's report: 0 once loopback is up and it waits.
fn await_ready(report: OwnedFd) -> std::io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the sandbox's pause did not report within 10 s",
            ));
        }
        let ms = u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&report),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let mut bytes = [0u8; 4];
    let mut file = std::fs::File::from(report);
    match std::io::Read::read_exact(&mut file, &mut bytes) {
        Ok(()) => {}
        Err(_) => {
            return Err(std::io::Error::other(
                "the sandbox's pause died before it was ready",
            ))
        }
    }
    match i32::from_ne_bytes(bytes) {
        0 => Ok(()),
        code if code < 0 => Err(std::io::Error::other(format!(
            "the sandbox's pause could not start: {}",
            std::io::Error::from_raw_os_error(-code)
        ))),
        code if code > PROC_FAILED => Err(std::io::Error::other(format!(
            "the sandbox's pause could not mount the pod's /proc: {}",
            std::io::Error::from_raw_os_error(code - PROC_FAILED)
        ))),
        code => Err(std::io::Error::other(format!(
            "the sandbox's pause could not bring up loopback: {}",
            std::io::Error::from_raw_os_error(code)
        ))),
    }
}
