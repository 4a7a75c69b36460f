//! The runtime's public face: describe a container, spawn it, signal it,
//! wait for it. Dropping a [`Container`] kills what is left of it and
//! removes its cgroup, so no path (error, panic, early return) leaks one.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};

use crate::capabilities;
use crate::cgroup::Cgroup;
use crate::child::{self, Launch, Plan, RootfsPlan, Stage};
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
    /// Existing cgroup directories (one per v1 hierarchy, or one v2
    /// directory) init enters before the command starts, instead of a
    /// cgroup of its own: chapter 3's runtime makes the pod's tree itself.
    pub cgroup_dirs: Vec<PathBuf>,
    /// An existing proc mount to bind at the container's /proc instead of
    /// mounting a fresh one: a /proc shows the PID namespace of whoever
    /// mounts it, and init, after joining a pod's PID namespace, is not in
    /// it itself (only its children are), so the pod's sandbox mounts it.
    pub proc_source: Option<PathBuf>,
    /// Capabilities kept, as a bit mask.
    pub capabilities: u64,
    /// The (uid, gid) the command runs as; `None`: root of the container.
    pub user: Option<(u32, u32)>,
    pub stdio: [Stdio; 3],
    /// Kill the container if it has not ended this long after it was
    /// spawned: [`Container::wait`] then fails with [`Error::Timeout`].
    /// `None`: wait as long as it takes.
    pub timeout: Option<Duration>,
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
            cgroup_dirs: Vec::new(),
            proc_source: None,
            capabilities: capabilities::default_mask(),
            user: None,
            stdio: [Stdio::Inherit; 3],
            timeout: None,
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

    /// Kills the container if it runs longer than `limit` (see [`ContainerSpec::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Enters these existing cgroup directories instead of making a cgroup
    /// (see [`ContainerSpec::cgroup_dirs`]).
    pub fn cgroup_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.cgroup_dirs = dirs;
        self
    }

    /// Only these new namespaces (and no others): a test of one exercise
    /// asks for what it checks, nothing a later exercise provides.
    pub fn namespaces(mut self, kinds: &[Namespace]) -> Self {
        self.namespaces = kinds.to_vec();
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
    /// When [`ContainerSpec::timeout`] runs out.
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    reaper_panic: Option<String>,
}

