//! A command inside a running container (`kubectl exec`, exec probes).
//!
//! Like `runc exec`: a new process enters every namespace of the
//! container's init (creating none, so no mount outside changes), which
//! puts it under the container's root (joining a mount namespace moves a
//! process to that namespace's root), joins its cgroup, and runs with its
//! environment, working directory and user. lab01 does the joining: its
//! init enters the namespaces, then forks the command into the PID
//! namespace.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lab01::namespaces::Namespace;
use lab01::{ContainerSpec, Stdio};

use super::LinuxRuntime;
use crate::cri::{ContainerState, CriError, CriResult, ExecRequest, ExecSession, ExecSyncResponse};

// ANCHOR: exec_joins
/// The namespaces an exec joins: all of the container init's, the mount
/// namespace last (after it, `/proc` paths would be the container's; the
/// descriptors are opened before). `pid_for_children` is the PID namespace
/// the init's children live in: the container's own or the pod's.
fn exec_joins(init: i32) -> Vec<(Namespace, PathBuf)> {
    [
        (Namespace::Ipc, "ipc"),
        (Namespace::Uts, "uts"),
        (Namespace::Net, "net"),
        (Namespace::Pid, "pid_for_children"),
        (Namespace::Cgroup, "cgroup"),
        (Namespace::Mount, "mnt"),
    ]
    .into_iter()
    .map(|(kind, name)| (kind, format!("/proc/{init}/ns/{name}").into()))
    .collect()
}
// ANCHOR_END: exec_joins

/// The lab01 spec of `cmd` run inside container `id`.
fn exec_spec(rt: &LinuxRuntime, id: &str, cmd: &[String]) -> CriResult<ContainerSpec> {
    if cmd.is_empty() {
        return Err(CriError::InvalidArgument("exec: no command given".into()));
    }
    let inner = rt.inner();
    let tables = inner.lock();
    let rec = tables
        .containers
        .get(id)
        .ok_or_else(|| CriError::NotFound {
            kind: "container",
            id: id.to_string(),
        })?;
    let (ContainerState::Running, Some(init)) = (rec.state, rec.pid) else {
        return Err(CriError::WrongState {
            kind: "container",
            id: id.to_string(),
            state: format!("{:?}", rec.state),
            wanted: "Running",
        });
    };
    let mut spec = ContainerSpec::new(cmd.iter().cloned());
    spec.env = rec.spec.env.clone();
    spec.cwd = rec.spec.cwd.clone();
    spec.user = rec.spec.user;
    spec.capabilities = rec.spec.capabilities;
    spec.hostname = None;
    spec.namespaces = Vec::new();
    for (kind, path) in exec_joins(init) {
        spec = spec.join(kind, path);
    }
    Ok(spec.cgroup_dirs(inner.cgroups.dirs(&rec.cgroup)))
}

fn pipe() -> CriResult<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| CriError::Internal {
        context: "make a pipe".into(),
        source: Box::new(e),
    })
}

fn start_error(id: &str) -> impl FnOnce(lab01::Error) -> CriError + '_ {
    move |e| CriError::Internal {
        context: format!("exec in container {id}"),
        source: Box::new(e),
    }
}

/// Starts `spec` on the runtime's thread (so it lives as long as the
/// runtime), handing it `fds` for its stdio, which are closed here after.
fn spawn(
    rt: &LinuxRuntime,
    id: &str,
    spec: ContainerSpec,
    fds: Vec<OwnedFd>,
) -> CriResult<lab01::Container> {
    rt.inner()
        .engine
        .call(move |_| {
            let spawned = lab01::Container::spawn(&spec);
            drop(fds);
            spawned
        })?
        .map_err(start_error(id))
}

