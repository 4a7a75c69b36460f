//! What a runtime does with Ctrl-C: pass it to the container's init.
//!
//! Block the signals before the container starts (so none is lost in
//! between), then let a thread take them and forward them; the runtime
//! itself exits when the container does, after cleaning up.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT in the calling thread (and the
/// threads and containers it starts from now on).
pub fn block_termination_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    let _ = set.thread_block();
    set
}

/// Forwards every signal of `set` to process `init` from a thread of its own.
pub fn forward_signals(set: SigSet, init: i32) {
    std::thread::spawn(move || loop {
        if let Ok(sig) = set.wait() {
            let _ = kill(Pid::from_raw(init), sig);
        }
    });
}