/// How long init may take to report that the command started. Setup is a
/// few milliseconds of system calls; this only catches a step that hangs.
const START_TIMEOUT: Duration = Duration::from_secs(20);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl Container {
    /// Creates the namespaces and the cgroup, sets up the filesystem, and
    /// starts the command. Returns once the command is executing.
    ///
    /// The container dies with the thread that spawned it (its init has
    /// `PR_SET_PDEATHSIG`): spawn from a thread that outlives it.
    pub fn spawn(spec: &ContainerSpec) -> Result<Container> {
        // Keeps the constructor that turns this program into init linked in.
        child::touch_init_hook();
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
        let spec = &with_user_namespace_if_needed(spec, is_root);
        let cgroup = if !spec.cgroup_dirs.is_empty() {
            // The caller's cgroups, which the caller also limits.
            None
        } else if is_root && spec.cgroup {
            sweep_stale_cgroups();
            Some(Cgroup::create(&name, &spec.resources)?)
        } else if !spec.resources.is_empty() {
            return Err(no_cgroup_for_limits(is_root));
        } else {
            None
        };
        Self::start(&name, spec, cgroup)
    }

    // ANCHOR: spawn
    /// The heart of [`Container::spawn`]: clone a child into the new
    /// namespaces, which executes init; let it go; wait for its report.
    fn start(name: &str, spec: &ContainerSpec, cg: Option<Cgroup>) -> Result<Self> {
        let is_root = nix::unistd::geteuid().is_root();
        let (sync_read, sync_write) = pipe()?;
        let (report_read, report_write) = pipe()?;
        let (status_read, status_write) = pipe()?;
        let joins = open_joins(spec)?;
        let fds = [&sync_read, &report_write, &status_write];
        let plan = write_plan(&build_plan(spec, is_root, fds, &joins)?)?;
        let writers = [&report_write, &status_write];
        let exe = open_exe()?;
        let launch = build_launch(spec, &exe, &plan, &sync_read, writers, &joins);

        let mut stack = vec![0u8; 64 * 1024];
        let flags = namespaces::clone_flags(&spec.namespaces);
        // SAFETY: the child only runs `child::exec_init`: async-signal-safe
        // system calls on data prepared above, then exec or exit.
        let init = unsafe {
            nix::sched::clone(
                Box::new(|| child::exec_init(&launch)),
                &mut stack,
                flags,
                Some(libc::SIGCHLD),
            )
        }
        .map_err(|e| Error::sys(clone_hint(e, spec), e))?;
        // Init has its own copies; ours would keep its pipes from closing.
        drop((sync_read, report_write, status_write, joins, plan, exe));

        let mut container = Container::new(name, init, status_read, cg, spec);
        container.place(spec)?;
        let go = nix::unistd::write(&sync_write, &[1]);
        go.map_err(|e| Error::sys("start the container", e))?;
        // Open until init reports: the child checks we are still here.
        let started = container.await_start(report_read, spec);
        drop(sync_write);
        started.map(|()| container)
    }
    // ANCHOR_END: spawn

    /// Before init goes on: its user namespace's ID maps, and its cgroups.
    fn place(&self, spec: &ContainerSpec) -> Result<()> {
        if spec.has(Namespace::User) {
            write_id_maps(self.init)?;
        }
        if let Some(cg) = &self.cgroup {
            cg.add(self.init.as_raw())?;
        }
        enter_cgroups(&spec.cgroup_dirs, self.init)
    }

    fn new(
        name: &str,
        init: Pid,
        status_read: OwnedFd,
        cgroup: Option<Cgroup>,
        spec: &ContainerSpec,
    ) -> Container {
        Container {
            name: name.to_string(),
            init,
            status_read,
            cgroup,
            status: None,
            deadline: spec.timeout.map(|t| Instant::now() + t),
            timeout: spec.timeout,
            reaper_panic: None,
        }
    }

    /// Reads init's reports until the command runs, or fails with the
    /// setup step that went wrong.
    fn await_start(&mut self, report: OwnedFd, spec: &ContainerSpec) -> Result<()> {
        let mut file = std::fs::File::from(report);
        let mut started = false;
        let mut header = [0u8; 12];
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !wait_readable(&file, deadline) {
                self.kill_now();
                return Err(Error::Timeout {
                    name: self.name.clone(),
                    what: "start",
                    after: START_TIMEOUT,
                });
            }
            match file.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("read", "the container's report pipe", e)),
            }
            let (stage, errno, len) = child::decode_report(header);
            let mut message = vec![0u8; len];
            if file.read_exact(&mut message).is_err() {
                message.clear();
            }
            match (stage, errno) {
                (Some(Stage::Started), _) => started = true,
                (Some(stage), child::PANICKED) => {
                    return Err(Error::SetupPanicked {
                        stage,
                        message: String::from_utf8_lossy(&message).into_owned(),
                    })
                }
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
            let status = self.wait_timeout(START_TIMEOUT)?;
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

    /// The read end of init's status pipe: readable (or at end of file)
    /// once the container has ended, so one `poll`/`epoll` loop can watch
    /// many containers and call [`Container::wait`] only on ended ones.
    pub fn status_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.status_read.as_fd()
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// After [`Container::wait`]: the panic message of init's reaper
    /// (`init::reap_children`), if it panicked. Init then waited for the
    /// command alone, so its exit status still arrived, but orphans stayed
    /// zombies.
    pub fn reaper_panic(&self) -> Option<&str> {
        self.reaper_panic.as_deref()
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

    /// Waits for the command to end, then removes the cgroup. With a
    /// [`ContainerSpec::timeout`], kills the container when it runs out and
    /// fails with [`Error::Timeout`].
    pub fn wait(&mut self) -> Result<ExitStatus> {
        match (self.deadline, self.timeout) {
            (Some(deadline), Some(limit)) => self.wait_until(deadline, limit),
            _ => self.reap(),
        }
    }

    /// Like [`Container::wait`], for at most `limit`: then the container
    /// is killed and the error names it.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<ExitStatus> {
        self.wait_until(Instant::now() + limit, limit)
    }

    fn wait_until(&mut self, deadline: Instant, limit: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // Init writes the status just before it exits; end of file if it died.
        if !wait_readable(&self.status_read, deadline) {
            self.kill_now();
            return Err(Error::Timeout {
                name: self.name.clone(),
                what: "exit",
                after: limit,
            });
        }
        self.reap()
    }

    /// Kills init (and so the container) and reaps it, ignoring errors.
    fn kill_now(&mut self) {
        if self.status.is_none() {
            let _ = kill(self.init, Signal::SIGKILL);
            let _ = self.reap();
        }
    }

    /// Reaps init, reads how the command ended, removes the cgroup.
    fn reap(&mut self) -> Result<ExitStatus> {
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
        let mut file = std::fs::File::from(
            self.status_read
                .try_clone()
                .map_err(|e| Error::io("read", "the container's status pipe", e))?,
        );
        let mut bytes = [0u8; 8];
        let read = file.read_exact(&mut bytes).is_ok();
        let mut note = Vec::new();
        if read {
            let _ = file.take(child::MAX_MESSAGE as u64).read_to_end(&mut note);
        }
        let panicked = read && bytes == Ended::PANICKED;
        if !note.is_empty() {
            self.reaper_panic = Some(String::from_utf8_lossy(&note).into_owned());
        }
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
            return Err(Error::InitPanicked(
                self.reaper_panic.clone().unwrap_or_default(),
            ));
        }
        Ok(status)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Moves `init` into cgroups the caller made ([`ContainerSpec::cgroup_dirs`]).
fn enter_cgroups(dirs: &[PathBuf], init: Pid) -> Result<()> {
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, init.as_raw().to_string())
            .map_err(|e| Error::io("add process to", &procs, e))?;
    }
    Ok(())
}

