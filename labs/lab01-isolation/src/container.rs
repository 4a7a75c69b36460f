//! The runtime's public face: describe a container, spawn it, signal it,
//! wait for it. Dropping a [`Container`] kills what is left of it and
//! removes its cgroup, so no path (error, panic, early return) leaks one.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};

use crate::capabilities;
use crate::cgroup::Cgroup;
use crate::child::{self, Plan, RootfsPlan, Stage};
use crate::error::{Error, Result};
use crate::init::Ended;
use crate::limits::Resources;
use crate::namespaces::{self, Namespace};

/// Where one of the command's standard streams goes.
#[derive(Debug, Clone, Copy, Default)]
pub enum Stdio {
    /// The runtime's own stream.
    #[default]
    Inherit,
    /// A descriptor of the caller's; it stays the caller's to close.
    Fd(RawFd),
}

/// What to run, and how isolated.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The command and its arguments; the command is looked up on the PATH of `env`.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// `None` keeps the host's hostname (only useful with a shared UTS namespace).
    pub hostname: Option<String>,
    /// `None` keeps the host's filesystem (a new mount namespace still gets its own /proc).
    pub rootfs: Option<PathBuf>,
    /// Namespaces to create.
    pub namespaces: Vec<Namespace>,
    /// Existing namespaces to enter instead (`/proc/PID/ns/net`, …): chapter 3's pods.
    pub join: Vec<(Namespace, PathBuf)>,
    pub resources: Resources,
    /// Put the container in a cgroup of its own (root only). On by default;
    /// off only to measure what bare namespaces cost.
    pub cgroup: bool,
    /// Capabilities kept, as a bit mask.
    pub capabilities: u64,
    /// The (uid, gid) the command runs as; `None`: root of the container.
    pub user: Option<(u32, u32)>,
    pub stdio: [Stdio; 3],
}

impl ContainerSpec {
    /// A container running `args` in the default namespaces, with the default capabilities.
    pub fn new<S: Into<String>>(args: impl IntoIterator<Item = S>) -> Self {
        ContainerSpec {
            args: args.into_iter().map(Into::into).collect(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "HOME=/root".into(),
                "TERM=xterm".into(),
            ],
            cwd: "/".into(),
            hostname: Some("container".into()),
            rootfs: None,
            namespaces: namespaces::DEFAULT.to_vec(),
            join: Vec::new(),
            resources: Resources::default(),
            cgroup: true,
            capabilities: capabilities::default_mask(),
            user: None,
            stdio: [Stdio::Inherit; 3],
        }
    }

    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    pub fn rootfs(mut self, dir: impl Into<PathBuf>) -> Self {
        self.rootfs = Some(dir.into());
        self
    }

    pub fn resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    /// Adds a user namespace: root inside is the caller outside.
    pub fn user_namespace(mut self, on: bool) -> Self {
        self.namespaces.retain(|n| *n != Namespace::User);
        if on {
            self.namespaces.push(Namespace::User);
        }
        self
    }

    /// Enters an existing namespace instead of creating one of that kind.
    pub fn join(mut self, kind: Namespace, path: impl Into<PathBuf>) -> Self {
        self.namespaces.retain(|n| *n != kind);
        self.join.push((kind, path.into()));
        self
    }

    pub fn env(mut self, var: impl Into<String>) -> Self {
        self.env.push(var.into());
        self
    }

    pub fn stdio(mut self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Self {
        self.stdio = [stdin, stdout, stderr];
        self
    }

    fn has(&self, ns: Namespace) -> bool {
        self.namespaces.contains(&ns)
    }
}

/// How a container's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed by the kernel's OOM killer: it hit its memory limit.
    OomKilled,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }

    /// The code a shell would report: the exit code, or 128 + the signal.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => *code,
            ExitStatus::Signaled(sig) => 128 + sig,
            ExitStatus::OomKilled => 128 + libc::SIGKILL,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signaled(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            ExitStatus::OomKilled => f.write_str("killed by the OOM killer (memory limit reached)"),
        }
    }
}

/// What [`run_captured`] returns.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A running (or finished, not yet dropped) container.
#[derive(Debug)]
pub struct Container {
    name: String,
    init: Pid,
    status_read: OwnedFd,
    cgroup: Option<Cgroup>,
    status: Option<ExitStatus>,
}

