//! The lab's errors: each names what went wrong and where.

use std::path::PathBuf;

/// Everything that can go wrong while creating, running or cleaning up a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad limit {value:?}: {reason}")]
    Limit { value: String, reason: String },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Unsupported(String),

    #[error("cgroups: {0}")]
    Cgroup(String),

    #[error("the command {0:?} was not found in the container's root filesystem")]
    CommandNotFound(String),

    #[error("container setup failed while trying to {stage}: {errno}{hint}")]
    Setup {
        stage: crate::child::Stage,
        errno: nix::errno::Errno,
        hint: &'static str,
    },

    #[error("{op}: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: nix::errno::Errno,
    },

    #[error("container init died before starting the command ({0})")]
    InitDied(String),

    #[error("container setup panicked while trying to {stage}: {message}")]
    SetupPanicked {
        stage: crate::child::Stage,
        /// The panic's message, e.g. "not yet implemented: lab01-hostname: …".
        message: String,
    },

    #[error("the container's init panicked while supervising the command: {0}")]
    InitPanicked(String),

    #[error("container {name} did not {what} within {}s; it was killed", after.as_secs_f64())]
    Timeout {
        name: String,
        /// "start" or "exit".
        what: &'static str,
        after: std::time::Duration,
    },

    #[error("rootfs: {0}")]
    Rootfs(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: &'static str, source: nix::errno::Errno) -> Self {
        Error::Sys { op, source }
    }
}