fn no_cgroup_for_limits(is_root: bool) -> Error {
    Error::Unsupported(if is_root {
        "memory, CPU and process limits need a cgroup".into()
    } else {
        "memory, CPU and process limits need cgroups, which need root".into()
    })
}

/// Without root, a container gets a user namespace (if it creates any
/// namespace and joins no user namespace): there it is root, and may set
/// its hostname, mount, pivot_root.
fn with_user_namespace_if_needed(spec: &ContainerSpec, is_root: bool) -> ContainerSpec {
    let mut spec = spec.clone();
    let joins_user = spec.join.iter().any(|(kind, _)| *kind == Namespace::User);
    if !is_root && !spec.namespaces.is_empty() && !spec.has(Namespace::User) && !joins_user {
        spec.namespaces.push(Namespace::User);
    }
    spec
}

/// Removes the cgroups that containers of a dead runtime left behind
/// (`kubelings-PID-N` whose PID is gone), once per process. A cgroup that
/// still holds processes stays (rmdir fails): it is not ours to kill.
fn sweep_stale_cgroups() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for dir in crate::cgroup::find_leftovers("kubelings-") {
            let owner = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("kubelings-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok());
            let Some(owner) = owner else { continue };
            let gone = matches!(kill(Pid::from_raw(owner), None), Err(Errno::ESRCH));
            if owner != std::process::id() as i32 && gone {
                let _ = std::fs::remove_dir(&dir);
            }
        }
    });
}

/// How long [`run_captured`] waits for the output pipes to close after the
/// container ended (a process that escaped it might hold them open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
    // Both streams are drained at once, so a chatty command never blocks.
    let stdout = read_all(out_read);
    let stderr = read_all(err_read);
    let inspected = inspect(&container);
    let status = container.wait()?;
    let output = Output {
        status,
        stdout: stdout.recv_timeout(DRAIN_TIMEOUT).unwrap_or_default(),
        stderr: stderr.recv_timeout(DRAIN_TIMEOUT).unwrap_or_default(),
    };
    Ok((output, inspected))
}

/// Reads `fd` to its end on a thread of its own.
fn read_all(fd: OwnedFd) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::fs::File::from(fd).read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("create a pipe", e))
}

/// Waits until `fd` is readable (or at end of file); false at `deadline`.
fn wait_readable(fd: &impl AsFd, deadline: Instant) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so a deadline a fraction of a millisecond away is not busy-waited.
        let ms = i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) if Instant::now() >= deadline => return false,
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return true,
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

/// A string for the plan: no NUL byte (init makes C strings of it), UTF-8
/// (the plan is JSON).
fn plain(text: &str, what: &str) -> Result<String> {
    cstring(text, what).map(|_| text.to_string())
}

fn path_string(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::Unsupported(format!("the path {path:?} is not UTF-8")))?;
    plain(text, "a path")
}

/// The plan, as JSON in a memfd that init reads.
fn write_plan(plan: &Plan) -> Result<std::fs::File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let json = serde_json::to_vec(plan)
        .map_err(|e| Error::Unsupported(format!("cannot encode the plan: {e}")))?;
    let fd = memfd_create(c"kubelings-plan", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::sys("create the plan's memfd", e))?;
    let mut file = std::fs::File::from(fd);
    let io = |e| Error::io("write", "the plan's memfd", e);
    file.write_all(&json).map_err(io)?;
    std::io::Seek::rewind(&mut file).map_err(io)?;
    Ok(file)
}

/// The runtime's own binary, for the child to execute as init.
fn open_exe() -> Result<std::fs::File> {
    std::fs::File::open("/proc/self/exe").map_err(|e| Error::io("open", "/proc/self/exe", e))
}

