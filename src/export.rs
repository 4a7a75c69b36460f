//! `kubelings start`: copy the workbook into a student workspace with every
//! exercise's solution replaced by a `todo!`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::markers::{self, MarkerError, Region};
use crate::workspace::Workspace;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{} already exists and is not empty; choose a new directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`git ls-files` failed in {}: {message}", root.display())]
    Git { root: PathBuf, message: String },
    #[error("{}:{}: {source}", file.display(), source.line())]
    Marker { file: PathBuf, source: MarkerError },
    #[error(
        "{}:{line}: EXERCISE: {id} has no entry in labs/exercises.yaml, so the starter \
         cannot say what to do there (run `kubelings verify --static-only`)",
        file.display()
    )]
    UnknownExercise {
        file: PathBuf,
        line: usize,
        id: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the exercise regions become in a copy of the workbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The student's starter: each body is a `todo!()`.
    Starter,
    /// `kubelings verify`'s copy: each body behind
    /// `if ::kubelings_probe::solved(id) { body } else { todo!() }`.
    Switch,
}

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    pub files: usize,
    /// (file relative to root, region) for every replaced exercise body.
    pub regions: Vec<(PathBuf, Region)>,
}

/// Is `rel` (relative to the root) a lab source file that may hold markers?
/// That is any `.rs` under `labs/*/src/`.
pub fn is_lab_source(rel: &Path) -> bool {
    let parts: Vec<Component> = rel.components().collect();
    parts.len() >= 4
        && parts[0].as_os_str() == "labs"
        && parts[2].as_os_str() == "src"
        && rel.extension() == Some(OsStr::new("rs"))
}

/// The files that make up the workbook, relative to `root`: what git knows
/// (tracked, plus untracked files that are not ignored, so work in progress
/// is exported too) in a git checkout, else a walk that skips build output.
pub fn list_files(root: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let mut files = if root.join(".git").exists() {
        git_files(root)?
    } else {
        let mut files = Vec::new();
        walk(root, Path::new(""), &mut files)?;
        files
    };
    // git also lists tracked files deleted from the work tree: skip those.
    files.retain(|f| root.join(f).symlink_metadata().is_ok());
    files.sort();
    files.dedup();
    Ok(files)
}

fn git_files(root: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let output = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| ExportError::Git {
            root: root.to_path_buf(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(ExportError::Git {
            root: root.to_path_buf(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect())
}

fn walk(root: &Path, rel: &Path, files: &mut Vec<PathBuf>) -> Result<(), ExportError> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name();
        if rel.as_os_str().is_empty()
            && (name == "target" || name == ".kubelings" || name == ".git")
        {
            continue;
        }
        let rel = rel.join(&name);
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if kind.is_dir() {
            walk(root, &rel, files)?;
        } else {
            files.push(rel);
        }
    }
    Ok(())
}

/// The replacement line for each exercise, from the manifest.
fn replacements(ws: &Workspace) -> HashMap<String, String> {
    ws.manifest
        .exercises
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                markers::todo_line(&e.id, &e.title, &e.section),
            )
        })
        .collect()
}

/// Exports the starter into `dest`, which must not exist or be empty. The copy
/// is made in a temporary directory beside `dest` and renamed into place at
/// the end, so an error leaves nothing half-written behind.
pub fn export(ws: &Workspace, dest: &Path) -> Result<ExportReport, ExportError> {
    if let Ok(mut entries) = std::fs::read_dir(dest) {
        if entries.next().is_some() {
            return Err(ExportError::NotEmpty(dest.to_path_buf()));
        }
    } else if dest.exists() {
        // A file, or a directory we cannot read.
        return Err(ExportError::NotEmpty(dest.to_path_buf()));
    }
    let files = list_files(&ws.root)?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".kubelings-start-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    // Temporary directories are private (0700); the workspace should not be.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(io(tmp.path()))?;
    }
    let report = copy_all(ws, &files, tmp.path(), Flavor::Starter)?;
    // rename(2) will not replace a directory unless it is empty; remove it.
    if dest.is_dir() {
        std::fs::remove_dir(dest).map_err(io(dest))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dest).map_err(|source| {
        let _ = std::fs::remove_dir_all(&kept);
        ExportError::Io {
            path: dest.to_path_buf(),
            source,
        }
    })?;
    Ok(report)
}

