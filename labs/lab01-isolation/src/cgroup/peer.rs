//! Room for another runtime's cgroups (runc's, when we compare with it or
//! prove that it runs our images) beneath our own cgroup.
//!
//! runc puts a container's cgroup at `linux.cgroupsPath`, one absolute path
//! used in every hierarchy; left empty it would use the root of each. On
//! cgroup v1 our own cgroup may differ per controller, so the path is taken
//! beneath the deepest of them: beneath every one of ours at once. runc may
//! have to create the missing parents in the other hierarchies; those are
//! remembered and removed when this guard goes.

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct PeerCgroups {
    parent: PathBuf,
    made: Vec<PathBuf>,
}

impl PeerCgroups {
    pub fn new() -> std::io::Result<PeerCgroups> {
        let text = std::fs::read_to_string("/proc/self/cgroup")?;
        let deepest = text
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .max_by_key(|p| p.len())
            .unwrap_or("/");
        let parent = PathBuf::from(deepest);
        let made = missing_parents(&parent);
        Ok(PeerCgroups { parent, made })
    }

    /// The `linux.cgroupsPath` for a container `id`.
    pub fn path_for(&self, id: &str) -> String {
        self.parent.join(id).display().to_string()
    }
}

/// Directories of `parent` that do not exist yet in some hierarchy.
fn missing_parents(parent: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return missing;
    };
    for hierarchy in entries.flatten() {
        let mut dir = hierarchy.path();
        if !dir.join("cgroup.procs").exists() {
            continue;
        }
        for part in parent.components().skip(1) {
            dir = dir.join(part);
            if !dir.exists() {
                missing.push(dir.clone());
            }
        }
    }
    missing
}

impl Drop for PeerCgroups {
    fn drop(&mut self) {
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
