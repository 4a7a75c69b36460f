//! Finding the workbook on disk: its root, its manifest and its lab crates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::export::is_lab_source;
use crate::manifest::{Exercise, Manifest, ManifestError, MANIFEST_PATH};
use crate::markers::{self, MarkerError, Region};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(
        "no {MANIFEST_PATH} in {} or any directory above it; run kubelings inside the \
         workbook (the repository, or the folder `kubelings start` made)",
        start.display()
    )]
    NotFound { start: PathBuf },
    #[error("cannot read the current directory: {0}")]
    Cwd(#[source] std::io::Error),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid Cargo manifest: {source}", path.display())]
    CargoToml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("lab `{0}`: no directory under labs/ has a Cargo.toml with name = \"{0}\"")]
    LabNotFound(String),
}

/// A lab crate: `labs/<dir>` whose Cargo.toml says `name = "<package>"`.
#[derive(Debug, Clone)]
pub struct Lab {
    pub package: String,
    /// Relative to the workspace root, e.g. `labs/lab01-isolation`.
    pub dir: PathBuf,
    /// The package description, shown as the chapter's title.
    pub description: Option<String>,
}

/// The workbook: root directory, manifest, and the lab crates found on disk.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub labs: BTreeMap<String, Lab>,
}

/// Walks up from `start` to the first directory holding the manifest.
pub fn find_root(start: &Path) -> Result<PathBuf, WorkspaceError> {
    start
        .ancestors()
        .find(|dir| dir.join(MANIFEST_PATH).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| WorkspaceError::NotFound {
            start: start.to_path_buf(),
        })
}

impl Workspace {
    /// The workspace holding the current directory.
    pub fn discover() -> Result<Workspace, WorkspaceError> {
        let cwd = std::env::current_dir().map_err(WorkspaceError::Cwd)?;
        Workspace::load(&find_root(&cwd)?)
    }

    pub fn load(root: &Path) -> Result<Workspace, WorkspaceError> {
        let manifest = Manifest::load(root)?;
        let labs = find_labs(root)?;
        Ok(Workspace {
            root: root.to_path_buf(),
            manifest,
            labs,
        })
    }

    pub fn lab(&self, package: &str) -> Result<&Lab, WorkspaceError> {
        self.labs
            .get(package)
            .ok_or_else(|| WorkspaceError::LabNotFound(package.to_string()))
    }

    pub fn exercise(&self, id: &str) -> Option<&Exercise> {
        self.manifest.get(id)
    }

    /// Every `.rs` file under `labs/*/src`, relative to the root, sorted.
    pub fn lab_sources(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for lab in self.labs.values() {
            collect_rs(&self.root, &lab.dir.join("src"), &mut files);
        }
        files.retain(|f| is_lab_source(f));
        files.sort();
        files
    }

    /// The exercise regions in all lab sources, and the files whose markers
    /// are malformed (with the first error in each).
    pub fn scan_markers(&self) -> MarkerScan {
        let mut scan = MarkerScan::default();
        for rel in self.lab_sources() {
            let Ok(text) = std::fs::read_to_string(self.root.join(&rel)) else {
                continue;
            };
            match markers::scan(&text) {
                Ok(regions) => scan
                    .regions
                    .extend(regions.into_iter().map(|r| (rel.clone(), r))),
                Err(e) => scan.errors.push((rel, e)),
            }
        }
        scan
    }

    /// Where an exercise's region is (file and start line), if found.
    pub fn marker_of(&self, id: &str) -> Option<(PathBuf, usize)> {
        self.scan_markers()
            .regions
            .into_iter()
            .find(|(_, r)| r.id == id)
            .map(|(f, r)| (f, r.start))
    }

    /// The lab directory (relative) holding an exercise, if the lab exists.
    pub fn lab_dir_of(&self, exercise: &Exercise) -> Option<&Path> {
        self.labs.get(&exercise.lab).map(|l| l.dir.as_path())
    }

    /// The cargo target directory the reference workspace builds into.
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => self.root.join(dir),
            _ => self.root.join("target"),
        }
    }
}

/// Regions found by [`Workspace::scan_markers`].
#[derive(Debug, Clone, Default)]
pub struct MarkerScan {
    pub regions: Vec<(PathBuf, Region)>,
    pub errors: Vec<(PathBuf, MarkerError)>,
}

fn collect_rs(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let rel = rel.join(entry.file_name());
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_rs(root, &rel, out),
            Ok(_) if rel.extension().is_some_and(|e| e == "rs") => out.push(rel),
            _ => {}
        }
    }
}

/// Reads `labs/*/Cargo.toml` for package names and descriptions.
fn find_labs(root: &Path) -> Result<BTreeMap<String, Lab>, WorkspaceError> {
    let labs_dir = root.join("labs");
    let entries = std::fs::read_dir(&labs_dir).map_err(|source| WorkspaceError::Io {
        path: labs_dir.clone(),
        source,
    })?;
    let mut labs = BTreeMap::new();
    for entry in entries.flatten() {
        let cargo_toml = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&cargo_toml) else {
            continue;
        };
        let dir = Path::new("labs").join(entry.file_name());
        // A broken lab manifest must not stop `list` or `hint`: say so, and
        // go on without that lab (cargo will say the rest when it builds).
        let fields = match package_fields(&text) {
            Ok(fields) => fields,
            Err(source) => {
                let err = WorkspaceError::CargoToml {
                    path: dir.join("Cargo.toml"),
                    source,
                };
                eprintln!("kubelings: warning: {err}");
                continue;
            }
        };
        if let Some(package) = fields.name {
            labs.insert(
                package.clone(),
                Lab {
                    package,
                    dir,
                    description: fields.description,
                },
            );
        }
    }
    Ok(labs)
}

/// The two fields of `[package]` the workbook reads.
#[derive(Debug, Default, PartialEq)]
struct PackageFields {
    name: Option<String>,
    description: Option<String>,
}

/// A field that is not a plain string (`description.workspace = true`)
/// counts as absent: the workbook only shows it.
fn package_fields(cargo_toml: &str) -> Result<PackageFields, toml::de::Error> {
    let doc: toml::Table = toml::from_str(cargo_toml)?;
    let package = doc.get("package").and_then(toml::Value::as_table);
    let field = |key: &str| {
        package
            .and_then(|p| p.get(key))
            .and_then(toml::Value::as_str)
            .map(str::to_string)
    };
    Ok(PackageFields {
        name: field("name"),
        description: field("description"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_name_and_description() {
        let f = package_fields(
            "[package]\nname = \"lab01\" # the crate\ndescription = 'Chapter 1'\n\n[dependencies]\nname = \"x\"\n",
        )
        .unwrap();
        assert_eq!(f.name.as_deref(), Some("lab01"));
        assert_eq!(f.description.as_deref(), Some("Chapter 1"));
        // A workspace-inherited field is not a string: not a description.
        let f = package_fields("[package]\nname = \"x\"\ndescription.workspace = true\n");
        assert_eq!(f.unwrap().description, None);
        assert!(package_fields("[package\n").is_err());
    }

    #[test]
    fn finds_the_root_from_below() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("labs/x/src")).unwrap();
        std::fs::write(tmp.path().join(MANIFEST_PATH), "exercises: []\n").unwrap();
        let root = find_root(&tmp.path().join("labs/x/src")).unwrap();
        assert_eq!(root, tmp.path());
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(find_root(elsewhere.path()).is_err());
    }
}
