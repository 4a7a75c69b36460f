//! What this machine can do: the facts `kubelings doctor` prints and the
//! self-checks use to decide whether they can run here.

use std::fmt;
use std::path::{Path, PathBuf};

/// What a self-check needs from the machine before it can run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    /// Pure code: runs anywhere, any user.
    None,
    /// Unprivileged user namespaces (or root).
    Userns,
    /// Real root: cgroups, device nodes, the full container.
    Root,
}

/// The cgroup layout the kernel mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only cgroup v2, at /sys/fs/cgroup, with controllers.
    Unified,
    /// v1 controllers in their own hierarchies, and maybe an empty cgroup2 beside them.
    Hybrid,
    /// Only v1 hierarchies.
    Legacy,
    /// No cgroup filesystem this program can use.
    Unavailable,
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupMode::Unified => "v2 (unified)",
            CgroupMode::Hybrid => "hybrid (v1 controllers, cgroup2 without controllers)",
            CgroupMode::Legacy => "v1 (legacy)",
            CgroupMode::Unavailable => "unavailable",
        })
    }
}

/// One reading of the machine.
#[derive(Debug, Clone)]
pub struct Host {
    pub os: &'static str,
    pub kernel: String,
    pub is_root: bool,
    pub userns: bool,
    pub cgroups: CgroupMode,
    pub overlayfs: bool,
    pub runc: Option<String>,
    pub qemu: Option<String>,
}

impl Host {
    /// Whether a test that needs `need` can run on this machine.
    pub fn allows(&self, need: Privilege) -> Result<(), String> {
        if self.os != "linux" && need != Privilege::None {
            return Err(format!("needs Linux (this is {})", self.os));
        }
        match need {
            Privilege::None => Ok(()),
            Privilege::Userns if self.is_root || self.userns => Ok(()),
            Privilege::Userns => Err("needs root or unprivileged user namespaces \
                 (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0)"
                .into()),
            Privilege::Root if self.is_root => Ok(()),
            Privilege::Root => {
                Err("needs root (`kubelings check` runs such tests through sudo)".into())
            }
        }
    }
}

/// Reads the machine once.
pub fn probe() -> Host {
    Host {
        os: std::env::consts::OS,
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        is_root: is_root(),
        userns: userns_available(),
        cgroups: cgroup_mode(Path::new("/sys/fs/cgroup")),
        overlayfs: read_trim("/proc/filesystems")
            .map(|s| s.lines().any(|l| l.trim_end().ends_with("overlay")))
            .unwrap_or(false),
        runc: find_program("runc"),
        qemu: find_program("qemu-system-x86_64"),
    }
}

/// Decides whether a self-check runs. Prints why it skips; under `CI=true`
/// a missing capability is a failure instead, so CI never passes silently.
pub fn require(need: Privilege) -> bool {
    match probe().allows(need) {
        Ok(()) => true,
        Err(why) => skip(&why),
    }
}

/// Decides whether a self-check that compares with a real tool (runc,
/// skopeo, umoci…) runs: the program must be on PATH. Like [`require`], a
/// skip says why, and under `CI=true` a missing tool is a failure.
pub fn require_program(name: &str) -> bool {
    find_program(name).is_some()
        || skip(&format!("{name} is not installed (apt-get install {name})"))
}

/// The environment variable naming the skip log: where a skipping test
/// appends `<test name>\t<reason>\n`, so `kubelings check` and
/// `kubelings test` learn of skips without reading libtest's output.
pub const SKIP_LOG_ENV: &str = "KUBELINGS_SKIP_LOG";

/// How a test that would skip fails under `CI=true` (`kubelings verify`
/// tells such a failure from a real one by it).
pub const CI_SKIP_PANIC: &str = "CI=true and this test cannot run here";

fn skip(why: &str) -> bool {
    if ci() {
        panic!("{CI_SKIP_PANIC}: {why}");
    }
    eprintln!("SKIP: {why}");
    log_skip(why);
    false
}

/// Appends this test's skip to the skip log, if one is named. libtest names
/// each test's thread after the test's path (`module::test_fn`).
fn log_skip(why: &str) {
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) {
        log_skip_to(Path::new(&path), why);
    }
}

fn log_skip_to(path: &Path, why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("?");
    // One line, one write on an O_APPEND file: tests running in parallel
    // threads or processes do not tear each other's lines.
    let line = format!("{name}\t{}\n", why.replace(['\t', '\n'], " "));
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!(
            "kubelings: cannot write the skip log {}: {err}",
            path.display()
        );
    }
}

/// `CI=true` (or `1`) in the environment.
pub fn ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn is_root() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::unistd::geteuid().is_root()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

fn userns_available() -> bool {
    if std::env::consts::OS != "linux" {
        return false;
    }
    let max = read_trim("/proc/sys/user/max_user_namespaces")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1);
    // Debian and Ubuntu kernels have an extra switch; others do not.
    let debian_switch = read_trim("/proc/sys/kernel/unprivileged_userns_clone")
        .map(|s| s != "0")
        .unwrap_or(true);
    // Ubuntu 24.04+ restricts them through AppArmor.
    let apparmor = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .map(|s| s == "0")
        .unwrap_or(true);
    max > 0 && debian_switch && apparmor
}

/// Tells the layout from what is mounted at `root` (normally /sys/fs/cgroup).
pub fn cgroup_mode(root: &Path) -> CgroupMode {
    if root.join("cgroup.controllers").exists() {
        CgroupMode::Unified
    } else if root.join("memory").is_dir() || root.join("pids").is_dir() {
        if root.join("unified").is_dir() {
            CgroupMode::Hybrid
        } else {
            CgroupMode::Legacy
        }
    } else {
        CgroupMode::Unavailable
    }
}

/// Looks `name` up on PATH.
pub fn find_program(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Whether exercise `id` counts as solved in this process.
///
/// Only `kubelings verify` asks: it builds the labs once with both the
/// reference body and the `todo!()` of every exercise, and names the solved
/// ones in `KUBELINGS_SOLVED` (ids separated by commas, or `*` for all).
/// Without the variable every exercise is solved, as in the reference.
pub fn solved(id: &str) -> bool {
    match std::env::var("KUBELINGS_SOLVED") {
        Err(_) => true,
        Ok(list) => list.split(',').any(|s| s == "*" || s == id),
    }
}

/// The kernel the pure cgroup v2 VM tier boots: `KUBELINGS_VM_KERNEL`,
/// else the newest readable /boot/vmlinuz-* (Debian's linux-image-amd64).
pub fn vm_kernel() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("KUBELINGS_VM_KERNEL") {
        return Some(PathBuf::from(k));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                && std::fs::File::open(p).is_ok()
        })
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_logged_under_the_tests_name() {
        let dir = std::env::temp_dir().join(format!("kubelings-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips");
        log_skip_to(&log, "needs root");
        log_skip_to(&log, "runc is\tnot\ninstalled");
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            text,
            "tests::a_skip_is_logged_under_the_tests_name\tneeds root\n\
             tests::a_skip_is_logged_under_the_tests_name\trunc is not installed\n"
        );
    }
}
