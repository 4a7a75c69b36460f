//! cgroup v2: one tree; controllers are switched on for a parent's children
//! through its `cgroup.subtree_control`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const ROOT: &str = "/sys/fs/cgroup";

/// The directory containers go beneath: the cgroup this process was in when
/// it first asked. Read once, because [`enable_controllers`] may move the
/// process into a leaf below it, and containers must not follow it there.
pub fn parent_dir() -> Result<PathBuf> {
    static PARENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(dir) = PARENT.get() {
        return Ok(dir.clone());
    }
    let dir = own_dir()?;
    Ok(PARENT.get_or_init(|| dir).clone())
}

/// The directory of the cgroup this process is in (the `0::` line).
pub fn own_dir() -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
    own_dir_from(&text, Path::new(ROOT))
        .ok_or_else(|| Error::Cgroup("no cgroup v2 entry (0::) in /proc/self/cgroup".into()))
}

pub fn own_dir_from(proc_cgroup: &str, root: &Path) -> Option<PathBuf> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| root.join(p.trim().trim_start_matches('/')))
}

/// Makes `controllers` available to the children of `parent`.
///
/// v2 forbids a cgroup that holds processes from handing controllers to its
/// children ("no internal processes"). When this process sits in `parent`
/// itself, it first moves into a leaf `kubelings-supervisor` beside the
/// containers; that leaf stays until the process's session ends.
pub fn enable_controllers(parent: &Path, controllers: &[&str]) -> Result<()> {
    let control = parent.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    let missing: Vec<&str> = controllers
        .iter()
        .copied()
        .filter(|c| *c != "cpuacct" && !enabled.split_whitespace().any(|e| e == *c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line: String = missing.iter().map(|c| format!("+{c} ")).collect();
    match std::fs::write(&control, line.trim_end()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let leaf = parent.join("kubelings-supervisor");
            if !leaf.exists() {
                std::fs::create_dir(&leaf).map_err(|e| Error::io("create", &leaf, e))?;
            }
            let procs = leaf.join("cgroup.procs");
            std::fs::write(&procs, std::process::id().to_string())
                .map_err(|e| Error::io("move this process into", &procs, e))?;
            std::fs::write(&control, line.trim_end())
                .map_err(|e| Error::io("enable controllers in", &control, e))
        }
        Err(e) => Err(Error::io("enable controllers in", &control, e)),
    }
}