/// How long init may take to report that the command started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl Container {
    // ANCHOR: spawn
    /// Creates the namespaces and the cgroup, sets up the filesystem, and
    /// starts the command. Returns once the command is executing.
    pub fn spawn(spec: &ContainerSpec) -> Result<Container> {
        let name = format!(
            "kubelings-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        if spec.args.is_empty() {
            return Err(Error::Unsupported("no command to run".into()));
        }
        if let Some(root) = &spec.rootfs {
            if !root.is_dir() {
                return Err(Error::Rootfs(format!(
                    "{} is not a directory",
                    root.display()
                )));
            }
        }
        let is_root = nix::unistd::geteuid().is_root();
        let cgroup = if is_root && spec.cgroup {
            Some(Cgroup::create(&name, &spec.resources)?)
        } else if !spec.resources.is_empty() {
            return Err(Error::Unsupported(if is_root {
                "memory, CPU and process limits need a cgroup".into()
            } else {
                "memory, CPU and process limits need cgroups, which need root".into()
            }));
        } else {
            None
        };

        let (sync_read, sync_write) = pipe()?;
        let (report_read, report_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let join_files = open_joins(spec)?;
        let plan = build_plan(
            spec,
            is_root,
            &sync_read,
            &report_write,
            &status_write,
            &join_files,
        )?;

        let mut stack = vec![0u8; 256 * 1024];
        let flags = namespaces::clone_flags(&spec.namespaces);
        // SAFETY: the child only runs `child::run`, which makes system calls on
        // data prepared above and never returns.
        let init = unsafe {
            nix::sched::clone(
                Box::new(|| child::run(&plan)),
                &mut stack,
                flags,
                Some(libc::SIGCHLD),
            )
        }
        .map_err(|e| Error::sys(clone_hint(e, spec), e))?;
        drop((sync_read, report_write, status_write, join_files));

        let mut container = Container {
            name,
            init,
            status_read,
            cgroup,
            status: None,
        };
        if spec.has(Namespace::User) {
            write_id_maps(init)?;
        }
        if let Some(cg) = &container.cgroup {
            cg.add(init.as_raw())?;
        }
        nix::unistd::write(&sync_write, &[1]).map_err(|e| Error::sys("start the container", e))?;
        drop(sync_write);
        container.await_start(report_read, spec)?;
        Ok(container)
    }
    // ANCHOR_END: spawn

    /// Reads init's reports until the command runs, or fails with the
    /// setup step that went wrong.
    fn await_start(&mut self, report: OwnedFd, spec: &ContainerSpec) -> Result<()> {
        let mut file = std::fs::File::from(report);
        let mut started = false;
        let mut record = [0u8; 8];
        loop {
            if !wait_readable(&file, START_TIMEOUT) {
                return Err(Error::InitDied(format!(
                    "no word from it within {}s",
                    START_TIMEOUT.as_secs()
                )));
            }
            match file.read_exact(&mut record) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("read", "the container's report pipe", e)),
            }
            match child::decode_report(record) {
                (Some(Stage::Started), _) => started = true,
                (Some(stage), child::PANICKED) => return Err(Error::SetupPanicked(stage)),
                (Some(Stage::Exec), errno) if errno == libc::ENOENT || errno == libc::ENOTDIR => {
                    return Err(Error::CommandNotFound(spec.args[0].clone()))
                }
                (Some(stage), errno) => {
                    return Err(Error::Setup {
                        stage,
                        errno: Errno::from_raw(errno),
                        hint: setup_hint(stage, errno),
                    })
                }
                (None, _) => break,
            }
        }
        if started {
            Ok(())
        } else {
            let status = self.wait()?;
            Err(Error::InitDied(status.to_string()))
        }
    }

    /// The unique name of this container (also its cgroup's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's PID of the container's init.
    pub fn pid(&self) -> i32 {
        self.init.as_raw()
    }

    /// `/proc/PID/ns/KIND` of the container: what a later container joins.
    pub fn namespace_path(&self, kind: Namespace) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{}", self.init, kind.proc_name()))
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Sends `signal` to init, which passes it on to the command.
    /// SIGKILL goes to init itself, which takes the whole container down.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match kill(self.init, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::sys("signal the container", e)),
        }
    }

    /// Waits for the command to end, then removes the cgroup.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let init_status = loop {
            match waitpid(self.init, None) {
                Ok(status) => break status,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("wait for the container", e)),
            }
        };
        let mut bytes = [0u8; 8];
        let mut file = std::fs::File::from(
            self.status_read
                .try_clone()
                .map_err(|e| Error::io("read", "the container's status pipe", e))?,
        );
        let read = file.read_exact(&mut bytes).is_ok();
        let panicked = read && bytes == Ended::PANICKED;
        let reported = if read {
            child::decode_status(bytes)
        } else {
            None
        };
        let status = match (reported, init_status) {
            (Some(Ended::Exited(code)), _) => ExitStatus::Exited(code),
            (Some(Ended::Signaled(sig)), _) => ExitStatus::Signaled(sig),
            // Init itself died (SIGKILL from outside, or a crash).
            (None, WaitStatus::Signaled(_, sig, _)) => ExitStatus::Signaled(sig as i32),
            (None, WaitStatus::Exited(_, code)) => ExitStatus::Exited(code),
            (None, _) => ExitStatus::Signaled(libc::SIGKILL),
        };
        let oom = self.cgroup.as_ref().is_some_and(|cg| cg.oom_kills() > 0);
        let status = match status {
            ExitStatus::Signaled(libc::SIGKILL) if oom => ExitStatus::OomKilled,
            other => other,
        };
        self.status = Some(status);
        if let Some(cg) = &mut self.cgroup {
            cg.remove()?;
        }
        if panicked {
            return Err(Error::InitPanicked);
        }
        Ok(status)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = kill(self.init, Signal::SIGKILL);
            let _ = self.wait();
        }
    }
}

