//! Work that may block (pulls, graceful stops, probes) runs off the
//! worker's thread, so one thread can drive hundreds of pods. A worker
//! hands the closure to a [`Spawner`] and looks for its answer on each
//! sync; the spawner's owner is told when one is ready (the node wakes the
//! pod's worker then).

use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

/// Runs a closure somewhere.
pub trait Spawner: Send + Sync {
    fn spawn(&self, job: Box<dyn FnOnce() + Send>);
}

/// A thread per job: what a node uses. Probes and stops are short and
/// few at a time, so threads are cheap enough and need no runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct Threads;

impl Spawner for Threads {
    fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
        // A failed spawn (out of threads) runs the job here instead:
        // slower, never lost.
        let cell = Arc::new(std::sync::Mutex::new(Some(job)));
        let theirs = cell.clone();
        let spawned = std::thread::Builder::new()
            .name("kubelet-job".into())
            .spawn(move || {
                if let Some(job) = theirs.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    job();
                }
            });
        if spawned.is_err() {
            if let Some(job) = cell.lock().unwrap_or_else(|e| e.into_inner()).take() {
                job();
            }
        }
    }
}

/// Runs each job at once on the caller's thread: deterministic, for tests
/// against a fake runtime that never blocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Inline;

impl Spawner for Inline {
    fn spawn(&self, job: Box<dyn FnOnce() + Send>) {
        job();
    }
}

/// Called with the pod's uid when one of its jobs has finished.
pub type Waker = Arc<dyn Fn(&str) + Send + Sync>;

/// A job's answer, to come.
#[derive(Debug)]
pub struct Job<T> {
    rx: Receiver<T>,
}

/// What a look at a job finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<T> {
    Ready(T),
    Pending,
    /// The job died without answering (it panicked).
    Lost,
}

impl<T> Job<T> {
    pub fn poll(&self) -> Poll<T> {
        match self.rx.try_recv() {
            Ok(v) => Poll::Ready(v),
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Disconnected) => Poll::Lost,
        }
    }
}

/// Starts `f` on `spawner`; `waker(uid)` runs once its answer is in.
pub fn start<T: Send + 'static>(
    spawner: &dyn Spawner,
    waker: &Waker,
    uid: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Job<T> {
    let (tx, rx) = channel();
    let waker = waker.clone();
    let uid = uid.to_string();
    spawner.spawn(Box::new(move || {
        // The worker may be gone (the pod deleted): nobody to tell.
        let _ = tx.send(f());
        waker(&uid);
    }));
    Job { rx }
}
