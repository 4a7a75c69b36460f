//! cgroup v2: one tree; controllers are switched on for a parent's children
//! through its `cgroup.subtree_control`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const ROOT: &str = "/sys/fs/cgroup";

/// The leaf that the processes of a cgroup with containers beneath it move into.
pub const SUPERVISOR: &str = "kubelings-supervisor";

/// The directory containers go beneath: the cgroup this process was in when
/// it first asked. Read once, because [`enable_controllers`] may move the
/// process into a leaf below it, and containers must not follow it there.
pub fn parent_dir() -> Result<PathBuf> {
    static PARENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(dir) = PARENT.get() {
        return Ok(dir.clone());
    }
    let mut dir = own_dir()?;
    // Moved into the leaf by an earlier run from the same shell: the
    // containers still go beside the leaf, not beneath it.
    if dir.file_name().is_some_and(|n| n == SUPERVISOR) {
        dir.pop();
    }
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
/// containers, and with it every other process there (the shell that ran
/// it, in a login session's scope); that leaf stays until the session ends.
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
            let leaf = parent.join(SUPERVISOR);
            if !leaf.exists() {
                std::fs::create_dir(&leaf).map_err(|e| Error::io("create", &leaf, e))?;
            }
            let procs = leaf.join("cgroup.procs");
            std::fs::write(&procs, std::process::id().to_string())
                .map_err(|e| Error::io("move this process into", &procs, e))?;
            move_all(&parent.join("cgroup.procs"), &procs);
            std::fs::write(&control, line.trim_end())
                .map_err(|e| Error::io("enable controllers in", &control, e))
        }
        Err(e) => Err(Error::io("enable controllers in", &control, e)),
    }
}

/// Moves every process listed in `from` into the cgroup of `to`. A few
/// rounds, as a process may fork while the list is read; one that has
/// exited meanwhile is no error.
fn move_all(from: &Path, to: &Path) {
    for _ in 0..10 {
        let pids = std::fs::read_to_string(from).unwrap_or_default();
        if pids.trim().is_empty() {
            return;
        }
        for pid in pids.split_whitespace() {
            let _ = std::fs::write(to, pid);
        }
    }
}
