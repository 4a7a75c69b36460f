//! `labs/exercises.yaml`: the list of exercises, in the order a reader meets them.

use std::fmt;
use std::path::{Path, PathBuf};

use kubelings_probe::Privilege;
use serde::Deserialize;

/// Where the manifest lives, relative to the workspace root.
pub const MANIFEST_PATH: &str = "labs/exercises.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid exercise manifest: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
}

/// The whole manifest file.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub exercises: Vec<Exercise>,
}

/// One exercise: a marked function body in a lab, the tests that check it,
/// and where the book explains it.
#[derive(Debug, Clone, Deserialize)]
pub struct Exercise {
    pub id: String,
    /// The lab crate's package name, e.g. `lab01`.
    pub lab: String,
    pub title: String,
    /// Book section number, e.g. `1.5`.
    pub section: String,
    /// Book page relative to `book/src`, with a `#heading-id`.
    pub page: String,
    pub privilege: Privilege,
    pub hints: Vec<String>,
    /// `<package>::<test target>::<test fn>`.
    pub tests: Vec<String>,
    /// Seconds one of its tests may run before it is killed (default 120).
    #[serde(default)]
    pub timeout: Option<u64>,
}

impl Manifest {
    pub fn load(root: &Path) -> Result<Manifest, ManifestError> {
        let path = root.join(MANIFEST_PATH);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        Manifest::parse(&text).map_err(|source| ManifestError::Parse { path, source })
    }

    pub fn parse(text: &str) -> Result<Manifest, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    pub fn get(&self, id: &str) -> Option<&Exercise> {
        self.exercises.iter().find(|e| e.id == id)
    }

    /// Lab names in the order their first exercise appears.
    pub fn labs(&self) -> Vec<&str> {
        let mut labs: Vec<&str> = Vec::new();
        for e in &self.exercises {
            if !labs.contains(&e.lab.as_str()) {
                labs.push(&e.lab);
            }
        }
        labs
    }
}

impl Exercise {
    /// The page path and its fragment (`ch01/x.md`, `Some("heading")`).
    pub fn page_parts(&self) -> (&str, Option<&str>) {
        match self.page.split_once('#') {
            Some((path, frag)) => (path, Some(frag)),
            None => (&self.page, None),
        }
    }

    /// The parsed `tests` entries; malformed ones are returned as errors
    /// (verify reports them, check refuses to guess).
    pub fn test_refs(&self) -> Vec<Result<TestRef, String>> {
        self.tests.iter().map(|t| TestRef::parse(t)).collect()
    }

    /// How long one of its tests may run.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(std::time::Duration::from_secs)
            .unwrap_or(crate::runner::DEFAULT_TIMEOUT)
    }

    /// "book §1.5, book/src/ch01/cgroups.md#limits-as-data"
    pub fn book_ref(&self) -> String {
        format!("book §{}, book/src/{}", self.section, self.page)
    }
}

/// One test named in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TestRef {
    pub package: String,
    /// The integration test target: `tests/<target>.rs` in the lab.
    pub target: String,
    /// The test's path inside the target: a fn name, or `module::fn`.
    pub name: String,
}

impl TestRef {
    pub fn parse(s: &str) -> Result<TestRef, String> {
        let mut parts = s.splitn(3, "::");
        match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(t), Some(n)) if !p.is_empty() && !t.is_empty() && !n.is_empty() => {
                Ok(TestRef {
                    package: p.to_string(),
                    target: t.to_string(),
                    name: n.to_string(),
                })
            }
            _ => Err(format!(
                "test `{s}` is not of the form <package>::<test target>::<test fn>"
            )),
        }
    }

    /// The bare fn name (last path segment).
    pub fn fn_name(&self) -> &str {
        self.name.rsplit("::").next().unwrap_or(&self.name)
    }
}

impl fmt::Display for TestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}::{}", self.package, self.target, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_refs() {
        let t = TestRef::parse("lab01::limits::parses_sizes").unwrap();
        assert_eq!(
            (t.package.as_str(), t.target.as_str(), t.name.as_str()),
            ("lab01", "limits", "parses_sizes")
        );
        let t = TestRef::parse("lab01::limits::units::parses").unwrap();
        assert_eq!(t.name, "units::parses");
        assert_eq!(t.fn_name(), "parses");
        assert!(TestRef::parse("lab01::limits").is_err());
        assert!(TestRef::parse("lab01::::x").is_err());
    }

    #[test]
    fn parses_a_manifest() {
        let m = Manifest::parse(
            r#"
exercises:
  - id: a
    lab: lab01
    title: T
    section: "1.5"
    page: ch01/x.md#y
    privilege: root
    hints: [one, two, three]
    tests: [lab01::t::f]
    timeout: 5
"#,
        )
        .unwrap();
        assert_eq!(m.exercises[0].privilege, Privilege::Root);
        assert_eq!(m.exercises[0].page_parts(), ("ch01/x.md", Some("y")));
        assert_eq!(m.labs(), vec!["lab01"]);
        assert_eq!(m.exercises[0].timeout(), std::time::Duration::from_secs(5));
    }
}
