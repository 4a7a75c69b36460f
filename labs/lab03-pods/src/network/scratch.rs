//! Throwaway network namespaces and nodes, for tests and benchmarks (this
//! lab's and the later ones'): each is gone when dropped, however the
//! caller ends.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{NetworkError, NodeNetwork};
use crate::ipam::node_cidr;

/// A network namespace of its own, held only by a descriptor: it goes
/// when the descriptor closes. Stands for a pod's sandbox.
pub struct ScratchNetns(File);

impl AsRawFd for ScratchNetns {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl ScratchNetns {
    pub fn new() -> io::Result<ScratchNetns> {
        // A thread of its own unshares, so the caller's namespace stays.
        let file = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
                File::open("/proc/thread-self/ns/net")
            })
            .join()
            .map_err(|_| io::Error::other("the unsharing thread panicked"))?
        })?;
        Ok(ScratchNetns(file))
    }

    /// A path that names it (`/proc/self/fd/N`), as a runtime passes
    /// `/proc/<pid>/ns/net` for a sandbox.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

/// Node `n`'s network (198.18.n.0/24) in a temporary directory, removed
/// when dropped.
pub struct ScratchNode {
    node: Option<NodeNetwork>,
    dir: tempfile::TempDir,
}

impl ScratchNode {
    pub fn new(n: u8) -> Result<ScratchNode, NetworkError> {
        let dir = tempfile::tempdir().map_err(|e| NetworkError::Netns {
            what: "making a directory for",
            path: std::env::temp_dir(),
            source: e,
        })?;
        let node = NodeNetwork::create(dir.path(), &format!("node-{n}"), node_cidr(n))?;
        Ok(ScratchNode {
            node: Some(node),
            dir,
        })
    }

    pub fn get(&self) -> &NodeNetwork {
        self.node
            .as_ref()
            .expect("a scratch node has its network until dropped")
    }

    pub fn netns(&self) -> &Path {
        self.get().netns_path()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Lets go of the network and finds it again in the directory, as a
    /// node process that went away and came back does.
    pub fn reopen(&mut self) -> Result<(), NetworkError> {
        drop(self.node.take());
        self.node = Some(NodeNetwork::open(self.dir.path())?);
        Ok(())
    }

    /// Destroys the network (as a node that stops does) and keeps the
    /// directory, to look at what is left.
    pub fn destroy(&mut self) -> Result<(), NetworkError> {
        match self.node.take() {
            Some(node) => node.destroy(),
            None => Ok(()),
        }
    }

    /// Removes the node now, saying whether that worked.
    pub fn remove(mut self) -> Result<(), NetworkError> {
        drop(self.node.take());
        NodeNetwork::remove(self.dir.path()).map(|_| ())
    }
}

impl Drop for ScratchNode {
    fn drop(&mut self) {
        if self.node.take().is_some() {
            if let Err(e) = NodeNetwork::remove(self.dir.path()) {
                eprintln!("removing the scratch node network: {e}");
            }
        }
    }
}
