//! The runtime's one thread: it starts every process (so they all share
//! its lifetime: a sandbox or container init dies with the thread that
//! started it), and it waits, on one epoll set, for everything at once:
//! container inits ending (their status pipes), pauses ending (pidfds),
//! and output on every container's stdout and stderr, which it copies into
//! the log files. Nothing blocks per container.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Mutex, Weak};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::linux::Inner;
use super::logpump::{ContainerLog, LineCutter};
use crate::cri::{CriError, CriResult};
use crate::logs::Stream;

/// Work for the engine thread: it runs with the engine itself.
type Task = Box<dyn FnOnce(&mut Engine) + Send>;

/// The token of the wake-up pipe.
const WAKE: u64 = 0;
/// How much one stream may read before the others get their turn.
const READS_PER_TURN: usize = 16;

enum Watch {
    /// A container's init: its status pipe turns readable when it ends.
    Exit { container: String, fd: OwnedFd },
    /// A sandbox's pause: its pidfd turns readable when it ends.
    Pause {
        sandbox: String,
        pid: i32,
        fd: OwnedFd,
    },
    /// One output stream of a container, into its log.
    Log {
        container: String,
        fd: OwnedFd,
        cutter: LineCutter,
    },
}

impl Watch {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Watch::Exit { fd, .. } | Watch::Pause { fd, .. } | Watch::Log { fd, .. } => fd.as_fd(),
        }
    }
}

/// The state the engine thread owns.
pub(crate) struct Engine {
    epoll: Epoll,
    watches: HashMap<u64, Watch>,
    next: u64,
    stop: bool,
    inner: Weak<Inner>,
}

