//! The container's PID 1.
//!
//! In a new PID namespace the first process is init: orphans are re-parented
//! to it, and when it exits the kernel kills everything else inside. Ours is
//! tiny, like tini or Docker's `--init`: it starts the command, passes on the
//! signals it receives, and reaps every child that exits.

use nix::sys::signal::{kill, SigSet, Signal};
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
pub fn supervise(workload: Pid) -> Supervised {
    let mut reaper = Reaper::new(workload);
    loop {
        match SigSet::all().wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(ended) = reaper.reap() {
                    return reaper.finish(ended);
                }
            }
            Ok(signal) => {
                let _ = kill(workload, signal);
            }
            // A real-time signal: nix has no name for it; not passed on.
            Err(_) => {}
        }
    }
}
// ANCHOR_END: init_loop

/// What [`supervise`] returns: how the command ended, and whether init had
/// to do without [`reap_children`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervised {
    /// `None`: init's loop itself failed.
    pub ended: Option<Ended>,
    /// The panic message of `reap_children`, if it panicked (a `todo!()`
    /// not done yet): init then waited for the command alone, and orphans
    /// stayed zombies.
    pub reaper_panic: Option<String>,
}

/// Calls [`reap_children`], and falls back to waiting for the command alone
/// once it panics, so the containers of earlier exercises still work
/// before the reaper is written.
struct Reaper {
    workload: Pid,
    panic: Option<String>,
}

impl Reaper {
    fn new(workload: Pid) -> Reaper {
        Reaper {
            workload,
            panic: None,
        }
    }

    fn reap(&mut self) -> Option<Ended> {
        if self.panic.is_none() {
            let workload = self.workload;
            match std::panic::catch_unwind(move || reap_children(workload)) {
                Ok(ended) => return ended,
                Err(payload) => self.panic = Some(crate::child::panic_message(&*payload)),
            }
        }
        wait_for_workload(self.workload)
    }

    fn finish(self, ended: Ended) -> Supervised {
        Supervised {
            ended: Some(ended),
            reaper_panic: self.panic,
        }
    }
}

/// The fallback: reap the command if it has ended, nobody else.
fn wait_for_workload(workload: Pid) -> Option<Ended> {
    loop {
        match waitpid(workload, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Some(Ended::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(Ended::Signaled(sig as i32)),
            Err(nix::errno::Errno::EINTR) => continue,
            // Still running (or stopped).
            Ok(_) => return None,
            // ECHILD: it is gone; nothing will ever tell how it ended.
            Err(_) => return Some(Ended::Signaled(libc::SIGKILL)),
        }
    }
}
