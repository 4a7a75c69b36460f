//! The node's cgroup tree, kubelet-shaped:
//! `<ours>/<node>/kubepods/<qos>/pod<uid>/<container>`.
//!
//! lab01's [`lab01::cgroup::Cgroup`] makes one flat cgroup per container
//! beneath this process's own; a pod needs a tree (a pod cgroup holding its
//! containers' cgroups, so the pod can be limited and killed as one), and
//! the kubelet's cpu weight besides. So this module keeps a base directory
//! per hierarchy (one on cgroup v2, one per controller on v1 or hybrid) and
//! paths relative to it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab01::cgroup::Version;
use lab01::probe::{cgroup_mode, CgroupMode};

use crate::cri::LinuxContainerResources;

/// The v1 controllers a pod uses: cpu weight and quota, accounting,
/// memory limit and OOM counter, process count, and the freezer that lets
/// a kill loop catch processes that fork meanwhile.
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "freezer"];
/// What a v2 directory must enable for its children.
const V2_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The node's cgroups: where its tree starts in every hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupTree {
    version: Version,
    /// (controller, base directory); on v2 one entry with controller "".
    bases: Vec<(&'static str, PathBuf)>,
}

impl CgroupTree {
    /// The tree `node` beneath this process's own cgroup(s), created if
    /// missing.
    pub fn open(node: &str) -> Result<CgroupTree, CgroupError> {
        if node.is_empty() || node.contains('/') || node.starts_with('.') {
            return Err(CgroupError::Setup(format!(
                "the node's cgroup name {node:?} must be one plain directory name"
            )));
        }
        let setup = |e: lab01::Error| CgroupError::Setup(e.to_string());
        let tree = match cgroup_mode(Path::new("/sys/fs/cgroup")) {
            CgroupMode::Unified => {
                let own = lab01::cgroup::v2::parent_dir().map_err(setup)?;
                lab01::cgroup::v2::enable_controllers(&own, &V2_CONTROLLERS).map_err(setup)?;
                CgroupTree {
                    version: Version::V2,
                    bases: vec![("", own.join(node))],
                }
            }
            CgroupMode::Hybrid | CgroupMode::Legacy => {
                let own = lab01::cgroup::v1::own_dirs().map_err(setup)?;
                let mut bases: Vec<(&'static str, PathBuf)> = Vec::new();
                for controller in V1_CONTROLLERS {
                    if let Some(dir) = own.get(controller) {
                        // cpu and cpuacct may share one mount: one entry.
                        let base = dir.join(node);
                        if !bases.iter().any(|(_, b)| *b == base) {
                            bases.push((controller, base));
                        }
                    }
                }
                if !bases.iter().any(|(c, _)| *c == "pids") {
                    return Err(CgroupError::Setup(
                        "the v1 pids controller is not mounted".into(),
                    ));
                }
                CgroupTree {
                    version: Version::V1,
                    bases,
                }
            }
            CgroupMode::Unavailable => {
                return Err(CgroupError::Setup(
                    "no cgroup filesystem is mounted at /sys/fs/cgroup".into(),
                ))
            }
        };
        tree.create("")?;
        Ok(tree)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The directories of `rel` in every hierarchy: what a process joins.
    pub fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        self.bases.iter().map(|(_, b)| join(b, rel)).collect()
    }

    fn dir_of(&self, controller: &str, rel: &str) -> Option<PathBuf> {
        self.bases
            .iter()
            .find(|(c, _)| c.is_empty() || *c == controller)
            .map(|(_, b)| join(b, rel))
    }

    /// Makes `rel` (and its parents) in every hierarchy. On v2 each level
    /// hands the controllers down to the next, which the kernel allows
    /// only in cgroups without processes of their own: processes live in
    /// the leaves (containers, and the sandbox's own leaf).
    pub fn create(&self, rel: &str) -> Result<Vec<PathBuf>, CgroupError> {
        for (_, base) in &self.bases {
            let mut dir = base.clone();
            let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
            mkdir(&dir)?;
            for part in parts {
                if self.version == Version::V2 {
                    enable(&dir)?;
                }
                dir.push(part);
                mkdir(&dir)?;
            }
        }
        Ok(self.dirs(rel))
    }

    /// Writes a container's resources as the kubelet computed them (zero
    /// means unset, as in the CRI).
    pub fn apply(&self, rel: &str, r: &LinuxContainerResources) -> Result<(), CgroupError> {
        let mut files: Vec<(&str, &str, String)> = Vec::new();
        match self.version {
            Version::V1 => {
                if r.cpu_shares > 0 {
                    files.push(("cpu", "cpu.shares", r.cpu_shares.to_string()));
                }
                if r.cpu_period > 0 {
                    files.push(("cpu", "cpu.cfs_period_us", r.cpu_period.to_string()));
                }
                if r.cpu_quota > 0 {
                    files.push(("cpu", "cpu.cfs_quota_us", r.cpu_quota.to_string()));
                }
                if r.memory_limit_in_bytes > 0 {
                    let bytes = r.memory_limit_in_bytes.to_string();
                    files.push(("memory", "memory.limit_in_bytes", bytes));
                }
            }
            Version::V2 => {
                if r.cpu_shares > 0 {
                    // runc's conversion of shares [2, 262144] to weight [1, 10000].
                    let shares = r.cpu_shares.clamp(2, 262_144);
                    let weight = 1 + ((shares - 2) * 9999) / 262_142;
                    files.push(("cpu", "cpu.weight", weight.to_string()));
                }
                if r.cpu_quota > 0 {
                    let period = if r.cpu_period > 0 {
                        r.cpu_period
                    } else {
                        100_000
                    };
                    files.push(("cpu", "cpu.max", format!("{} {period}", r.cpu_quota)));
                }
                if r.memory_limit_in_bytes > 0 {
                    let bytes = r.memory_limit_in_bytes.to_string();
                    files.push(("memory", "memory.max", bytes));
                    files.push(("memory", "memory.swap.max", "0".into()));
                }
            }
        }
        for (controller, file, value) in files {
            let Some(dir) = self.dir_of(controller, rel) else {
                return Err(CgroupError::Setup(format!(
                    "the {controller} controller is not mounted, so {file} cannot be set"
                )));
            };
            let path = dir.join(file);
            if file == "memory.swap.max" && !path.exists() {
                continue;
            }
            std::fs::write(&path, &value).map_err(io("write", &path))?;
        }
        Ok(())
    }

    /// Every process in `rel` and beneath, in any hierarchy.
    pub fn procs(&self, rel: &str) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in self.dirs(rel) {
            collect_procs(&dir, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// How many times the OOM killer struck in `rel`.
    pub fn oom_kills(&self, rel: &str) -> u64 {
        let (controller, file) = lab01::cgroup::oom_file(self.version);
        self.dir_of(controller, rel)
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .map(|t| lab01::cgroup::oom_kills(&t))
            .unwrap_or(0)
    }

    // ANCHOR: kill_all
    /// Kills every process in `rel` and beneath, and returns once none is
    /// left. On v2 one write does it (`cgroup.kill`); on v1 the freezer
    /// holds them still, so none can fork a new one between our reading
    /// the list and our signals, then each gets SIGKILL and they thaw into
    /// their death. Repeated until the cgroup is empty.
    pub fn kill_all(&self, rel: &str) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let file = |c: &str, name: &str| {
            self.dir_of(c, rel)
                .map(|d| d.join(name))
                .filter(|f| f.exists())
        };
        let v2 = self.version == Version::V2;
        let kill = file("", "cgroup.kill").filter(|_| v2);
        let freezer = file("freezer", "freezer.state").filter(|_| !v2);
        let mut pause = Duration::from_micros(200);
        loop {
            let pids = self.procs(rel);
            if pids.is_empty() {
                return Ok(());
            }
            if let Some(kill) = &kill {
                std::fs::write(kill, "1").map_err(io("write", kill))?;
            } else if let Some(state) = &freezer {
                let _ = std::fs::write(state, "FROZEN");
                signal_all(&pids);
                let _ = std::fs::write(state, "THAWED");
            } else {
                signal_all(&pids);
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Setup(format!(
                    "processes {pids:?} of {rel:?} survived SIGKILL for 10 s"
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
    // ANCHOR_END: kill_all

    /// Removes `rel` and everything beneath it, killing what still runs
    /// there: what a stopped pod, or a crashed runtime, leaves.
    pub fn remove_tree(&self, rel: &str) -> Result<(), CgroupError> {
        self.kill_all(rel)?;
        let mut first = None;
        for dir in self.dirs(rel) {
            if let Err(e) = rmdir_tree(&dir) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Removes `rel` if it is empty (no processes, no children); a parent
    /// still in use by another pod stays.
    pub fn remove_if_unused(&self, rel: &str) {
        for dir in self.dirs(rel) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn join(base: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("create cgroup", dir)(e)),
    }
}

/// Hands the pod's controllers down from `dir` to its children (v2).
fn enable(dir: &Path) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in V2_CONTROLLERS {
        let on = enabled.split_whitespace().any(|e| e == c);
        let there = available.split_whitespace().any(|e| e == c);
        if !on && there {
            std::fs::write(&control, format!("+{c}")).map_err(io("write", &control))?;
        }
    }
    Ok(())
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), pids);
            }
        }
    }
}

fn signal_all(pids: &[i32]) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Removes `dir` and its sub-cgroups, deepest first. A cgroup's files
/// cannot be deleted, only its directory, once it has no processes.
fn rmdir_tree(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path())?;
            }
        }
    }
    lab01::cgroup::rmdir_patiently(dir).map_err(io("remove cgroup", dir))
}