/// Makes `dest` a copy of the workbook in `flavor`, rewriting only the
/// files whose content changed (so cargo rebuilds only what changed) and
/// removing files the workbook no longer has. For `kubelings verify`.
pub fn sync(ws: &Workspace, dest: &Path, flavor: Flavor) -> Result<ExportReport, ExportError> {
    let files = list_files(&ws.root)?;
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let report = copy_all(ws, &files, dest, flavor)?;
    let mut present = Vec::new();
    walk(dest, Path::new(""), &mut present)?;
    let keep: std::collections::HashSet<&PathBuf> = files.iter().collect();
    for rel in present.iter().filter(|f| !keep.contains(f)) {
        let path = dest.join(rel);
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(report)
}

/// Writes `data` to `to` unless it already holds exactly that.
fn write_if_changed(to: &Path, data: &[u8]) -> Result<(), ExportError> {
    if to.symlink_metadata().is_ok_and(|m| m.is_file())
        && std::fs::read(to).is_ok_and(|old| old == data)
    {
        return Ok(());
    }
    if to.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        std::fs::remove_file(to).map_err(io(to))?;
    }
    std::fs::write(to, data).map_err(io(to))
}

fn copy_all(
    ws: &Workspace,
    files: &[PathBuf],
    into: &Path,
    flavor: Flavor,
) -> Result<ExportReport, ExportError> {
    let replacements = replacements(ws);
    let mut report = ExportReport::default();
    for rel in files {
        let from = ws.root.join(rel);
        let to = into.join(rel);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let meta = from.symlink_metadata().map_err(io(&from))?;
        if meta.file_type().is_symlink() {
            if to.symlink_metadata().is_ok() {
                std::fs::remove_file(&to).map_err(io(&to))?;
            }
            copy_symlink(&from, &to)?;
        } else if is_lab_source(rel) {
            let text = std::fs::read_to_string(&from).map_err(io(&from))?;
            let regions = markers::scan(&text).map_err(|source| ExportError::Marker {
                file: rel.clone(),
                source,
            })?;
            if let Some(r) = regions.iter().find(|r| !replacements.contains_key(&r.id)) {
                return Err(ExportError::UnknownExercise {
                    file: rel.clone(),
                    line: r.start,
                    id: r.id.clone(),
                });
            }
            let out = match flavor {
                Flavor::Starter => markers::replace(&text, &replacements),
                Flavor::Switch => markers::switch(&text, &replacements),
            }
            .map_err(|source| ExportError::Marker {
                file: rel.clone(),
                source,
            })?;
            write_if_changed(&to, out.as_bytes())?;
            std::fs::set_permissions(&to, meta.permissions()).map_err(io(&to))?;
            report
                .regions
                .extend(regions.into_iter().map(|r| (rel.clone(), r)));
        } else {
            let data = std::fs::read(&from).map_err(io(&from))?;
            write_if_changed(&to, &data)?;
            std::fs::set_permissions(&to, meta.permissions()).map_err(io(&to))?;
        }
        report.files += 1;
    }
    Ok(report)
}

#[cfg(unix)]
fn copy_symlink(from: &Path, to: &Path) -> Result<(), ExportError> {
    let target = std::fs::read_link(from).map_err(io(from))?;
    std::os::unix::fs::symlink(target, to).map_err(io(to))
}

#[cfg(not(unix))]
fn copy_symlink(from: &Path, to: &Path) -> Result<(), ExportError> {
    std::fs::copy(from, to).map(|_| ()).map_err(io(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_lab_sources() {
        assert!(is_lab_source(Path::new("labs/lab01-isolation/src/lib.rs")));
        assert!(is_lab_source(Path::new(
            "labs/lab01-isolation/src/cgroup/limits.rs"
        )));
        assert!(!is_lab_source(Path::new(
            "labs/lab01-isolation/tests/limits.rs"
        )));
        assert!(!is_lab_source(Path::new(
            "labs/lab01-isolation/src/notes.md"
        )));
        assert!(!is_lab_source(Path::new("src/main.rs")));
    }
}
