//! `.kubelings/progress.json`: what the last checks said and which hints the
//! student has seen. Git-ignored; deleting it only forgets the history.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const PROGRESS_PATH: &str = ".kubelings/progress.json";

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid progress JSON ({source}); delete it to start afresh", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The result of the last check of one exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failing,
    Skipped,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Why it was skipped or failed, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The highest hint level shown so far (0 = none).
    #[serde(default)]
    pub hints_seen: u8,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub exercises: BTreeMap<String, Entry>,
}

impl Progress {
    pub fn path(root: &Path) -> PathBuf {
        root.join(PROGRESS_PATH)
    }

    /// Loads the progress file; a missing file is an empty progress.
    pub fn load(root: &Path) -> Result<Progress, ProgressError> {
        let path = Progress::path(root);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|source| ProgressError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(source) => Err(ProgressError::Read { path, source }),
        }
    }

    /// Writes the file atomically (temp file + rename), so an interrupted
    /// check never leaves a truncated file.
    pub fn save(&self, root: &Path) -> Result<(), ProgressError> {
        let path = Progress::path(root);
        let write = |source| ProgressError::Write {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(root);
        std::fs::create_dir_all(dir).map_err(write)?;
        let mut json = serde_json::to_string_pretty(self)
            .map_err(std::io::Error::other)
            .map_err(write)?;
        json.push('\n');
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
        std::fs::write(tmp.path(), json).map_err(write)?;
        tmp.persist(&path).map_err(|e| write(e.error))?;
        Ok(())
    }

    pub fn entry(&self, id: &str) -> Entry {
        self.exercises.get(id).cloned().unwrap_or_default()
    }

    pub fn status(&self, id: &str) -> Option<Status> {
        self.exercises.get(id).and_then(|e| e.status)
    }

    pub fn set_status(&mut self, id: &str, status: Status, reason: Option<String>) {
        let entry = self.exercises.entry(id.to_string()).or_default();
        entry.status = Some(status);
        entry.reason = reason;
    }

    pub fn saw_hint(&mut self, id: &str, level: u8) {
        let entry = self.exercises.entry(id.to_string()).or_default();
        entry.hints_seen = entry.hints_seen.max(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Progress::load(tmp.path()).unwrap(), Progress::default());
        let mut p = Progress::default();
        p.set_status("a", Status::Skipped, Some("needs root".into()));
        p.saw_hint("a", 2);
        p.saw_hint("a", 1);
        p.save(tmp.path()).unwrap();
        let back = Progress::load(tmp.path()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.entry("a").hints_seen, 2);
        assert_eq!(back.status("a"), Some(Status::Skipped));
    }
}
