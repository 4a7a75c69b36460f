//! The cluster's processes: started with their log files, dying with the
//! supervisor, in a node's network namespace where asked; stopped by pid
//! (and start time) only.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use lab05::cluster::state::ProcessId;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

// ANCHOR: spawn
/// Starts `ch05 ARGS…` (this very program) as `name`, its output
/// appended to `log`, inside the network namespace `netns` if given. It
/// gets SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG),
/// so a supervisor that is killed takes its children with it.
pub fn spawn(
    name: &str,
    args: &[String],
    netns: Option<&Path>,
    log: &Path,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding this program")?;
    let mut command = Command::new(exe);
    command.args(args);
    spawn_command(name, command, netns, log)
}
// ANCHOR_END: spawn

/// [`spawn`] for any command.
pub fn spawn_command(
    name: &str,
    mut command: Command,
    netns: Option<&Path>,
    log: &Path,
) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    let netns = match netns {
        Some(path) => Some(
            File::open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let fd = netns.as_ref().map(|f| f.as_raw_fd());
    let parent = std::process::id();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: between fork and exec the closure makes only
    // async-signal-safe system calls (prctl, getppid, setns) on values
    // made before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl: no signal would ever come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            if let Some(fd) = fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    drop(netns);
    Ok(child)
}

/// Stops process `id`: SIGTERM, then SIGKILL after `grace`; waits until
/// it is gone (reaped by `child` when it is ours). A pid whose process is
/// another than the one recorded is left alone. Answers whether it ran.
pub fn stop(id: ProcessId, child: Option<&mut Child>, grace: Duration) -> bool {
    if !id.is_alive() {
        if let Some(child) = child {
            let _ = child.try_wait();
        }
        return false;
    }
    let pid = Pid::from_raw(id.pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let mut child = child;
    let deadline = Instant::now() + grace;
    let gone = |child: &mut Option<&mut Child>| match child {
        Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        None => !id.is_alive(),
    };
    while Instant::now() < deadline {
        if gone(&mut child) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if id.is_alive() {
        let _ = kill(pid, Signal::SIGKILL);
    }
    match child {
        Some(c) => {
            let _ = c.wait();
        }
        None => {
            let deadline = Instant::now() + Duration::from_secs(5);
            while id.is_alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    true
}