/// How other threads reach the engine.
pub(crate) struct EngineHandle {
    tasks: Mutex<Sender<Task>>,
    wake: OwnedFd,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn gone() -> CriError {
    CriError::Internal {
        context: "the runtime's engine thread".into(),
        source: "it has stopped".into(),
    }
}

impl EngineHandle {
    pub(crate) fn start(inner: Weak<Inner>) -> std::io::Result<EngineHandle> {
        let (wake_read, wake_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&wake_read, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let (tx, rx) = mpsc::channel::<Task>();
        let engine = Engine {
            epoll,
            watches: HashMap::new(),
            next: WAKE + 1,
            stop: false,
            inner,
        };
        let thread = std::thread::Builder::new()
            .name("kubelings-runtime".into())
            .spawn(move || engine.run(rx, wake_read))?;
        Ok(EngineHandle {
            tasks: Mutex::new(tx),
            wake: wake_write,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A handle whose thread never started: every call fails.
    pub(crate) fn dead() -> EngineHandle {
        let (tx, _) = mpsc::channel::<Task>();
        let wake = std::fs::File::open("/dev/null").map_or_else(
            // SAFETY: never reached on Linux, where /dev/null exists; a
            // descriptor number that is never used otherwise.
            |_| unsafe { std::os::fd::FromRawFd::from_raw_fd(-1) },
            OwnedFd::from,
        );
        EngineHandle {
            tasks: Mutex::new(tx),
            wake,
            thread: Mutex::new(None),
        }
    }

    /// Runs `f` on the engine thread and returns what it returns.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> CriResult<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let task: Task = Box::new(move |engine| {
            let _ = tx.send(f(engine));
        });
        self.tasks
            .lock()
            .map_err(|_| gone())?
            .send(task)
            .map_err(|_| gone())?;
        // A full pipe is readable already: nothing to add.
        let _ = nix::unistd::write(&self.wake, &[1]);
        rx.recv().map_err(|_| gone())
    }

    /// Ends the thread (and with it every process it started).
    pub(crate) fn stop(&self) {
        let _ = self.call(|engine| engine.stop = true);
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

impl Engine {
    fn run(mut self, tasks: Receiver<Task>, wake: OwnedFd) {
        let mut events = vec![EpollEvent::empty(); 64];
        while !self.stop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            for event in &events[..n] {
                if event.data() == WAKE {
                    let mut buf = [0u8; 64];
                    while matches!(nix::unistd::read(&wake, &mut buf), Ok(n) if n > 0) {}
                    loop {
                        match tasks.try_recv() {
                            Ok(task) => task(&mut self),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                self.stop = true;
                                break;
                            }
                        }
                    }
                } else {
                    self.handle(event.data());
                }
            }
        }
    }

    /// Registers the watch's own descriptor: epoll knows a registration by
    /// descriptor number and file, so a copy could not remove it later.
    fn add(&mut self, watch: Watch) -> CriResult<()> {
        let token = self.next;
        self.next += 1;
        self.epoll
            .add(watch.fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| CriError::Internal {
                context: "watch a descriptor".into(),
                source: Box::new(e),
            })?;
        self.watches.insert(token, watch);
        Ok(())
    }

    fn remove(&mut self, token: u64) -> Option<Watch> {
        let watch = self.watches.remove(&token)?;
        let _ = self.epoll.delete(watch.fd());
        Some(watch)
    }

    /// Reports `container` when its init ends (`status` is a copy of the
    /// read end of its status pipe).
    pub(crate) fn watch_exit(&mut self, container: &str, status: OwnedFd) -> CriResult<()> {
        self.add(Watch::Exit {
            container: container.to_string(),
            fd: status,
        })
    }

    pub(crate) fn watch_pause(&mut self, sandbox: &str, pid: i32, pidfd: OwnedFd) -> CriResult<()> {
        self.add(Watch::Pause {
            sandbox: sandbox.to_string(),
            pid,
            fd: pidfd,
        })
    }

    /// Copies what arrives on `fd` (a pipe's read end) into `log`.
    pub(crate) fn watch_log(
        &mut self,
        container: &str,
        stream: Stream,
        fd: OwnedFd,
        log: ContainerLog,
    ) -> CriResult<()> {
        // Only our end may be non-blocking: the container's end stays
        // blocking, so a full pipe makes it wait rather than fail.
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(internal("read a pipe's flags"))?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(internal("make a pipe non-blocking"))?;
        self.add(Watch::Log {
            container: container.to_string(),
            fd,
            cutter: LineCutter::new(stream, log),
        })
    }

    fn handle(&mut self, token: u64) {
        match self.watches.get(&token) {
            Some(Watch::Exit { .. }) => {
                if let Some(Watch::Exit { container, .. }) = self.remove(token) {
                    // What it printed last is in the log before anyone
                    // hears that it ended.
                    self.drain_logs(&container);
                    if let Some(inner) = self.inner.upgrade() {
                        inner.container_ended(&container);
                    }
                }
            }
            Some(Watch::Pause { .. }) => {
                if let Some(Watch::Pause { sandbox, pid, .. }) = self.remove(token) {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    if let Some(inner) = self.inner.upgrade() {
                        inner.pause_ended(&sandbox);
                    }
                }
            }
            Some(Watch::Log { .. }) => self.read_log(token, Some(READS_PER_TURN)),
            None => {}
        }
    }

    /// Copies what the pipe of `token` holds now into the log, `turns`
    /// reads at most (`None`: until it is empty).
    fn read_log(&mut self, token: u64, turns: Option<usize>) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reads = 0;
        let ended = loop {
            let Some(Watch::Log { fd, cutter, .. }) = self.watches.get_mut(&token) else {
                return;
            };
            match nix::unistd::read(&*fd, &mut buf) {
                Ok(0) => {
                    let _ = cutter.finish();
                    break true;
                }
                Ok(n) => {
                    // A log that cannot be written must not stop the pipe
                    // being drained.
                    let _ = cutter.feed(&buf[..n]);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break false,
                Err(_) => break true,
            }
            reads += 1;
            if turns.is_some_and(|t| reads >= t) {
                break false;
            }
        };
        if ended {
            self.remove(token);
        }
    }

    /// Everything `container`'s pipes hold, into its log, now.
    pub(crate) fn drain_logs(&mut self, container: &str) {
        let tokens: Vec<u64> = self
            .watches
            .iter()
            .filter(|(_, w)| matches!(w, Watch::Log { container: c, .. } if c == container))
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            self.read_log(token, None);
        }
    }
}

fn internal<E: std::error::Error + Send + Sync + 'static>(
    context: &'static str,
) -> impl FnOnce(E) -> CriError {
    move |e| CriError::Internal {
        context: context.into(),
        source: Box::new(e),
    }
}
