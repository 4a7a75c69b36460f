//! A root filesystem made from the host's own programs, so every Linux
//! machine can build one without a download.
//!
//! A dynamically linked program needs its shared libraries and the dynamic
//! loader at the paths its ELF headers name; the lddtree crate reads those
//! headers (and those of the libraries, recursively) for us.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::probe::find_program;

/// Programs a chapter 1 container gets by default.
pub const DEFAULT_PROGRAMS: &[&str] = &[
    "sh", "ls", "cat", "echo", "ps", "hostname", "sleep", "true", "false", "id", "env", "uname",
    "head", "readlink", "mount", "grep", "wc", "rm", "mkdir", "cp", "mv", "touch", "chmod", "ln",
];

/// Builds a root filesystem directory.
#[derive(Debug, Clone)]
pub struct RootfsBuilder {
    programs: Vec<String>,
    busybox: Option<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>)>,
    binaries: Vec<(PathBuf, PathBuf)>,
}

/// What [`RootfsBuilder::build`] put in.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// Programs under /bin.
    pub programs: Vec<String>,
    /// Files copied from the host (programs, libraries, loader), by their path inside.
    pub copied: BTreeSet<PathBuf>,
    /// Whether the programs are busybox applets.
    pub busybox: bool,
}

impl Default for RootfsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RootfsBuilder {
    /// The default programs, from busybox where it is installed, else from the host.
    pub fn new() -> Self {
        RootfsBuilder {
            programs: DEFAULT_PROGRAMS.iter().map(|s| s.to_string()).collect(),
            busybox: find_program("busybox").map(PathBuf::from),
            files: Vec::new(),
            binaries: Vec::new(),
        }
    }

    /// No programs at all: only what [`binary`](Self::binary) and
    /// [`file`](Self::file) add, and the usual directories.
    pub fn empty() -> Self {
        RootfsBuilder {
            programs: Vec::new(),
            busybox: None,
            files: Vec::new(),
            binaries: Vec::new(),
        }
    }

    /// Adds the program at `host` (any path on this machine) as `inside`,
    /// with the shared libraries it needs: how an app's image is made.
    pub fn binary(mut self, host: impl Into<PathBuf>, inside: impl Into<PathBuf>) -> Self {
        self.binaries.push((host.into(), inside.into()));
        self
    }

    /// Adds programs (found on the host's PATH).
    pub fn programs<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        for name in names {
            let name = name.into();
            if !self.programs.contains(&name) {
                self.programs.push(name);
            }
        }
        self
    }

    /// Whether to use busybox (when installed). Off: always the host's programs.
    pub fn busybox(mut self, on: bool) -> Self {
        self.busybox = if on {
            find_program("busybox").map(PathBuf::from)
        } else {
            None
        };
        self
    }

    /// Adds a file with the given contents (a path inside the rootfs).
    pub fn file(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), contents.into()));
        self
    }

    // ANCHOR: build
    /// Fills `dest` (created if missing; must be empty) with a root filesystem.
    pub fn build(&self, dest: &Path) -> Result<Built> {
        ensure_empty(dest)?;
        for dir in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"] {
            mkdir(&dest.join(dir))?;
        }
        set_mode(&dest.join("tmp"), 0o1777)?;
        write(&dest.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n")?;
        write(&dest.join("etc/group"), b"root:x:0:\n")?;

        let mut built = Built::default();
        self.install_programs(dest, &mut built)?;
        for (host, inside) in &self.binaries {
            let rel = inside.strip_prefix("/").unwrap_or(inside);
            install(host, &dest.join(rel), &mut built, dest)?;
        }
        for (path, contents) in &self.files {
            let rel = path.strip_prefix("/").unwrap_or(path);
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                mkdir(parent)?;
            }
            write(&target, contents)?;
        }
        Ok(built)
    }
    // ANCHOR_END: build

    // ANCHOR: install_programs
    /// Puts the programs into `/bin`: links to busybox for its applets, the
    /// host's own programs (with what they need to start) for the rest.
    fn install_programs(&self, dest: &Path, built: &mut Built) -> Result<()> {
        let applets = match &self.busybox {
            Some(busybox) => {
                built.busybox = true;
                install(busybox, &dest.join("bin/busybox"), built, dest)?;
                busybox_applets(busybox)
            }
            None => BTreeSet::new(),
        };
        for name in &self.programs {
            let target = dest.join("bin").join(name);
            if applets.contains(name.as_str()) {
                std::os::unix::fs::symlink("busybox", &target)
                    .map_err(|e| Error::io("link", &target, e))?;
            } else {
                // Not a busybox applet (or no busybox): the host's own program.
                let host = find_program(name).ok_or_else(|| {
                    Error::Rootfs(format!(
                        "the program {name:?} is not on this machine's PATH"
                    ))
                })?;
                install(Path::new(&host), &target, built, dest)?;
            }
        }
        built.programs = self.programs.clone();
        Ok(())
    }
    // ANCHOR_END: install_programs

    /// Builds into `dest` unless it is already there: for a rootfs kept and
    /// shared between runs (tests, benchmarks). Built beside it and renamed,
    /// so a half-built one is never seen, even with several builders at once.
    pub fn build_once(&self, dest: &Path) -> Result<()> {
        if dest.is_dir() {
            return Ok(());
        }
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
        let temp = dest.with_file_name(format!(
            ".{}.{}.partial",
            name.unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&temp);
        let built = self.build(&temp);
        let result = built.and_then(|_| match std::fs::rename(&temp, dest) {
            Ok(()) => Ok(()),
            // Another builder got there first; theirs is as good as ours.
            Err(_) if dest.is_dir() => Ok(()),
            Err(e) => Err(Error::io("rename", &temp, e)),
        });
        let _ = std::fs::remove_dir_all(&temp);
        result
    }
}

/// The programs a busybox binary provides (`busybox --list`).
fn busybox_applets(busybox: &Path) -> BTreeSet<String> {
    std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Copies program `host` to `target`, with every library it needs.
fn install(host: &Path, target: &Path, built: &mut Built, root: &Path) -> Result<()> {
    let real = host
        .canonicalize()
        .map_err(|e| Error::io("resolve", host, e))?;
    copy(&real, target)?;
    built
        .copied
        .insert(Path::new("/").join(target.strip_prefix(root).unwrap_or(target)));
    let tree = lddtree::DependencyAnalyzer::new(PathBuf::from("/"))
        .analyze(&real)
        .map_err(|e| {
            Error::Rootfs(format!(
                "reading the ELF headers of {}: {e}",
                real.display()
            ))
        })?;
    let mut needed: Vec<(PathBuf, PathBuf)> = Vec::new();
    if let Some(interp) = &tree.interpreter {
        needed.push((PathBuf::from(interp), PathBuf::from(interp)));
    }
    for lib in tree.libraries.values() {
        let source = lib.realpath.clone().unwrap_or_else(|| lib.path.clone());
        needed.push((lib.path.clone(), source));
    }
    for (inside, source) in needed {
        if !built.copied.insert(inside.clone()) {
            continue;
        }
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        copy(&source, &root.join(rel))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        mkdir(parent)?;
    }
    std::fs::copy(from, to).map_err(|e| Error::io("copy", from, e))?;
    Ok(())
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io("write", path, e))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", path, e))
}

/// Creates `dest` if missing, and refuses one that holds anything.
fn ensure_empty(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
    let mut entries = std::fs::read_dir(dest).map_err(|e| Error::io("read", dest, e))?;
    if entries.next().is_some() {
        return Err(Error::Rootfs(format!("{} is not empty", dest.display())));
    }
    Ok(())
}
