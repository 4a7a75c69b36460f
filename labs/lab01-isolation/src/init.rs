//! The container's PID 1.
//!
//! In a new PID namespace the first process is init: orphans are re-parented
//! to it, and when it exits the kernel kills everything else inside. Ours is
//! tiny, like tini or Docker's `--init`: it starts the command, passes on the
//! signals it receives, and reaps every child that exits.

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How the command ended, as init tells the runtime through a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

impl Ended {
    /// What init sends instead when its own loop panicked.
    pub const PANICKED: [u8; 8] = [0xff; 8];

    /// Eight bytes for the status pipe.
    pub fn encode(self) -> [u8; 8] {
        let (kind, value) = match self {
            Ended::Exited(code) => (0i32, code),
            Ended::Signaled(sig) => (1, sig),
        };
        let mut out = [0; 8];
        out[..4].copy_from_slice(&kind.to_ne_bytes());
        out[4..].copy_from_slice(&value.to_ne_bytes());
        out
    }

    pub fn decode(bytes: [u8; 8]) -> Option<Ended> {
        let kind = i32::from_ne_bytes(bytes[..4].try_into().ok()?);
        let value = i32::from_ne_bytes(bytes[4..].try_into().ok()?);
        match kind {
            0 => Some(Ended::Exited(value)),
            1 => Some(Ended::Signaled(value)),
            _ => None,
        }
    }
}

// ANCHOR: reap_children
/// Reaps every child that has exited so far, without blocking, and returns
/// how the command (`workload`) ended if it was among them. Orphans that
/// were re-parented to init are reaped too, so no zombie stays behind.
pub fn reap_children(workload: Pid) -> Option<Ended> {
    // EXERCISE: lab01-init-reaper
    let mut ended = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == workload => {
                ended = Some(Ended::Exited(code));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == workload => {
                ended = Some(Ended::Signaled(sig as i32));
            }
            // Nobody else has exited yet.
            Ok(WaitStatus::StillAlive) => break,
            // Someone else: reaped, nothing more to do.
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: no children left at all.
            Err(_) => break,
        }
    }
    ended
    // EXERCISE_END: lab01-init-reaper
}
// ANCHOR_END: reap_children

// ANCHOR: init_loop
/// Init's main loop. All signals are blocked, so they queue up and are taken
/// one by one here: SIGCHLD means "reap", anything else is for the command.
/// Returns when the command has ended.
pub fn supervise(workload: Pid) -> Ended {
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigfillset(&mut all) };
    loop {
        let sig = unsafe { libc::sigwaitinfo(&all, std::ptr::null_mut()) };
        if sig == libc::SIGCHLD {
            if let Some(ended) = reap_children(workload) {
                return ended;
            }
        } else if sig > 0 {
            unsafe { libc::kill(workload.as_raw(), sig) };
        }
    }
}
// ANCHOR_END: init_loop
