//! cgroup v1: one hierarchy per controller, each mounted on its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where each v1 controller's hierarchy is mounted, and which directory of
/// it holds this process, as `/proc/self/mountinfo` and `/proc/self/cgroup` say.
pub fn own_dirs() -> Result<HashMap<String, PathBuf>> {
    let mountinfo = read("/proc/self/mountinfo")?;
    let cgroup = read("/proc/self/cgroup")?;
    Ok(own_dirs_from(&mountinfo, &cgroup))
}

/// The pure part of [`own_dirs`], for tests.
pub fn own_dirs_from(mountinfo: &str, proc_cgroup: &str) -> HashMap<String, PathBuf> {
    // controller -> (mount point, root of the hierarchy that mount shows)
    let mut mounts: HashMap<String, (PathBuf, String)> = HashMap::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let superopts = r.nth(1).unwrap_or("");
        let l: Vec<&str> = left.split_whitespace().collect();
        if l.len() < 5 {
            continue;
        }
        for opt in superopts.split(',') {
            if is_controller(opt) {
                mounts
                    .entry(opt.to_string())
                    .or_insert_with(|| (PathBuf::from(l[4]), l[3].to_string()));
            }
        }
    }
    let mut dirs = HashMap::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        for name in names.split(',') {
            if let Some((mountpoint, root)) = mounts.get(name) {
                // A mount may show only part of the hierarchy (inside a container).
                let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
                dirs.insert(
                    name.to_string(),
                    mountpoint.join(rel.trim_start_matches('/')),
                );
            }
        }
    }
    dirs
}

fn is_controller(opt: &str) -> bool {
    matches!(
        opt,
        "memory" | "pids" | "cpu" | "cpuacct" | "cpuset" | "blkio" | "devices" | "freezer"
    )
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", Path::new(path), e))
}
