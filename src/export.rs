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
    let report = copy_all(ws, &files, tmp.path())?;
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

fn copy_all(ws: &Workspace, files: &[PathBuf], into: &Path) -> Result<ExportReport, ExportError> {
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
            let out =
                markers::replace(&text, &replacements).map_err(|source| ExportError::Marker {
                    file: rel.clone(),
                    source,
                })?;
            std::fs::write(&to, out).map_err(io(&to))?;
            std::fs::set_permissions(&to, meta.permissions()).map_err(io(&to))?;
            report
                .regions
                .extend(regions.into_iter().map(|r| (rel.clone(), r)));
        } else {
            std::fs::copy(&from, &to).map_err(io(&from))?;
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
