//! cgroups: the kernel's accounting and limits for groups of processes.
//!
//! One interface over both layouts. cgroup v1 keeps one tree per controller
//! (`/sys/fs/cgroup/memory/…`, `/sys/fs/cgroup/pids/…`); cgroup v2 keeps one
//! tree for all (`/sys/fs/cgroup/…`). What to write is computed as plain data
//! ([`Setting`]s) first, so it can be read, tested and snapshotted anywhere;
//! [`Cgroup`] then writes it beneath the cgroup this process already lives in,
//! never elsewhere.

use std::fmt;

use crate::limits::{CpuQuota, Resources};

#[cfg(target_os = "linux")]
mod live;
#[cfg(target_os = "linux")]
pub mod peer;
#[cfg(target_os = "linux")]
pub mod v1;
#[cfg(target_os = "linux")]
pub mod v2;

#[cfg(target_os = "linux")]
pub use live::{find_leftovers, own_memory_limit, rmdir_patiently, Cgroup};

/// Which cgroup layout a setting is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Version {
    V1,
    V2,
}

/// One value to write into one cgroup file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// The v1 hierarchy the file lives in (`memory`, `pids`, `cpu`); on v2
    /// the controller that must be enabled for the file to exist.
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

impl Setting {
    pub fn new(controller: &'static str, file: &'static str, value: impl ToString) -> Self {
        Setting {
            controller,
            file,
            value: value.to_string(),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} = {}", self.controller, self.file, self.value)
    }
}

// ANCHOR: settings
/// Everything to write for `resources` on a cgroup of layout `version`, in
/// the order to write it: memory (capped at `memory` bytes, with no swap to
/// spill into), processes (at most `pids` processes and threads), CPU
/// (`quota_us` of CPU time every `period_us`). A limit that is `None` gets
/// no setting.
pub fn settings(version: Version, resources: &Resources) -> Vec<Setting> {
    // EXERCISE: lab01-cgroup-limits
    let mut all = Vec::new();
    if let Some(bytes) = resources.memory {
        let memory = |file, value: u64| Setting::new("memory", file, value);
        match version {
            Version::V1 => all.push(memory("memory.limit_in_bytes", bytes)),
            Version::V2 => {
                all.push(memory("memory.max", bytes));
                // No swap to spill into.
                all.push(memory("memory.swap.max", 0));
            }
        }
    }
    if let Some(max) = resources.pids {
        // The same file in both layouts.
        all.push(Setting::new("pids", "pids.max", max));
    }
    if let Some(CpuQuota {
        quota_us,
        period_us,
    }) = resources.cpu
    {
        match version {
            // The period first: the kernel checks each quota against it.
            Version::V1 => {
                all.push(Setting::new("cpu", "cpu.cfs_period_us", period_us));
                all.push(Setting::new("cpu", "cpu.cfs_quota_us", quota_us));
            }
            Version::V2 => {
                let both = format!("{quota_us} {period_us}");
                all.push(Setting::new("cpu", "cpu.max", both));
            }
        }
    }
    all
    // EXERCISE_END: lab01-cgroup-limits
}
// ANCHOR_END: settings

/// The controllers a container with `resources` needs. `pids` always: it
/// counts the container's processes even without a limit.
pub fn controllers(resources: &Resources) -> Vec<&'static str> {
    let mut list = vec!["pids"];
    if resources.memory.is_some() {
        list.push("memory");
    }
    if resources.cpu.is_some() {
        list.extend(["cpu", "cpuacct"]);
    }
    list
}

// ANCHOR: oom_kills
/// How many processes the OOM killer killed in the cgroup, from the
/// `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub fn oom_kills(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix("oom_kill "))
        .filter_map(|n| n.trim().parse().ok())
        .next()
        .unwrap_or(0)
}
// ANCHOR_END: oom_kills

/// The file that holds the `oom_kill` counter.
pub fn oom_file(version: Version) -> (&'static str, &'static str) {
    match version {
        Version::V1 => ("memory", "memory.oom_control"),
        Version::V2 => ("memory", "memory.events"),
    }
}