/// Runs a container to the end and collects what it printed.
pub fn run_captured(spec: &ContainerSpec) -> Result<Output> {
    run_captured_inspect(spec, |_| ()).map(|(out, ())| out)
}

/// Like [`run_captured`], and calls `inspect` while the container still
/// exists (to read its cgroup, say).
pub fn run_captured_inspect<T>(
    spec: &ContainerSpec,
    inspect: impl FnOnce(&Container) -> T,
) -> Result<(Output, T)> {
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let spec = spec.clone().stdio(
        spec.stdio[0],
        Stdio::Fd(out_write.as_raw_fd()),
        Stdio::Fd(err_write.as_raw_fd()),
    );
    let mut container = Container::spawn(&spec)?;
    drop((out_write, err_write));
    let inspected = inspect(&container);
    let stderr = std::thread::spawn(move || read_all(err_read));
    let stdout = read_all(out_read);
    let status = container.wait()?;
    let stderr = stderr.join().unwrap_or_default();
    let output = Output {
        status,
        stdout,
        stderr,
    };
    Ok((output, inspected))
}

fn read_all(fd: OwnedFd) -> String {
    let mut text = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut text);
    text
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("create a pipe", e))
}

fn wait_readable(file: &std::fs::File, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    loop {
        match poll(&mut fds, ms) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(Errno::EINTR) => continue,
            Err(_) => return true,
        }
    }
}

fn open_joins(spec: &ContainerSpec) -> Result<Vec<(Namespace, std::fs::File)>> {
    spec.join
        .iter()
        .map(|(kind, path)| {
            std::fs::File::open(path)
                .map(|f| (*kind, f))
                .map_err(|e| Error::io("open namespace", path, e))
        })
        .collect()
}

fn cstring(text: impl AsRef<[u8]>, what: &str) -> Result<CString> {
    CString::new(text.as_ref().to_vec())
        .map_err(|_| Error::Unsupported(format!("{what} contains a NUL byte")))
}

fn path_cstring(path: &Path) -> Result<CString> {
    cstring(path.as_os_str().as_bytes(), "a path")
}

