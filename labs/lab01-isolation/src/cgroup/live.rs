//! A cgroup that exists: created for one container, removed when it ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::{controllers, oom_file, settings, Version};
use crate::error::{Error, Result};
use crate::limits::Resources;
use crate::probe::{cgroup_mode, CgroupMode};

/// A container's cgroup. Dropping it removes its directories.
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    /// (controller, directory); on v2 one entry with controller "".
    dirs: Vec<(&'static str, PathBuf)>,
    removed: bool,
}

impl Cgroup {
    /// Creates `name` beneath this process's own cgroup(s) and writes the limits.
    pub fn create(name: &str, resources: &Resources) -> Result<Cgroup> {
        static MODE: OnceLock<CgroupMode> = OnceLock::new();
        match MODE.get_or_init(|| cgroup_mode(Path::new("/sys/fs/cgroup"))) {
            CgroupMode::Unified => Self::create_v2(name, resources),
            CgroupMode::Hybrid | CgroupMode::Legacy => Self::create_v1(name, resources),
            CgroupMode::Unavailable => Err(Error::Cgroup(
                "no cgroup filesystem is mounted at /sys/fs/cgroup".into(),
            )),
        }
    }

    fn create_v1(name: &str, resources: &Resources) -> Result<Cgroup> {
        // Where this process sits does not change while it runs: read it once.
        static OWN: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
        let own = match OWN.get() {
            Some(own) => own,
            None => {
                let read = super::v1::own_dirs()?;
                OWN.get_or_init(|| read)
            }
        };
        let mut cg = Cgroup {
            version: Version::V1,
            dirs: Vec::new(),
            removed: false,
        };
        for controller in controllers(resources) {
            let parent = own.get(controller).ok_or_else(|| {
                Error::Cgroup(format!("the v1 controller {controller:?} is not mounted"))
            })?;
            let dir = parent.join(name);
            std::fs::create_dir(&dir).map_err(|e| Error::io("create cgroup", &dir, e))?;
            // Pushed at once, so a later failure still removes it.
            cg.dirs.push((controller, dir));
        }
        cg.apply(resources)?;
        Ok(cg)
    }

    fn create_v2(name: &str, resources: &Resources) -> Result<Cgroup> {
        let parent = super::v2::parent_dir()?;
        super::v2::enable_controllers(&parent, &controllers(resources))?;
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| Error::io("create cgroup", &dir, e))?;
        let cg = Cgroup {
            version: Version::V2,
            dirs: vec![("", dir)],
            removed: false,
        };
        cg.apply(resources)?;
        Ok(cg)
    }

    fn apply(&self, resources: &Resources) -> Result<()> {
        // No limits, nothing to compute: a container without limits works
        // before the exercise that turns limits into settings is done.
        if resources.is_empty() {
            return Ok(());
        }
        for s in settings(self.version, resources) {
            let path = self.file(s.controller, s.file);
            // memory.swap.max exists only where swap accounting is on.
            if s.file == "memory.swap.max" && !path.exists() {
                continue;
            }
            std::fs::write(&path, &s.value).map_err(|e| Error::io("write", &path, e))?;
        }
        Ok(())
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The directories this cgroup occupies (one on v2, one per controller on v1).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// The path of `file` of `controller`'s directory.
    pub fn file(&self, controller: &str, file: &str) -> PathBuf {
        let dir = self
            .dirs
            .iter()
            .find(|(c, _)| c.is_empty() || *c == controller)
            .or_else(|| self.dirs.first())
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        dir.join(file)
    }

    /// Moves process `pid` (and so everything it will fork) into the cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        for (_, dir) in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(|e| Error::io("add process to", &procs, e))?;
        }
        Ok(())
    }

    /// The memory limit in bytes, if there is one.
    pub fn memory_limit(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        read_limit(&self.file("memory", file))
    }

    /// How many times the OOM killer struck inside this cgroup.
    pub fn oom_kills(&self) -> u64 {
        if !self
            .dirs
            .iter()
            .any(|(c, _)| c.is_empty() || *c == "memory")
        {
            return 0;
        }
        let (controller, file) = oom_file(self.version);
        std::fs::read_to_string(self.file(controller, file))
            .map(|t| super::oom_kills(&t))
            .unwrap_or(0)
    }

    /// CPU time used by all processes of the cgroup so far.
    pub fn cpu_usage(&self) -> Option<Duration> {
        match self.version {
            Version::V1 => std::fs::read_to_string(self.file("cpuacct", "cpuacct.usage"))
                .ok()?
                .trim()
                .parse()
                .ok()
                .map(Duration::from_nanos),
            Version::V2 => std::fs::read_to_string(self.file("cpu", "cpu.stat"))
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))?
                .trim()
                .parse()
                .ok()
                .map(Duration::from_micros),
        }
    }

    /// Removes the directories. The cgroup must be empty: call after the
    /// container's init has been reaped (its PID namespace is then empty).
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        let mut first_error = None;
        for (_, dir) in self.dirs.iter().rev() {
            if let Err(e) = rmdir_patiently(dir) {
                first_error.get_or_insert(Error::io("remove cgroup", dir, e));
            }
        }
        self.removed = true;
        first_error.map_or(Ok(()), Err)
    }
}

/// Removes an empty cgroup directory; the kernel may still be tearing
/// down the last task for a moment (EBUSY), so it tries again a while.
pub fn rmdir_patiently(dir: &Path) -> std::io::Result<()> {
    let mut wait = Duration::from_micros(100);
    for _ in 0..20 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_dir(dir)
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// The memory limit of the cgroup this process runs in, if there is one.
pub fn own_memory_limit() -> Option<u64> {
    match cgroup_mode(Path::new("/sys/fs/cgroup")) {
        CgroupMode::Unified => read_limit(&super::v2::own_dir().ok()?.join("memory.max")),
        CgroupMode::Hybrid | CgroupMode::Legacy => read_limit(
            &super::v1::own_dirs()
                .ok()?
                .get("memory")?
                .join("memory.limit_in_bytes"),
        ),
        CgroupMode::Unavailable => None,
    }
}

/// A limit file's value; "max" (v2) and v1's huge "unlimited" are `None`.
fn read_limit(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().filter(|n| *n < 1 << 62)
}

/// Cgroups whose names start with `prefix` beneath this process's own
/// cgroup(s): what a crashed or careless runtime would leave behind.
pub fn find_leftovers(prefix: &str) -> Vec<PathBuf> {
    let parents: Vec<PathBuf> = match cgroup_mode(Path::new("/sys/fs/cgroup")) {
        CgroupMode::Unified => super::v2::parent_dir().into_iter().collect(),
        CgroupMode::Hybrid | CgroupMode::Legacy => super::v1::own_dirs()
            .map(|dirs| dirs.into_values().collect())
            .unwrap_or_default(),
        CgroupMode::Unavailable => Vec::new(),
    };
    let mut found: Vec<PathBuf> = parents
        .iter()
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found.dedup();
    found
}
