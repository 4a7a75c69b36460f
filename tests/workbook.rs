//! End-to-end tests of the `kubelings` binary. None of them runs cargo (a
//! cargo inside `cargo test` would wait on the build lock forever), so
//! `check` and the full `verify` are left to CI's `kubelings verify`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kubelings::manifest::{Exercise, Manifest};
use predicates::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubelings(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubelings"));
    cmd.current_dir(dir).env_remove("CI");
    cmd
}

fn manifest() -> Manifest {
    Manifest::load(&root()).expect("labs/exercises.yaml loads")
}

fn parse_size() -> Exercise {
    manifest()
        .get("lab01-parse-size")
        .cloned()
        .expect("lab01-parse-size is in the manifest")
}

/// A fresh student workspace, so tests that record progress leave the
/// repository's own `.kubelings/` alone.
fn exported() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    kubelings(&root()).arg("start").arg(&ws).assert().success();
    (tmp, ws)
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file under `dir` holding `// EXERCISE: id`, and its text.
fn file_with_marker(dir: &Path, id: &str) -> (PathBuf, String) {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let marker = format!("// EXERCISE: {id}");
    files
        .into_iter()
        .find_map(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            text.lines()
                .any(|l| l.trim() == marker)
                .then_some((f, text))
        })
        .unwrap_or_else(|| panic!("no file under {} has `{marker}`", dir.display()))
}

/// The lines of a file that are not between exercise markers.
fn outside_regions(text: &str) -> Vec<&str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("// EXERCISE_END:") {
            inside = false;
        }
        if !inside {
            out.push(line);
        }
        if t.starts_with("// EXERCISE:") {
            inside = true;
        }
    }
    out
}

#[test]
fn list_shows_exercises_and_what_to_do_next() {
    let m = manifest();
    kubelings(&root()).arg("list").assert().success();
    // In a fresh workspace nothing is done, so there is a next exercise.
    let (_tmp, ws) = exported();
    let assert = kubelings(&ws).arg("list").assert().success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for e in &m.exercises {
        assert!(out.contains(&e.id), "list lacks {}:\n{out}", e.id);
    }
    let first = &m.exercises[0];
    assert!(out.contains("not yet checked"), "{out}");
    assert!(out.contains(&format!("Next: {}", first.title)), "{out}");
    assert!(out.contains(&format!("§{}", first.section)), "{out}");
    assert!(
        out.contains(&format!("kubelings check {}", first.id)),
        "{out}"
    );
}

#[test]
fn no_command_means_list() {
    kubelings(&root())
        .assert()
        .success()
        .stdout(predicate::str::contains("lab01-parse-size"));
}

#[test]
fn hint_prints_the_requested_level() {
    let e = parse_size();
    let (_tmp, ws) = exported();
    kubelings(&ws)
        .args(["hint", "lab01-parse-size", "--level", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&e.hints[0]))
        .stdout(predicate::str::contains(format!("§{}", e.section)))
        .stdout(predicate::str::contains(&e.hints[1]).not());
}

#[test]
fn hint_without_level_moves_to_the_next_one() {
    let e = parse_size();
    let (_tmp, ws) = exported();
    for expected in [&e.hints[0], &e.hints[1], &e.hints[2], &e.hints[2]] {
        kubelings(&ws)
            .args(["hint", "lab01-parse-size"])
            .assert()
            .success()
            .stdout(predicate::str::contains(expected.as_str()));
    }
    assert!(ws.join(".kubelings/progress.json").is_file());
}

#[test]
fn hint_level_out_of_range_is_refused() {
    kubelings(&root())
        .args(["hint", "lab01-parse-size", "--level", "4"])
        .assert()
        .failure();
}

#[test]
fn unknown_exercise_is_a_clear_error() {
    kubelings(&root())
        .args(["hint", "no-such-exercise"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "unknown exercise `no-such-exercise`",
        ));
    kubelings(&root())
        .args(["check", "no-such-exercise"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "unknown exercise or lab `no-such-exercise`",
        ));
}

#[test]
fn outside_a_workbook_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    kubelings(tmp.path())
        .arg("list")
        .assert()
        .failure()
        .stderr(predicate::str::contains("labs/exercises.yaml"));
}

#[test]
fn start_replaces_every_exercise_with_a_todo() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    kubelings(&root())
        .arg("start")
        .arg(&ws)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("cd {}", ws.display())))
        .stdout(predicate::str::contains("cargo run -- list"));

    assert!(ws.join("Cargo.toml").is_file());
    assert!(ws.join("Cargo.lock").is_file());
    assert!(ws.join("labs/exercises.yaml").is_file());
    assert!(ws.join("src/main.rs").is_file());
    assert!(!ws.join("target").exists());
    assert!(!ws.join(".git").exists());

    for e in &manifest().exercises {
        let (reference_file, reference) = file_with_marker(&root().join("labs"), &e.id);
        let rel = reference_file.strip_prefix(root()).unwrap();
        let (starter_file, starter) = file_with_marker(&ws.join("labs"), &e.id);
        assert_eq!(starter_file.strip_prefix(&ws).unwrap(), rel);

        // The marker lines stay; exactly the todo! sits between them (and
        // any mdBook anchor lines, which are left alone).
        let lines: Vec<&str> = starter.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == format!("// EXERCISE: {}", e.id))
            .unwrap();
        let indent = &lines[start][..lines[start].len() - lines[start].trim_start().len()];
        let todo = format!(
            "{indent}todo!(\"{}: {} (book §{})\")",
            e.id, e.title, e.section
        );
        let body: Vec<&str> = lines[start + 1..]
            .iter()
            .take_while(|l| l.trim() != format!("// EXERCISE_END: {}", e.id))
            .filter(|l| !l.contains("ANCHOR"))
            .copied()
            .collect();
        assert_eq!(body, vec![todo.as_str()], "in {}", rel.display());

        // Everything outside the regions is as it was.
        assert_eq!(
            outside_regions(&starter),
            outside_regions(&reference),
            "in {}",
            rel.display()
        );
    }

    // The CLI works in the student workspace, from a subdirectory too.
    kubelings(&ws.join("labs"))
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("0 of"));
}