// ANCHOR: build_plan
fn build_plan(
    spec: &ContainerSpec,
    is_root: bool,
    sync_read: &OwnedFd,
    report_write: &OwnedFd,
    status_write: &OwnedFd,
    joins: &[(Namespace, std::fs::File)],
) -> Result<Plan> {
    let mut strings = Vec::new();
    let mut pointers = |list: &[String], what: &str| -> Result<Vec<*const libc::c_char>> {
        let mut ptrs = Vec::with_capacity(list.len() + 1);
        for item in list {
            let s = cstring(item, what)?;
            ptrs.push(s.as_ptr());
            strings.push(s);
        }
        ptrs.push(std::ptr::null());
        Ok(ptrs)
    };
    let argv = pointers(&spec.args, "an argument")?;
    let envp = pointers(&spec.env, "an environment variable")?;

    let command = &spec.args[0];
    let exec_candidates = if command.contains('/') {
        vec![cstring(command, "the command")?]
    } else {
        let path = spec
            .env
            .iter()
            .find_map(|v| v.strip_prefix("PATH="))
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| cstring(format!("{dir}/{command}"), "the command"))
            .collect::<Result<_>>()?
    };

    let rootfs = match &spec.rootfs {
        None => None,
        Some(root) => {
            let root = root
                .canonicalize()
                .map_err(|e| Error::io("resolve", root, e))?;
            for dir in ["proc", "dev", "sys", "tmp"] {
                let d = root.join(dir);
                if !d.is_dir() {
                    std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
                }
            }
            let devices = ["null", "zero", "full", "random", "urandom", "tty"]
                .iter()
                .map(|d| {
                    Ok((
                        cstring(format!("/dev/{d}"), "a device")?,
                        path_cstring(&root.join("dev").join(d))?,
                    ))
                })
                .collect::<Result<_>>()?;
            Some(RootfsPlan {
                dev: path_cstring(&root.join("dev"))?,
                proc: path_cstring(&root.join("proc"))?,
                sys: path_cstring(&root.join("sys"))?,
                tmp: path_cstring(&root.join("tmp"))?,
                root: path_cstring(&root)?,
                devices,
            })
        }
    };

    let stdio_fd = |s: Stdio| match s {
        Stdio::Inherit => None,
        Stdio::Fd(fd) => Some(fd),
    };
    let stdio = spec.stdio.map(stdio_fd);
    let joins: Vec<_> = joins
        .iter()
        .map(|(kind, file)| (file.as_raw_fd(), kind.clone_flag()))
        .collect();
    let mut keep_fds = vec![
        0,
        1,
        2,
        sync_read.as_raw_fd(),
        report_write.as_raw_fd(),
        status_write.as_raw_fd(),
    ];
    keep_fds.extend(joins.iter().map(|(fd, _)| *fd));
    keep_fds.sort_unstable();
    keep_fds.dedup();

    Ok(Plan {
        hostname: match (&spec.hostname, spec.has(Namespace::Uts)) {
            (Some(name), true) => Some(cstring(name, "the hostname")?),
            _ => None,
        },
        proc: spec.has(Namespace::Pid) || spec.rootfs.is_some(),
        rootfs,
        loopback: spec.has(Namespace::Net),
        cwd: cstring(&spec.cwd, "the working directory")?,
        exec_candidates,
        argv,
        envp,
        _strings: strings,
        joins,
        stdio,
        sync_read: sync_read.as_raw_fd(),
        report_write: report_write.as_raw_fd(),
        status_write: status_write.as_raw_fd(),
        keep_fds,
        user: spec.user,
        caps_keep: spec.capabilities,
        last_cap: capabilities::last_cap(),
        protect_init_from_oom: is_root,
    })
}
// ANCHOR_END: build_plan

/// Root inside the user namespace is the caller outside.
fn write_id_maps(pid: Pid) -> Result<()> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let write = |file: &str, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| Error::io("write", path, e))
    };
    // An unprivileged process may only map its own IDs, and only after
    // giving up setgroups(2) in the namespace.
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("gid_map", format!("0 {gid} 1\n"))
}

fn clone_hint(e: Errno, spec: &ContainerSpec) -> &'static str {
    match e {
        Errno::EPERM if spec.has(Namespace::User) => {
            "create namespaces (this kernel refuses unprivileged user namespaces: run as root)"
        }
        Errno::EPERM => "create namespaces (needs root, or add a user namespace: --userns)",
        Errno::ENOSPC => "create namespaces (too many namespaces: see /proc/sys/user/max_*)",
        _ => "create namespaces",
    }
}

fn setup_hint(stage: Stage, errno: i32) -> &'static str {
    match (stage, errno) {
        (Stage::PivotRoot, libc::EINVAL) => {
            " (is the rootfs on a filesystem that allows pivot_root? A ramfs root does not)"
        }
        (_, libc::EPERM) | (_, libc::EACCES) => {
            " (not permitted: run as root, or with a user namespace)"
        }
        _ => "",
    }
}
