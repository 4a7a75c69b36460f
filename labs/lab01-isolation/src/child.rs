//! What runs inside the new namespaces: the cloned child, then the
//! container's init.
//!
//! The parent may have many threads (a test harness, a server), and a child
//! cloned from it gets a copy of their locks in whatever state they were.
//! So the cloned child allocates nothing and takes no lock: it only makes a
//! few system calls and then executes the runtime's own binary again
//! (`/proc/self/exe`, opened by the parent), the way runc does. A
//! constructor of this crate ([`INIT_HOOK`]) sees `KUBELINGS_INIT` in the new
//! program's environment before its `main` runs, reads the [`Plan`] the
//! parent wrote into a memfd, and becomes the container's init. That fresh,
//! single-threaded process may allocate, and may catch a panicking setup step
//! (a `todo!()` not done yet) to report it with its message.

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::io::Read;
use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::init::{supervise, Ended, Supervised};
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
    Init,
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
            Init,
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
            Stage::Init => "start the container's init",
        })
    }
}

/// The root filesystem part of a plan.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RootfsPlan {
    pub root: String,
    pub dev: String,
    pub proc: String,
    pub sys: String,
    pub tmp: String,
    /// (host device, its place under the new /dev)
    pub devices: Vec<(String, String)>,
}

/// Everything init needs, prepared by the parent and sent as JSON.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Plan {
    pub hostname: Option<String>,
    /// Set up mounts: only in a mount namespace of the container's own.
    pub mounts: bool,
    pub rootfs: Option<RootfsPlan>,
    /// Mount a fresh /proc (a new PID and mount namespace).
    pub proc: bool,
    /// Bind this proc mount there instead of a fresh one.
    pub proc_bind: Option<String>,
    pub loopback: bool,
    pub cwd: String,
    /// Paths to try for the command, in PATH order.
    pub exec_candidates: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Namespaces to enter (open fds of /proc/PID/ns/*, with their
    /// `CLONE_NEW*` bits), before anything else.
    pub joins: Vec<(RawFd, c_int)>,
    /// The parent's go: one byte, then its end stays open until init reports.
    pub sync_read: RawFd,
    /// The cloned child has read the byte already.
    pub synced: bool,
    pub report_write: RawFd,
    pub status_write: RawFd,
    /// Every descriptor init keeps; all others are closed. Sorted.
    pub keep_fds: Vec<RawFd>,
    /// Run the command as this (uid, gid) inside the container.
    pub user: Option<(u32, u32)>,
    pub caps_keep: u64,
    pub last_cap: u32,
    pub protect_init_from_oom: bool,
    /// No PID namespace of its own: the command must die with init itself.
    pub command_dies_with_init: bool,
}

/// What the cloned child needs to execute init: raw pointers into strings
/// the parent owns, so the child only makes system calls.
pub(crate) struct Launch {
    /// `/proc/self/exe`, opened by the parent.
    pub exe: RawFd,
    pub argv: [*const c_char; 2],
    pub envp: Vec<*const c_char>,
    /// Owners of the strings the pointers above point into.
    pub _strings: Vec<CString>,
    pub sync_read: RawFd,
    /// Wait for the parent before exec (a new user namespace), not after.
    pub sync_before_exec: bool,
    pub report_write: RawFd,
    /// Descriptors for init's stdin, stdout, stderr (None: inherit).
    pub stdio: [Option<RawFd>; 3],
    /// Descriptors init inherits across exec (the plan, the pipes, the
    /// namespaces to join); the parent opened them all close-on-exec.
    pub inherit: Vec<RawFd>,
}

/// The environment variable that turns a start of this program into a
/// container's init; its value is the plan's descriptor.
pub(crate) const INIT_VAR: &str = "KUBELINGS_INIT";

/// Sends one (stage, errno, message) record to the parent: a 12-byte header
/// and the message's bytes. Makes only system calls.
fn report_raw(fd: RawFd, stage: Stage, errno: i32, message: &[u8]) {
    let mut header = [0u8; 12];
    header[..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    header[4..8].copy_from_slice(&errno.to_ne_bytes());
    header[8..].copy_from_slice(&(message.len() as u32).to_ne_bytes());
    // SAFETY: writes from live buffers of the given lengths; a failed write
    // leaves the parent to read end-of-file, which it reports too.
    unsafe {
        libc::write(fd, header.as_ptr().cast(), header.len());
        if !message.is_empty() {
            libc::write(fd, message.as_ptr().cast(), message.len());
        }
    }
}

/// The errno slot's value for "the step panicked".
pub(crate) const PANICKED: i32 = -1;

/// The longest panic message the parent accepts.
pub(crate) const MAX_MESSAGE: usize = 4096;

// ANCHOR: exec_init
/// The cloned child: wait for the parent, then become init by executing the
/// runtime's binary again. Only async-signal-safe system calls. Never returns.
pub(crate) fn exec_init(launch: &Launch) -> ! {
    // SAFETY: only async-signal-safe system calls, on descriptors and
    // buffers the parent prepared (our copy of its memory stays as it was).
    unsafe {
        // Signals queue for init's loop from now on; the command
        // unblocks them.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        // The container dies with the thread that started it.
        let death = libc::SIGKILL as libc::c_ulong;
        libc::prctl(libc::PR_SET_PDEATHSIG, death, 0, 0, 0);

        // In a new user namespace exec keeps init's capabilities only if
        // it is root there: wait for the ID maps. Otherwise init waits, and
        // exec runs while the parent sets up the cgroup.
        if launch.sync_before_exec && !parent_says_go(launch.sync_read) {
            libc::_exit(1);
        }
        for (i, fd) in launch.stdio.iter().enumerate() {
            if let Some(fd) = fd {
                libc::dup2(*fd, i as RawFd);
            }
        }
        for &fd in &launch.inherit {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }
        // execveat(exe, "", …, AT_EMPTY_PATH): the binary we opened.
        libc::fexecve(launch.exe, launch.argv.as_ptr(), launch.envp.as_ptr());
        report_raw(launch.report_write, Stage::Init, Errno::last_raw(), b"");
        libc::_exit(1)
    }
}
// ANCHOR_END: exec_init

/// Waits for the parent's go, one byte on the sync pipe. Only system calls.
fn parent_says_go(sync: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a read into a byte that lives on.
    let read = unsafe { libc::read(sync, (&mut byte as *mut u8).cast(), 1) };
    read == 1 && !parent_gone(sync)
}

/// The parent keeps its end of the sync pipe open until init reports:
/// closed means it gave up, or died before our death signal was set
/// (getppid cannot tell: it is 0 in a new PID namespace). Only system calls.
fn parent_gone(sync: RawFd) -> bool {
    let mut hup = libc::pollfd {
        fd: sync,
        events: 0,
        revents: 0,
    };
    // SAFETY: polls one pollfd that lives on, without waiting.
    unsafe { libc::poll(&mut hup, 1, 0) != 0 }
}

/// Runs before `main` of every program that links lab01 (glibc calls the
/// functions in `.init_array` with argc, argv and envp). Without
/// `KUBELINGS_INIT` it returns at once, having allocated nothing.
extern "C" fn init_hook(_argc: c_int, _argv: *const *const c_char, _envp: *const *const c_char) {
    // SAFETY: getenv with a NUL-terminated name; before main no other
    // thread exists that could change the environment meanwhile.
    let value = unsafe { libc::getenv(c"KUBELINGS_INIT".as_ptr()) };
    if value.is_null() {
        return;
    }
    // SAFETY: getenv returned a pointer to a NUL-terminated string.
    let value = unsafe { CStr::from_ptr(value) };
    let fd = value
        .to_str()
        .ok()
        .and_then(|s| s.parse::<RawFd>().ok())
        .filter(|fd| *fd > 2);
    match fd {
        Some(fd) => init_main(fd),
        None => {
            eprintln!("{INIT_VAR}={value:?} is not a descriptor; not starting a container");
            std::process::exit(125)
        }
    }
}

/// The hook, in the section glibc runs before `main`. [`touch_init_hook`]
/// refers to it so the linker keeps it in every program that starts containers.
#[used]
#[link_section = ".init_array"]
static INIT_HOOK: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = init_hook;

/// Called by `Container::spawn`: a constructor in an object file that
/// nothing refers to would be left out of the program by the linker.
pub(crate) fn touch_init_hook() {
    std::hint::black_box(&INIT_HOOK);
}

/// The message of the last panic, kept by init's silent panic hook.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// The message of a caught panic: its payload, as the hook kept it.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        return (*s).to_string();
    }
    if let Some(s) = payload.downcast_ref::<String>() {
        return s.clone();
    }
    LAST_PANIC
        .lock()
        .map(|m| m.clone())
        .unwrap_or_else(|_| "(no message)".into())
}

/// The re-executed program, as init: read the plan, set up, supervise.
fn init_main(plan_fd: RawFd) -> ! {
    // Keep the message for the report; print nothing into the command's stderr.
    std::panic::set_hook(Box::new(|info| {
        let text = match info.payload().downcast_ref::<&str>() {
            Some(s) => (*s).to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| info.to_string()),
        };
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = text;
        }
    }));
    // SAFETY: the descriptor is the plan's memfd, handed to us by the
    // cloned child and owned by nobody else in this fresh process.
    let mut file = unsafe { std::fs::File::from_raw_fd(plan_fd) };
    let mut json = Vec::new();
    let plan: Plan = match file
        .read_to_end(&mut json)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&json).map_err(|e| e.to_string()))
    {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("container init: cannot read its plan: {e}");
            // SAFETY: ends this single-threaded process at once.
            unsafe { libc::_exit(125) }
        }
    };
    drop(file);
    run(&plan)
}

fn fail(plan: &Plan, stage: Stage, errno: Errno) -> ! {
    report_raw(plan.report_write, stage, errno as i32, b"");
    // SAFETY: ends this process without running anything of the parent's.
    unsafe { libc::_exit(1) }
}

/// Runs one setup step. A panic (a `todo!()` not done yet, say) is caught
/// and reported with its stage and message, so the runtime can say which
/// step it was.
fn check(plan: &Plan, stage: Stage, step: impl FnOnce() -> nix::Result<()>) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(Ok(())) => {}
        Ok(Err(errno)) => fail(plan, stage, errno),
        Err(payload) => {
            let message = panic_message(&*payload);
            let bytes = message.as_bytes();
            let bytes = &bytes[..bytes.len().min(MAX_MESSAGE)];
            report_raw(plan.report_write, stage, PANICKED, bytes);
            // SAFETY: as in `fail`.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Closes every descriptor not in `keep` (sorted), so neither init nor the
/// command holds the pipes of other containers started at the same moment.
fn close_other_fds(keep: &[RawFd]) {
    let mut low: u32 = 3;
    for &fd in keep {
        let fd = fd as u32;
        if fd > low {
            // SAFETY: closes descriptors nothing in this process uses.
            unsafe { libc::syscall(libc::SYS_close_range, low, fd - 1, 0) };
        }
        low = low.max(fd + 1);
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, low, u32::MAX, 0) };
}

fn c(text: &str) -> CString {
    // The parent built the plan from strings it checked for NUL bytes.
    CString::new(text).unwrap_or_default()
}

/// Init's first steps, before the container's own.
fn become_init(plan: &Plan) {
    // Its own session: the terminal's Ctrl-C goes to the runtime, which
    // forwards it.
    let _ = nix::unistd::setsid();
    // A terminal as stdin (`kubectl exec -it`) becomes the new session's
    // controlling terminal, so a shell there has job control. One that
    // is already another session's (`ch01 run` in the user's terminal)
    // stays theirs: TIOCSCTTY without force refuses.
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        // SAFETY: an ioctl on our stdin that reads no memory (arg 0).
        let _ = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    }
    // Shown by `ps` inside as PID 1, instead of the runtime's own name.
    let _ = nix::sys::prctl::set_name(c"init");
    // Exec may have reset the death signal: set it again, then make sure
    // the parent is still there.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let go = if plan.synced {
        !parent_gone(plan.sync_read)
    } else {
        parent_says_go(plan.sync_read)
    };
    if !go {
        // SAFETY: ends this process; the parent reports why it gave up.
        unsafe { libc::_exit(1) }
    }
    let _ = nix::unistd::close(plan.sync_read);
    // Nothing in the container may open /proc/1/exe: that is the host's
    // runtime binary (runc's CVE-2019-5736).
    let _ = nix::sys::prctl::set_dumpable(false);
    close_other_fds(&plan.keep_fds);
    // Inherited across exec; the command must not inherit them again.
    for &fd in plan.keep_fds.iter().filter(|fd| **fd > 2) {
        // SAFETY: sets a flag on a descriptor this process owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

// ANCHOR: child_sequence
/// The container's init, in a fresh process. Never returns.
fn run(plan: &Plan) -> ! {
    become_init(plan);
    for &(fd, kind) in &plan.joins {
        // SAFETY: the descriptor is one the parent opened for us and kept.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let kind = nix::sched::CloneFlags::from_bits_truncate(kind);
        check(plan, Stage::JoinNamespace, || nix::sched::setns(fd, kind));
    }
    if let Some(name) = &plan.hostname {
        check(plan, Stage::Hostname, || namespaces::set_hostname(&c(name)));
    }
    // Mounts only ever change the container's own mount namespace.
    if plan.mounts {
        check(plan, Stage::MakePrivate, mounts::make_private);
        if let Some(rootfs) = &plan.rootfs {
            set_up_rootfs(plan, rootfs);
        } else if plan.proc {
            check(plan, Stage::MountProc, || mounts::mount_proc(c"/proc"));
        }
    }
    if plan.loopback {
        check(plan, Stage::Loopback, network::loopback_up);
    }
    check(plan, Stage::Chdir, || {
        nix::unistd::chdir(c(&plan.cwd).as_c_str())
    });
    if plan.protect_init_from_oom {
        write_oom_score_adj("-1000");
    }
    check(plan, Stage::Capabilities, || {
        capabilities::drop_capabilities(plan.caps_keep, plan.last_cap)
    });
    start_and_supervise(plan)
}
// ANCHOR_END: child_sequence

/// Forks the command, tells the runtime it started, and becomes its init
/// (section 1.5) until it ends.
fn start_and_supervise(plan: &Plan) -> ! {
    let command = Command::new(plan);
    // SAFETY: init is single-threaded, so the child may do anything.
    let workload = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => exec_command(plan, &command),
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(errno) => fail(plan, Stage::Fork, errno),
    };
    report_raw(plan.report_write, Stage::Started, 0, b"");
    let _ = nix::unistd::close(plan.report_write);

    let supervised = match std::panic::catch_unwind(|| supervise(workload)) {
        Ok(supervised) => supervised,
        Err(payload) => Supervised {
            ended: None,
            reaper_panic: Some(panic_message(&*payload)),
        },
    };
    write_status(plan.status_write, &supervised);
    // SAFETY: ends init; the kernel then kills what is left in its PID
    // namespace.
    unsafe { libc::_exit(0) }
}

fn set_up_rootfs(plan: &Plan, rootfs: &RootfsPlan) {
    let devices: Vec<(CString, CString)> =
        rootfs.devices.iter().map(|(h, t)| (c(h), c(t))).collect();
    let devices: Vec<(&CStr, &CStr)> = devices
        .iter()
        .map(|(h, t)| (h.as_c_str(), t.as_c_str()))
        .collect();
    check(plan, Stage::MountDev, || {
        mounts::mount_dev(&c(&rootfs.dev), &devices)
    });
    // Before pivot_root: in a user namespace the kernel lets us mount
    // proc and sysfs only while the host's are still visible here.
    if let (true, Some(source)) = (plan.proc, &plan.proc_bind) {
        check(plan, Stage::MountProc, || {
            let flags = nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC;
            let none: Option<&CStr> = None;
            nix::mount::mount(
                Some(c(source).as_c_str()),
                c(&rootfs.proc).as_c_str(),
                none,
                flags,
                none,
            )
        });
    } else if plan.proc {
        check(plan, Stage::MountProc, || {
            mounts::mount_proc(&c(&rootfs.proc))
        });
    }
    check(plan, Stage::MountSys, || mounts::mount_sys(&c(&rootfs.sys)));
    check(plan, Stage::MountTmp, || mounts::mount_tmp(&c(&rootfs.tmp)));
    check(plan, Stage::PivotRoot, || {
        mounts::pivot_into(&c(&rootfs.root))
    });
}

/// The command's arguments and environment as C strings.
struct Command {
    candidates: Vec<CString>,
    args: Vec<CString>,
    env: Vec<CString>,
}

impl Command {
    fn new(plan: &Plan) -> Command {
        let all = |list: &[String]| list.iter().map(|s| c(s)).collect();
        Command {
            candidates: all(&plan.exec_candidates),
            args: all(&plan.args),
            env: all(&plan.env),
        }
    }
}

/// Status pipe: how the command ended (8 bytes), then, if init's reaper
/// panicked and init fell back to waiting for the command alone, the panic
/// message.
fn write_status(fd: RawFd, supervised: &Supervised) {
    let mut bytes = match supervised.ended {
        Some(ended) => ended.encode().to_vec(),
        None => Ended::PANICKED.to_vec(),
    };
    if let Some(message) = &supervised.reaper_panic {
        let text = message.as_bytes();
        bytes.extend_from_slice(&text[..text.len().min(MAX_MESSAGE)]);
    }
    // SAFETY: a write from a live buffer of that length.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// The command's side of the fork: undo init's settings, then exec.
fn exec_command(plan: &Plan, command: &Command) -> ! {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Rust programs ignore SIGPIPE, and an ignored signal stays ignored across exec.
    // SAFETY: restores the default action; no handler is involved.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let _ = nix::unistd::close(plan.status_write);
    if plan.command_dies_with_init {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if plan.protect_init_from_oom {
        write_oom_score_adj("0");
    }
    if let Some((uid, gid)) = plan.user {
        use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
        // Groups first: after setuid we may no longer change them.
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        let switched = setgroups(&[])
            .and_then(|()| setresgid(gid, gid, gid))
            .and_then(|()| setresuid(uid, uid, uid));
        if let Err(errno) = switched {
            report_raw(plan.report_write, Stage::User, errno as i32, b"");
            // SAFETY: ends the forked child.
            unsafe { libc::_exit(126) }
        }
    }
    let mut errno = Errno::ENOENT;
    for path in &command.candidates {
        let Err(e) = nix::unistd::execve(path, &command.args, &command.env);
        // Keep the most telling reason: "permission denied" beats "not found".
        if e != Errno::ENOENT && e != Errno::ENOTDIR {
            errno = e;
        }
    }
    report_raw(plan.report_write, Stage::Exec, errno as i32, b"");
    // SAFETY: ends the forked child.
    unsafe { libc::_exit(127) }
}

fn write_oom_score_adj(value: &str) {
    let _ = std::fs::write("/proc/self/oom_score_adj", value);
}

/// A report record's header, as the parent reads it back: the stage, the
/// errno (or [`PANICKED`]) and the length of the message that follows.
pub(crate) fn decode_report(header: [u8; 12]) -> (Option<Stage>, i32, usize) {
    let word = |i: usize| [header[i], header[i + 1], header[i + 2], header[i + 3]];
    let stage = u32::from_ne_bytes(word(0));
    let errno = i32::from_ne_bytes(word(4));
    let len = u32::from_ne_bytes(word(8)) as usize;
    (Stage::from_u32(stage), errno, len.min(MAX_MESSAGE))
}

pub(crate) fn decode_status(bytes: [u8; 8]) -> Option<Ended> {
    Ended::decode(bytes)
}

/// A plan descriptor's value for [`INIT_VAR`].
pub(crate) fn init_env(plan_fd: RawFd) -> String {
    format!("{INIT_VAR}={plan_fd}")
}
