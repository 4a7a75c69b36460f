//! What the runtime keeps on disk under its state directory:
//!
//! ```text
//! <state>/runtime.lock                  held while a runtime runs
//! <state>/sandboxes/<id>/sandbox.json   which pod, which cgroup
//! <state>/sandboxes/<id>/{hosts,hostname,resolv.conf}
//! <state>/containers/<id>/container.json
//! <state>/containers/<id>/{upper,work,rootfs}
//! ```
//!
//! Every process the runtime starts dies with it (they have a parent-death
//! signal), so what a killed runtime leaves is the rest: mounts beneath the
//! state directory, cgroups, the pods' network attachments and these
//! files. [`clean_up`] removes them, which the next runtime does first.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::cgroups::CgroupTree;
use super::PodNetwork;
use crate::cri::{CriError, CriResult, PodSandboxConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxFile {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub pod_cgroup: String,
}

impl SandboxFile {
    pub fn new(id: &str, config: &PodSandboxConfig, pod_cgroup: &str) -> SandboxFile {
        SandboxFile {
            id: id.to_string(),
            name: config.metadata.name.clone(),
            namespace: config.metadata.namespace.clone(),
            uid: config.metadata.uid.clone(),
            pod_cgroup: pod_cgroup.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerFile {
    pub id: String,
    pub sandbox_id: String,
}

impl ContainerFile {
    pub fn new(id: &str, sandbox_id: &str) -> ContainerFile {
        ContainerFile {
            id: id.to_string(),
            sandbox_id: sandbox_id.to_string(),
        }
    }
}

fn internal(context: String) -> impl FnOnce(std::io::Error) -> CriError {
    move |e| CriError::Internal {
        context,
        source: Box::new(e),
    }
}

/// Writes `value` as `dir/name` whole: into a temporary file, then renamed.
fn save(dir: &Path, name: &str, value: &impl Serialize) -> CriResult<()> {
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let json = serde_json::to_vec_pretty(value).map_err(|e| CriError::Internal {
        context: format!("encode {}", path.display()),
        source: Box::new(e),
    })?;
    std::fs::write(&temp, json).map_err(internal(format!("write {}", temp.display())))?;
    std::fs::rename(&temp, &path).map_err(internal(format!("rename to {}", path.display())))
}

pub fn save_sandbox(dir: &Path, file: &SandboxFile) -> CriResult<()> {
    save(dir, "sandbox.json", file)
}

pub fn save_container(dir: &Path, file: &ContainerFile) -> CriResult<()> {
    save(dir, "container.json", file)
}

/// The sandboxes recorded under `state_dir`.
pub fn recorded_sandboxes(state_dir: &Path) -> Vec<SandboxFile> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("sandboxes")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("sandbox.json")).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect()
}

/// The lock on a state directory: one runtime at a time.
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<File>,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> CriResult<StateLock> {
        std::fs::create_dir_all(state_dir)
            .map_err(internal(format!("create {}", state_dir.display())))?;
        let path = state_dir.join("runtime.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(internal(format!("open {}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(StateLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(CriError::InvalidArgument(format!(
                "{} is in use by another runtime (its lock {} is held)",
                state_dir.display(),
                path.display()
            ))),
            Err((_, e)) => Err(internal(format!("lock {}", path.display()))(e.into())),
        }
    }
}

// ANCHOR: clean_up
/// Removes what a runtime that ended (or was killed) left under
/// `state_dir` and in the node's cgroups: kills any process still in them,
/// unmounts the containers' root filesystems and bind mounts, detaches the
/// recorded pods from the network, and deletes the records.
pub fn clean_up(dir: &Path, tree: &CgroupTree, net: Option<&dyn PodNetwork>) {
    // Processes first: nothing may still use a mount or an address.
    let _ = tree.remove_tree("");
    let _ = tree.create("");
    super::rootfs::unmount_beneath(dir);
    if let Some(net) = net {
        for sandbox in recorded_sandboxes(dir) {
            let _ = net.detach(&sandbox.uid);
        }
    }
    for records in ["sandboxes", "containers"] {
        super::rootfs::remove_unmounted(&dir.join(records));
    }
}
// ANCHOR_END: clean_up