// ANCHOR: exec_sync
/// Runs `cmd` in container `id` and collects its output, for at most
/// `timeout` (zero: no limit), after which it is killed.
pub(super) fn exec_sync(
    rt: &LinuxRuntime,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> CriResult<ExecSyncResponse> {
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let devnull = std::fs::File::open("/dev/null").map_err(|e| CriError::Internal {
        context: "open /dev/null".into(),
        source: Box::new(e),
    })?;
    let spec = exec_spec(rt, id, cmd)?.stdio(
        Stdio::Fd(devnull.as_raw_fd()),
        Stdio::Fd(out_write.as_raw_fd()),
        Stdio::Fd(err_write.as_raw_fd()),
    );
    let started = Instant::now();
    let mut process = spawn(rt, id, spec, vec![out_write, err_write, devnull.into()])?;
    let deadline = (!timeout.is_zero()).then(|| started + timeout);
    let (stdout, stderr) = collect(&process, out_read, err_read, deadline);
    if deadline.is_some_and(|d| Instant::now() >= d) {
        // Dropping it kills it (and so the command, which dies with it).
        drop(process);
        return Err(CriError::DeadlineExceeded(timeout));
    }
    let status = process.wait().map_err(start_error(id))?;
    Ok(ExecSyncResponse {
        stdout,
        stderr,
        exit_code: status.code(),
    })
}
// ANCHOR_END: exec_sync

/// Reads both streams until the command has ended and they are drained,
/// or until `deadline`.
fn collect(
    process: &lab01::Container,
    out: OwnedFd,
    err: OwnedFd,
    deadline: Option<Instant>,
) -> (Vec<u8>, Vec<u8>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut streams = [(Some(out), Vec::new()), (Some(err), Vec::new())];
    loop {
        let open: Vec<usize> = (0..2).filter(|&i| streams[i].0.is_some()).collect();
        if open.is_empty() {
            break;
        }
        let mut fds: Vec<PollFd> = open
            .iter()
            .filter_map(|&i| streams[i].0.as_ref())
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(process.status_fd(), PollFlags::POLLIN));
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                PollTimeout::from(u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX))
            }
        };
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        if ready.last() == Some(&true) {
            // It ended: whatever is in the pipes now is all there is, even
            // if something it started still holds them open.
            for &i in &open {
                if let Some(fd) = streams[i].0.take() {
                    drain_nonblocking(fd, &mut streams[i].1);
                }
            }
            break;
        }
        for (slot, &i) in open.iter().enumerate() {
            if ready[slot] {
                let mut buf = [0u8; 16 * 1024];
                let fd = streams[i]
                    .0
                    .as_ref()
                    .map(|f| nix::unistd::read(f, &mut buf));
                match fd {
                    Some(Ok(n)) if n > 0 => streams[i].1.extend_from_slice(&buf[..n]),
                    Some(Err(nix::errno::Errno::EINTR)) => {}
                    _ => streams[i].0 = None,
                }
            }
        }
    }
    let [(_, out), (_, err)] = streams;
    (out, err)
}

fn drain_nonblocking(fd: OwnedFd, into: &mut Vec<u8>) {
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(0);
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags));
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = file.read(&mut buf) {
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buf[..n]);
    }
}

// ANCHOR: exec
/// Starts `request.cmd` in container `id` with its streams handed back:
/// pipes, or with `tty` a pseudo-terminal whose master side is stdout (and
/// stdin).
pub(super) fn exec(rt: &LinuxRuntime, id: &str, request: &ExecRequest) -> CriResult<ExecSession> {
    let spec = exec_spec(rt, id, &request.cmd)?;
    let devnull: OwnedFd = std::fs::File::open("/dev/null")
        .map_err(|e| CriError::Internal {
            context: "open /dev/null".into(),
            source: Box::new(e),
        })?
        .into();
    let mut theirs: Vec<OwnedFd> = Vec::new();
    let (stdin, stdout, stderr);
    let spec = if request.tty {
        let pty = nix::pty::openpty(None, None).map_err(|e| CriError::Internal {
            context: "open a pseudo-terminal".into(),
            source: Box::new(e),
        })?;
        let slave = pty.slave.as_raw_fd();
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map_err(|e| CriError::Internal {
                context: "copy a descriptor".into(),
                source: Box::new(e),
            })
        };
        stdin = if request.stdin {
            Some(dup(&pty.master)?)
        } else {
            None
        };
        stderr = None;
        stdout = Some(pty.master);
        theirs.push(pty.slave);
        spec.stdio(Stdio::Fd(slave), Stdio::Fd(slave), Stdio::Fd(slave))
    } else {
        let mut end = |wanted: bool, ours_reads: bool| -> CriResult<(Option<OwnedFd>, Stdio)> {
            if !wanted {
                return Ok((None, Stdio::Fd(devnull.as_raw_fd())));
            }
            let (read, write) = pipe()?;
            let (ours, child) = if ours_reads {
                (read, write)
            } else {
                (write, read)
            };
            let fd = child.as_raw_fd();
            theirs.push(child);
            Ok((Some(ours), Stdio::Fd(fd)))
        };
        let (i, si) = end(request.stdin, false)?;
        let (o, so) = end(request.stdout, true)?;
        let (e, se) = end(request.stderr, true)?;
        (stdin, stdout, stderr) = (i, o, e);
        spec.stdio(si, so, se)
    };
    theirs.push(devnull);
    let mut process = spawn(rt, id, spec, theirs)?;
    let pid = process.pid();
    let container = id.to_string();
    Ok(ExecSession {
        pid,
        stdin,
        stdout,
        stderr,
        wait: Box::new(move || {
            process
                .wait()
                .map(|status| status.code())
                .map_err(|e| std::io::Error::other(format!("exec in {container}: {e}")))
        }),
    })
}
// ANCHOR_END: exec