/// What the cloned child needs to execute init, as raw pointers.
fn build_launch(
    spec: &ContainerSpec,
    exe: &std::fs::File,
    plan: &std::fs::File,
    sync_read: &OwnedFd,
    writers: [&OwnedFd; 2],
    joins: &[(Namespace, std::fs::File)],
) -> Launch {
    let [report_write, status_write] = writers;
    let (exe, plan_fd) = (exe.as_raw_fd(), plan.as_raw_fd());
    let mut strings = vec![
        c"init".to_owned(),
        CString::new(child::init_env(plan_fd)).unwrap_or_default(),
    ];
    // `kubelings verify` says which exercises count as solved; init runs them.
    if let Some(solved) = std::env::var_os("KUBELINGS_SOLVED") {
        let mut var = b"KUBELINGS_SOLVED=".to_vec();
        var.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(solved.as_os_str()));
        if let Ok(var) = CString::new(var) {
            strings.push(var);
        }
    }
    let mut envp: Vec<*const libc::c_char> = strings[1..].iter().map(|s| s.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut inherit = vec![
        plan_fd,
        sync_read.as_raw_fd(),
        report_write.as_raw_fd(),
        status_write.as_raw_fd(),
    ];
    inherit.extend(joins.iter().map(|(_, f)| f.as_raw_fd()));
    Launch {
        exe,
        argv: [strings[0].as_ptr(), std::ptr::null()],
        envp,
        _strings: strings,
        sync_read: sync_read.as_raw_fd(),
        sync_before_exec: spec.has(Namespace::User),
        report_write: report_write.as_raw_fd(),
        stdio: spec.stdio.map(|s| match s {
            Stdio::Inherit => None,
            Stdio::Fd(fd) => Some(fd),
        }),
        inherit,
    }
}

/// Everything init needs: `fds` are the sync, report and status pipes.
fn build_plan(
    spec: &ContainerSpec,
    is_root: bool,
    fds: [&OwnedFd; 3],
    joins: &[(Namespace, std::fs::File)],
) -> Result<Plan> {
    let [sync_read, report_write, status_write] = fds;
    let all = |list: &[String], what: &str| -> Result<Vec<String>> {
        list.iter().map(|s| plain(s, what)).collect()
    };
    let args = all(&spec.args, "an argument")?;
    let env = all(&spec.env, "an environment variable")?;

    let command = &spec.args[0];
    let exec_candidates = if command.contains('/') {
        vec![plain(command, "the command")?]
    } else {
        let path = spec
            .env
            .iter()
            .find_map(|v| v.strip_prefix("PATH="))
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| plain(&format!("{dir}/{command}"), "the command"))
            .collect::<Result<_>>()?
    };

    // Mounts only in a mount namespace of the container's own: one that is
    // joined (chapter 3's exec) is set up already, and the host's is not ours.
    let mounts = spec.has(Namespace::Mount);
    let rootfs = match &spec.rootfs {
        Some(_) if !mounts => {
            let joined = spec.join.iter().any(|(kind, _)| *kind == Namespace::Mount);
            if !joined {
                return Err(Error::Unsupported(
                    "a root filesystem needs a mount namespace of the container's own".into(),
                ));
            }
            None
        }
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
                .map(|d| Ok((format!("/dev/{d}"), path_string(&root.join("dev").join(d))?)))
                .collect::<Result<_>>()?;
            Some(RootfsPlan {
                dev: path_string(&root.join("dev"))?,
                proc: path_string(&root.join("proc"))?,
                sys: path_string(&root.join("sys"))?,
                tmp: path_string(&root.join("tmp"))?,
                root: path_string(&root)?,
                devices,
            })
        }
    };

    let joins: Vec<_> = joins
        .iter()
        .map(|(kind, file)| (file.as_raw_fd(), kind.clone_flag().bits()))
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
            (Some(name), true) => Some(plain(name, "the hostname")?),
            _ => None,
        },
        mounts,
        proc: mounts && (spec.has(Namespace::Pid) || spec.rootfs.is_some()),
        proc_bind: spec.proc_source.as_deref().map(path_string).transpose()?,
        rootfs,
        loopback: spec.has(Namespace::Net),
        cwd: plain(&spec.cwd, "the working directory")?,
        exec_candidates,
        args,
        env,
        joins,
        sync_read: sync_read.as_raw_fd(),
        synced: spec.has(Namespace::User),
        report_write: report_write.as_raw_fd(),
        status_write: status_write.as_raw_fd(),
        keep_fds,
        user: spec.user,
        caps_keep: spec.capabilities,
        last_cap: capabilities::last_cap(),
        protect_init_from_oom: is_root,
        command_dies_with_init: !spec.has(Namespace::Pid),
    })
}

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