#[test]
fn start_refuses_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "mine\n").unwrap();
    kubelings(&root())
        .arg("start")
        .arg(&ws)
        .assert()
        .failure()
        .stderr(predicate::str::contains("not empty"));
    // Nothing was touched, and no temporary copy is left beside it.
    let names: Vec<String> = std::fs::read_dir(&ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["notes.txt"]);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn start_into_an_empty_directory_works() {
    let tmp = tempfile::tempdir().unwrap();
    kubelings(&root())
        .arg("start")
        .arg(tmp.path())
        .assert()
        .success();
    assert!(tmp.path().join("labs/exercises.yaml").is_file());
}

#[test]
fn manifest_agrees_with_code_and_book() {
    kubelings(&root())
        .args(["verify", "--static-only"])
        .assert()
        .success()
        .stdout(predicate::str::contains("agree"));
}

#[test]
fn doctor_reports_the_host_and_every_exercise() {
    let assert = kubelings(&root()).arg("doctor").assert().success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(out.contains("kernel"), "{out}");
    assert!(out.contains("cgroups"), "{out}");
    for e in &manifest().exercises {
        assert!(out.contains(&e.id), "doctor lacks {}:\n{out}", e.id);
    }
}

/// Writes `files` (path, text) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn verify_names_each_broken_exercise() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            (
                "labs/exercises.yaml",
                r#"exercises:
  - id: labx-good
    lab: labx
    title: Good
    section: "9.1"
    page: ch09/page.md#a-heading
    privilege: none
    hints: [one, two, three]
    tests: [labx::t::good_test]
  - id: labx-bad
    lab: labx
    title: Bad
    section: "9.2"
    page: ch09/page.md#no-such-heading
    privilege: root
    hints: [one, ""]
    tests: [labx::t::missing_test, labx::nofile::x, other::t::good_test]
  - id: labx-unmarked
    lab: labx
    title: Unmarked
    section: "9.3"
    page: ch09/nope.md#x
    privilege: userns
    hints: [one, two, three]
    tests: []
"#,
            ),
            ("labs/labx-dir/Cargo.toml", "[package]\nname = \"labx\"\n"),
            (
                "labs/labx-dir/src/lib.rs",
                "pub fn good() -> u32 {\n    // EXERCISE: labx-good\n    1\n    // EXERCISE_END: labx-good\n}\n\
                 pub fn bad() -> u32 {\n    // EXERCISE: labx-bad\n    2\n    // EXERCISE_END: labx-bad\n}\n\
                 pub fn orphan() -> u32 {\n    // EXERCISE: labx-orphan\n    3\n    // EXERCISE_END: labx-orphan\n}\n",
            ),
            ("labs/labx-dir/tests/t.rs", "#[test]\nfn good_test() {}\n"),
            ("book/book.toml", "[book]\ntitle = \"x\"\n"),
            ("book/src/SUMMARY.md", "# Summary\n\n- [Nine](ch09/page.md)\n"),
            ("book/src/ch09/page.md", "# Nine\n\n## A heading\n\n[broken](gone.md)\n"),
        ],
    );
    let assert = kubelings(tmp.path())
        .args(["verify", "--static-only"])
        .assert()
        .failure();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for expected in [
        "labx-bad: book/src/ch09/page.md has no heading with id `no-such-heading`",
        "labx-bad: has 2 hints; it needs exactly 3",
        "labx-bad: hint 2 is empty",
        "labx-bad: test labx::t::missing_test: labs/labx-dir/tests/t.rs has no `fn missing_test(`",
        "labx-bad: test labx::nofile::x: no test file labs/labx-dir/tests/nofile.rs",
        "labx-bad: test other::t::good_test is in package other",
        "labx-unmarked: page book/src/ch09/nope.md does not exist",
        "labx-unmarked: lists no tests",
        "labx-unmarked: no `// EXERCISE: labx-unmarked`",
        "labs/labx-dir/src/lib.rs:12: EXERCISE: labx-orphan has no entry in labs/exercises.yaml",
        "book: book/src/ch09/page.md:5: link to gone.md: no file gone.md",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains("labx-good:"), "{out}");

    // The export refuses to ship a region it cannot describe.
    kubelings(tmp.path())
        .arg("start")
        .arg(tmp.path().join("student"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("labx-orphan"));
    assert!(!tmp.path().join("student").exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".kubelings-start")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
